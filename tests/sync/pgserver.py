"""A private PostgreSQL for tests: its own cluster in a temporary directory on a free loopback
port (the machine's own server on 5432 is left alone), stoppable and restartable to simulate a
cloud database outage."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sync.devbroker import free_port


def pg_bin(name: str) -> str | None:
    """Path of a PostgreSQL server program (Debian keeps them out of PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PgServer:
    """initdb + pg_ctl; run as the `postgres` user when the tests run as root."""

    def __init__(self) -> None:
        # Directly under the system temp dir: the postgres user cannot reach into pytest's
        # private (0700) temporary directories.
        self.workdir = Path(tempfile.mkdtemp(prefix="lotedge-pg-"))
        self.data = self.workdir / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        """postgresql://127.0.0.1:PORT/postgres"""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        """Create the cluster (trust authentication, loopback only)."""
        initdb = pg_bin("initdb")
        if initdb is None:
            raise RuntimeError("PostgreSQL server programs not found (make setup installs them)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-w", "-l",
                  str(self.workdir / "pg.log"), "-o",
                  f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate` is a crash-like stop)."""
        self._run(pg_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def remove(self) -> None:
        """Delete the cluster's files (after stop)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Block until a connection succeeds."""
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

"""A private Mosquitto for tests and benchmarks: free loopback port, own config and persistence,
stoppable (cleanly or SIGKILL) and restartable on the same port."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """A Mosquitto process with its own config and persistence directory."""

    def __init__(self, workdir: Path, port: int | None = None, *, tls: dict[str, Path] | None = None,
                 users: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "mosquitto.conf"
        extra = ""
        if tls:  # keys: cafile, certfile, keyfile; clients must present a certificate
            extra += "".join(f"{k} {v}\n" for k, v in tls.items()) + "require_certificate true\n"
        if users:
            passwd = workdir / "passwd"
            passwd.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password],
                               check=True, capture_output=True)
            extra += f"password_file {passwd}\n"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # Started as root, mosquitto would drop to user `mosquitto`, which cannot write the
            # test's private directory (persistence, log) or read the password file.
            f"user {getpass.getuser()}\n"
            + extra
            + f"allow_anonymous {'false' if users else 'true'}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            f"log_dest file {workdir}/mosquitto.log\n"
        )

    @property
    def url(self) -> str:
        """mqtt://127.0.0.1:PORT"""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}; see "
                                   f"{self.workdir}/mosquitto.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGKILL with kill=True, else a clean SIGTERM)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, *, kill: bool = True, down_s: float = 0.0) -> None:
        """Stop (killed by default) and start again on the same port."""
        self.stop(kill=kill)
        time.sleep(down_s)
        self.start()

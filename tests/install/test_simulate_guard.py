"""`lotedge run --simulate` never writes simulated cars into a ledger of real traffic: it stops
with one line and exit 2, leaves the ledger untouched, and runs with its own --data-dir."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys

from tests.conftest import REPO, write_lot


def lotedge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_simulate_refuses_a_ledger_of_real_traffic(tmp_path):
    config = write_lot(tmp_path)  # pin_factory "mock": a real (not simulated) run on a bench
    real = lotedge("run", "--config", str(config), "--no-display", "--duration", "1")
    assert real.returncode == 0, real.stderr
    ledger = next(tmp_path.rglob("ledger.sqlite3"))
    with sqlite3.connect(ledger) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    digest = hashlib.sha256(ledger.read_bytes()).hexdigest()

    refused = lotedge("run", "--config", str(config), "--simulate", "--no-display",
                      "--duration", "1")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("lotedge: error: --simulate: the ledger")
    assert "holds real traffic" in refused.stderr and "--data-dir" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == digest
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == before

    sim = lotedge("run", "--config", str(config), "--simulate", "--no-display", "--duration", "1",
                  "--data-dir", str(tmp_path / "sim"))
    assert sim.returncode == 0, sim.stderr
    assert (tmp_path / "sim" / "ledger.sqlite3").exists()
    again = lotedge("run", "--config", str(config), "--simulate", "--no-display", "--duration",
                    "1", "--data-dir", str(tmp_path / "sim"))
    assert again.returncode == 0, again.stderr  # a simulation's own ledger is fine to reuse

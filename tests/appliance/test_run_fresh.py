"""`lotedge run --simulate` says whether it continues a lot or starts one, and `--fresh` starts
an empty lot by moving the old data directory aside (never a real lot's)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO, write_lot


def lotedge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_second_run_says_it_continues_and_fresh_starts_an_empty_lot(tmp_path):
    config = str(write_lot(tmp_path))
    sim = tmp_path / "sim"
    args = ["run", "--config", config, "--simulate", "--no-display", "--duration", "1",
            "--data-dir", str(sim)]
    first = lotedge(*args)
    assert first.returncode == 0, first.stderr
    assert f"a new simulated lot in {sim}" in first.stdout
    assert "connection to printer" not in first.stderr  # python-escpos's INFO chatter
    second = lotedge(*args)
    assert second.returncode == 0, second.stderr
    assert f"continuing the simulated lot in {sim}" in second.stdout
    assert "--fresh" in second.stdout
    old_ledger = (sim / "ledger.sqlite3").read_bytes()

    fresh = lotedge(*args, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "fresh lot: the old data directory is now" in fresh.stdout
    assert f"a new simulated lot in {sim}" in fresh.stdout
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("sim.old-")]
    assert len(moved) == 1
    assert (moved[0] / "ledger.sqlite3").read_bytes()[:100] == old_ledger[:100]  # kept, not deleted
    assert (sim / "ledger.sqlite3").exists()


def test_fresh_needs_simulate(tmp_path):
    config = str(write_lot(tmp_path))
    done = lotedge("run", "--config", config, "--fresh", "--no-display", "--duration", "1",
                   "--data-dir", str(tmp_path / "real"))
    assert done.returncode == 2
    assert done.stderr.startswith("lotedge: error: --fresh works only with --simulate")
    assert not (tmp_path / "real").exists()

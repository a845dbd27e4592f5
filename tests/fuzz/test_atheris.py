"""Run every atheris target briefly (the CI subset; `make fuzz` runs each for a minute) and
prove that a finding fails the run. atheris ships wheels for x86_64 Linux only: on another
machine (an ARM appliance) these are skipped; on x86_64 a missing atheris is a failure."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

if platform.machine() != "x86_64":
    pytest.importorskip("atheris", reason="atheris has wheels for x86_64 Linux only")

ROOT = Path(__file__).resolve().parents[2]
RUNS = {"maxbotix": 40_000, "registers": 15_000, "control": 40_000, "config": 8_000,
        "bundle": 20_000}


def _fuzz(target: str, fuzz_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.fuzz.atheris_targets", target, *flags],
        cwd=ROOT, env={**os.environ, "FUZZ_DIR": str(fuzz_dir)}, capture_output=True,
        text=True, timeout=240)


@pytest.mark.parametrize("target", sorted(RUNS))
def test_target_runs_clean_from_its_seeds(target, tmp_path):
    run = _fuzz(target, tmp_path, f"-runs={RUNS[target]}")
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Done {RUNS[target]} runs" in run.stderr
    assert (tmp_path / target / "seed-0").exists()  # it started from the seeds
    assert not list(tmp_path.glob(f"{target}-crash-*"))


def test_a_finding_fails_the_run_and_keeps_the_input(tmp_path):
    corpus = tmp_path / "selftest"
    corpus.mkdir()
    (corpus / "finding").write_bytes(b"LOTEDGE!")
    run = _fuzz("selftest", tmp_path, str(corpus), f"-artifact_prefix={tmp_path}/selftest-",
                "-runs=100")
    assert run.returncode != 0
    assert "selftest finding" in run.stdout + run.stderr
    crashes = list(tmp_path.glob("selftest-crash-*"))
    assert [c.read_bytes() for c in crashes] == [b"LOTEDGE!"]

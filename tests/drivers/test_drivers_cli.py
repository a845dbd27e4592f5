"""`lotedge drivers probe/parse` on the demo lot's simulated devices and a capture file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from appliance.cli.main import app
from drivers.maxbotix import encode_range
from tests.conftest import REPO

runner = CliRunner()


def test_probe_simulated_demo_lot_reports_levels_signs_and_health(tmp_path: Path):
    text = (REPO / "config" / "demo-lot.toml").read_text()
    text = text.replace("spot_debounce_ms = 3000", "spot_debounce_ms = 100")
    text = text.replace("poll_interval_ms = 500", "poll_interval_ms = 50")
    cfg = tmp_path / "lot.toml"
    cfg.write_text(text)
    result = runner.invoke(app, ["drivers", "probe", "-c", str(cfg), "--simulate",
                                 "--seconds", "3", "--json"])  # two rounds of ~40 polls
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    levels = report["levels"]
    assert set(levels) == {"L1", "L2", "L3"}
    assert all(row["source"] == "sensors" and row["unknown"] == 0 for row in levels.values())
    total_free = sum(row["free"] for row in levels.values())
    assert 0 < total_free < 120  # about 30 % of the spots were parked in
    assert report["signs"]["sign-entrance"]["ALL"] == f"{total_free:03d}"
    assert report["health"]["faults"] == 0


def test_parse_capture_counts_frames_and_errors(tmp_path: Path):
    capture = tmp_path / "cap.bin"
    capture.write_bytes(encode_range(123, 3) + b"\x00garbage\r" + encode_range(456, 3))
    result = runner.invoke(app, ["drivers", "parse", str(capture), "--format", "R3-cm"])
    assert result.exit_code == 0
    assert "frames: 2  errors: 1" in result.output
    assert "123 456" in result.output

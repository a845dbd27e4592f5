"""`lotedge diag sensors` shows each spot's sensor health whatever way its `sensor` is spelled
("bus1:05", "bus1:6", a bare MaxBotix port "mb1")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from appliance.cli.main import app
from appliance.config import load_config
from tests.conftest import RunningService

LOT = """
[lot]
id = "t"
mode = "per_spot"
[[levels]]
id = "L1"
[[spots]]
id = "A1"
level = "L1"
type = "REGULAR"
sensor = "bus1:05"
[[spots]]
id = "A2"
level = "L1"
type = "REGULAR"
sensor = "bus1:6"
[[spots]]
id = "A3"
level = "L1"
type = "REGULAR"
sensor = "mb1"
[[spots]]
id = "A4"
level = "L1"
type = "REGULAR"
[[sensor_buses]]
id = "bus1"
poll_interval_ms = 50
[[sensor_buses]]
id = "mb1"
protocol = "maxbotix"
[storage]
data_dir = "{data}"
"""


async def test_every_spot_shows_its_sensor_health_whatever_the_spelling(tmp_path: Path):
    path = tmp_path / "lot.toml"
    path.write_text(LOT.format(data=tmp_path / "var"))
    cfg = load_config(path)
    async with RunningService(cfg):
        await asyncio.sleep(1.0)  # a few polls and frames
        result = await asyncio.to_thread(CliRunner().invoke, app, [
            "diag", "--config", str(path), "sensors", "--json"])
    assert result.exit_code == 0, result.output
    spots = {s["spot"]: s for s in json.loads(result.stdout)["spots"]}
    assert spots["A1"]["sensor_health"]["device"] == "bus1:5"
    assert spots["A2"]["sensor_health"]["device"] == "bus1:6"
    assert spots["A3"]["sensor_health"]["device"] == "mb1:1"
    for spot_id in ("A1", "A2", "A3"):
        assert spots[spot_id]["sensor_health"]["counters"], spot_id
    assert spots["A4"]["sensor_health"] is None  # no sensor

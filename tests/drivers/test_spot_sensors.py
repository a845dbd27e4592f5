"""Spot sensors end to end through real pyserial on pty pairs driven by the simulators."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.core.layout import SpotDef
from appliance.core.occupancy import OccupancySettings, SpotChange
from appliance.core.types import SpotState, SpotType
from appliance.errors import DeviceError
from drivers.health import HealthRegistry
from drivers.serial_link import Backoff, SerialLink
from drivers.serial_sim import SimulatedMaxBotix
from drivers.spot_sensors import BusSpec, SpotSensorArray, sensor_key
from tests.drivers.helpers import wait_until

FAST = OccupancySettings(occupied_below_cm=150, hysteresis_cm=20, debounce_s=0.1,
                         heartbeat_s=0.5)



def spot(spot_id: str, sensor: str, level: str = "L1") -> SpotDef:
    return SpotDef(id=spot_id, level=level, type=SpotType.REGULAR, sensor=sensor)


def test_sensor_key_normalises_addresses():
    assert sensor_key("bus1:05") == "bus1:5"
    assert sensor_key("port7") == "port7:1"


def test_serial_link_round_trip_on_pyserial_loop_url():
    link = SerialLink("loop", "loop://", timeout_s=0.05)
    assert link.try_open()
    link.write(b"R0123\r")
    assert link.read_available() == b"R0123\r"
    link.close()
    with pytest.raises(DeviceError) as err:
        link.read_available()
    assert err.value.code == "port_lost"


async def test_maxbotix_sensor_on_a_pty_reports_occupied_then_free(tmp_path: Path):
    sim = SimulatedMaxBotix(tmp_path / "ttyS1", distance_cm=90, interval_s=0.02,
                            noise_rate=0.2, seed=3).start()
    health = HealthRegistry()
    array = SpotSensorArray([BusSpec(id="s1", port=sim.path, protocol="maxbotix", baud=9600)],
                            [spot("A1", "s1")], settings_for=lambda _: FAST, health=health,
                            tick_s=0.05)
    changes: list[SpotChange] = []
    array.on_change(changes.append)
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: array.states()["A1"] == SpotState.OCCUPIED)
        sim.distance_cm = 400
        assert await wait_until(lambda: array.states()["A1"] == SpotState.AVAILABLE)
        await asyncio.sleep(0.3)  # let some noise arrive
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.stop()
    assert [(c.previous, c.state) for c in changes] == [
        (SpotState.UNKNOWN, SpotState.OCCUPIED), (SpotState.OCCUPIED, SpotState.AVAILABLE)]
    assert changes[0].distance_cm == 90
    port = health.snapshot()["devices"][0]
    assert port["device"] == "s1" and port["state"] == "ok"
    assert port["counters"].get("bad_frames", 0) > 0  # the injected line noise was counted


def test_backoff_grows_and_resets():
    b = Backoff(initial_s=0.1, max_s=0.5)
    assert [b.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next_delay() == 0.1

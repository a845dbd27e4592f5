"""Spot sensors end to end through real pyserial on pty pairs driven by the simulators."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.core.layout import SpotDef
from appliance.core.occupancy import OccupancySettings, SpotChange, level_free_counts
from appliance.core.types import SpotState, SpotType
from appliance.errors import DeviceError
from drivers.health import FaultChange, HealthRegistry
from drivers.serial_link import Backoff, SerialLink
from drivers.serial_sim import SimulatedMaxBotix, SimulatedRs485Bus
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


async def test_rs485_bus_polls_addressed_sensors(tmp_path: Path):
    sim = SimulatedRs485Bus(tmp_path / "ttyBus", distances={1: 80, 2: 400, 3: None},
                            corrupt_rate=0.2, seed=5).start()
    health = HealthRegistry()
    faults: list[FaultChange] = []
    health.on_fault(faults.append)
    spots = [spot("A1", "bus1:1"), spot("A2", "bus1:2"), spot("A3", "bus1:3"),
             spot("B1", "other:1")]
    array = SpotSensorArray(
        [BusSpec(id="bus1", port=sim.path, poll_interval_ms=20, request_timeout_ms=40)],
        spots, settings_for=lambda _: FAST, health=health, tick_s=0.05)
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: array.states()["A1"] == SpotState.OCCUPIED
                                and array.states()["A2"] == SpotState.AVAILABLE)
        assert await wait_until(lambda: any(f.code == "no_reply" for f in faults))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.stop()
    assert set(array.states()) == {"A1", "A2", "A3"}  # B1's bus is not configured here
    assert array.states()["A3"] == SpotState.UNKNOWN
    snap = {d["device"]: d for d in health.snapshot()["devices"]}
    assert snap["bus1:3"]["state"] == "fault" and snap["bus1:3"]["counters"]["timeouts"] >= 5
    assert snap["bus1:1"]["state"] == "ok"
    assert snap["bus1"]["counters"].get("bad_frames", 0) > 0  # corrupted replies were counted
    assert (faults[0].device, faults[0].event_type()) == ("bus1:3", "device.fault")


async def test_stale_sensor_goes_unknown_and_the_level_falls_back(tmp_path: Path):
    sim = SimulatedRs485Bus(tmp_path / "ttyBus", distances={1: 400, 2: 400}).start()
    array = SpotSensorArray(
        [BusSpec(id="b", port=sim.path, poll_interval_ms=20, request_timeout_ms=40)],
        [spot("A1", "b:1"), spot("A2", "b:2")], settings_for=lambda _: FAST,
        health=HealthRegistry(), tick_s=0.05)
    changes: list[SpotChange] = []
    array.on_change(changes.append)
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: set(array.states().values()) == {SpotState.AVAILABLE})
        counts = level_free_counts({"L1": array.states().values()}, {"L1": 0})
        assert (counts["L1"].free, counts["L1"].source) == (2, "sensors")
        sim.distances[2] = None  # sensor 2 stops answering
        assert await wait_until(lambda: array.states()["A2"] == SpotState.UNKNOWN)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.stop()
    stale = [c for c in changes if c.state == SpotState.UNKNOWN]
    assert [(c.spot_id, c.reason) for c in stale] == [("A2", "stale")]
    counts = level_free_counts({"L1": array.states().values()}, {"L1": 0})
    assert (counts["L1"].free, counts["L1"].source) == (0, "counter")


async def test_unplugged_port_is_reopened_with_backoff(tmp_path: Path):
    sim = SimulatedRs485Bus(tmp_path / "ttyUSB0", distances={1: 90}).start()
    health = HealthRegistry()
    faults: list[FaultChange] = []
    health.on_fault(faults.append)
    array = SpotSensorArray(
        [BusSpec(id="bus1", port=sim.path, poll_interval_ms=20, request_timeout_ms=40)],
        [spot("A1", "bus1:1")], settings_for=lambda _: FAST, health=health, tick_s=0.05)
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: array.states()["A1"] == SpotState.OCCUPIED)
        poller = array.workers[0]
        sim.device.unplug()
        assert await wait_until(lambda: poller.link.lost >= 1)
        assert await wait_until(lambda: poller.link.open_failures >= 2)  # retried while gone
        sim.device.plug()
        assert await wait_until(lambda: poller.link.reopens == 1)
        readings = array.readings
        assert await wait_until(lambda: array.readings > readings + 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.stop()
    assert poller.crashes == 0
    codes = [(f.code, f.active) for f in faults]
    assert ("port_lost", True) in codes and ("port_lost", False) in codes
    snap = {d["device"]: d for d in health.snapshot()["devices"]}
    assert snap["bus1"]["counters"]["reopens"] == 1
    assert snap["bus1"]["state"] == "ok"


def test_backoff_grows_and_resets():
    b = Backoff(initial_s=0.1, max_s=0.5)
    assert [b.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next_delay() == 0.1

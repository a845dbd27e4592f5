"""MaxBotix MaxSonar serial output as each family ships it (data sheets, "Pin 5 serial output"):
`R` + 3 digits in inches (LV-MaxSonar-EZ), `R` + 3 digits in cm (XL-MaxSonar), `R` + 4 digits in
mm (HR-MaxSonar), 9600 8N1, CR-terminated; a maximum-range report is "no target", never free."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.core.layout import SpotDef
from appliance.core.occupancy import OccupancySettings, SpotChange
from appliance.core.types import SpotState, SpotType
from drivers.health import FaultChange, HealthRegistry
from drivers.lot_devices import spot_sensor_array
from drivers.maxbotix import FORMATS, MaxBotixParser
from drivers.serial_sim import SimulatedMaxBotix
from drivers.spot_sensors import BusSpec, SpotSensorArray
from tests.drivers.helpers import wait_until

FAST = OccupancySettings(occupied_below_cm=150, hysteresis_cm=20, debounce_s=0.1,
                         heartbeat_s=5.0, max_valid_cm=1000)


@pytest.mark.parametrize(("fmt", "stream", "counts", "cm"), [
    # LV-MaxSonar-EZ: "R", three digits of inches (up to 255), CR
    ("R3-in", b"R078\rR254\r", [78, 254], [198, 645]),
    # XL-MaxSonar: three digits of centimetres
    ("R3-cm", b"R123\rR765\r", [123, 765], [123, 765]),
    # HR-MaxSonar: four digits of millimetres
    ("R4-mm", b"R1234\rR5000\r", [1234, 5000], [123, 500]),
])
def test_each_family_frame(fmt: str, stream: bytes, counts: list[int], cm: list[int]):
    f = FORMATS[fmt]
    parser = MaxBotixParser(f.digits)
    assert parser.feed(stream) == counts and parser.errors == 0
    assert [f.to_cm(c) for c in counts] == cm


def test_another_familys_frame_is_an_error_not_a_reading():
    parser = MaxBotixParser(3)
    assert parser.feed(b"R1234\rR123\r") == [123]
    assert parser.errors == 1


@pytest.mark.parametrize(("fmt", "count", "expected"), [
    ("R3-in", 254, (None, "no_target")),  # the LV's maximum: nothing seen
    ("R3-in", 6, (None, "out_of_range")),  # its minimum: closer than it can measure
    ("R3-cm", 765, (None, "no_target")),
    ("R4-mm", 5000, (None, "no_target")),
    ("R4-mm", 300, (None, "out_of_range")),
    ("R4-mm", 2500, (250, "ok")),
])
def test_range_limits(fmt: str, count: int, expected: tuple):
    assert FORMATS[fmt].classify(count) == expected


def test_a_10_m_hrxl_reports_9999_for_no_target_with_max_cm_set():
    f = FORMATS["R4-mm"]
    assert f.classify(7000, max_cm=999) == (700, "ok")
    assert f.classify(9999, max_cm=999) == (None, "no_target")


async def test_no_target_is_never_free_and_persistent_no_target_is_a_fault(tmp_path: Path):
    sim = SimulatedMaxBotix(tmp_path / "ttyS1", distance_cm=90, interval_s=0.02,
                            fmt="R4-mm").start()
    health = HealthRegistry()
    faults: list[FaultChange] = []
    health.on_fault(faults.append)
    array = SpotSensorArray(
        [BusSpec(id="s1", port=sim.path, protocol="maxbotix", baud=9600,
                 maxbotix_format="R4-mm", no_target_fault_after_s=0.5)],
        [SpotDef(id="A1", level="L1", type=SpotType.REGULAR, sensor="s1")],
        settings_for=lambda _: FAST, health=health, tick_s=0.05)
    changes: list[SpotChange] = []
    array.on_change(changes.append)
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: array.states()["A1"] == SpotState.OCCUPIED)
        sim.distance_cm = 2000  # beyond the HRXL's 5 m: it reports R5000
        assert await wait_until(lambda: any(f.code == "no_target" for f in faults))
        await asyncio.sleep(0.3)
        assert array.states()["A1"] != SpotState.AVAILABLE  # never "free"
        sim.distance_cm = None  # the sensor goes quiet
        assert await wait_until(lambda: any(f.code == "silent" for f in faults), timeout_s=6)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.stop()
    assert all(c.state != SpotState.AVAILABLE for c in changes)
    dev = {d["device"]: d for d in health.snapshot()["devices"]}["s1:1"]
    assert dev["counters"]["no_target"] > 5


def test_floor_distance_sets_the_spot_threshold():
    text = """
[lot]
id = "t"
mode = "per_spot"
[[levels]]
id = "L1"
[[spots]]
id = "A1"
level = "L1"
sensor = "s1"
type = "REGULAR"
[[spots]]
id = "A2"
level = "L1"
sensor = "s2"
type = "REGULAR"
[[sensor_buses]]
id = "s1"
protocol = "maxbotix"
port = "loop://"
maxbotix_format = "R4-mm"
floor_cm = 260
[[sensor_buses]]
id = "s2"
protocol = "maxbotix"
port = "/dev/ttyUSB1"
[devices]
spot_occupied_below_cm = 150
"""
    cfg = parse_config(text)
    array = spot_sensor_array(cfg, HealthRegistry(), None)
    assert array.filters["A1"].settings.occupied_below_cm == 210  # 50 cm above the floor
    assert array.filters["A2"].settings.occupied_below_cm == 150

"""RS-485 spot sensors on Modbus RTU, tested against pymodbus's own server (RTU framing over a
serial-over-TCP bridge, opened by the driver as a pyserial socket:// URL): the published frames
of a real sensor, function 03 and 04, exception responses, silence, corrupt frames, a lost port."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from appliance.core.layout import SpotDef
from appliance.core.occupancy import OccupancySettings, SpotChange, level_free_counts
from appliance.core.register_maps import PRESETS, RegisterMap
from appliance.core.types import SpotState, SpotType
from drivers.health import FaultChange, HealthRegistry
from drivers.modbus_sensors import ModbusSensorBus
from drivers.serial_sim import SimulatedModbusBus
from drivers.spot_sensors import BusSpec, SpotSensorArray
from tests.drivers.helpers import wait_until

FAST = OccupancySettings(occupied_below_cm=150, hysteresis_cm=20, debounce_s=0.1,
                         heartbeat_s=0.5)
URM14 = PRESETS["dfrobot-urm14"]


def spot(spot_id: str, sensor: str) -> SpotDef:
    return SpotDef(id=spot_id, level="L1", type=SpotType.REGULAR, sensor=sensor)


def poller(sim: SimulatedModbusBus, addresses, model: RegisterMap = URM14, **kwargs):
    readings: list[tuple[str, int | None]] = []
    health = HealthRegistry()
    bus = ModbusSensorBus("bus1", sim.path, addresses, register_map=model,
                          deliver=lambda sensor, d, at: readings.append((sensor, d)),
                          health=health, timeout_ms=kwargs.pop("timeout_ms", 60), **kwargs)
    assert bus._connect(__import__("threading").Event())
    return bus, readings, health


def test_published_example_frames_of_the_sen0492():
    # wiki.dfrobot.com/sen0492: request 50 03 00 34 00 01 C8 45, answer 50 03 02 07 0B 06 7F
    model = PRESETS["dfrobot-sen0492"]
    sim = SimulatedModbusBus(model, [0x50], distance_cm=None).start()
    try:
        bus, readings, _ = poller(sim, [0x50], model)
        sim.raw[0x50] = [0x070B]  # what the sensor measured in the published example: 1803 mm
        assert bus.poll(0x50) == 180
        frames = list(bus.last_frames)
        assert frames[0] == ("tx", bytes.fromhex("50 03 00 34 00 01 C8 45"))
        assert frames[-1] == ("rx", bytes.fromhex("50 03 02 07 0B 06 7F"))
    finally:
        bus._client.close()
        sim.stop()


def test_register_map_decodes_word_order_scale_units_and_no_target():
    m = RegisterMap(id="x", register=10, count=2, word_order="little", unit="mm",
                    scale=Decimal("0.1"), no_target=(0xFFFFFFFF,), max_cm=800)
    assert m.decode([0x0D40, 0x0000]) == (34, "ok")  # 3392 x 0.1 mm = 33.9 cm
    assert m.decode([0xFFFF, 0xFFFF]) == (None, "no_target")
    assert m.decode(m.encode(250)) == (250, "ok")
    big = RegisterMap(id="y", register=0, count=2, unit="cm", max_cm=100_000)
    assert big.decode([0x0001, 0x0000]) == (65536, "ok")
    inches = RegisterMap(id="z", register=0, unit="in", max_cm=1000)
    assert inches.decode([100]) == (254, "ok")
    assert inches.decode([500]) == (None, "out_of_range")


def test_function_04_input_registers_of_the_apg_mnu():
    model = PRESETS["apg-mnu"]
    assert (model.function, model.register) == (4, 299)
    sim = SimulatedModbusBus(model, [7], distance_cm=230).start()
    try:
        bus, readings, health = poller(sim, [7], model)
        assert bus.poll(7) == 230
        assert bus.last_frames[0][1][1] == 0x04  # the request used function 04
    finally:
        bus._client.close()
        sim.stop()


def test_exception_responses_no_target_and_silence_are_counted_per_address():
    sim = SimulatedModbusBus(URM14, [1, 2, 3, 4], distance_cm=120).start()
    sim.exceptions[2] = 2  # illegal data address: wrong register map for this sensor
    sim.distances[3] = None  # no echo: the register holds 0xFFFF
    sim.silent.add(4)
    try:
        bus, readings, health = poller(sim, [1, 2, 3, 4], retries=0)
        for _ in range(12):
            for address in (1, 2, 3, 4):
                bus.poll(address)
    finally:
        bus._client.close()
        sim.stop()
    snap = {d["device"]: d for d in health.snapshot()["devices"]}
    assert snap["bus1:1"]["counters"] == {"polls": 12, "ok": 12}
    assert readings[0] == ("bus1:1", 120)
    assert snap["bus1:2"]["counters"]["exception"] == 12
    assert snap["bus1:2"]["info"]["last_exception"] == "2 illegal data address"
    assert "bad_readings" in snap["bus1:2"]["faults"]
    assert snap["bus1:3"]["counters"]["no_target"] == 12 and not snap["bus1:3"]["faults"]
    assert ("bus1:3", None) in readings  # no target is never a distance, never "free"
    assert snap["bus1:4"]["counters"]["timeout"] == 12


def test_corrupt_frames_raise_their_own_fault():
    sim = SimulatedModbusBus(URM14, [1], distance_cm=120, seed=3).start()
    sim.corrupt_rate = 0.6
    try:
        bus, readings, health = poller(sim, [1], retries=0, bad_rate_fault=0.3)
        for _ in range(30):
            bus.poll(1)
    finally:
        bus._client.close()
        sim.stop()
    dev = {d["device"]: d for d in health.snapshot()["devices"]}["bus1:1"]
    assert dev["counters"]["bad_frame"] >= 10 and dev["counters"]["ok"] >= 5
    assert "bad_readings" in dev["faults"] and "silent" not in dev["faults"]


async def test_a_silent_address_raises_a_fault_within_seconds():
    sim = SimulatedModbusBus(URM14, [1, 2], distance_cm=400).start()
    health = HealthRegistry()
    faults: list[FaultChange] = []
    health.on_fault(faults.append)
    array = SpotSensorArray(
        [BusSpec(id="bus1", port=sim.path, poll_interval_ms=200, request_timeout_ms=60,
                 silent_fault_after_s=1.0, register_map=URM14)],
        [spot("A1", "bus1:1"), spot("A2", "bus1:02")], settings_for=lambda _: FAST,
        health=health, tick_s=0.05)
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: set(array.states().values()) == {SpotState.AVAILABLE})
        sim.silent.add(2)
        went_silent = time.monotonic()
        assert await wait_until(lambda: any(f.code == "silent" for f in faults), timeout_s=5.0)
        detected_s = time.monotonic() - went_silent
        assert detected_s < 3.0, detected_s  # silent_fault_after_s + one poll round
        sim.silent.discard(2)
        assert await wait_until(lambda: any(f.code == "silent" and not f.active
                                            for f in faults))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.stop()
    assert [(f.device, f.active) for f in faults if f.code == "silent"] == [
        ("bus1:2", True), ("bus1:2", False)]


async def test_stale_sensor_goes_unknown_and_the_level_falls_back():
    sim = SimulatedModbusBus(URM14, [1, 2], distance_cm=400).start()
    array = SpotSensorArray(
        [BusSpec(id="b", port=sim.path, poll_interval_ms=20, request_timeout_ms=40,
                 register_map=URM14)],
        [spot("A1", "b:1"), spot("A2", "b:2")], settings_for=lambda _: FAST,
        health=HealthRegistry(), tick_s=0.05)
    changes: list[SpotChange] = []
    array.on_change(changes.append)
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: set(array.states().values()) == {SpotState.AVAILABLE})
        sim.silent.add(2)
        assert await wait_until(lambda: array.states()["A2"] == SpotState.UNKNOWN)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.stop()
    assert [(c.spot_id, c.reason) for c in changes if c.state == SpotState.UNKNOWN] == [
        ("A2", "stale")]
    counts = level_free_counts({"L1": array.states().values()}, {"L1": 0})
    assert (counts["L1"].free, counts["L1"].source) == (0, "counter")


async def test_a_lost_port_is_reopened():
    sim = SimulatedModbusBus(URM14, [1], distance_cm=90).start()
    health = HealthRegistry()
    faults: list[FaultChange] = []
    health.on_fault(faults.append)
    array = SpotSensorArray(
        [BusSpec(id="bus1", port=sim.path, poll_interval_ms=20, request_timeout_ms=40,
                 register_map=URM14)],
        [spot("A1", "bus1:1")], settings_for=lambda _: FAST, health=health, tick_s=0.05)
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: array.states()["A1"] == SpotState.OCCUPIED)
        port = sim.port
        sim.stop()  # the adapter is gone
        assert await wait_until(lambda: any(f.code in ("port_lost", "port_open") and f.active
                                            for f in faults))
        sim = SimulatedModbusBus(URM14, [1], distance_cm=90, port=port).start()
        readings = array.readings
        assert await wait_until(lambda: array.readings > readings + 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.stop()
    snap = {d["device"]: d for d in health.snapshot()["devices"]}
    assert snap["bus1"]["faults"] == {}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_names_its_source_and_round_trips(name: str):
    model = PRESETS[name]
    assert model.source
    middle = (model.min_cm + model.max_cm) // 2
    assert model.decode(model.encode(middle)) == (middle, "ok")


class CountingPort:
    """A pyserial port that counts how often the driver asks it for waiting bytes, and reads."""

    def __init__(self, port) -> None:
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "asked", 0)
        object.__setattr__(self, "reads", 0)

    @property
    def in_waiting(self) -> int:
        object.__setattr__(self, "asked", self.asked + 1)
        return self._port.in_waiting

    def read(self, size: int = 1) -> bytes:
        object.__setattr__(self, "reads", self.reads + 1)
        return self._port.read(size)

    def __getattr__(self, name):
        return getattr(self._port, name)

    def __setattr__(self, name, value):  # settings (the timeout) go to the port
        setattr(self._port, name, value)


def test_a_poll_waits_for_the_answer_without_polling_the_port():
    # The stock pymodbus client asks the port for waiting bytes every 2 ms (four characters at
    # 19200 baud) until the answer is in: fifty wake-ups in one silent 100 ms try, a few percent
    # of a core per bus. The driver's client waits in the kernel for the first byte.
    sim = SimulatedModbusBus(URM14, [1, 2], distance_cm=120).start()
    sim.silent.add(2)
    try:
        bus, readings, health = poller(sim, [1, 2], retries=1, timeout_ms=100)
        port = bus._client.socket = CountingPort(bus._client.socket)
        assert bus.poll(1) == 120
        assert bus.poll(2) is None  # two tries of 100 ms each, both unanswered
        assert bus.poll(1) == 120
    finally:
        bus._client.close()
        sim.stop()
    counters = {d["device"]: d["counters"] for d in health.snapshot()["devices"]}
    assert counters["bus1:2"]["timeout"] == 1
    assert port.asked <= 60  # a few per poll, whatever the wait (the stock client: ~290)


def test_over_a_tcp_gateway_an_answer_takes_two_reads_of_the_port_not_one_per_two_bytes():
    # A socket:// port only tells whether some byte waits (in_waiting is 0 or 1): asked how
    # many, the answer (7 bytes for one register) came in reads of 1 + 1 bytes, 4 a poll.
    sim = SimulatedModbusBus(URM14, [1], distance_cm=120).start()
    try:
        bus, readings, health = poller(sim, [1], timeout_ms=200)
        assert bus.poll(1) == 120  # connected and answering
        port = bus._client.socket = CountingPort(bus._client.socket)
        timeout = port.timeout
        for _ in range(10):
            assert bus.poll(1) == 120
    finally:
        bus._client.close()
        sim.stop()
    assert port.reads <= 20  # the first byte, waited for; then the rest, not waited for
    assert port.timeout == timeout  # the answer timeout is the port's again


def test_a_simulated_bus_with_a_line_speed_answers_at_that_speed():
    # 19200 baud 8N1: 8 request and 7 answer bytes, a 3.5-character silence after each, and
    # the sensor's turnaround: 22 characters of 10 bits (11.5 ms) + 2 ms a poll at least
    sim = SimulatedModbusBus(URM14, [1], distance_cm=120, baud=19200).start()
    try:
        bus, readings, health = poller(sim, [1], timeout_ms=200)
        started = time.monotonic()
        for _ in range(10):
            assert bus.poll(1) == 120
        elapsed = time.monotonic() - started
    finally:
        bus._client.close()
        sim.stop()
    assert elapsed >= 10 * (22 * 10 / 19200 + 0.002)

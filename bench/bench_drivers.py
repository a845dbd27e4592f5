"""Drivers: serial frames parsed per second, loop edge-to-event latency, Modbus RTU poll rate."""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time

from gpiozero.pins.mock import MockFactory

from appliance.core.layout import SpotDef
from appliance.core.occupancy import OccupancySettings
from appliance.core.register_maps import PRESETS
from appliance.core.types import SpotType
from drivers.health import HealthRegistry
from drivers.loops import LoopDetector
from drivers.maxbotix import MaxBotixParser, encode_range
from drivers.serial_sim import SimulatedModbusBus
from drivers.spot_sensors import BusSpec, SpotSensorArray


def _parse_rate(parser_cls, stream: bytes, frames: int, chunk: int = 4096) -> float:
    best = 0.0
    for _ in range(3):
        parser = parser_cls()
        started = time.perf_counter()
        for i in range(0, len(stream), chunk):
            parser.feed(stream[i:i + chunk])
        elapsed = time.perf_counter() - started
        assert parser.frames == frames
        best = max(best, frames / elapsed)
    return best


async def _latencies(debounce_ms: int, n: int) -> list[float]:
    factory = MockFactory()
    det = LoopDetector("bench/arming", 4, pin_factory=factory, debounce_ms=debounce_ms)
    pin = factory.pin(4)
    got: list[float] = []
    acked = threading.Event()
    sent_ns = [0]

    def listener(edge) -> None:
        got.append((time.monotonic_ns() - sent_ns[0]) / 1e6)
        acked.set()

    det.on_edge(listener)

    def contact() -> None:
        # gpiozero's real backends call back from their own thread; so does this contact
        for i in range(n):
            acked.clear()
            sent_ns[0] = time.monotonic_ns()
            pin.drive_high() if i % 2 == 0 else pin.drive_low()
            acked.wait(2.0)
            time.sleep(0.001)

    await asyncio.to_thread(contact)
    det.close()
    return got


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _thread_cpu_s(name_prefix: str) -> float:
    """CPU seconds used so far by this process's threads whose names start with the prefix."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith(name_prefix) and thread.native_id is not None:
            with open(f"/proc/self/task/{thread.native_id}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
    return total


async def _bus_rate(seconds: float) -> tuple[float, float]:
    """Readings per second from 40 Modbus RTU sensors served by pymodbus's own server, and the
    poller thread's CPU per reading in microseconds."""
    sim = SimulatedModbusBus(PRESETS["dfrobot-urm14"], range(1, 41), distance_cm=300).start()
    try:
        spots = [SpotDef(id=f"S{a}", level="L1", type=SpotType.REGULAR, sensor=f"b:{a}")
                 for a in range(1, 41)]
        array = SpotSensorArray([BusSpec(id="b", port=sim.path, poll_interval_ms=10, register_map=sim.map,
                                         request_timeout_ms=50)], spots,
                                settings_for=lambda _: OccupancySettings(), health=HealthRegistry())
        array.start()
        await asyncio.sleep(0.3)
        before, started, cpu = array.readings, time.perf_counter(), _thread_cpu_s("port:b")
        await asyncio.sleep(seconds)
        readings = array.readings - before
        rate = readings / (time.perf_counter() - started)
        cpu_us = (_thread_cpu_s("port:b") - cpu) / readings * 1e6
        await array.stop()
    finally:
        sim.stop()
    return rate, cpu_us


def run() -> list[dict]:
    """Parser throughput, loop edge latency (debounce 0 and 20 ms), Modbus readings per second."""
    rng = random.Random(1)
    n = 200_000
    mb = b"".join(encode_range(rng.randrange(10000)) for _ in range(n))
    mb_rate = _parse_rate(MaxBotixParser, mb, n)
    lat0 = asyncio.run(_latencies(0, 2000))
    lat20 = asyncio.run(_latencies(20, 200))
    overhead20 = [v - 20.0 for v in lat20]
    bus, bus_cpu = asyncio.run(_bus_rate(2.0))
    return [
        {"name": "MaxBotix frames parsed", "value": mb_rate, "unit": "frames/s",
         "goal": ">= 50,000"},
        {"name": "loop edge->event p50 (debounce 0)", "value": _pct(lat0, 50), "unit": "ms"},
        {"name": "loop edge->event p99 (debounce 0)", "value": _pct(lat0, 99), "unit": "ms",
         "goal": "<= 5"},
        {"name": "loop edge->event p50 (debounce 20 ms)", "value": _pct(lat20, 50), "unit": "ms"},
        {"name": "loop edge->event p99 over debounce (20 ms)", "value": _pct(overhead20, 99),
         "unit": "ms", "goal": "<= 5"},
        {"name": "Modbus RTU readings, pymodbus server (40 sensors)", "value": bus, "unit": "readings/s"},
        {"name": "Modbus RTU poller CPU per reading", "value": bus_cpu, "unit": "us"},
    ]

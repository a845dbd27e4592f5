"""Spot sensors: port readers (MaxBotix per port, Modbus RTU bus poller) and the sensor array.

Readers run in threads (pyserial is blocking) and hand readings to the asyncio loop; the array
filters them per spot (`appliance.core.occupancy`) and reports state changes to listeners.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appliance.core.layout import SpotDef, sensor_key
from appliance.core.occupancy import OccupancySettings, SpotChange, SpotOccupancyFilter
from appliance.core.register_maps import PRESETS, RegisterMap
from appliance.core.types import SpotState
from appliance.errors import DeviceError
from drivers.health import HealthRegistry, SensorHealth
from drivers.maxbotix import FORMATS, MaxBotixParser
from drivers.modbus_sensors import ModbusSensorBus
from drivers.serial_link import Backoff, PortWorker, SerialLink

log = logging.getLogger(__name__)

Deliver = Callable[["SensorReading"], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class SensorReading:
    """One reading of one sensor (`sensor` is 'BUS:ADDRESS'); distance None = no valid reading."""

    sensor: str
    distance_cm: int | None
    at_s: float


def _handoff(loop: asyncio.AbstractEventLoop, deliver: Deliver) -> Deliver:
    def send(reading: SensorReading) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(deliver, reading)

    return send


class MaxBotixPort(PortWorker):
    """One MaxBotix sensor on its own port, read continuously in its family's format.

    Args:
        bus_id: the port's id in config; its readings are sensor 'BUS_ID:1'.
        url: the serial port.
        deliver: called (in the reader thread) with each reading; wrap with a loop hand-off.
        health: registry for the port's counters and faults (the port and sensor 'BUS_ID:1').
        fmt: the model family's output (`drivers.maxbotix.FORMATS`).
        min_cm, max_cm: the range limits (default: the family's); a maximum-range reading is
            "no target" (delivered as None, never a distance), one at the minimum is out of range.
        baud: line speed (MaxBotix: 9600).
        silent_fault_after_s, no_target_fault_after_s, bad_rate_fault: see `SensorHealth`.
        backoff: reopen delays after an unplug.
    """

    def __init__(self, bus_id: str, url: str, *, deliver: Deliver, health: HealthRegistry,
                 fmt: str = "R3-cm", min_cm: int | None = None, max_cm: int | None = None,
                 baud: int = 9600, silent_fault_after_s: float = 3.0,
                 no_target_fault_after_s: float = 60.0, bad_rate_fault: float = 0.2,
                 backoff: Backoff | None = None) -> None:
        super().__init__(bus_id)
        self.sensor = f"{bus_id}:1"
        self.format = FORMATS[fmt]
        self.min_cm = min_cm
        self.max_cm = max_cm
        self.health = health.device(bus_id, "serial_port")
        self.health.info["format"] = fmt
        self.sensor_health = SensorHealth(
            health.device(self.sensor, "spot_sensor"), silent_fault_after_s=silent_fault_after_s,
            no_target_fault_after_s=no_target_fault_after_s, bad_rate_fault=bad_rate_fault,
            now_s=time.monotonic())
        self.link = SerialLink(bus_id, url, baud=baud, timeout_s=0.1, health=self.health,
                               backoff=backoff)
        self.parser = MaxBotixParser(self.format.digits)
        self._deliver = deliver

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.link.is_open:
                self.sensor_health.check(time.monotonic())
                if not self.link.try_open():
                    stop.wait(self.link.backoff.next_delay())
                    continue
            try:
                data = self.link.read_available()
            except DeviceError:
                self.parser = MaxBotixParser(self.format.digits)
                continue
            now = time.monotonic()
            if not data:
                self.sensor_health.check(now)
                continue
            errors_before = self.parser.errors + self.parser.noise_lines
            counts = self.parser.feed(data)
            bad = self.parser.errors + self.parser.noise_lines - errors_before
            if bad:
                self.health.count("bad_frames", bad)
                for _ in range(bad):
                    self.sensor_health.record("bad_frame", now)
            for count in counts:
                self.health.seen("ok", at_mono=now)
                distance, outcome = self.format.classify(count, min_cm=self.min_cm,
                                                         max_cm=self.max_cm)
                self.sensor_health.record(outcome, now)
                self._deliver(SensorReading(sensor=self.sensor, distance_cm=distance, at_s=now))
        self.link.close()


@dataclass(frozen=True, kw_only=True, slots=True)
class BusSpec:
    """What the array needs of one configured port (see appliance.config.SensorBusSection)."""

    id: str
    port: str
    protocol: str = "modbus"
    baud: int = 19200
    parity: str = "N"
    stop_bits: int = 1
    register_map: RegisterMap | None = None
    poll_interval_ms: int = 500
    request_timeout_ms: int = 100
    retries: int = 1
    maxbotix_format: str = "R3-cm"
    min_cm: int | None = None
    max_cm: int | None = None
    silent_fault_after_s: float = 3.0
    no_target_fault_after_s: float = 60.0
    bad_rate_fault: float = 0.2


class SpotSensorArray:
    """All spot sensors of a lot: one worker per port, one occupancy filter per spot.

    Args:
        buses: the sensor buses/ports.
        spots: the lot's spots; those whose `sensor` names a configured bus are watched.
        settings_for: the occupancy settings of a spot id.
        health: the device registry.
        monotonic: time source for staleness (seconds).
        tick_s: how often staleness is checked.
    """

    def __init__(self, buses: Iterable[BusSpec], spots: Iterable[SpotDef], *,
                 settings_for: Callable[[str], OccupancySettings], health: HealthRegistry,
                 monotonic: Callable[[], float] = time.monotonic, tick_s: float = 1.0) -> None:
        self.buses = {b.id: b for b in buses}
        self.health = health
        self._monotonic = monotonic
        self.tick_s = tick_s
        self.filters: dict[str, SpotOccupancyFilter] = {}
        self._by_sensor: dict[str, SpotOccupancyFilter] = {}
        self._addresses: dict[str, set[int]] = {b: set() for b in self.buses}
        for spot in spots:
            if not spot.sensor:
                continue
            key = sensor_key(spot.sensor)
            bus, _, addr = key.partition(":")
            if bus not in self.buses:
                continue
            f = SpotOccupancyFilter(spot.id, settings_for(spot.id))
            self.filters[spot.id] = f
            self._by_sensor[key] = f
            self._addresses[bus].add(int(addr))
        self._listeners: list[Callable[[SpotChange], None]] = []
        self.workers: list[PortWorker] = []
        self.readings = 0
        self.unmapped_readings = 0
        # called first in each bus reader thread (see PortWorker.on_thread_start)
        self.on_worker_thread: Callable[[], None] | None = None

    def on_change(self, listener: Callable[[SpotChange], None]) -> None:
        """Call `listener(change)` on the asyncio loop for every spot state change."""
        self._listeners.append(listener)

    def _emit(self, change: SpotChange | None) -> None:
        if change is None:
            return
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("spot change listener failed")

    def on_reading(self, reading: SensorReading) -> None:
        """Filter one reading (runs on the asyncio loop)."""
        self.readings += 1
        f = self._by_sensor.get(reading.sensor)
        if f is None:
            self.unmapped_readings += 1
            return
        self._emit(f.observe(reading.distance_cm, reading.at_s))

    def tick(self, now_s: float) -> None:
        """Check every spot for staleness."""
        for f in self.filters.values():
            self._emit(f.tick(now_s))

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start one reader per bus."""
        deliver = _handoff(loop or asyncio.get_running_loop(), self.on_reading)
        for bus in self.buses.values():
            faults = {"silent_fault_after_s": bus.silent_fault_after_s,
                      "no_target_fault_after_s": bus.no_target_fault_after_s,
                      "bad_rate_fault": bus.bad_rate_fault}
            if bus.protocol == "maxbotix":
                worker: PortWorker = MaxBotixPort(
                    bus.id, bus.port, deliver=deliver, health=self.health, baud=bus.baud,
                    fmt=bus.maxbotix_format, min_cm=bus.min_cm, max_cm=bus.max_cm, **faults)
            else:
                worker = ModbusSensorBus(
                    bus.id, bus.port, self._addresses[bus.id],
                    register_map=bus.register_map or PRESETS["dfrobot-urm14"],
                    deliver=lambda sensor, d, at, send=deliver: send(
                        SensorReading(sensor=sensor, distance_cm=d, at_s=at)),
                    health=self.health, baud=bus.baud, parity=bus.parity,
                    stop_bits=bus.stop_bits, timeout_ms=bus.request_timeout_ms,
                    retries=bus.retries, poll_interval_ms=bus.poll_interval_ms, **faults)
            worker.on_thread_start = self.on_worker_thread
            worker.start()
            self.workers.append(worker)

    async def stop(self) -> None:
        """Stop every reader (joined off the event loop)."""
        workers, self.workers = self.workers, []
        for worker in workers:
            await asyncio.to_thread(worker.stop)

    async def run(self) -> None:
        """Start the readers and check staleness every `tick_s` until cancelled."""
        self.start()
        try:
            while True:
                await asyncio.sleep(self.tick_s)
                self.tick(self._monotonic())
        finally:
            await asyncio.shield(self.stop())

    def states(self) -> dict[str, SpotState]:
        """Current state of every watched spot."""
        return {spot_id: f.state for spot_id, f in self.filters.items()}

    def snapshot(self) -> dict:
        """Spot states, confidences and the reading counters."""
        return {
            "spots": {sid: {"state": str(f.state), "distance_cm": f.distance_cm,
                            "confidence": f.confidence, "invalid": f.invalid_readings}
                      for sid, f in sorted(self.filters.items())},
            "readings": self.readings,
            "unmapped_readings": self.unmapped_readings,
        }

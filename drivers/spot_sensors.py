"""Ultrasonic spot sensors: port readers (MaxBotix per port, RS-485 poller) and the sensor array.

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

from appliance.core.layout import SpotDef
from appliance.core.occupancy import OccupancySettings, SpotChange, SpotOccupancyFilter
from appliance.core.types import SpotState
from appliance.errors import DeviceError
from drivers.health import HealthRegistry
from drivers.maxbotix import MaxBotixParser
from drivers.rs485 import FrameParser, read_request
from drivers.serial_link import Backoff, PortWorker, SerialLink

log = logging.getLogger(__name__)

Deliver = Callable[["SensorReading"], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class SensorReading:
    """One reading of one sensor (`sensor` is 'BUS:ADDRESS'); distance None = no valid reading."""

    sensor: str
    distance_cm: int | None
    at_s: float


def sensor_key(text: str) -> str:
    """Normalise a spot's `sensor` ('bus1:05' -> 'bus1:5'; a bare 'port1' -> 'port1:1')."""
    bus, _, addr = text.partition(":")
    try:
        return f"{bus}:{int(addr) if addr else 1}"
    except ValueError:
        return text


def _handoff(loop: asyncio.AbstractEventLoop, deliver: Deliver) -> Deliver:
    def send(reading: SensorReading) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(deliver, reading)

    return send


class MaxBotixPort(PortWorker):
    """One MaxBotix-style sensor on its own port, read continuously.

    Args:
        bus_id: the port's id in config; its readings are sensor 'BUS_ID:1'.
        url: the serial port.
        deliver: called (in the reader thread) with each reading; wrap with a loop hand-off.
        health: registry for the port's counters and faults.
        baud: line speed (MaxBotix: 9600).
        backoff: reopen delays after an unplug.
    """

    def __init__(self, bus_id: str, url: str, *, deliver: Deliver, health: HealthRegistry,
                 baud: int = 9600, backoff: Backoff | None = None) -> None:
        super().__init__(bus_id)
        self.sensor = f"{bus_id}:1"
        self.health = health.device(bus_id, "serial_port")
        self.link = SerialLink(bus_id, url, baud=baud, timeout_s=0.1, health=self.health,
                               backoff=backoff)
        self.parser = MaxBotixParser()
        self._deliver = deliver

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.link.ensure_open(stop):
                break
            try:
                data = self.link.read_available()
            except DeviceError:
                self.parser = MaxBotixParser()
                continue
            if not data:
                continue
            errors_before = self.parser.errors + self.parser.noise_lines
            distances = self.parser.feed(data)
            bad = self.parser.errors + self.parser.noise_lines - errors_before
            if bad:
                self.health.count("bad_frames", bad)
            now = time.monotonic()
            for d in distances:
                self.health.seen("ok", at_mono=now)
                self._deliver(SensorReading(sensor=self.sensor, distance_cm=d, at_s=now))
        self.link.close()


class Rs485Poller(PortWorker):
    """Polls addressed sensors on one RS-485 bus, one request at a time, each with a timeout.

    Args:
        bus_id: the bus id in config; readings are sensor 'BUS_ID:ADDRESS'.
        url: the serial port of the bus adapter.
        addresses: sensor addresses to poll, in order.
        deliver: called (in the poller thread) with each reading; a timeout, an error reply or a
            corrupted reply delivers distance None.
        health: registry (the bus and each sensor are devices).
        baud: line speed.
        poll_interval_ms: one full round of the bus at most this often.
        request_timeout_ms: how long to wait for one sensor's reply.
        no_reply_fault_after: consecutive failed polls before a sensor's `no_reply` fault.
    """

    def __init__(self, bus_id: str, url: str, addresses: Iterable[int], *, deliver: Deliver,
                 health: HealthRegistry, baud: int = 19200, poll_interval_ms: int = 500,
                 request_timeout_ms: int = 50, no_reply_fault_after: int = 5,
                 backoff: Backoff | None = None) -> None:
        super().__init__(bus_id)
        self.bus_id = bus_id
        self.addresses = sorted(set(addresses))
        self.health = health.device(bus_id, "sensor_bus")
        self._sensors = {a: health.device(f"{bus_id}:{a}", "spot_sensor") for a in self.addresses}
        self.link = SerialLink(bus_id, url, baud=baud, timeout_s=request_timeout_ms / 1000,
                               health=self.health, backoff=backoff)
        self.poll_interval_s = poll_interval_ms / 1000
        self.parser = FrameParser()
        self.no_reply_fault_after = no_reply_fault_after
        self._misses = dict.fromkeys(self.addresses, 0)
        self._deliver = deliver
        self.rounds = 0

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.link.ensure_open(stop):
                break
            started = time.monotonic()
            try:
                for address in self.addresses:
                    if stop.is_set():
                        break
                    self._poll(address)
            except DeviceError:
                self.parser = FrameParser()
                continue
            self.rounds += 1
            self.health.seen("ok")
            stop.wait(max(0.0, self.poll_interval_s - (time.monotonic() - started)))
        self.link.close()

    def _poll(self, address: int) -> None:
        self.link.discard_input()
        self.link.write(read_request(address))
        deadline = time.monotonic() + self.link.timeout_s
        distance: int | None = None
        answered = False
        while not answered and time.monotonic() < deadline:
            before = self.parser.errors
            frames = self.parser.feed(self.link.read_line())
            if self.parser.errors > before:
                self.health.count("bad_frames", self.parser.errors - before)
            for frame in frames:
                if frame.address != address:
                    self.health.count("unexpected_replies")
                    continue
                answered = True
                if frame.command == "E":
                    self._sensors[address].count("error_replies")
                    self._sensors[address].info["last_error"] = frame.data
                else:
                    distance = frame.distance_cm
        sensor = self._sensors[address]
        now = time.monotonic()
        if distance is not None:
            self._misses[address] = 0
            sensor.seen("ok", at_mono=now)
            sensor.clear("no_reply", "answering again")
        else:
            self._misses[address] += 1
            sensor.count("timeouts" if not answered else "invalid_replies")
            if self._misses[address] >= self.no_reply_fault_after:
                sensor.fault("no_reply", f"{self._misses[address]} polls without a valid reply")
        self._deliver(SensorReading(sensor=f"{self.bus_id}:{address}", distance_cm=distance,
                                    at_s=now))


@dataclass(frozen=True, kw_only=True, slots=True)
class BusSpec:
    """What the array needs of one configured bus (see appliance.config.SensorBusSection)."""

    id: str
    port: str
    protocol: str = "rs485"
    baud: int = 19200
    poll_interval_ms: int = 500
    request_timeout_ms: int = 50


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
            if bus.protocol == "maxbotix":
                worker: PortWorker = MaxBotixPort(bus.id, bus.port, deliver=deliver,
                                                  health=self.health, baud=bus.baud)
            else:
                worker = Rs485Poller(bus.id, bus.port, self._addresses[bus.id], deliver=deliver,
                                     health=self.health, baud=bus.baud,
                                     poll_interval_ms=bus.poll_interval_ms,
                                     request_timeout_ms=bus.request_timeout_ms)
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

"""The simulated lot: a traffic generator that drives cars through the lanes' fake hardware.

It only touches what a car would: loop contacts (MockFactory pins), the camera's view, the ticket
slot and the scanner. It watches the barrier relay pin to know when it may drive through.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from dataclasses import dataclass, field

from appliance.clock import Clock
from appliance.config import SimulationSection
from appliance.core.layout import LaneDef
from appliance.core.types import VehicleType
from appliance.service import Service
from drivers.loops import SimulatedLoop
from lpr.source import PlateResult, SimulatedPlates

_TYPE_MIX = [(VehicleType.MOTORCYCLE, 5), (VehicleType.COMPACT, 25), (VehicleType.REGULAR, 55),
             (VehicleType.LARGE, 15)]


@dataclass
class Car:
    """One simulated vehicle."""

    plate: str
    vehicle_type: VehicleType
    is_ev: bool
    stay_s: float
    readable_in: bool
    readable_out: bool
    ticket_id: str | None = None


@dataclass
class TrafficStats:
    """What the generator saw, for the hourly report and tests."""

    arrived: int = 0
    entered: int = 0
    refused: int = 0
    exited: int = 0
    trapped: int = 0
    inside: set[str] = field(default_factory=set)


class TrafficGenerator:
    """Poisson arrivals at each entry lane; each car parks for an exponential stay, then exits.

    Args:
        service: the running service (its lanes and fakes are driven).
        settings: rates and timings.
        clock: lot time (stays and arrivals are in lot time).
        max_cars: stop generating after this many arrivals (None: forever).
    """

    def __init__(self, service: Service, settings: SimulationSection, clock: Clock, *,
                 max_cars: int | None = None) -> None:
        self.service = service
        self.settings = settings
        self.clock = clock
        self.max_cars = max_cars
        self.rng = random.Random(settings.seed)
        self.stats = TrafficStats()
        self._locks: dict[str, asyncio.Lock] = {}
        self._cars: set[asyncio.Task] = set()
        self.done = asyncio.Event()
        if not isinstance(service.plates, SimulatedPlates):
            raise TypeError("the traffic generator needs the simulated camera")
        self.plates: SimulatedPlates = service.plates

    def _new_car(self) -> Car:
        letters = "".join(self.rng.choices(string.ascii_uppercase, k=3))
        plate = f"{letters}{self.rng.randrange(10000):04d}"
        vehicle_type = self.rng.choices([t for t, _ in _TYPE_MIX], [w for _, w in _TYPE_MIX])[0]
        is_ev = vehicle_type != VehicleType.MOTORCYCLE and self.rng.random() < 0.12
        miss = self.settings.unreadable_plate_rate
        return Car(plate=plate, vehicle_type=vehicle_type, is_ev=is_ev,
                   stay_s=self.rng.expovariate(1 / (self.settings.mean_stay_minutes * 60)),
                   readable_in=self.rng.random() >= miss, readable_out=self.rng.random() >= miss)

    async def run(self) -> None:
        """Generate traffic until max_cars have arrived and left (or forever)."""
        entries = self.service.cfg.entry_lanes()
        exits = self.service.cfg.exit_lanes()
        if not entries or not exits:
            return
        await asyncio.gather(*(self._arrivals(lane, exits) for lane in entries))
        while self._cars:
            await asyncio.gather(*list(self._cars), return_exceptions=True)
        self.done.set()

    async def _arrivals(self, lane: LaneDef, exits: list[LaneDef]) -> None:
        rate_per_s = self.settings.arrivals_per_hour_per_lane / 3600
        if rate_per_s <= 0:
            return
        while self.max_cars is None or self.stats.arrived < self.max_cars:
            await self.clock.sleep(self.rng.expovariate(rate_per_s))
            if self.max_cars is not None and self.stats.arrived >= self.max_cars:
                break
            self.stats.arrived += 1
            task = asyncio.get_running_loop().create_task(self._journey(lane, exits))
            self._cars.add(task)
            task.add_done_callback(self._cars.discard)

    async def _journey(self, entry: LaneDef, exits: list[LaneDef]) -> None:
        car = self._new_car()
        if not await self._drive_through(entry, car, entering=True):
            self.stats.refused += 1
            return
        self.stats.entered += 1
        self.stats.inside.add(car.plate)
        await self.clock.sleep(car.stay_s)
        exit_lane = self.rng.choice(exits)
        if await self._drive_through(exit_lane, car, entering=False):
            self.stats.exited += 1
        else:
            self.stats.trapped += 1
        self.stats.inside.discard(car.plate)

    async def _drive_through(self, lane: LaneDef, car: Car, *, entering: bool) -> bool:
        factory = self.service.pin_factory
        arming = SimulatedLoop(factory, lane.arming_loop_pin)
        safety = SimulatedLoop(factory, lane.safety_loop_pin)
        relay = factory.pin(lane.barrier_relay_pin)
        passage_s = self.settings.passage_ms / 1000
        gate_wait_s = self.settings.gate_wait_ms / 1000
        lock = self._locks.setdefault(lane.id, asyncio.Lock())
        async with lock:
            readable = car.readable_in if entering else car.readable_out
            self.plates.present(lane.id, PlateResult(
                plate=car.plate if readable else None, confidence=0.95 if readable else 0.0,
                vehicle_type=str(car.vehicle_type), is_ev=car.is_ev))
            if not entering and car.ticket_id:
                self.service.scanner.present(lane.id, car.ticket_id)
            try:
                arming.occupy()
                opened = await _wait_for(lambda: relay.state, gate_wait_s)
                if not opened:
                    arming.clear()
                    await asyncio.sleep(passage_s)
                    return False
                if entering and self.service.printer is not None:
                    car.ticket_id = self.service.printer.take(lane.id) or car.ticket_id
                await asyncio.sleep(passage_s / 4)
                safety.occupy()
                await asyncio.sleep(passage_s / 2)
                arming.clear()
                await asyncio.sleep(passage_s / 2)
                safety.clear()
                await _wait_for(lambda: not relay.state, gate_wait_s)
                return True
            finally:
                self.plates.leave(lane.id)
                self.service.scanner.leave(lane.id)


async def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return bool(predicate())

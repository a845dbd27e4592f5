"""The simulated lot: a traffic generator that drives cars through the lanes' fake hardware.

It only touches what a car would: loop contacts (MockFactory pins), the camera's view, the ticket
slot and the scanner. It watches the barrier (through its gate driver, whatever the relay's
wiring) to know when it may drive through.
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
from lpr.photo_stage import Photo, PhotoStage
from lpr.source import PlateResult, SimulatedPlates


class PhotoDeck:
    """The order simulated cars take a `photos:` folder's photos in: shuffled (by the
    simulation's seed), each photo once a round, so a short run samples the whole folder rather
    than its first file names; a photo whose plate is inside already is passed over."""

    def __init__(self, photos: list[Photo], rng: random.Random) -> None:
        self._photos = photos
        self._rng = rng
        self._left: list[int] = []

    def deal(self, inside: set[str]) -> Photo:
        """The next photo whose plate is not inside (any photo, if all of theirs are)."""
        photo = self._photos[0]
        for _ in range(len(self._photos)):
            if not self._left:
                self._left = self._rng.sample(range(len(self._photos)), len(self._photos))
            photo = self._photos[self._left.pop()]
            if photo.plate not in inside:
                break
        return photo


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
    kind: str = "walk_in"
    pays_on_foot: bool = False
    backs_out: bool = False
    tailgater_follows: bool = False
    photo: Photo | None = None  # shown on `photos:` lane cameras; its plate is the car's


@dataclass
class TrafficStats:
    """What the generator saw, for the hourly report and tests."""

    arrived: int = 0
    entered: int = 0
    refused: int = 0
    exited: int = 0
    trapped: int = 0
    permit_holders: int = 0
    reservations: int = 0
    paid_on_foot: int = 0
    backed_out: int = 0
    tailgates: int = 0
    balked: int = 0
    resumed: int = 0  # cars found parked (open tickets) when the simulation started
    inside: set[str] = field(default_factory=set)
    lane_busy_s: dict[str, float] = field(default_factory=dict)  # real s a car held each lane
    lane_cycles: dict[str, int] = field(default_factory=dict)  # cars (through or not) per lane


class TrafficGenerator:
    """Poisson arrivals at each entry lane; each car parks for an exponential stay, then exits.

    Args:
        service: the running service (its lanes and fakes are driven).
        settings: rates and timings.
        clock: lot time (stays and arrivals are in lot time).
        max_cars: stop generating after this many arrivals (None: forever).
        record_entries: keep (entry lane, plate) of every car let in, in order, in `entries`
            (benchmarks compare each lane's tickets' plates with its cars' own).
    """

    def __init__(self, service: Service, settings: SimulationSection, clock: Clock, *,
                 max_cars: int | None = None, record_entries: bool = False) -> None:
        self.service = service
        self.entries: list[tuple[str, str]] | None = [] if record_entries else None
        self.settings = settings
        self.clock = clock
        self.max_cars = max_cars
        self.rng = random.Random(settings.seed)
        self.stats = TrafficStats()
        self._locks: dict[str, asyncio.Lock] = {}
        self._queued: dict[str, int] = {}
        self._cars: set[asyncio.Task] = set()
        self.done = asyncio.Event()
        plates = getattr(service.plates, "sim", service.plates)  # CameraPlates keeps sim lanes
        if not isinstance(plates, SimulatedPlates):
            raise TypeError("the traffic generator needs the simulated camera")
        self.plates: SimulatedPlates = plates
        self.stage: PhotoStage | None = getattr(service.plates, "stage", None)
        self._deck = (PhotoDeck(self.stage.photos, random.Random(self.rng.getrandbits(64)))
                      if self.stage is not None and self.stage.photos else None)
        self._permit_plates: list[str] = []

    def _stay_s(self) -> float:
        """A stay in lot seconds: the minimum (driving to a space, parking, walking off and
        back) plus an exponential remainder, so the mean stays `mean_stay_minutes`. Without the
        minimum ~1 % of cars would leave within one spot-sensor poll: unseen at their spot."""
        low = self.settings.min_stay_minutes * 60
        rest = self.settings.mean_stay_minutes * 60 - low
        return low + (self.rng.expovariate(1 / rest) if rest > 0 else 0.0)

    def _new_car(self) -> Car:
        rng = self.rng
        letters = "".join(rng.choices(string.ascii_uppercase, k=3))
        plate = f"{letters}{rng.randrange(10000):04d}"
        vehicle_type = rng.choices([t for t, _ in _TYPE_MIX], [w for _, w in _TYPE_MIX])[0]
        is_ev = vehicle_type != VehicleType.MOTORCYCLE and rng.random() < 0.12
        miss = self.settings.unreadable_plate_rate
        car = Car(plate=plate, vehicle_type=vehicle_type, is_ev=is_ev,
                  stay_s=self._stay_s(),
                  readable_in=rng.random() >= miss, readable_out=rng.random() >= miss,
                  pays_on_foot=rng.random() < 0.15, backs_out=rng.random() < 0.02,
                  tailgater_follows=rng.random() < 0.01)
        if self._deck is not None:
            return self._photo_car(car, self._deck)
        roll = rng.random()
        free_permits = [p for p in self._permit_plates if p not in self.stats.inside]
        if roll < 0.05 and free_permits:
            car.plate, car.kind = rng.choice(free_permits), "permit"
            car.readable_in = True
        elif roll < 0.10:
            car.kind = "reservation"
            car.vehicle_type = VehicleType.REGULAR
            car.readable_in = True
        return car

    def _photo_car(self, car: Car, deck: PhotoDeck) -> Car:
        """The car of the next real photo whose plate is not inside already."""
        photo = deck.deal(self.stats.inside)
        car.plate, car.photo = photo.plate, photo
        car.readable_in = car.readable_out = True  # the reader decides, from the photo
        return car

    async def setup(self) -> None:
        """Give the simulated lot its permit holders (as the cloud bundle would)."""
        from appliance.core.events import NewEvent

        if self._permit_plates:
            return
        ledger = self.service.ledger
        for i in range(20):
            plate = f"PRM{i:04d}"
            self._permit_plates.append(plate)
            row = await ledger.fetchone(
                "SELECT 1 FROM plate_lists WHERE plate = ? AND list = 'permit'", (plate,))
            if row is None:
                await ledger.append(NewEvent(type="plate.listed", payload={
                    "plate": plate, "list": "permit", "source": "simulation"}))

    async def _book(self, car: Car) -> None:
        from datetime import timedelta

        from appliance.lot.reservations import ReservationRecord, import_records

        now = self.clock.now()
        rec = ReservationRecord(id=f"SIM-{car.plate}-{self.stats.arrived}", spot_type="REGULAR",
                                plate=car.plate, start=now - timedelta(minutes=5),
                                end=now + timedelta(seconds=car.stay_s) + timedelta(hours=24))
        result = await import_records(self.service.ledger, self.service.cfg, [rec],
                                      source="simulation")
        if not result["accepted"]:
            car.kind = "walk_in"

    async def run(self) -> None:
        """Generate traffic until max_cars have arrived and left (or forever)."""
        entries = self.service.cfg.entry_lanes()
        exits = self.service.cfg.exit_lanes()
        if not entries or not exits:
            return
        await self.setup()
        try:
            await self._resume_parked(exits)
            await asyncio.gather(*(self._arrivals(lane, exits) for lane in entries))
            while self._cars:
                await asyncio.gather(*list(self._cars), return_exceptions=True)
            self.done.set()
        finally:
            for task in list(self._cars):  # a stopping service takes its simulated cars along
                task.cancel()

    async def _arrivals(self, lane: LaneDef, exits: list[LaneDef]) -> None:
        rate_per_s = self.settings.arrivals_per_hour_per_lane / 3600
        if rate_per_s <= 0:
            return
        while self.max_cars is None or self.stats.arrived < self.max_cars:
            await self.clock.sleep(self.rng.expovariate(rate_per_s))
            if self.max_cars is not None and self.stats.arrived >= self.max_cars:
                break
            self.stats.arrived += 1
            if self._queued.get(lane.id, 0) >= self.settings.max_queue:
                self.stats.balked += 1  # a driver facing a long queue drives on
                continue
            self._track(asyncio.get_running_loop().create_task(self._journey(lane, exits)))

    async def _resume_parked(self, exits: list[LaneDef]) -> None:
        """Cars parked by an earlier run (open tickets in the ledger) finish their stays and leave.

        Without this, every restart of the simulated lot would strand its parked cars for good and
        the lot would fill with cars that never come out.
        """
        rows = await self.service.ledger.fetchall(
            "SELECT id, plate, vehicle_type, is_ev, kind FROM tickets "
            "WHERE status IN ('OPEN', 'PAID') ORDER BY entry_seq")
        miss = self.settings.unreadable_plate_rate
        for row in rows:
            kind = row["kind"] if row["kind"] in ("permit", "reservation") else "walk_in"
            car = Car(plate=row["plate"] or "", vehicle_type=VehicleType(row["vehicle_type"]),
                      is_ev=bool(row["is_ev"]),
                      stay_s=self._stay_s(),
                      readable_in=True, readable_out=bool(row["plate"]) and self.rng.random() >= miss,
                      ticket_id=row["id"], kind=kind)
            if car.plate:
                self.stats.inside.add(car.plate)
            self._track(asyncio.get_running_loop().create_task(self._park_and_leave(car, exits)))
        self.stats.resumed += len(rows)

    def _track(self, task: asyncio.Task) -> None:
        self._cars.add(task)
        task.add_done_callback(self._cars.discard)

    async def _journey(self, entry: LaneDef, exits: list[LaneDef]) -> None:
        car = self._new_car()
        if car.kind == "permit":
            self.stats.inside.add(car.plate)  # claim the permit plate before the gate
        result = await self._drive_through(entry, car, entering=True)
        if result == "backed_out":
            self.stats.backed_out += 1
            self.stats.inside.discard(car.plate)
            return
        if not result:
            self.stats.refused += 1
            self.stats.inside.discard(car.plate)
            return
        self.stats.entered += 1
        if self.entries is not None:
            self.entries.append((entry.id, car.plate))
        self.stats.permit_holders += car.kind == "permit"
        self.stats.reservations += car.kind == "reservation"
        self.stats.inside.add(car.plate)
        await self._park_and_leave(car, exits)

    async def _park_and_leave(self, car: Car, exits: list[LaneDef]) -> None:
        await self.clock.sleep(car.stay_s)
        if car.pays_on_foot:
            await self._pay_on_foot(car)
        devices = self.service.devices
        if devices is not None and devices.sims is not None:  # the spot's sensor sees it go
            devices.sims.depart(ticket_id=car.ticket_id, plate=car.plate or None)
        exit_lane = self.rng.choice(exits)
        if await self._drive_through(exit_lane, car, entering=False):
            self.stats.exited += 1
        else:
            self.stats.trapped += 1
        self.stats.inside.discard(car.plate)

    async def _pay_on_foot(self, car: Car) -> None:
        """The driver pays cash at the pay station (by ticket, or by plate) before leaving."""
        from appliance.errors import LotedgeError
        from appliance.lot import commands

        try:
            found = await commands.search_tickets(self.service.runtime, query=car.ticket_id or car.plate)
            if not found:
                return
            ticket = await commands.ticket_with_fee(self.service.runtime, found[0]["id"])
            due = ticket["fee"]["due_cents"]
            if due > 0:
                await commands.pay_cash(self.service.runtime, ticket["id"], amount_cents=due,
                                        attendant="paystation-1")
                self.stats.paid_on_foot += 1
        except LotedgeError:
            pass  # the pay station refused (e.g. ticket changed meanwhile): pay at the exit

    async def _drive_through(self, lane: LaneDef, car: Car, *, entering: bool) -> bool | str:
        """Queue for the lane, then drive over its loops; True when through, else why not."""
        lock = self._locks.setdefault(lane.id, asyncio.Lock())
        self._queued[lane.id] = self._queued.get(lane.id, 0) + 1
        try:
            await lock.acquire()
        finally:
            self._queued[lane.id] -= 1
        started = time.monotonic()
        try:
            return await self._at_lane(lane, car, entering=entering)
        finally:
            lock.release()
            stats = self.stats
            stats.lane_busy_s[lane.id] = (stats.lane_busy_s.get(lane.id, 0.0)
                                          + time.monotonic() - started)
            stats.lane_cycles[lane.id] = stats.lane_cycles.get(lane.id, 0) + 1

    async def _at_lane(self, lane: LaneDef, car: Car, *, entering: bool) -> bool | str:
        factory = self.service.pin_factory
        arming = SimulatedLoop(factory, lane.arming_loop_pin)
        safety = SimulatedLoop(factory, lane.safety_loop_pin)
        gate = self.service.lanes[lane.id].gate  # up or down, whatever the relay's wiring
        passage_s = self.settings.passage_ms / 1000
        gate_wait_s = self.settings.gate_wait_ms / 1000
        readable = car.readable_in if entering else car.readable_out
        on_stage = self.stage is not None and car.photo is not None and lane.id in self.stage.lanes
        if on_stage:  # decoding the photo (5-25 ms) would hold up the event loop's lanes
            await asyncio.to_thread(self.stage.show, lane.id, car.photo)
        else:
            self.plates.present(lane.id, PlateResult(
                plate=car.plate if readable else None, confidence=0.95 if readable else 0.0,
                vehicle_type=str(car.vehicle_type), is_ev=car.is_ev))
        if not entering and car.ticket_id:
            self.service.scanner.present(lane.id, car.ticket_id)
        try:
            # the next driver pulls onto the loop once the barrier is down: a barrier still up
            # (a slow close under load) would otherwise look like a vend for this car
            await _wait_for(lambda: not gate.is_open, gate_wait_s * 10)
            if entering and car.kind == "reservation":
                # booked for "now", at the loop: booked earlier, a slow lane under load (hours
                # of lot time at test speeds) let housekeeping release it as a no-show first
                await self._book(car)
            display = self.service.lane_display
            before = display.shown.get(lane.id, 0)
            arming.occupy()
            # the driver waits for the lane's answer (the sign changes just before the barrier
            # moves), then gives the barrier a moment: a slow decision under load is no refusal
            answered = await _wait_for(
                lambda: gate.is_open or display.shown.get(lane.id, 0) > before, gate_wait_s * 10)
            opened = answered and await _wait_for(lambda: gate.is_open, gate_wait_s)
            if not opened:
                arming.clear()
                await asyncio.sleep(passage_s)
                return False
            if entering and self.service.printer is not None:
                car.ticket_id = self.service.printer.take(lane.id) or car.ticket_id
            if entering and car.backs_out:
                await asyncio.sleep(passage_s / 4)
                arming.clear()  # the driver changes their mind and reverses away
                await _wait_for(lambda: not gate.is_open, gate_wait_s)
                return "backed_out"
            await asyncio.sleep(passage_s / 4)
            safety.occupy()
            await asyncio.sleep(passage_s / 2)
            arming.clear()
            await asyncio.sleep(passage_s / 2)
            safety.clear()
            await _wait_for(lambda: not gate.is_open, gate_wait_s)
            if entering and car.tailgater_follows:
                # a second car noses under the closing barrier, then reverses out
                self.stats.tailgates += 1
                safety.occupy()
                await asyncio.sleep(passage_s / 2)
                safety.clear()
                await asyncio.sleep(passage_s / 4)
            return True
        finally:
            self.plates.leave(lane.id)
            if on_stage:
                self.stage.clear(lane.id)
            self.service.scanner.leave(lane.id)


async def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return bool(predicate())

"""Building a lot's serial devices from its configuration, and their simulators for `--simulate`.

`SimulatedPorts.start(cfg, run_dir)` creates a pty simulator for every bus or sign whose
`port = "sim"`; `spot_sensor_array(...)` and `led_signs(...)` build the real drivers on the
resulting paths (or on the configured device paths on a Pi).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import serial

from appliance.config import LotConfig
from appliance.core.events import Event, NewEvent
from appliance.core.layout import LaneDef
from appliance.core.occupancy import OccupancySettings, SpotChange, level_free_counts
from appliance.core.types import SpotState
from appliance.errors import ConfigError, DeviceError
from drivers.gate import BarrierGate, GateCommand
from drivers.health import FaultChange, HealthRegistry
from drivers.lane_loops import LaneLoops
from drivers.loops import LoopDetector
from drivers.serial_link import PORT_ERRORS
from drivers.serial_sim import SimulatedMaxBotix, SimulatedModbusBus, SimulatedSign
from drivers.sign import LedSign, SignPolicy
from drivers.spot_sensors import BusSpec, SpotSensorArray, sensor_key

log = logging.getLogger(__name__)

FREE_CM = 400
OCCUPIED_CM = 60
FLOOR_MARGIN_CM = 50


class SimulatedPorts:
    """Pty simulators standing in for every `port = "sim"` bus and sign of a lot."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        self.buses: dict[str, SimulatedModbusBus] = {}
        self.maxbotix: dict[str, SimulatedMaxBotix] = {}
        self.signs: dict[str, SimulatedSign] = {}
        self._spot_sensor: dict[str, tuple[str, int]] = {}
        self._ticket_spot: dict[str, tuple[str, str | None]] = {}  # ticket -> (spot, plate)
        self._plate_ticket: dict[str, str] = {}

    @classmethod
    def start(cls, cfg: LotConfig, run_dir: Path, *, seed: int | None = None) -> SimulatedPorts:
        """Create and start the simulators (device links live in `run_dir`)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        sims = cls()
        rng = random.Random(seed)
        addresses: dict[str, list[int]] = defaultdict(list)
        for spot in cfg.spots:
            if spot.sensor:
                bus, _, addr = sensor_key(spot.sensor).partition(":")
                addresses[bus].append(int(addr))
                sims._spot_sensor[spot.id] = (bus, int(addr))
        for bus in cfg.sensor_buses:
            if bus.port != "sim":
                continue
            link = run_dir / f"tty-{bus.id}"
            if bus.protocol == "maxbotix":
                sim = SimulatedMaxBotix(link, distance_cm=bus.floor_cm or FREE_CM, interval_s=0.1,
                                        seed=rng.randrange(1 << 30),
                                        fmt=bus.maxbotix_format).start()
                sims.maxbotix[bus.id] = sim
            else:
                modbus = SimulatedModbusBus(cfg.register_map(bus.sensor_model), addresses[bus.id],
                                            distance_cm=FREE_CM, seed=rng.randrange(1 << 30),
                                            baud=bus.line_baud,
                                            char_bits=10 + (bus.parity != "N")
                                            + (bus.stop_bits - 1)).start()
                sims.buses[bus.id] = modbus
                sims.paths[bus.id] = modbus.path
                continue
            sims.paths[bus.id] = sim.path
        for sign in cfg.signs:
            if sign.port == "sim":
                sim_sign = SimulatedSign(run_dir / f"tty-{sign.id}").start()
                sims.signs[sign.id] = sim_sign
                sims.paths[sign.id] = sim_sign.path
        return sims

    def set_distance(self, spot_id: str, distance_cm: int | None) -> bool:
        """Put a target at `distance_cm` in front of a spot's sensor (None: sensor silent)."""
        where = self._spot_sensor.get(spot_id)
        if where is None:
            return False
        bus, addr = where
        if bus in self.buses:
            sim = self.buses[bus]
            if distance_cm is None:
                sim.silent.add(addr)
            else:
                sim.silent.discard(addr)
                sim.distances[addr] = distance_cm
            return True
        if bus in self.maxbotix:
            self.maxbotix[bus].distance_cm = distance_cm
            return True
        return False

    def park(self, spot_id: str) -> bool:
        """A car parks in the spot."""
        return self.set_distance(spot_id, OCCUPIED_CM)

    def leave(self, spot_id: str) -> bool:
        """The car leaves the spot."""
        return self.set_distance(spot_id, FREE_CM)

    def follow_tickets(self, events: Iterable[Event]) -> None:
        """Ledger listener: a ticket issued to a spot parks a car there; closing or voiding it
        (a car that backed out of the entry never parked) leaves, if `depart` did not already."""
        for ev in events:
            if ev.type == "ticket.issued" and ev.payload.get("spot_id"):
                plate = ev.payload.get("plate")
                self._ticket_spot[ev.payload["ticket_id"]] = (ev.payload["spot_id"], plate)
                if plate:
                    self._plate_ticket[plate] = ev.payload["ticket_id"]
                self.park(ev.payload["spot_id"])
            elif ev.type in ("ticket.closed", "ticket.voided"):
                self._forget(ev.payload.get("ticket_id"))

    def depart(self, *, ticket_id: str | None = None, plate: str | None = None) -> bool:
        """The car of this ticket (or plate) drives out of its spot, whatever the exit makes of
        it later (an exit camera that misses the plate leaves the ticket open, not the spot)."""
        if ticket_id is None and plate is not None:
            ticket_id = self._plate_ticket.get(plate)
        return self._forget(ticket_id)

    def _forget(self, ticket_id: str | None) -> bool:
        held = self._ticket_spot.pop(ticket_id, None) if ticket_id else None
        if held is None:
            return False
        spot_id, plate = held
        if plate and self._plate_ticket.get(plate) == ticket_id:
            del self._plate_ticket[plate]
        return self.leave(spot_id)

    def stop(self) -> None:
        """Stop every simulator and remove the device links."""
        for sim in [*self.buses.values(), *self.maxbotix.values(), *self.signs.values()]:
            sim.stop()


def _port(port: str, device_id: str, sims: SimulatedPorts | None, key: str = "port") -> str:
    if port != "sim":
        return port
    if sims is None or device_id not in sims.paths:
        raise ConfigError(f"{key}: {device_id} has port = \"sim\", which only works with "
                          "--simulate; name its serial device")
    return sims.paths[device_id]


def check_ports(cfg: LotConfig, *, opener: Callable[..., Any] = serial.serial_for_url) -> None:
    """Open every configured serial port once (exclusively) and close it again, so that a
    missing or busy port stops the start with one line instead of a reader retrying for ever.

    Raises ConfigError for a `port = "sim"` (no simulator without --simulate) and DeviceError
    `port_open` (missing, no permission) or `port_busy` (another program holds it).
    """
    owned = [(f"sensor_buses[{i}].port", b.id, b.port) for i, b in enumerate(cfg.sensor_buses)]
    owned += [(f"signs[{i}].port", s.id, s.port) for i, s in enumerate(cfg.signs)]
    for key, device_id, port in owned:
        _port(port, device_id, None, key)
        try:
            opener(port, exclusive=True, timeout=0).close()
        except (*PORT_ERRORS, ValueError) as err:
            busy = "exclusively lock" in str(err) or getattr(err, "errno", None) == errno.EBUSY
            raise DeviceError(f"serial port {port} {'is busy (another program holds it)' if busy else 'cannot be opened'}: {err}",
                              code="port_busy" if busy else "port_open", device=device_id) from err


def spot_sensor_array(cfg: LotConfig, health: HealthRegistry,
                      sims: SimulatedPorts | None = None) -> SpotSensorArray:
    """The lot's spot sensors as configured (simulated ports resolved through `sims`)."""
    buses = [BusSpec(id=b.id, port=_port(b.port, b.id, sims, f"sensor_buses[{i}].port"),
                     protocol=b.protocol, baud=b.line_baud, parity=b.parity,
                     stop_bits=b.stop_bits,
                     register_map=(cfg.register_map(b.sensor_model) if b.protocol == "modbus"
                                   else None),
                     poll_interval_ms=b.poll_interval_ms, request_timeout_ms=b.request_timeout_ms,
                     retries=b.retries, maxbotix_format=b.maxbotix_format, min_cm=b.min_cm,
                     max_cm=b.max_cm, silent_fault_after_s=b.silent_fault_after_s,
                     no_target_fault_after_s=b.no_target_fault_after_s,
                     bad_rate_fault=b.bad_rate_fault)
             for i, b in enumerate(cfg.sensor_buses)]
    floors = {b.id: b.floor_cm for b in cfg.sensor_buses if b.floor_cm is not None}
    bus_of = {s.id: sensor_key(s.sensor).partition(":")[0] for s in cfg.spots if s.sensor}

    def settings_for(spot_id: str) -> OccupancySettings:
        settings = cfg.devices.occupancy(spot_id)
        floor = floors.get(bus_of.get(spot_id, ""))
        if floor is None or spot_id in cfg.devices.spot_thresholds_cm:
            return settings
        # an empty spot reads about the floor; anything 50 cm or more above it is a vehicle
        return dataclasses.replace(settings, occupied_below_cm=floor - FLOOR_MARGIN_CM,
                                   max_valid_cm=max(settings.max_valid_cm, floor + 100))

    return SpotSensorArray(buses, cfg.spots, settings_for=settings_for, health=health)


def led_signs(cfg: LotConfig, health: HealthRegistry,
              sims: SimulatedPorts | None = None) -> list[LedSign]:
    """The lot's availability signs as configured."""
    return [LedSign(s.id, _port(s.port, s.id, sims, f"signs[{i}].port"), fields=s.fields, health=health, baud=s.baud,
                    policy=SignPolicy(thresholds=s.thresholds, refresh_s=s.refresh_s,
                                      full_at=s.full_at))
            for i, s in enumerate(cfg.signs)]


class LotDevices:
    """Everything from `drivers/` a running service needs beyond the lane devices themselves.

    Health registry, spot sensors, signs, lane loop supervision, and the facts they produce
    (`spot.state_changed`, `device.fault`, `device.recovered`, `gate.commanded`), handed to
    `record` as events; what becomes of them (the ledger, alarms) is the appliance's business,
    as a gpiozero device fires `when_activated` without knowing the app.

    Args:
        cfg: the lot.
        simulate: start pty simulators for every `port = "sim"`.
        run_dir: where simulated device links are created.
        loop: the service's asyncio loop.
        record: called (on the loop) with each fact; must not block.
        record_passages: also record loop-pair passages as `lane.loop_passage` events.
    """

    def __init__(self, cfg: LotConfig, *, simulate: bool, run_dir: Path,
                 loop: asyncio.AbstractEventLoop, record: Callable[[NewEvent], None],
                 record_passages: bool = False) -> None:
        self.cfg = cfg
        self.health = HealthRegistry(loop=loop)
        if not simulate:
            check_ports(cfg)
        self.sims = SimulatedPorts.start(cfg, run_dir, seed=cfg.simulation.seed) if simulate else None
        self.sensors = spot_sensor_array(cfg, self.health, self.sims) if cfg.sensor_buses else None
        self.signs = led_signs(cfg, self.health, self.sims)
        self.lanes: dict[str, LaneLoops] = {}
        self.gates: dict[str, BarrierGate] = {}
        self._record = record
        self._record_passages = record_passages
        self.health.on_fault(self._on_fault)
        if self.sensors is not None:
            self.sensors.on_change(self._on_spot)

    def _on_fault(self, change: FaultChange) -> None:
        self._record(NewEvent(type=change.event_type(), payload=change.payload()))

    def _on_spot(self, change: SpotChange) -> None:
        self._record(NewEvent(type="spot.state_changed", payload=change.payload()))

    def _on_gate(self, cmd: GateCommand) -> None:
        self._record(NewEvent(type="gate.commanded", payload=cmd.payload()))

    def attach_lane(self, lane: LaneDef, *, arming: LoopDetector, safety: LoopDetector,
                    gate: BarrierGate) -> LaneLoops:
        """Supervise a lane's loops (passages, stuck/dead) and record its gate's commands."""
        d = self.cfg.devices
        supervised = LaneLoops(lane.id, arming, safety, health=self.health,
                               stuck_after_s=d.loop_stuck_after_s,
                               dead_after_s=d.loop_dead_after_s,
                               dead_min_edges=d.loop_dead_min_edges)
        if self._record_passages:
            supervised.on_passage(lambda p: self._record(NewEvent(
                type="lane.loop_passage", payload={"lane": lane.id, "kind": str(p.kind)})))
        gate.on_command(self._on_gate)
        self.lanes[lane.id] = supervised
        self.gates[lane.id] = gate
        return supervised

    def free_by_level(self) -> dict[str, int]:
        """Free spaces per level from the sensors (levels with an UNKNOWN spot are left out)."""
        if self.sensors is None:
            return {}
        states = self.sensors.states()
        per_level: dict[str, list[SpotState]] = {}
        for spot in self.cfg.spots:
            if spot.id in states:
                per_level.setdefault(spot.level, []).append(states[spot.id])
        return {lvl: c.free for lvl, c in level_free_counts(per_level, {}).items()
                if c.source == "sensors"}

    async def run(self, free_by_level: Callable[[], Mapping[str, int]] | None = None) -> None:
        """Run sensors, signs and loop supervision until cancelled (signs show `free_by_level`)."""
        source = free_by_level or self.free_by_level
        async with asyncio.TaskGroup() as tg:
            if self.sensors is not None:
                tg.create_task(self.sensors.run(), name="spot-sensors")
            for sign in self.signs:
                tg.create_task(sign.run(source), name=f"sign:{sign.sign_id}")
            for lane_id, supervised in self.lanes.items():
                tg.create_task(supervised.run(), name=f"loops:{lane_id}")

    def stop(self) -> None:
        """Stop the simulators (the readers stop with `run`'s cancellation)."""
        if self.sims is not None:
            self.sims.stop()

    def snapshot(self) -> dict:
        """Health of every device, spot sensor states and loop passage counts."""
        return {
            "health": self.health.snapshot(),
            "spots": self.sensors.snapshot() if self.sensors is not None else None,
            "lanes": {lane_id: {"passed": s.counter.passed, "backed_out": s.counter.backed_out,
                                "wrong_way": s.counter.wrong_way}
                      for lane_id, s in self.lanes.items()},
        }

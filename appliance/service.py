"""The wiring: builds the lot's parts (ledger, drivers, lanes, recorders, API, sync) and runs
them in a TaskGroup. Nothing imports this module but the CLI and the simulated lot's driver;
the parts receive the narrow things they use (a `LotRuntime`, callables), never the Service."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gpiozero import Factory

from appliance import __version__
from appliance.api.probes import ServiceProbes
from appliance.clock import Clock, SystemClock
from appliance.config import LotConfig
from appliance.core.events import Event, NewEvent
from appliance.core.types import LaneDirection, LotMode, SpotType, VehicleType
from appliance.errors import ConfigError, DeviceError, InputError, ListenError, LotedgeError
from appliance.host.cpu_quota import POLLERS, READERS, CpuGroup, cpu_quota, usable_cores
from appliance.host.gil import hand_over_sooner
from appliance.host.listen import check_listen_free
from appliance.host.secrets import check_secret_file
from appliance.host.watchdog import Notifier
from appliance.ledger import Ledger
from appliance.lot import commands, housekeeping
from appliance.lot.alarms import raise_alarm
from appliance.lot.availability import Availability, read_availability
from appliance.lot.device_log import DeviceLog
from appliance.lot.lanes import LaneController
from appliance.lot.late import LateRecords
from appliance.lot.layout import record_layout
from appliance.lot.money_devices import (
    end_of_day_forever,
    make_paper,
    make_scanners,
    make_terminal,
    print_exit_receipt,
    probe_printers_forever,
    scanned_ticket,
    settle_doubts_forever,
)
from appliance.lot.printing import Paper
from appliance.lot.recorder import EventRecorder
from appliance.lot.runtime import LotRuntime
from appliance.lot.tariffs import TariffBook
from appliance.lot.tickets import Outcome, admit, release
from drivers.gate import BarrierGate
from drivers.gpio import make_pin_factory
from drivers.lane_display import MemoryLaneDisplay
from drivers.loops import LoopDetector
from drivers.lot_devices import LotDevices
from drivers.payment import PaymentTerminal
from lpr.camera_source import CameraPlates
from lpr.source import PlateResult, PlateSource, SimulatedPlates

log = logging.getLogger(__name__)

# Event types that change availability.
_AVAILABILITY_EVENTS = {"ticket.issued", "ticket.closed", "ticket.voided", "ticket.vacated", "lot.configured",
                        "counts.reset", "spot.state_changed"}


class Service:
    """One lot's appliance.

    Args:
        cfg: the validated lot configuration.
        simulate: use the simulated devices and run the traffic generator.
        clock: time source (SimClock in simulation).
        pin_factory: gpiozero pin factory; default chosen by config (MockFactory when simulating).
        base_dir: what a relative data_dir is relative to.
        terminal: payment terminal (simulator by default).
        plates: plate source (simulated camera by default).
        api: serve the local API (Unix socket) while running.
    """

    def __init__(self, cfg: LotConfig, *, simulate: bool = False, clock: Clock | None = None,
                 pin_factory: Factory | None = None, base_dir: Path | None = None,
                 terminal: PaymentTerminal | None = None, plates: PlateSource | None = None,
                 api: bool = True):
        self.cfg = cfg
        self.simulate = simulate
        self.api = api
        self.clock: Clock = clock or SystemClock()
        self._pin_factory = pin_factory
        self.base_dir = base_dir
        seed = cfg.simulation.seed
        made, self.terminal_emulator = (terminal, None) if terminal is not None else \
            make_terminal(cfg, seed=seed)
        self.terminal: PaymentTerminal = made
        self._plates_given = plates is not None
        self.plates: PlateSource = plates or SimulatedPlates()
        self.cameras: CameraPlates | None = None
        self.cpu_groups: list[CpuGroup] = []  # readers' and pollers' shares of a CPU quota
        self._switch_interval_s: float | None = None  # the GIL's before start (restored at stop)
        self.scanner = make_scanners(cfg, grab=self._camera_frame)
        self.lane_display = MemoryLaneDisplay()
        self.late = LateRecords()  # what a full disk kept out of the ledger, written late
        self.paper: Paper | None = None  # printers and ticket key; `printer` for the simulator
        self._receipts: set[asyncio.Task] = set()  # exit receipts being printed
        self.ledger: Ledger | None = None
        self.tariffs = TariffBook(cfg.tariff)  # what new tickets lock; loaded from the ledger
        self.recorder: EventRecorder | None = None
        self.devices: LotDevices | None = None
        self.device_log = DeviceLog(now=self.clock.now, tz=cfg.lot.tz)
        self.runtime: LotRuntime | None = None  # what commands, checks and the API use
        self.probes: ServiceProbes | None = None
        self._api_token = ""
        self.sync: dict | None = None  # set by sync.wiring when [cloud] enabled
        self.open_tickets_at_start = 0
        self.lanes: dict[str, LaneController] = {}
        self.availability: Availability | None = None
        self._availability_listeners: list[Callable[[Availability], None]] = []
        self._availability_dirty = asyncio.Event()
        self.started_monotonic = time.monotonic()
        self.ready = asyncio.Event()

    @property
    def pin_factory(self) -> Factory:
        """The GPIO backend in use."""
        if self._pin_factory is None:
            name = "mock" if self.simulate else self.cfg.hardware.pin_factory
            self._pin_factory = make_pin_factory(name)
        return self._pin_factory

    @property
    def data_dir(self) -> Path:
        """Directory of the ledger and other files."""
        return self.cfg.db_path(self.base_dir).parent

    async def start(self) -> None:
        """Open the ledger, record the layout if it changed, build the lanes."""
        cfg = self.cfg
        if not self.simulate and any(ln.camera.strip().startswith("photos:") for ln in cfg.lanes):
            raise ConfigError("lanes.camera: a photos: camera shows simulated cars' photos; "
                              "it needs --simulate")
        self._switch_interval_s = hand_over_sooner()  # worker threads yield the GIL sooner
        if cfg.cloud.enabled and cfg.cloud.signing_key_file:  # so does a loose signing key
            check_secret_file(cfg.cloud.signing_key_file, key="cloud.signing_key_file")
        if self.api:  # a loose token file stops the start with one line, before anything runs
            from appliance.api.app import load_or_create_token

            self._api_token = load_or_create_token(cfg.data_path(cfg.api.token_file,
                                                                 self.base_dir))
            check_listen_free(cfg.data_path(cfg.api.socket, self.base_dir),
                              http_host=cfg.api.http_host, http_port=cfg.api.http_port)
        # printers, the ticket key (a loose key file stops the start here) and the emulator
        running = asyncio.get_running_loop()
        self.paper = make_paper(cfg, data_dir=self.data_dir, base_dir=self.base_dir,
                                on_fault=lambda name, fault: running.call_soon_threadsafe(
                                    self._lane_alarm, fault.code, name, str(fault)))
        if self.terminal_emulator is not None:
            try:
                port = await self.terminal_emulator.start(cfg.payment.host, cfg.payment.port)
            except OSError as err:
                raise ListenError(f"payment.port: cannot start the ZVT emulator on "
                                  f"{cfg.payment.host}:{cfg.payment.port}: {err.strerror or err}"
                                  ) from err
            if cfg.payment.port == 0 and hasattr(self.terminal, "port"):
                self.terminal.port = port  # the free port the emulator took
        self.ledger = await Ledger.open(cfg.db_path(self.base_dir), lot_id=cfg.lot.id,
                                        tz=cfg.lot.tz, clock=self.clock)
        await record_layout(self.ledger, cfg)
        for lane_id, detail in self.scanner.faults:  # the lane runs without its scanner
            await raise_alarm(self.ledger, code="scanner_fault", source=lane_id, detail=detail)
        await self.tariffs.load(self.ledger)
        self.ledger.subscribe(self.tariffs.follow)
        await self.ledger.append(NewEvent(type="service.started", payload={
            "version": __version__, "config_sha256": cfg.source_sha256,
            "simulate": self.simulate}))
        self.recorder = EventRecorder(self.ledger, late=self.late, now=self.clock.now)
        loop = asyncio.get_running_loop()
        if not self._plates_given and any(lane.camera.strip() != "sim" for lane in cfg.lanes):
            def camera_fault(lane_id: str, err: Exception) -> None:  # from a capture thread
                loop.call_soon_threadsafe(self._lane_alarm, "camera_fault", lane_id, str(err))

            try:
                # under a CPU quota the readers get their share of it, the lanes the rest
                quota = cpu_quota()
                readers = CpuGroup.create(READERS, cfg.lpr.reader_cpu_share, quota=quota)
                self.cpu_groups += [readers] if readers else []
                self.cameras = CameraPlates.from_config(
                    cfg, base=self.base_dir, sim=self.plates, on_fault=camera_fault,
                    cores=usable_cores(quota),
                    on_reader_thread=readers.enter if readers else None)
            except LotedgeError as err:  # models missing or unreadable: the start stops here
                raise DeviceError(str(err), code="camera", device="camera") from err
            self.cameras.start()
            self.plates = self.cameras
        self.devices = LotDevices(cfg, simulate=self.simulate, run_dir=self.data_dir / "dev",
                                  loop=loop, record=self.device_log.record)
        if self.devices.sims is not None:
            self.ledger.subscribe(self.devices.sims.follow_tickets)
        if self.devices.sensors is not None:  # under a CPU quota, the pollers' share of it
            pollers = CpuGroup.create(POLLERS, cfg.devices.poller_cpu_share)
            if pollers is not None:
                self.cpu_groups.append(pollers)
                self.devices.sensors.on_worker_thread = pollers.enter
        health = self.devices.health
        dev = cfg.devices
        for lane in cfg.lanes:
            arming = LoopDetector(f"{lane.id}/arming", lane.arming_loop_pin,
                                  pin_factory=self.pin_factory, debounce_ms=lane.debounce_ms,
                                  loop=loop, health=health, contact=lane.loop_contact,
                                  closed_level=lane.loop_closed_level)
            safety = LoopDetector(f"{lane.id}/safety", lane.safety_loop_pin,
                                  pin_factory=self.pin_factory, debounce_ms=lane.debounce_ms,
                                  loop=loop, health=health, contact=lane.loop_contact,
                                  closed_level=lane.loop_closed_level)
            gate = BarrierGate(lane.id, lane.barrier_relay_pin, safety_loop=safety,
                               pin_factory=self.pin_factory, fail_state=lane.fail_state,
                               energised_opens=lane.relay_energised_opens,
                               auto_close_ms=lane.auto_close_ms,
                               closing_travel_ms=dev.gate_closing_travel_ms,
                               feedback_pin=lane.gate_feedback_pin,
                               feedback_timeout_ms=dev.gate_feedback_timeout_ms, health=health)
            self.devices.attach_lane(lane, arming=arming, safety=safety, gate=gate)
            if not safety.present:
                gate.close()
            decide = self._decide_entry if lane.direction == LaneDirection.ENTRY else self._decide_exit
            self.lanes[lane.id] = LaneController(
                lane, arming=arming, safety=safety, gate=gate, plates=self.plates, decide=decide,
                ledger=self.ledger, monotonic=time.monotonic, recorder=self.recorder,
                on_alarm=self._lane_alarm, on_backout=self._backed_out,
                display=self.lane_display, late=self.late, now=self.clock.now)
        self.ledger.subscribe(self._on_events)
        self.availability = await read_availability(self.ledger)
        self.open_tickets_at_start = (await self.ledger.fetchone(
            "SELECT COUNT(*) FROM tickets WHERE status IN ('OPEN', 'PAID')"))[0]
        self.runtime = LotRuntime(
            cfg=cfg, ledger=self.ledger, clock=self.clock, tariffs=self.tariffs, lanes=self.lanes,
            terminal=self.terminal, late=self.late, data_dir=self.data_dir, paper=self.paper,
            scanners=self.scanner,
            db_path=cfg.db_path(self.base_dir), open_tickets_at_start=self.open_tickets_at_start)
        self.probes = ServiceProbes(
            simulate=self.simulate, started_monotonic=self.started_monotonic,
            availability=lambda: self.availability, plates=lambda: self.plates,
            device_health=self.device_health, sync_status=self.sync_status,
            sync_push_now=self.sync_push_now, serial_monitor=self.serial_monitor)
        self.ready.set()

    def _on_events(self, events: list[Event]) -> None:
        if any(e.type in _AVAILABILITY_EVENTS for e in events):
            self._availability_dirty.set()

    def on_availability(self, listener: Callable[[Availability], None]) -> None:
        """Call `listener(snapshot)` whenever availability changes."""
        self._availability_listeners.append(listener)

    async def _publish_availability(self) -> None:
        assert self.ledger is not None
        while True:
            await self._availability_dirty.wait()
            self._availability_dirty.clear()
            self.availability = await read_availability(self.ledger)
            for listener in list(self._availability_listeners):
                try:
                    listener(self.availability)
                except Exception:
                    log.exception("availability listener failed")

    async def _decide_entry(self, lane_id: str, read: PlateResult) -> Outcome:
        assert self.ledger is not None
        vehicle_type = VehicleType(read.vehicle_type) if read.vehicle_type else VehicleType.REGULAR
        if read.plate is None and self.paper is not None and \
                not self.paper.can_print_tickets(lane_id):
            return await self._plate_only_refusal(lane_id)
        outcome = await admit(self.ledger, self.cfg, lane=lane_id, plate=read.plate,
                              confidence=read.confidence, vehicle_type=vehicle_type,
                              is_ev=read.is_ev, at=self.clock.now(),
                              code=self.scanner.read(lane_id), terminal=self.terminal,
                              monotonic_s=self.clock.monotonic(),
                              clock_epoch=self.clock.epoch_id, tariffs=self.tariffs)
        if outcome.print_ticket and outcome.ticket_id and self.paper is not None:
            try:
                await asyncio.to_thread(self.paper.print_entry_ticket, lane=lane_id,
                                        ticket_id=outcome.ticket_id, entry=self.clock.now(),
                                        level=outcome.level)
            except DeviceError:  # the alarm is raised; the car is in, its ticket in the ledger
                return dataclasses.replace(outcome, message="NO TICKET PRINTED - SEE ATTENDANT")
        return outcome

    async def _plate_only_refusal(self, lane_id: str) -> Outcome:
        """The lane's ticket printer is out: only cars whose plate was read come in."""
        assert self.ledger is not None
        await self.ledger.append(NewEvent(type="entry.refused", payload={
            "lane": lane_id, "plate": None, "reason": "printer_fault",
            "detail": "no plate read and no ticket can be printed: plate-only entry"}))
        return Outcome(allow=False, reason="ticket printer out: plate-only entry",
                       kind="printer_fault", message="NO TICKET - PLEASE SEE ATTENDANT")

    @property
    def printer(self) -> Paper | None:
        """What the traffic generator takes printed tickets from."""
        return self.paper

    def _camera_frame(self, lane_id: str):
        """The lane camera's latest frame (a camera scanner's source), None without one."""
        camera = self.cameras.cameras.get(lane_id) if self.cameras is not None else None
        if camera is None:
            return None
        frames = camera.burst(1, interval_s=0.0, timeout_s=2.0)
        return frames[0] if frames else None

    async def _decide_exit(self, lane_id: str, read: PlateResult) -> Outcome:
        assert self.ledger is not None
        scanned = await scanned_ticket(self.scanner, self.paper, lane_id,
                                       on_alarm=self._lane_alarm)
        outcome = await release(self.ledger, self.cfg, lane=lane_id, plate=read.plate,
                                scanned_ticket=scanned, terminal=self.terminal,
                                at=self.clock.now(), monotonic_s=self.clock.monotonic(),
                                clock_epoch=self.clock.epoch_id, tariffs=self.tariffs)
        if (outcome.paid_cents and outcome.ticket_id and self.paper is not None
                and lane_id in self.paper.printers):  # after the decision: the gate never waits
            task = asyncio.get_running_loop().create_task(print_exit_receipt(
                self.paper, self.ledger, self.cfg, lane=lane_id, ticket_id=outcome.ticket_id,
                at=self.clock.now(), tariffs=self.tariffs))
            self._receipts.add(task)
            task.add_done_callback(self._receipts.discard)
        return outcome

    async def run(self, stop: asyncio.Event, *, extra: list[Callable[[], Any]] = ()) -> None:
        """Run lanes and publishers until `stop` is set (then shut down cleanly)."""
        if self.ledger is None:
            await self.start()
        if self.cfg.cloud.enabled:  # store-and-forward sync (sync/): its own tasks, never a gate's
            from sync.wiring import sync_tasks

            parts = sync_tasks(self.runtime, availability=lambda: self.availability,
                               on_availability=self.on_availability)
            self.sync = {"uplink": parts.uplink, "downlink": parts.downlink}  # diag and tests
            extra = [*extra, *parts.tasks]
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(c.run(), name=f"lane:{c.lane.id}") for c in self.lanes.values()]
            tasks.append(tg.create_task(self._publish_availability(), name="availability"))
            tasks.append(tg.create_task(self.recorder.run(), name="recorder"))
            if self.cameras is not None:
                tasks.append(tg.create_task(self.cameras.purge_forever(3600), name="lpr-purge"))
            tasks.append(tg.create_task(self.devices.run(self._free_by_level), name="devices"))
            tasks.append(tg.create_task(self.device_log.run(self.ledger), name="device-events"))
            tasks.append(tg.create_task(self._housekeeping(), name="housekeeping"))
            tasks.append(tg.create_task(self._write_late(), name="late-records"))
            tasks.append(tg.create_task(end_of_day_forever(
                self.terminal, self.cfg, now=self.clock.now, sleep=self.clock.sleep,
                on_result=self._end_of_day_done), name="end-of-day"))
            tasks.append(tg.create_task(settle_doubts_forever(
                self.terminal, sleep=self.clock.sleep), name="payment-doubts"))
            if self.paper is not None:
                tasks.append(tg.create_task(probe_printers_forever(
                    self.paper, sleep=self.clock.sleep), name="printers"))
            if self.api:
                from appliance.api.app import serve_api

                tasks.append(tg.create_task(serve_api(self.runtime, self.probes,
                                                      base_dir=self.base_dir,
                                                      token=self._api_token), name="api"))
            tasks.extend(tg.create_task(make(), name=getattr(make, "__name__", "extra"))
                         for make in extra)
            await stop.wait()
            for task in tasks:
                task.cancel()

    async def _backed_out(self, lane_id: str, ticket_id: str) -> None:
        """A vehicle reversed away after its entry ticket was issued: void that ticket."""
        lane = self.cfg.lane(lane_id)
        if lane.direction != LaneDirection.ENTRY:
            return
        try:
            await commands.void_ticket(self.runtime, ticket_id, attendant=f"lane:{lane_id}",
                                       reason="vehicle backed out at entry")
        except Exception:
            log.exception("could not void backed-out ticket %s", ticket_id)

    def _free_by_level(self) -> dict[str, int]:
        """Free spaces per level for the signs: sensors where they all report, else counts."""
        counted = self.availability.by_level() if self.availability else {}
        free = {level: row["free"] for level, row in counted.items()}
        if self.devices is not None:
            free.update(self.devices.free_by_level())
        return free

    def sync_status(self) -> dict:
        """Cloud sync state for diagnostics, the UI status bar and /health."""
        uplink = (self.sync or {}).get("uplink")
        if not self.cfg.cloud.enabled or uplink is None:
            return {"enabled": self.cfg.cloud.enabled,
                    "state": "disabled" if not self.cfg.cloud.enabled else "starting",
                    "online": False}
        online = uplink.connected.is_set()
        return {"enabled": True, "state": "online" if online else "offline", "online": online,
                "since_utc": uplink.link_since_utc, "acked_through": uplink.acked_through,
                "sent_through": uplink.sent_through,
                "published_batches": uplink.published_batches, "resends": uplink.resends}

    async def sync_push_now(self) -> dict:
        """Wake the uplink to send what is pending now (it also sends on its own)."""
        uplink = (self.sync or {}).get("uplink")
        if uplink is not None:
            uplink._new_events.set()
        return self.sync_status()

    def serial_monitor(self, port: str) -> dict:
        """What the service decodes on a serial port it owns (bus or sign): health counters
        and the latest decoded readings of that bus's sensors."""

        owned = [(b.id, "sensor_bus", b.port) for b in self.cfg.sensor_buses] + [
            (sg.id, "sign", sg.port) for sg in self.cfg.signs]
        sims = self.devices.sims.paths if self.devices and self.devices.sims else {}
        for device_id, kind, configured in owned:
            actual = sims.get(device_id, configured)
            if port in (configured, actual, device_id):
                health = next((d for d in self.device_health()["devices"]
                               if d["device"] == device_id), None)
                readings = {}
                if kind == "sensor_bus" and self.devices and self.devices.sensors:
                    bus_spots = {s.id for s in self.cfg.spots
                                 if s.sensor and s.sensor.split(":")[0] == device_id}
                    readings = {sid: r for sid, r in
                                self.devices.sensors.snapshot()["spots"].items()
                                if sid in bus_spots}
                return {"port": actual, "device": device_id, "kind": kind, "health": health,
                        "readings": readings}
        raise InputError(f"the service does not own serial port {port!r}; with the service "
                         "stopped, `lotedge diag serial PORT sniff` opens it directly")

    def device_health(self) -> dict:
        """Health of every device (loops, gates, spot sensors, signs; printers apart) for diag
        and the UI."""
        if self.devices is None:
            return {"devices": [], "faults": 0}
        snap = self.devices.snapshot()
        return {**snap["health"], "spots": snap["spots"], "lanes": snap["lanes"],
                "printers": self.paper.status() if self.paper is not None else []}

    def _lane_alarm(self, code: str, source: str, detail: str) -> None:
        asyncio.get_running_loop().create_task(self._raise(code, source, detail))

    async def _raise(self, code: str, source: str, detail: str) -> None:
        try:
            await raise_alarm(self.ledger, code=code, source=source, detail=detail)
        except Exception:
            log.exception("could not raise alarm %s", code)

    async def _end_of_day_done(self, result: dict) -> None:
        """Record the terminal's end-of-day (its totals; the receipt lines stay out)."""
        await self.ledger.append(NewEvent(type="payment.end_of_day", payload={
            "ok": result.get("ok", False), "total_cents": result.get("total_cents"),
            "result": result.get("result")}))
        if not result.get("ok"):
            await self._raise("end_of_day_failed", "payment", str(result.get("result")))

    async def _write_late(self) -> None:
        """Write what the ledger refused (disk full) as soon as it takes writes again."""
        while True:
            await asyncio.sleep(1.0)
            if self.late.pending:
                written = await self.late.flush(self.ledger, now=self.clock.now())
                if written:
                    log.warning("ledger writable again: %d facts recorded late", written)

    async def _housekeeping(self) -> None:
        """Periodic checks: reservation no-shows, overstays, counter drift."""
        while True:
            await self.clock.sleep(60)
            try:
                await housekeeping.run_checks(self.runtime)
            except Exception:
                log.exception("housekeeping failed")

    async def stop(self) -> None:
        """Record the shutdown, release the devices and close the ledger."""
        if self.ledger is None:
            return
        with contextlib.suppress(Exception):
            await self.ledger.append(NewEvent(type="service.stopped", payload={}))
        if self.devices is not None:
            self.devices.stop()
        if self.cameras is not None:
            self.cameras.close()
        for group in self.cpu_groups:
            await asyncio.to_thread(group.close)  # may wait for a reader's task to be reaped
        if self._switch_interval_s is not None:
            hand_over_sooner(self._switch_interval_s)
        self.scanner.close()
        if self.terminal_emulator is not None:
            await self.terminal_emulator.stop()
        for controller in self.lanes.values():
            controller.gate.apply_fail_state("service stopped")  # then the wiring holds it
            controller.arming.close()
            controller.safety.close()
            controller.gate.close_pin()
        self.lanes.clear()
        await self.ledger.close()
        self.ledger = None

    def spot_types(self) -> list[SpotType]:
        """Spot types present in this lot."""
        if self.cfg.lot.mode == LotMode.PER_SPOT:
            return sorted({s.type for s in self.cfg.spots})
        return sorted({t for lvl in self.cfg.levels for t in lvl.capacity})


async def systemd_notifier(service: Service, *, environ: Mapping[str, str] | None = None) -> None:
    """READY once the service's API socket is up; watchdog pings while its lane tasks live."""
    notifier = Notifier(environ)
    socket_path: Path = service.cfg.data_path(service.cfg.api.socket, service.base_dir)

    def ready() -> bool:
        return service.ready.is_set() and (not service.api or socket_path.exists())

    def status() -> str:
        av = service.availability
        free = f"free {av.free}/{av.capacity}" if av is not None else "starting"
        return f"lot {service.cfg.lot.id}: {len(service.lanes)} lanes, {free}"

    await notifier.run(ready=ready, status=status)

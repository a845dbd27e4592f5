"""Lane controllers: the shell around the pure lane state machine.

Loop edges and plate reads become machine inputs; machine commands become gate moves,
ledger events and decisions. A lane never waits on the network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from appliance.core.events import NewEvent
from appliance.core.lane import (
    ArmingCleared,
    ArmingOccupied,
    CloseGate,
    CloseRefused,
    Decide,
    Decided,
    LaneInput,
    LaneMachine,
    Note,
    OpenGate,
    PlateRead,
    ReadPlate,
    SafetyCleared,
    SafetyOccupied,
    ShowRefusal,
    Tick,
)
from appliance.core.layout import LaneDef
from appliance.core.types import LaneDirection
from appliance.ledger import Ledger
from appliance.lot.edgelog import EdgeLog
from appliance.lot.late import LateRecords
from appliance.lot.recorder import EventRecorder
from appliance.lot.tickets import Outcome
from drivers.gate import BarrierGate, GateInterlockError
from drivers.lane_display import LaneDisplay
from drivers.loops import LoopDetector, LoopEdge
from lpr.source import PlateResult, PlateSource

log = logging.getLogger(__name__)

Decider = Callable[[str, PlateResult], Awaitable[Outcome]]


@dataclass
class LaneStats:
    """Counters a lane keeps for status and the per-hour report."""

    vehicles_passed: int = 0
    refused: int = 0
    backed_out: int = 0
    no_read: int = 0
    reads_discarded: int = 0  # finished after their vehicle was decided or gone: never used
    last_plate: str | None = None
    last_confidence: float = 0.0
    last_crop: str | None = None  # evidence image of the read that decided the last vehicle
    last_decision: str = ""
    last_refusal: str = ""  # why the last refused vehicle was refused ...
    last_refusal_at: datetime | None = None  # ... and when
    decision_latency_ms: list[float] = field(default_factory=list)


def _refusal_text(outcome: Outcome, read: PlateResult) -> str:
    """Why a vehicle was refused, as the live view and status show it ('FULL for LARGE')."""
    if outcome.kind == "full":
        return f"FULL for {read.vehicle_type or 'its type'}" + (" EV" if read.is_ev else "")
    return outcome.reason or outcome.kind or "refused"


class LaneController:
    """Runs one lane: inputs from its loops and camera, outputs to its barrier and the ledger.

    Args:
        lane: the lane's definition.
        arming, safety: its loop detectors.
        gate: its barrier.
        plates: where plate reads come from.
        decide: the entry or exit decision (a ledger transaction).
        ledger: where lane facts are recorded.
        monotonic: the time base for the machine's timeouts.
        recorder: batches lane facts (transitions, notes) into the ledger.
        on_alarm: called with (code, source, detail) for lane alarms (tailgating).
        on_backout: called with (lane, ticket) when a vehicle reverses away after its ticket.
        display: the lane's message display (rate before the barrier opens, FULL, ...).
        late: holds what the ledger refused (disk full) until it can be written.
        now: wall-clock time for those late facts.
    """

    def __init__(self, lane: LaneDef, *, arming: LoopDetector, safety: LoopDetector,
                 gate: BarrierGate, plates: PlateSource, decide: Decider, ledger: Ledger,
                 monotonic: Callable[[], float], recorder: EventRecorder | None = None,
                 on_alarm: Callable[[str, str, str], None] | None = None,
                 on_backout: Callable[[str, str], Awaitable[None]] | None = None,
                 display: LaneDisplay | None = None, late: LateRecords | None = None,
                 now: Callable[[], datetime] | None = None):
        self.lane = lane
        self.arming = arming
        self.safety = safety
        self.gate = gate
        self.plates = plates
        self._decide = decide
        self.ledger = ledger
        self._monotonic = monotonic
        self.machine = LaneMachine(entry=lane.direction == LaneDirection.ENTRY)
        self._recorder = recorder
        self._on_alarm = on_alarm
        self._on_backout = on_backout
        self.display = display
        self._late = late
        self._now = now or (lambda: datetime.now(UTC))
        self.stats = LaneStats()
        self._inputs: asyncio.Queue[LaneInput] = asyncio.Queue()
        self._reads: dict[int, PlateResult] = {}  # presence -> its read (the current one only)
        self._trigger_ns = 0
        self._step_mono_ns: int | None = None
        arming.on_edge(self._on_arming)
        safety.on_edge(self._on_safety)
        self.edge_log = EdgeLog()  # recent edges with timing, for `lotedge diag loops`
        arming.on_edge(self.edge_log.record)
        safety.on_edge(self.edge_log.record)

    def _on_arming(self, edge: LoopEdge) -> None:
        if edge.present:
            self._trigger_ns = edge.stable_ns
        self._inputs.put_nowait(ArmingOccupied() if edge.present else ArmingCleared())

    def _on_safety(self, edge: LoopEdge) -> None:
        self._inputs.put_nowait(SafetyOccupied() if edge.present else SafetyCleared())

    def feed(self, event: LaneInput) -> None:
        """Queue an input for the machine."""
        self._inputs.put_nowait(event)

    async def run(self) -> None:
        """Process inputs forever; ticks drive the machine's timeouts."""
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop an item the queue
            # handed over as the timeout fires (a lost loop edge stalls the lane) and can swallow
            # the cancellation at shutdown (a 10 h soak balked thousands of cars; `lotedge run`
            # hung on SIGTERM).
            try:
                async with asyncio.timeout(0.5):
                    event = await self._inputs.get()
            except TimeoutError:
                event = Tick()
            now = self._monotonic()
            self._step_mono_ns = int(now * 1e9)  # when this input was taken: the facts' time
            commands = self.machine.step(event, now)
            self._record_transitions()
            for command in commands:
                await self._execute(command)

    def _record_transitions(self) -> None:
        for at_s, old, new, why in self.machine.drain_transitions():
            self._note("lane.transition", {"lane": self.lane.id, "from": str(old),
                                           "to": str(new), "why": why},
                       at_mono_ns=int(at_s * 1e9))

    async def _execute(self, command) -> None:
        lane_id = self.lane.id
        match command:
            case ReadPlate(presence=presence):
                asyncio.get_running_loop().create_task(self._read_plate(presence))
            case Decide(plate=plate, presence=presence):
                read = self._reads.pop(presence, None) or PlateResult(plate=None)
                self._reads.clear()  # nothing older can be decided any more
                self.stats.last_crop = read.crop_path
                if plate is None:
                    self.stats.no_read += 1
                    read = PlateResult(plate=None, vehicle_type=read.vehicle_type,
                                       is_ev=read.is_ev)
                try:
                    outcome = await self._decide(lane_id, read)
                except Exception as err:  # never trap a car on an internal error
                    log.exception("lane %s: decision failed", lane_id)
                    await self._safe_record("lane.decision_failed", {
                        "lane": lane_id, "plate": read.plate, "error": str(err)})
                    outcome = Outcome(allow=True, reason=f"decision failed: {err}")
                self.stats.last_decision = outcome.reason
                if not outcome.allow:
                    self.stats.last_refusal = _refusal_text(outcome, read)
                    self.stats.last_refusal_at = self._now()
                if self.display is not None:  # shown before the barrier moves
                    self.display.show(lane_id, outcome.message or (
                        "PLEASE PROCEED" if outcome.allow else "SEE ATTENDANT"))
                self.feed(Decided(outcome.allow, outcome.reason, outcome.ticket_id))
            case OpenGate():
                self.gate.open()
                if self._trigger_ns:
                    import time

                    self.stats.decision_latency_ms.append(
                        (time.monotonic_ns() - self._trigger_ns) / 1e6)
                    del self.stats.decision_latency_ms[:-1000]
            case CloseGate():
                if self.safety.present:
                    self.feed(CloseRefused())  # closed once the vehicle has cleared
                    await self._safe_record("gate.close_refused",
                                            {"lane": lane_id, "reason": "safety loop occupied"})
                    return
                await self._safe_record("gate.close_commanded", {"lane": lane_id})
                try:
                    self.gate.close()
                except GateInterlockError:
                    self.feed(CloseRefused())
                    await self._safe_record("gate.close_refused",
                                            {"lane": lane_id, "reason": "safety loop occupied"})
            case ShowRefusal():
                self.stats.refused += 1
            case Note(what=what, ticket_id=ticket_id):
                if what == "passed":
                    self.stats.vehicles_passed += 1
                elif what == "backed_out":
                    self.stats.backed_out += 1
                    if ticket_id and self._on_backout is not None:
                        await self._on_backout(lane_id, ticket_id)
                elif what == "read_discarded":
                    self.stats.reads_discarded += 1
                elif what == "safety_loop_out_of_turn" and self._on_alarm is not None:
                    self._on_alarm("tailgate", lane_id,
                                   "vehicle on the safety loop without a gate opening for it")
                self._note(f"lane.{what}", {"lane": lane_id, "ticket_id": ticket_id})

    async def _read_plate(self, presence: int) -> None:
        started_ns = int(self._monotonic() * 1e9)
        try:
            result = await self.plates.read(self.lane.id)
        except Exception:  # a broken camera means no read, never a stuck lane
            log.exception("lane %s: plate read failed", self.lane.id)
            result = PlateResult(plate=None)
        ended_ns = int(self._monotonic() * 1e9)
        self._note("lane.plate_read", {
            "lane": self.lane.id, "presence": presence, "plate": result.plate,
            "confidence": result.confidence, "read_started_mono_ns": started_ns,
            "read_ms": round((ended_ns - started_ns) / 1e6, 1)}, at_mono_ns=ended_ns)
        if presence == self.machine.presence:  # else the machine discards it (and counts it)
            self._reads[presence] = result
            self.stats.last_plate = result.plate
            self.stats.last_confidence = result.confidence
        self.feed(PlateRead(result.plate, result.confidence, presence))

    def _note(self, event_type: str, payload: dict, *, at_mono_ns: int | None = None) -> None:
        if self._recorder is not None:
            self._recorder.record(event_type, payload,
                                  at_mono_ns=self._step_mono_ns if at_mono_ns is None
                                  else at_mono_ns)

    async def _safe_record(self, event_type: str, payload: dict) -> None:
        try:
            await self.ledger.append(NewEvent(type=event_type, payload=payload))
        except Exception as err:
            log.exception("lane %s: could not record %s", self.lane.id, event_type)
            if self._late is not None:
                self._late.note(event_type, payload, at=self._now(), error=err)

    def snapshot(self) -> dict:
        """Lane state for the UI and diagnostics."""
        return {
            "lane": self.lane.id,
            "direction": str(self.lane.direction),
            "state": str(self.machine.state),
            "arming": self.arming.present,
            "safety": self.safety.present,
            "gate_open": self.gate.is_open,
            "held_open": self.gate.held_open,
            "last_plate": self.stats.last_plate,
            "last_confidence": self.stats.last_confidence,
            "last_plate_crop": self.stats.last_crop,
            "last_decision": self.stats.last_decision,
            "display": getattr(self.display, "current", {}).get(self.lane.id),
            "passed": self.stats.vehicles_passed,
            "refused": self.stats.refused,
            "last_refusal": self.stats.last_refusal,
            "last_refusal_utc": (self.stats.last_refusal_at.isoformat()
                                 if self.stats.last_refusal_at else None),
        }

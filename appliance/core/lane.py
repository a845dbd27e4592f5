"""Lane state machine: pure. The shell feeds it inputs with the time; it returns commands.

Transition table (state + input -> new state, commands):

| state        | input                       | next         | commands                      |
|--------------|-----------------------------|--------------|-------------------------------|
| IDLE         | ArmingOccupied              | IDENTIFYING  | ReadPlate(presence+1)         |
| IDENTIFYING  | PlateRead of this presence  | DECIDING     | Decide(plate, presence)       |
| any other    | PlateRead (late, or another | same         | Note(read_discarded)          |
|              | presence's)                 |              |                               |
| IDENTIFYING  | timeout (identify_timeout)  | DECIDING     | Decide(None)  (ticket/QR)     |
| IDENTIFYING  | ArmingCleared               | IDLE         | Note(backed_out)              |
| DECIDING     | Decided(allow)              | OPEN         | OpenGate                      |
| DECIDING     | Decided(allow), entry lane, | IDLE         | Note(backed_out)  (no gate:   |
|              | both loops already clear    |              | the vehicle left meanwhile)   |
| DECIDING     | Decided(refuse)             | REFUSED      | ShowRefusal                   |
| OPEN         | SafetyOccupied              | PASSING      |                               |
| OPEN         | ArmingCleared               | IDLE         | CloseGate, Note(backed_out)   |
| OPEN         | timeout (open_timeout)      | IDLE         | CloseGate, Note(no_passage)   |
| PASSING      | SafetyCleared               | IDLE/IDENT.  | CloseGate, Note(passed)       |
| REFUSED      | ArmingCleared               | IDLE         |                               |
| any          | SafetyOccupied out of turn  | same         | Note(safety_loop_out_of_turn) |
| not PASSING  | ManualOpen (attendant)      | OPEN         | OpenGate(reason)              |
| OPEN/REFUSED | ManualClose (attendant)     | IDLE         | CloseGate                     |
| not OPEN/    | HoldReleased, safety clear  | same         | CloseGate                     |
| PASSING      | HoldReleased, safety busy   | same         | CloseGate once it clears      |
| any          | CloseRefused (interlock)    | same         | CloseGate once it clears      |

After PASSING, if the arming loop is already occupied (the next car), the lane goes straight to
IDENTIFYING. Each entry into IDENTIFYING starts a new presence (a number); a plate read is bound
to the presence that asked for it, so a read that finishes after its vehicle was decided (timed
out) or left is discarded and never taken for the next vehicle. A released hold leaves the
barrier up with no vehicle cycle to close it: the machine closes it itself, at once or when
the safety loop clears (OPEN/PASSING close it at the end of their own cycle). Inputs that do
not apply to a state are ignored (returned as no commands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class LaneState(StrEnum):
    """Where a lane is in serving one vehicle."""

    IDLE = "IDLE"
    IDENTIFYING = "IDENTIFYING"
    DECIDING = "DECIDING"
    OPEN = "OPEN"
    PASSING = "PASSING"
    REFUSED = "REFUSED"


# Inputs ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ArmingOccupied:
    """A vehicle arrived on the arming loop."""


@dataclass(frozen=True, slots=True)
class ArmingCleared:
    """The arming loop is free again."""


@dataclass(frozen=True, slots=True)
class SafetyOccupied:
    """A vehicle is on the safety loop under the barrier."""


@dataclass(frozen=True, slots=True)
class SafetyCleared:
    """The safety loop is free again."""


@dataclass(frozen=True, slots=True)
class PlateRead:
    """Result of a plate read; plate None means no read. `presence` is the one its ReadPlate
    named: a read for another presence (a car that has gone) is discarded, never used."""

    plate: str | None
    confidence: float = 0.0
    presence: int = 0


@dataclass(frozen=True, slots=True)
class Decided:
    """The shell's decision for the vehicle at the lane."""

    allow: bool
    reason: str
    ticket_id: str | None = None


@dataclass(frozen=True, slots=True)
class ManualOpen:
    """An attendant opens the gate (reason already recorded by the shell)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ManualClose:
    """An attendant closes the gate (the driver still refuses over a vehicle)."""


@dataclass(frozen=True, slots=True)
class HoldReleased:
    """An attendant released a hold-open (the shell has let go of the barrier)."""


@dataclass(frozen=True, slots=True)
class CloseRefused:
    """The barrier refused a close: a vehicle was under it (raw contact, not yet debounced)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes (used for timeouts)."""


LaneInput = (ArmingOccupied | ArmingCleared | SafetyOccupied | SafetyCleared | PlateRead | Decided
             | ManualOpen | ManualClose | HoldReleased | CloseRefused | Tick)


# Commands -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReadPlate:
    """Ask the camera/LPR for a read of the vehicle at the lane; its answer must name
    `presence` (a number the machine gives each vehicle it starts identifying)."""

    presence: int


@dataclass(frozen=True, slots=True)
class Decide:
    """Ask the shell to decide (entry: allocate/issue; exit: match/pay) for this plate, read
    for `presence`."""

    plate: str | None
    confidence: float
    presence: int = 0


@dataclass(frozen=True, slots=True)
class OpenGate:
    """Raise the barrier."""

    reason: str
    ticket_id: str | None = None


@dataclass(frozen=True, slots=True)
class CloseGate:
    """Lower the barrier (the gate driver refuses while the safety loop is occupied)."""


@dataclass(frozen=True, slots=True)
class ShowRefusal:
    """Show why the vehicle is not let through."""

    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth recording that changes nothing else (backed out, passed, ...)."""

    what: str
    ticket_id: str | None = None


LaneCommand = ReadPlate | Decide | OpenGate | CloseGate | ShowRefusal | Note


@dataclass
class LaneMachine:
    """One lane's state; `step` is the whole behaviour.

    Args:
        identify_timeout_s: give up on a plate read after this long (ticket/QR fallback).
        open_timeout_s: close the gate if nobody drives through within this long.
        entry: an entry lane. A vehicle that left both loops before the decision gets no gate
            opening: its ticket is noted as backed out (the shell voids it), where it would
            otherwise hold a space for a car that is gone (or let the next car in on it). An
            exit lane opens anyway: its ticket is already closed and charged, and a car that
            comes back to the exit must not be charged again.
    """

    identify_timeout_s: float = 3.0
    open_timeout_s: float = 30.0
    entry: bool = False
    state: LaneState = LaneState.IDLE
    since: float = 0.0
    arming: bool = False
    safety: bool = False
    ticket_id: str | None = None
    last_reason: str = ""
    presence: int = 0  # which vehicle IDENTIFYING is about: +1 each time it starts
    close_when_clear: bool = False  # a close waits for the vehicle under the barrier to go
    history: list[tuple[float, LaneState, LaneState, str]] = field(default_factory=list)
    _pending: list[tuple[float, LaneState, LaneState, str]] = field(default_factory=list)

    def drain_transitions(self) -> list[tuple[float, LaneState, LaneState, str]]:
        """Transitions (time, from, to, why) made since the last call, for the ledger."""
        out, self._pending = self._pending, []
        return out

    def _go(self, now: float, new: LaneState, why: str) -> None:
        self.history.append((now, self.state, new, why))
        self._pending.append((now, self.state, new, why))
        if len(self.history) > 50:
            del self.history[:-50]
        self.state = new
        self.since = now

    def _identify(self, now: float, why: str) -> ReadPlate:
        self.presence += 1
        self._go(now, LaneState.IDENTIFYING, why)
        return ReadPlate(self.presence)

    def step(self, event: LaneInput, now: float) -> list[LaneCommand]:
        """Apply one input at time `now` (seconds, monotonic); return commands to carry out."""
        s = self.state
        match event:
            case ArmingOccupied():
                self.arming = True
                if s == LaneState.IDLE:
                    return [self._identify(now, "vehicle at arming loop")]
            case ArmingCleared():
                self.arming = False
                if s == LaneState.IDENTIFYING:
                    self._go(now, LaneState.IDLE, "backed out before identification")
                    return [Note("backed_out")]
                if s == LaneState.OPEN:
                    ticket, self.ticket_id = self.ticket_id, None
                    self._go(now, LaneState.IDLE, "backed out with gate open")
                    return [CloseGate(), Note("backed_out", ticket)]
                if s == LaneState.REFUSED:
                    self._go(now, LaneState.IDLE, "refused vehicle left")
            case SafetyOccupied():
                self.safety = True
                if s == LaneState.OPEN:
                    self._go(now, LaneState.PASSING, "vehicle under barrier")
                elif s != LaneState.PASSING:
                    return [Note("safety_loop_out_of_turn")]
            case SafetyCleared():
                self.safety = False
                pending, self.close_when_clear = self.close_when_clear, False
                if pending and s not in (LaneState.OPEN, LaneState.PASSING):
                    return [CloseGate()]  # OPEN/PASSING: that vehicle's own cycle closes it
                if s == LaneState.PASSING:
                    ticket, self.ticket_id = self.ticket_id, None
                    cmds: list[LaneCommand] = [CloseGate(), Note("passed", ticket)]
                    if self.arming:
                        cmds.append(self._identify(now, "next vehicle waiting"))
                    else:
                        self._go(now, LaneState.IDLE, "vehicle cleared")
                    return cmds
            case PlateRead(plate=plate, confidence=conf, presence=presence):
                if s == LaneState.IDENTIFYING and presence == self.presence:
                    self._go(now, LaneState.DECIDING, "plate read" if plate else "no plate read")
                    return [Decide(plate, conf, presence)]
                return [Note("read_discarded")]  # late: its vehicle was decided or is gone
            case Decided(allow=allow, reason=reason, ticket_id=ticket_id):
                if s == LaneState.DECIDING:
                    self.last_reason = reason
                    if allow and self.entry and not self.arming and not self.safety:
                        self._go(now, LaneState.IDLE, "vehicle left before the decision")
                        return [Note("backed_out", ticket_id)]
                    if allow:
                        self.ticket_id = ticket_id
                        self._go(now, LaneState.OPEN, reason)
                        return [OpenGate(reason, ticket_id)]
                    self._go(now, LaneState.REFUSED, reason)
                    if not self.arming:
                        self._go(now, LaneState.IDLE, "refused vehicle already gone")
                    return [ShowRefusal(reason)]
            case ManualOpen(reason=reason):
                if s != LaneState.PASSING:
                    self.last_reason = reason
                    self._go(now, LaneState.OPEN, f"manual: {reason}")
                    return [OpenGate(reason)]
            case ManualClose():
                if s in (LaneState.OPEN, LaneState.REFUSED):
                    self.ticket_id = None
                    self._go(now, LaneState.IDLE, "manual close")
                    return [CloseGate()]
            case HoldReleased():
                if s in (LaneState.OPEN, LaneState.PASSING):
                    return []  # this vehicle's own cycle closes the barrier after it
                # IDLE, or a car at the arming loop still to be decided: down in front of it
                if self.safety:
                    self.close_when_clear = True
                    return []
                return [CloseGate()]
            case CloseRefused():
                self.close_when_clear = True  # the next clear safety loop closes it
            case Tick():
                if s == LaneState.IDENTIFYING and now - self.since >= self.identify_timeout_s:
                    self._go(now, LaneState.DECIDING, "plate read timed out")
                    return [Decide(None, 0.0, self.presence)]
                if s == LaneState.OPEN and now - self.since >= self.open_timeout_s:
                    ticket, self.ticket_id = self.ticket_id, None
                    self._go(now, LaneState.IDLE, "no vehicle passed")
                    return [CloseGate(), Note("no_passage", ticket)]
        return []

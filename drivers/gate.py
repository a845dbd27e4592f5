"""Barrier gate on a GPIO relay, with the safety interlock inside the driver.

The interlock: the driver never releases the barrier while the safety loop under it reports a
vehicle (debounced *or* raw contact), and it reverses a closing barrier when the safety contact
becomes active during `closing_travel_ms`. Every command, executed or refused, is reported to
the command listeners so the service can write it to the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero import DigitalInputDevice, DigitalOutputDevice, Factory

from appliance.core.types import FailState
from appliance.errors import DeviceError
from drivers.health import DeviceHealth, HealthRegistry
from drivers.loops import LoopDetector, LoopEdge


class GateInterlockError(DeviceError):
    """The barrier was told to close while a vehicle is under it."""

    def __init__(self, lane: str):
        super().__init__("refusing to close: vehicle on the safety loop", code="interlock",
                         device=lane)


@dataclass(frozen=True, kw_only=True, slots=True)
class GateCommand:
    """One gate command as it happened (payload of the `gate.commanded` ledger event).

    `command`: open | close | hold_open | release_hold | auto_close | reverse | fail_state;
    `result`: done | refused | ignored (already there / held open).
    """

    lane: str
    command: str
    result: str
    reason: str
    relay_on: bool
    mono_ns: int

    def payload(self) -> dict:
        """The ledger payload."""
        return {"lane": self.lane, "command": self.command, "result": self.result,
                "reason": self.reason, "open": self.relay_on}


class BarrierGate:
    """Relay output: on = barrier up (open).

    Args:
        lane: the lane id, for errors and health.
        relay_pin: GPIO driving the barrier controller's open input.
        safety_loop: the loop under the barrier; closing is refused while it is occupied.
        pin_factory: gpiozero pin factory.
        fail_state: state on start-up (and what the wiring should do on power loss).
        energised_opens: True: the relay is energised to open (power loss/crash = closed, i.e.
            fail-secure wiring); False: energised to close via the NC contact (power loss/crash
            = open, fail-open wiring). The logical API is the same.
        auto_close_ms: close this long after the vehicle clears the safety loop (None: only on
            command).
        closing_travel_ms: how long the boom takes to come down; a safety contact in this window
            reverses it.
        reversal_close_ms: without auto-close, a reversed barrier closes this long after the
            vehicle clears (the lane has already finished with the gate).
        feedback_pin: optional input from the barrier's "fully up" limit switch.
        feedback_timeout_ms: the feedback must agree with the command within this time.
        health: registry for the gate's state, counters and faults.
    """

    def __init__(self, lane: str, relay_pin: int, *, safety_loop: LoopDetector,
                 pin_factory: Factory, fail_state: FailState = FailState.OPEN,
                 energised_opens: bool = True, auto_close_ms: int | None = None,
                 closing_travel_ms: int = 3000, reversal_close_ms: int = 1000, feedback_pin: int | None = None,
                 feedback_timeout_ms: int = 4000, health: HealthRegistry | None = None):
        self.lane = lane
        self._safety = safety_loop
        self.fail_state = fail_state
        self._relay = DigitalOutputDevice(
            relay_pin, active_high=energised_opens,
            initial_value=fail_state == FailState.OPEN, pin_factory=pin_factory,
        )
        self._feedback = (DigitalInputDevice(feedback_pin, pull_up=False, pin_factory=pin_factory)
                          if feedback_pin is not None else None)
        self.held_open = False
        self.commands = 0
        self.refused = 0
        self.reversals = 0
        self.auto_close_s = None if auto_close_ms is None else auto_close_ms / 1000
        self.closing_travel_s = closing_travel_ms / 1000
        self.reversal_close_s = reversal_close_ms / 1000
        self.feedback_timeout_s = feedback_timeout_ms / 1000
        self._closed_at: float | None = None
        self._reversed = False
        self._auto_close: asyncio.TimerHandle | None = None
        self._feedback_check: asyncio.TimerHandle | None = None
        self._listeners: list[Callable[[GateCommand], None]] = []
        self.log: list[GateCommand] = []
        self.health: DeviceHealth | None = None
        if health is not None:
            self.health = health.device(f"{lane}/gate", "gate")
            self.health.info.update(pin=relay_pin, fail_state=str(fail_state))
            self.health.seen(self._state_name())
        safety_loop.on_edge(self._on_safety_edge)
        safety_loop.on_raw(self._on_safety_raw)

    def on_command(self, listener: Callable[[GateCommand], None]) -> None:
        """Call `listener(command)` for every command (executed, refused or ignored)."""
        self._listeners.append(listener)

    @property
    def is_open(self) -> bool:
        """True while the relay holds the barrier up."""
        return bool(self._relay.value)

    @property
    def position(self) -> str:
        """'open' / 'closed' from the feedback switch, or 'unknown' without one."""
        if self._feedback is None:
            return "unknown"
        return "open" if self._feedback.is_active else "closed"

    @property
    def vehicle_under(self) -> bool:
        """The safety loop reports a vehicle (debounced or raw)."""
        return bool(self._safety.present or self._safety.raw_active)

    def _state_name(self) -> str:
        if self.held_open:
            return "held_open"
        return "open" if self.is_open else "closed"

    def _record(self, command: str, result: str, reason: str) -> GateCommand:
        cmd = GateCommand(lane=self.lane, command=command, result=result, reason=reason,
                          relay_on=self.is_open, mono_ns=time.monotonic_ns())
        self.log.append(cmd)
        del self.log[:-200]
        if self.health is not None:
            self.health.count(f"{command}_{result}")
            self.health.seen(self._state_name())
        for listener in list(self._listeners):
            listener(cmd)
        return cmd

    def _cancel_auto_close(self) -> None:
        if self._auto_close is not None:
            self._auto_close.cancel()
            self._auto_close = None

    def _drive(self, on: bool) -> None:
        self.commands += 1
        if on:
            self._relay.on()
            self._closed_at = None
        else:
            self._relay.off()
            self._closed_at = time.monotonic()
        self._schedule_feedback_check()

    def open(self, reason: str = "") -> None:
        """Raise the barrier."""
        self._reversed = False
        self._cancel_auto_close()
        self._drive(True)
        self._record("open", "done", reason)

    def close(self, reason: str = "") -> None:
        """Lower the barrier unless a vehicle is under it or the lane is held open."""
        self._close("close", reason)

    def _close(self, command: str, reason: str) -> None:
        if self.vehicle_under:
            self.refused += 1
            self._record(command, "refused", "vehicle on the safety loop")
            raise GateInterlockError(self.lane)
        if self.held_open:
            self._record(command, "ignored", "held open")
            return
        self._cancel_auto_close()
        self._drive(False)
        self._record(command, "done", reason)

    def hold_open(self, hold: bool, reason: str = "") -> None:
        """Keep the barrier up (events, emergencies) until released."""
        self.held_open = hold
        if hold:
            self._cancel_auto_close()
            self._drive(True)
            self._record("hold_open", "done", reason)
        else:
            self._record("release_hold", "done", reason)

    def apply_fail_state(self, reason: str = "fail state") -> None:
        """Go to the lane's fail state: open and held (fail-open) or closed if clear (secure)."""
        if self.fail_state == FailState.OPEN:
            self.held_open = True
            self._cancel_auto_close()
            self._drive(True)
            self._record("fail_state", "done", reason)
        else:
            self.held_open = False
            try:
                self._close("fail_state", reason)
            except GateInterlockError:
                # the interlock wins; auto-close (if configured) closes once the vehicle clears
                pass

    def _on_safety_edge(self, edge: LoopEdge) -> None:
        if edge.present:
            self._cancel_auto_close()
            return
        # After a reversal the lane has already finished with the gate, so the driver closes it
        # itself once the vehicle is clear, even without auto-close configured.
        delay = self.auto_close_s if self.auto_close_s is not None else (
            self.reversal_close_s if self._reversed else None)
        if delay is not None and self.is_open and not self.held_open:
            self._cancel_auto_close()
            loop = asyncio.get_running_loop()
            self._auto_close = loop.call_later(delay, self._do_auto_close)

    def _do_auto_close(self) -> None:
        self._auto_close = None
        if not self.is_open or self.held_open:
            return
        try:
            self._close("auto_close", "vehicle cleared the safety loop")
            self._reversed = False
        except GateInterlockError:
            pass  # a new vehicle is under the barrier; its own clear edge re-arms auto-close

    def _on_safety_raw(self, active: bool, raw_ns: int) -> None:
        if not active:
            # a blip shorter than the debounce produces no clear edge; still close after it
            if self._reversed and self._auto_close is None and not self._safety.present:
                self._on_safety_edge(LoopEdge(self._safety.name, False, raw_ns, raw_ns))
            return
        if self.is_open or self._closed_at is None:
            return
        if time.monotonic() - self._closed_at <= self.closing_travel_s:
            self.reversals += 1
            self._reversed = True
            self._drive(True)
            self._record("reverse", "done", "safety contact while closing")

    def _schedule_feedback_check(self) -> None:
        if self._feedback is None or self.health is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._feedback_check is not None:
            self._feedback_check.cancel()
        self._feedback_check = loop.call_later(self.feedback_timeout_s, self.check_feedback)

    def check_feedback(self) -> bool:
        """Compare the limit switch with the command; raise/clear the `position` fault."""
        self._feedback_check = None
        if self._feedback is None:
            return True
        expected = "open" if self.is_open else "closed"
        ok = self.position == expected
        if self.health is not None:
            if ok:
                self.health.clear("position", f"barrier {expected}")
            else:
                self.health.count("position_mismatch")
                self.health.fault("position", f"commanded {expected}, switch says {self.position}")
        return ok

    def close_pin(self) -> None:
        """Release the GPIO (the wiring then decides: see `energised_opens`)."""
        self._cancel_auto_close()
        if self._feedback_check is not None:
            self._feedback_check.cancel()
        if self._feedback is not None:
            self._feedback.close()
        self._relay.close()


class SimulatedBarrier:
    """The boom and its "fully up" limit switch on MockFactory pins.

    Follows the relay pin after `travel_s` and drives the feedback pin; `jammed = True` makes it
    stop moving (for position-fault tests and drills).
    """

    def __init__(self, pin_factory: Factory, relay_pin: int, feedback_pin: int, *,
                 energised_opens: bool = True, travel_s: float = 0.2) -> None:
        self._relay = pin_factory.pin(relay_pin)
        self._feedback = pin_factory.pin(feedback_pin)
        self._energised_opens = energised_opens
        self.travel_s = travel_s
        self.jammed = False
        self.up = False
        self.moves = 0

    def commanded_open(self) -> bool:
        """What the relay tells the barrier controller."""
        return bool(self._relay.state) == self._energised_opens

    async def run(self, poll_s: float = 0.005) -> None:
        """Move the boom whenever the relay changes, until cancelled."""
        while True:
            want = self.commanded_open()
            if want != self.up and not self.jammed:
                await asyncio.sleep(self.travel_s)
                if self.commanded_open() == want and not self.jammed:
                    self.up = want
                    self.moves += 1
                    self._feedback.drive_high() if want else self._feedback.drive_low()
                continue
            await asyncio.sleep(poll_s)

"""Inductive loop detectors (dry contact on a GPIO input), debounced in software."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero import DigitalInputDevice, Factory

from drivers.health import DeviceHealth, HealthRegistry


@dataclass(frozen=True, slots=True)
class LoopEdge:
    """A debounced change of a loop: `present` is True when a vehicle arrived."""

    loop: str
    present: bool
    raw_ns: int
    stable_ns: int


class LoopDetector:
    """One loop detector contact.

    An edge is reported once the contact has held its new level for `debounce_ms`; pulses
    shorter than that never produce an edge. Callbacks run on the asyncio loop.

    Args:
        name: e.g. 'entry-1/arming'.
        pin: GPIO (BCM) number.
        pin_factory: gpiozero pin factory (MockFactory in simulation).
        debounce_ms: how long a level must hold.
        contact: the detector's output contact wired to the input: "no" closes when a vehicle
            is present, "nc" opens (a dead detector or a cut wire then reads "vehicle present").
        closed_level: what the input reads while the contact is closed: "low" (contact to
            ground, internal pull-up) or "high" (contact to 3V3, internal pull-down).
        active_low: shorthand for contact "no" to ground (`closed_level="low"`).
        fail_safe: shorthand for contact "nc" to ground: a vehicle, a dead detector or a cut
            wire all read HIGH = "vehicle present", which is what the safety loop should do.
        loop: the asyncio loop that receives edges (default: the running loop).
        health: registry where the loop reports edges, glitches and its state.
    """

    def __init__(self, name: str, pin: int, *, pin_factory: Factory, debounce_ms: int = 150,
                 active_low: bool = False, loop: asyncio.AbstractEventLoop | None = None,
                 health: HealthRegistry | None = None, fail_safe: bool = False,
                 contact: str | None = None, closed_level: str | None = None):
        self.name = name
        self.pin = pin
        self.debounce_s = debounce_ms / 1000
        self._loop = loop or asyncio.get_running_loop()
        if contact is None:
            contact = "nc" if fail_safe else "no"
        if closed_level is None:
            closed_level = "low" if (fail_safe or active_low) else "high"
        if contact not in ("no", "nc") or closed_level not in ("low", "high"):
            raise ValueError(f"{name}: contact must be no/nc and closed_level low/high")
        # The pull holds the input at the open-contact level; presence is the closed level on
        # a normally open contact and the open level on a normally closed one.
        pull_up = closed_level == "low"
        present_high = (contact == "no") == (closed_level == "high")
        self.contact = contact
        self.closed_level = closed_level
        self._device = DigitalInputDevice(pin, pull_up=None, active_state=present_high,
                                          pin_factory=pin_factory)
        self._device.pin.pull = "up" if pull_up else "down"
        self.present: bool = bool(self._device.is_active)
        self._pending: asyncio.TimerHandle | None = None
        self._pending_value: bool | None = None
        self._pending_ns = 0
        self._listeners: list[Callable[[LoopEdge], None]] = []
        self._raw_listeners: list[Callable[[bool, int], None]] = []
        self.health: DeviceHealth | None = None
        if health is not None:
            self.health = health.device(name, "loop")
            self.health.info["pin"] = pin
            self.health.seen("present" if self.present else "clear")
        self.edges = 0
        self.glitches = 0
        self.last_edge_ns: int | None = None
        self._device.when_activated = lambda: self._raw(True)
        self._device.when_deactivated = lambda: self._raw(False)

    def on_edge(self, listener: Callable[[LoopEdge], None]) -> None:
        """Call `listener(edge)` for each debounced edge."""
        self._listeners.append(listener)

    def on_raw(self, listener: Callable[[bool, int], None]) -> None:
        """Call `listener(active, raw_ns)` on the asyncio loop for every undebounced change."""
        self._raw_listeners.append(listener)

    @property
    def raw_active(self) -> bool:
        """The contact right now, before debouncing (a vehicle may be arriving)."""
        return bool(self._device.is_active)

    def _raw(self, value: bool) -> None:
        # Called from gpiozero's thread (or the caller's thread for mock pins).
        ns = time.monotonic_ns()
        self._loop.call_soon_threadsafe(self._on_raw, value, ns)

    def _on_raw(self, value: bool, ns: int) -> None:
        for raw_listener in list(self._raw_listeners):
            raw_listener(value, ns)
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
            if value == self.present:
                self.glitches += 1
                if self.health is not None:
                    self.health.count("glitches")
                return
        if value == self.present:
            return
        if self.debounce_s <= 0:
            self._commit(value, ns)
            return
        self._pending_value = value
        self._pending_ns = ns
        self._pending = self._loop.call_later(self.debounce_s, self._commit, value, ns)

    def _commit(self, value: bool, raw_ns: int) -> None:
        self._pending = None
        self.present = value
        self.edges += 1
        edge = LoopEdge(self.name, value, raw_ns, time.monotonic_ns())
        self.last_edge_ns = edge.stable_ns
        if self.health is not None:
            self.health.count("edges")
            self.health.seen("present" if value else "clear")
        for listener in list(self._listeners):
            listener(edge)

    def close(self) -> None:
        """Release the pin."""
        if self._pending is not None:
            self._pending.cancel()
        self._device.close()


class SimulatedLoop:
    """Drives a MockFactory pin the way a real detector's contact would.

    `active_low`: the input reads low while a vehicle is present (a "no" contact to ground);
    `cut()` is a cut wire: the input floats to its pull.
    """

    def __init__(self, pin_factory: Factory, pin: int, *, active_low: bool = False) -> None:
        self._pin = pin_factory.pin(pin)
        self._active_low = active_low

    def occupy(self) -> None:
        """A vehicle is over the loop."""
        self._pin.drive_low() if self._active_low else self._pin.drive_high()

    def clear(self) -> None:
        """The loop is free."""
        self._pin.drive_high() if self._active_low else self._pin.drive_low()

    def cut(self) -> None:
        """The wire to the detector is cut (or the detector lost power): nothing drives it."""
        pull = self._pin.pull
        self._pin.pull = "floating"
        self._pin.pull = pull

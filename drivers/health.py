"""Device health: every driver reports last-seen, state, error counters and active faults.

`HealthRegistry.snapshot()` is what `lotedge drivers health`, the diagnostics CLI and the attendant
UI show. Fault transitions are passed to listeners so the service can record `device.fault` /
`device.recovered` events in the ledger.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultChange:
    """A fault raised (`active`) or cleared on one device."""

    device: str
    kind: str
    code: str
    active: bool
    detail: str

    def event_type(self) -> str:
        """`device.fault` or `device.recovered`."""
        return "device.fault" if self.active else "device.recovered"

    def payload(self) -> dict:
        """The ledger payload."""
        return {"device": self.device, "kind": self.kind, "code": self.code,
                "detail": self.detail}


class DeviceHealth:
    """Health of one device; safe to update from reader threads."""

    def __init__(self, registry: HealthRegistry, name: str, kind: str) -> None:
        self._registry = registry
        self.name = name
        self.kind = kind
        self.state = "unknown"
        self.last_seen_mono: float | None = None
        self.counters: dict[str, int] = {}
        self.faults: dict[str, str] = {}
        self.info: dict[str, object] = {}

    def seen(self, state: str | None = None, *, at_mono: float | None = None) -> None:
        """The device answered (optionally with a new state)."""
        self.last_seen_mono = time.monotonic() if at_mono is None else at_mono
        if state is not None:
            self.state = state

    def count(self, counter: str, n: int = 1) -> None:
        """Add to an error or event counter."""
        with self._registry.lock:
            self.counters[counter] = self.counters.get(counter, 0) + n

    def fault(self, code: str, detail: str = "") -> None:
        """Raise a fault (reported once until cleared)."""
        with self._registry.lock:
            if code in self.faults:
                return
            self.faults[code] = detail
        self._registry.notify(FaultChange(device=self.name, kind=self.kind, code=code,
                                          active=True, detail=detail))

    def clear(self, code: str, detail: str = "") -> None:
        """Clear a fault if it is active."""
        with self._registry.lock:
            if self.faults.pop(code, None) is None:
                return
        self._registry.notify(FaultChange(device=self.name, kind=self.kind, code=code,
                                          active=False, detail=detail))

    def snapshot(self, now_mono: float) -> dict:
        """JSON-ready health of this device."""
        with self._registry.lock:
            return {
                "device": self.name,
                "kind": self.kind,
                "state": "fault" if self.faults else self.state,
                "last_seen_s_ago": (None if self.last_seen_mono is None
                                    else round(now_mono - self.last_seen_mono, 3)),
                "counters": dict(self.counters),
                "faults": dict(self.faults),
                **({"info": dict(self.info)} if self.info else {}),
            }


class HealthRegistry:
    """All devices of the appliance.

    Args:
        loop: fault listeners run on this asyncio loop (changes raised in reader threads are
            handed over with call_soon_threadsafe); None calls them directly.
    """

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.lock = threading.RLock()
        self._loop = loop
        self._devices: dict[str, DeviceHealth] = {}
        self._listeners: list[Callable[[FaultChange], None]] = []

    def device(self, name: str, kind: str) -> DeviceHealth:
        """Register (or get) a device."""
        with self.lock:
            dev = self._devices.get(name)
            if dev is None:
                dev = self._devices[name] = DeviceHealth(self, name, kind)
            return dev

    def get(self, name: str) -> DeviceHealth:
        """A registered device."""
        return self._devices[name]

    def on_fault(self, listener: Callable[[FaultChange], None]) -> None:
        """Call `listener(change)` for every fault raised or cleared."""
        self._listeners.append(listener)

    def notify(self, change: FaultChange) -> None:
        """Hand a fault change to the listeners (on the loop, if one was given)."""
        for listener in list(self._listeners):
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(listener, change)
            elif self._loop is None:
                listener(change)

    def snapshot(self, now_mono: float | None = None) -> dict:
        """{"devices": [...], "faults": n} for the diagnostics CLI and the attendant UI."""
        now = time.monotonic() if now_mono is None else now_mono
        with self.lock:
            devices = [d.snapshot(now) for d in sorted(self._devices.values(),
                                                       key=lambda d: (d.kind, d.name))]
        return {"devices": devices, "faults": sum(len(d["faults"]) for d in devices)}


_RATE_WINDOW = 20  # outcomes per address the bad-reading rate is measured over
_RATE_MIN = 10  # outcomes needed before the rate can raise a fault


class SensorHealth:
    """Counters and faults of one address: what `lotedge diag sensors` shows per spot."""

    def __init__(self, device: DeviceHealth, *, silent_fault_after_s: float,
                 no_target_fault_after_s: float, bad_rate_fault: float, now_s: float) -> None:
        self.device = device
        self.silent_fault_after_s = silent_fault_after_s
        self.no_target_fault_after_s = no_target_fault_after_s
        self.bad_rate_fault = bad_rate_fault
        self.last_answer_s = now_s  # counted from the start: a sensor never heard is silent too
        self.last_target_s = now_s
        self.outcomes: deque[bool] = deque(maxlen=_RATE_WINDOW)  # True = bad

    def record(self, outcome: str, now_s: float) -> None:
        """One reading's outcome: ok | no_target | out_of_range | exception | timeout |
        bad_frame (timeout: nothing came; every other outcome means the sensor is alive)."""
        dev = self.device
        dev.count("polls")
        dev.count(outcome)
        if outcome != "timeout":
            self.last_answer_s = now_s
            dev.seen(outcome if outcome in ("ok", "no_target") else None, at_mono=now_s)
            dev.clear("silent", "answering again")
        if outcome == "ok":
            self.last_target_s = now_s
            dev.clear("no_target", "sees a target again")
        if outcome != "timeout":
            self.outcomes.append(outcome in ("exception", "out_of_range", "bad_frame"))
        self.check(now_s)

    def check(self, now_s: float) -> None:
        """Raise or clear the time- and rate-based faults."""
        dev = self.device
        if now_s - self.last_answer_s >= self.silent_fault_after_s:
            dev.fault("silent", f"no answer for {now_s - self.last_answer_s:.1f} s")
        if now_s - self.last_target_s >= self.no_target_fault_after_s and \
                now_s - self.last_answer_s < self.silent_fault_after_s:
            dev.fault("no_target", f"no target for {now_s - self.last_target_s:.0f} s "
                      "(blocked, misaimed or beyond its range?)")
        if len(self.outcomes) >= _RATE_MIN:
            rate = sum(self.outcomes) / len(self.outcomes)
            dev.info["bad_rate"] = round(rate, 2)
            if rate >= self.bad_rate_fault:
                dev.fault("bad_readings", f"{rate:.0%} of the last {len(self.outcomes)} answers "
                          "were exceptions, corrupt or out of range")
            elif rate < self.bad_rate_fault / 2:
                dev.clear("bad_readings", f"bad rate down to {rate:.0%}")

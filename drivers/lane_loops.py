"""A lane's loop pair as one unit: passage counting and stuck/dead loop supervision."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from appliance.core.passage import Passage, PassageCounter
from drivers.health import HealthRegistry
from drivers.loop_faults import LoopFaultMonitor
from drivers.loops import LoopDetector, LoopEdge


class LaneLoops:
    """Counts passages from the arming -> safety -> clear sequence and supervises both loops.

    Faults go to the health registry (and from there to its fault listeners).

    Args:
        lane_id: the lane.
        arming, safety: the lane's loop detectors.
        health: the device registry (each loop is a device named like the detector).
        stuck_after_s, dead_after_s, dead_min_edges: see `LoopFaultMonitor`.
        monotonic: time source in seconds.
    """

    def __init__(self, lane_id: str, arming: LoopDetector, safety: LoopDetector, *,
                 health: HealthRegistry, stuck_after_s: float = 300.0,
                 dead_after_s: float = 4 * 3600.0, dead_min_edges: int = 10,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.lane_id = lane_id
        self.counter = PassageCounter()
        self._monotonic = monotonic
        now = monotonic()
        self._loops = {"arming": arming, "safety": safety}
        self._health = {role: health.device(d.name, "loop") for role, d in self._loops.items()}
        self.monitors = {
            role: LoopFaultMonitor(stuck_after_s=stuck_after_s, dead_after_s=dead_after_s,
                                   dead_min_edges=dead_min_edges, present=d.present, now_s=now)
            for role, d in self._loops.items()
        }
        self.counter.arming, self.counter.safety = arming.present, safety.present
        self._listeners: list[Callable[[Passage], None]] = []
        arming.on_edge(lambda e: self._edge("arming", e))
        safety.on_edge(lambda e: self._edge("safety", e))

    def on_passage(self, listener: Callable[[Passage], None]) -> None:
        """Call `listener(passage)` for each completed visit (PASSED, BACKED_OUT, ...)."""
        self._listeners.append(listener)

    def _edge(self, role: str, edge: LoopEdge) -> None:
        now = edge.stable_ns / 1e9
        other = "safety" if role == "arming" else "arming"
        self.monitors[other].lane_traffic()
        self._apply(role, self.monitors[role].edge(edge.present, now))
        passage = self.counter.update(loop=role, present=edge.present, now_s=now)
        if passage is not None:
            for listener in list(self._listeners):
                listener(passage)

    def _apply(self, role: str, faults) -> None:
        dev = self._health[role]
        for fault in faults:
            if fault.active:
                dev.fault(f"loop_{fault.code}", fault.detail)
            else:
                dev.clear(f"loop_{fault.code}", fault.detail)

    def check(self, now_s: float | None = None) -> None:
        """Raise stuck/dead faults that became due."""
        now = self._monotonic() if now_s is None else now_s
        for role, monitor in self.monitors.items():
            self._apply(role, monitor.check(now))

    async def run(self, check_every_s: float = 1.0) -> None:
        """Check for stuck/dead loops every `check_every_s` until cancelled."""
        while True:
            await asyncio.sleep(check_every_s)
            self.check()

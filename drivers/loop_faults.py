"""Stuck and dead loop detection (pure: the time is passed in).

A loop is *stuck* when it has reported a vehicle for longer than `stuck_after_s` (a parked car
or a failed detector holding its contact); it is *dead* when it has seen no edge for
`dead_after_s` while the other loop of its lane saw at least `dead_min_edges` edges (the lane
has traffic, this loop does not notice it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class LoopFault:
    """A fault raised (`active`) or cleared; `code` is 'stuck' or 'dead'."""

    code: str
    active: bool
    detail: str


class LoopFaultMonitor:
    """Watches one loop's edges (and its lane's traffic) for the stuck and dead faults."""

    def __init__(self, *, stuck_after_s: float = 300.0, dead_after_s: float = 4 * 3600.0,
                 dead_min_edges: int = 10, present: bool = False, now_s: float = 0.0) -> None:
        self.stuck_after_s = stuck_after_s
        self.dead_after_s = dead_after_s
        self.dead_min_edges = dead_min_edges
        self.present = present
        self.since_s = now_s
        self.sibling_edges = 0
        self.active: set[str] = set()

    def edge(self, present: bool, now_s: float) -> list[LoopFault]:
        """This loop changed; clears `dead`, and `stuck` when the vehicle left."""
        self.present = present
        self.since_s = now_s
        self.sibling_edges = 0
        out = []
        if "dead" in self.active:
            self.active.discard("dead")
            out.append(LoopFault(code="dead", active=False, detail="edges seen again"))
        if not present and "stuck" in self.active:
            self.active.discard("stuck")
            out.append(LoopFault(code="stuck", active=False, detail="loop cleared"))
        return out

    def lane_traffic(self) -> None:
        """The other loop of the lane changed (the lane has traffic)."""
        self.sibling_edges += 1

    def check(self, now_s: float) -> list[LoopFault]:
        """Raise faults that became due."""
        out = []
        held_s = now_s - self.since_s
        if self.present and held_s >= self.stuck_after_s and "stuck" not in self.active:
            self.active.add("stuck")
            out.append(LoopFault(code="stuck", active=True,
                                 detail=f"vehicle present for {held_s:.0f} s"))
        if (not self.present and held_s >= self.dead_after_s
                and self.sibling_edges >= self.dead_min_edges and "dead" not in self.active):
            self.active.add("dead")
            out.append(LoopFault(code="dead", active=True,
                                 detail=f"no edge for {held_s:.0f} s while the lane saw "
                                        f"{self.sibling_edges} edges"))
        return out

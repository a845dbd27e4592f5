"""A short history of a lane's loop edges with their timing, for tuning detectors."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from drivers.loops import LoopDetector, LoopEdge


class EdgeLog:
    """The last `maxlen` debounced edges of a lane's loops, numbered so a watcher can poll."""

    def __init__(self, maxlen: int = 256) -> None:
        self._edges: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._last_raw_ns: dict[str, int] = {}
        self.seq = 0

    def record(self, edge: LoopEdge) -> None:
        """Keep one edge: settle time (raw change to debounced edge) and how long the previous
        state lasted (raw edge to raw edge)."""
        self.seq += 1
        previous = self._last_raw_ns.get(edge.loop)
        self._last_raw_ns[edge.loop] = edge.raw_ns
        self._edges.append({
            "seq": self.seq, "loop": edge.loop, "present": edge.present,
            "raw_ns": edge.raw_ns, "stable_ns": edge.stable_ns,
            "settle_ms": round((edge.stable_ns - edge.raw_ns) / 1e6, 3),
            "previous_state_ms": (None if previous is None
                                  else round((edge.raw_ns - previous) / 1e6, 3)),
        })

    def after(self, seq: int, *, now_ns: int | None = None) -> list[dict[str, Any]]:
        """Edges newer than `seq`, each with its age in seconds."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        return [{**e, "age_s": round((now - e["stable_ns"]) / 1e9, 3)}
                for e in self._edges if e["seq"] > seq]


def loop_state(detector: LoopDetector, *, now_ns: int | None = None) -> dict[str, Any]:
    """One loop detector's live state and counters."""
    now = time.monotonic_ns() if now_ns is None else now_ns
    return {
        "loop": detector.name, "pin": detector.pin, "present": detector.present,
        "debounce_ms": round(detector.debounce_s * 1000), "edges": detector.edges,
        "glitches": detector.glitches,
        "last_edge_s_ago": (None if detector.last_edge_ns is None
                            else round((now - detector.last_edge_ns) / 1e9, 3)),
    }

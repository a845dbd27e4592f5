"""Counting vehicles from a lane's loop pair (arming loop, then safety loop under the barrier).

Pure: feed each debounced loop change with its time; a passage is counted only for the full
forward sequence arming -> both -> safety only -> clear, so a car that backs out is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LoopPair(StrEnum):
    """Which of the two loops are occupied."""

    CLEAR = "clear"
    ARMING = "arming"
    BOTH = "both"
    SAFETY = "safety"


class PassageKind(StrEnum):
    """How a vehicle's visit to the loop pair ended."""

    PASSED = "passed"
    BACKED_OUT = "backed_out"
    WRONG_WAY = "wrong_way"
    SAFETY_ONLY = "safety_only"


@dataclass(frozen=True, kw_only=True, slots=True)
class Passage:
    """One completed visit to the loops (only PASSED counts as an entry or exit)."""

    kind: PassageKind
    started_s: float
    ended_s: float


def _pair(arming: bool, safety: bool) -> LoopPair:
    if arming and safety:
        return LoopPair.BOTH
    if arming:
        return LoopPair.ARMING
    if safety:
        return LoopPair.SAFETY
    return LoopPair.CLEAR


class PassageCounter:
    """Classifies each visit from the sequence of loop-pair states between two CLEARs."""

    def __init__(self) -> None:
        self.arming = False
        self.safety = False
        self.passed = 0
        self.backed_out = 0
        self.wrong_way = 0
        self._first: LoopPair | None = None
        self._last: LoopPair = LoopPair.CLEAR
        self._started_s = 0.0

    @property
    def state(self) -> LoopPair:
        """The current loop-pair state."""
        return _pair(self.arming, self.safety)

    def update(self, *, loop: str, present: bool, now_s: float) -> Passage | None:
        """Apply one edge of `loop` ('arming' or 'safety'); return the visit it completes, if any."""
        if loop == "arming":
            self.arming = present
        elif loop == "safety":
            self.safety = present
        else:
            raise ValueError(f"loop: must be 'arming' or 'safety', not {loop!r}")
        new = self.state
        if new == self._last:
            return None
        previous, self._last = self._last, new
        if previous == LoopPair.CLEAR:
            self._first = new
            self._started_s = now_s
            return None
        if new != LoopPair.CLEAR:
            return None
        first, self._first = self._first, None
        if first in (LoopPair.ARMING, LoopPair.BOTH) and previous == LoopPair.SAFETY:
            kind = PassageKind.PASSED
            self.passed += 1
        elif first in (LoopPair.ARMING, LoopPair.BOTH):
            kind = PassageKind.BACKED_OUT
            self.backed_out += 1
        elif previous == LoopPair.ARMING:
            kind = PassageKind.WRONG_WAY
            self.wrong_way += 1
        else:
            kind = PassageKind.SAFETY_ONLY
        return Passage(kind=kind, started_s=self._started_s, ended_s=now_s)

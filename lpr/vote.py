"""Vote across a burst of frames: the best-agreeing read and how much to trust it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Vote:
    """The burst's winner (None = no read) with its confidence in [0, 1] and support."""

    plate: str | None
    confidence: float
    frames: int
    agreeing: int


def vote(reads: list[tuple[str | None, float]], *, min_confidence: float = 0.5) -> Vote:
    """Pick the plate with the most summed confidence; confidence = that sum / frames in the burst.

    A frame without a read counts against the winner, so one good frame out of five is weak.
    Below `min_confidence` the result is a no-read (plate None) that keeps the best score.
    """
    frames = len(reads)
    if frames == 0:
        return Vote(plate=None, confidence=0.0, frames=0, agreeing=0)
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for plate, conf in reads:
        if plate:
            totals[plate] += min(max(conf, 0.0), 1.0)
            counts[plate] += 1
    if not totals:
        return Vote(plate=None, confidence=0.0, frames=frames, agreeing=0)
    best = max(totals, key=lambda p: (totals[p], counts[p], p))
    confidence = min(1.0, totals[best] / frames)
    if confidence < min_confidence:
        return Vote(plate=None, confidence=confidence, frames=frames, agreeing=counts[best])
    return Vote(plate=best, confidence=confidence, frames=frames, agreeing=counts[best])

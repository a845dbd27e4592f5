"""Allow/deny lists (permits, prepay-required, blocked) matched with an edit-distance tolerance."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


@dataclass(frozen=True, kw_only=True, slots=True)
class ListMatch:
    """The list entry a plate matched and how many edits apart they are."""

    entry: str
    distance: int


def match_list(plate: str | None, entries: Iterable[str], *, max_distance: int = 1) -> ListMatch | None:
    """The closest entry within `max_distance` edits (exact wins; ties go to the first entry)."""
    if not plate:
        return None
    best: ListMatch | None = None
    for entry in entries:
        if abs(len(entry) - len(plate)) > max_distance:
            continue
        distance = edit_distance(plate, entry)
        if distance <= max_distance and (best is None or distance < best.distance):
            best = ListMatch(entry=entry, distance=distance)
            if distance == 0:
                break
    return best

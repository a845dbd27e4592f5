"""Allow/deny lists (permits, prepay-required, blocked) matched with an edit-distance tolerance."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from appliance.core.plates import edit_distance as _bounded


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    return _bounded(a, b, max(len(a), len(b)))


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
        distance = _bounded(plate, entry, max_distance)
        if distance <= max_distance and (best is None or distance < best.distance):
            best = ListMatch(entry=entry, distance=distance)
            if distance == 0:
                break
    return best

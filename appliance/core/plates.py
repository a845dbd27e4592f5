"""Plate text: normalisation and tolerant matching (edit distance), as commercial systems do."""

from __future__ import annotations

from collections.abc import Iterable


def normalise_plate(text: str) -> str:
    """Uppercase letters and digits only ('abc-123 ' -> 'ABC123')."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Levenshtein distance, stopping early: returns limit + 1 when it exceeds `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        best = i
        for j, cb in enumerate(b, 1):
            value = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            cur.append(value)
            best = min(best, value)
        if best > limit:
            return limit + 1
        prev = cur
    return min(prev[-1], limit + 1)


def best_match(plate: str, candidates: Iterable[str], *, max_distance: int = 1) -> str | None:
    """The candidate equal to `plate`, else the unique one within `max_distance` edits.

    Ambiguous tolerant matches (two candidates equally close) return None: a wrong match would
    charge or admit the wrong vehicle.
    """
    best: list[str] = []
    best_d = max_distance + 1
    for cand in candidates:
        if cand == plate:
            return cand
        d = edit_distance(plate, cand, max_distance)
        if d < best_d:
            best, best_d = [cand], d
        elif d == best_d and d <= max_distance:
            best.append(cand)
    return best[0] if len(best) == 1 and best_d <= max_distance else None

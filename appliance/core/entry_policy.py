"""Who may enter, and on what terms (pure): blocked, passback, reservation, permit,
prepay-required, walk-in."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from appliance.core.reservations import Reservation


class EntryKind(StrEnum):
    """How a vehicle is admitted (or why not)."""

    BLOCKED = "blocked"
    PASSBACK = "passback"
    RESERVATION = "reservation"
    PERMIT = "permit"
    PREPAY = "prepay_required"
    WALK_IN = "walk_in"


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryFacts:
    """What the shell knows about the vehicle at an entry lane."""

    plate: str | None
    lists: frozenset[str] = frozenset()
    reservation: Reservation | None = None
    inside_ticket: str | None = None
    passback: str = "hard"


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryVerdict:
    """The policy's answer before allocation."""

    kind: EntryKind
    allow: bool
    reason: str
    ignore_full: bool = False
    needs_prepay_authorization: bool = False
    alarm: str | None = None


def classify_entry(f: EntryFacts) -> EntryVerdict:
    """Apply the entry rules in order of precedence."""
    if f.plate and "blocked" in f.lists:
        return EntryVerdict(kind=EntryKind.BLOCKED, allow=False, reason="plate blocked",
                            alarm="blocked_plate")
    if f.inside_ticket is not None:
        if f.passback == "hard":
            return EntryVerdict(kind=EntryKind.PASSBACK, allow=False,
                                reason="already inside (anti-passback)", alarm="passback")
    if f.reservation is not None:
        return EntryVerdict(kind=EntryKind.RESERVATION, allow=True, reason="reservation",
                            ignore_full=True)
    if f.plate and ("permit" in f.lists or "handicap" in f.lists):
        return EntryVerdict(kind=EntryKind.PERMIT, allow=True, reason="permit holder",
                            ignore_full=True)
    if f.plate and "prepay" in f.lists:
        return EntryVerdict(kind=EntryKind.PREPAY, allow=True, reason="prepay required",
                            needs_prepay_authorization=True)
    return EntryVerdict(kind=EntryKind.WALK_IN, allow=True, reason="walk-in")

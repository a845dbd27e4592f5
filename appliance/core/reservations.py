"""Reservations: capacity holdback, overbooking limit, no-shows and overstay conflicts (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from appliance.core.allocation import Pool
from appliance.core.types import SpotType

CONFIRMED = "CONFIRMED"
ARRIVED = "ARRIVED"
NO_SHOW = "NO_SHOW"
CANCELLED = "CANCELLED"
COMPLETED = "COMPLETED"


@dataclass(frozen=True, kw_only=True, slots=True)
class Reservation:
    """A booking of one space of a type for a time window (optionally a specific spot)."""

    id: str
    spot_type: SpotType
    start: datetime
    end: datetime
    status: str = CONFIRMED
    plate: str | None = None
    code: str | None = None
    level: str | None = None
    spot_id: str | None = None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether the window [start, end) meets this reservation's window."""
        return self.start < end and start < self.end


def holdback(reservations: Iterable[Reservation], *, now: datetime,
             expected_stay: timedelta) -> dict[SpotType, int]:
    """Spaces per type that a walk-in arriving now must not take.

    A walk-in expected to stay `expected_stay` would still be parked when any confirmed
    reservation starting before now + expected_stay begins.
    """
    held: dict[SpotType, int] = {}
    for r in reservations:
        if r.status == CONFIRMED and r.overlaps(now, now + expected_stay):
            held[r.spot_type] = held.get(r.spot_type, 0) + 1
    return held


def walk_in_pools(pools: Sequence[Pool], held: dict[SpotType, int]) -> list[Pool]:
    """Pools as a walk-in sees them: held spaces removed (from the last levels first)."""
    out = list(pools)
    for spot_type, count in held.items():
        for i in sorted(range(len(out)), key=lambda k: -out[k].level_position):
            if count <= 0:
                break
            pool = out[i]
            if pool.spot_type != spot_type or pool.free <= 0:
                continue
            take = min(pool.free, count)
            out[i] = replace(pool, occupied=pool.occupied + take)
            count -= take
    return out


def can_accept(new: Reservation, existing: Iterable[Reservation], *, capacity: int,
               overbooking_factor: Decimal) -> bool:
    """Whether a new reservation keeps every moment within capacity x overbooking factor."""
    limit = math.floor(Decimal(capacity) * overbooking_factor)
    same = [r for r in existing if r.spot_type == new.spot_type and r.status == CONFIRMED
            and r.overlaps(new.start, new.end) and r.id != new.id]
    # The peak overlap within the new window is reached at some reservation's start.
    points = [new.start] + [r.start for r in same if new.start <= r.start < new.end]
    peak = max(sum(1 for r in same if r.start <= t < r.end) for t in points)
    return peak + 1 <= limit


def no_shows(reservations: Iterable[Reservation], *, now: datetime,
             grace: timedelta) -> list[Reservation]:
    """Confirmed reservations whose vehicle has not arrived within the grace after start."""
    return [r for r in reservations if r.status == CONFIRMED and now > r.start + grace]


def match_reservation(reservations: Iterable[Reservation], *, plate: str | None,
                      code: str | None, now: datetime, early: timedelta,
                      grace: timedelta) -> Reservation | None:
    """The confirmed reservation this arrival honours (by plate or code), if its window is on."""
    for r in reservations:
        if r.status != CONFIRMED:
            continue
        if not (r.start - early <= now <= r.start + grace or r.start <= now < r.end):
            continue
        if (plate and r.plate == plate) or (code and r.code == code):
            return r
    return None

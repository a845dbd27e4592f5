"""Parking fees: pure, exact (integer cents, Decimal), explained line by line.

Rounding rule: intermediate amounts are exact Decimals; the total is rounded half up to the
cent once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from appliance.core.money import round_cents
from appliance.core.tariff import Tariff
from appliance.core.types import SpotType

DAY = timedelta(hours=24)


@dataclass(frozen=True, kw_only=True, slots=True)
class FeeLine:
    """One line of a fee breakdown."""

    label: str
    amount_cents: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Fee:
    """A computed fee with its breakdown."""

    total_cents: int
    duration_minutes: int
    breakdown: tuple[FeeLine, ...]


class FeeError(ValueError):
    """The fee inputs are inconsistent (e.g. exit before entry, naive datetimes)."""


def _capped_period(tariff: Tariff, elapsed: timedelta) -> int:
    """Charge for at most 24 h: grace, minimum, then started hours capped at daily max."""
    minutes = elapsed / timedelta(minutes=1)
    if minutes <= tariff.grace_minutes:
        return 0
    if minutes <= 30:
        return min(tariff.minimum_charge_cents, tariff.daily_max_cents)
    hours = math.ceil(elapsed / timedelta(hours=1))
    return min(hours * tariff.hourly_cents, tariff.daily_max_cents)


def compute_fee(
    tariff: Tariff,
    *,
    entry: datetime,
    exit: datetime,
    spot_type: SpotType = SpotType.REGULAR,
    tz: ZoneInfo | None = None,
    rate_multiplier: Decimal = Decimal(1),
    validations: Sequence[str] = (),
) -> Fee:
    """Fee for a stay from `entry` to `exit` (aware datetimes; real elapsed time)."""
    if entry.tzinfo is None or exit.tzinfo is None:
        raise FeeError("entry and exit must be timezone-aware")
    if exit < entry:
        raise FeeError("exit is before entry")
    if validations:
        raise FeeError(f"unknown validation code {validations[0]!r}")
    elapsed = exit - entry
    lines: list[FeeLine] = []
    full_days, remainder = divmod(elapsed, DAY)
    if elapsed <= DAY:
        full_days, remainder = 0, elapsed
    base = Decimal(full_days * tariff.daily_max_cents)
    if full_days:
        lines.append(FeeLine(label=f"{full_days} x 24 h at daily max", amount_cents=int(base)))
    part = _capped_period(tariff, remainder)
    if part or not full_days:
        lines.append(FeeLine(label=f"{_minutes(remainder)} min stay", amount_cents=part))
    amount = base + part
    spot_mult = tariff.spot_multipliers.get(spot_type, Decimal(1))
    for label, mult in (("spot type " + str(spot_type), spot_mult), ("rate", rate_multiplier)):
        if mult != 1:
            new_amount = amount * mult
            lines.append(FeeLine(label=f"{label} x{mult}",
                                 amount_cents=round_cents(new_amount - amount)))
            amount = new_amount
    total = max(0, round_cents(amount))
    return Fee(total_cents=total, duration_minutes=_minutes(elapsed), breakdown=tuple(lines))


def _minutes(delta: timedelta) -> int:
    return math.ceil(delta / timedelta(minutes=1))

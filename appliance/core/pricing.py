"""Dynamic pricing: the rate multiplier locked on a ticket at entry (occupancy x events, clamped).

The multiplier is computed once, when the ticket is issued, stored on the ticket as a string and
used at exit whatever the occupancy is then. It is quantized to 4 decimal places (half up) so
that what is stored is exactly what is charged.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from appliance.core.tariff import Tariff
from appliance.errors import FeeError

ONE = Decimal(1)
MULTIPLIER_QUANTUM = Decimal("0.0001")


def as_occupancy(value: Decimal | Fraction | int) -> Decimal:
    """An exact occupancy between 0 and 1 (a float is refused: it is not exact)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | Fraction | int):
        raise TypeError(f"occupancy must be a Decimal, Fraction or int, not {type(value).__name__}")
    occupancy = (Decimal(value.numerator) / Decimal(value.denominator)
                 if isinstance(value, Fraction) else Decimal(value))
    if not (occupancy.is_finite() and 0 <= occupancy <= 1):
        raise FeeError(f"occupancy must be between 0 and 1 (got {value})")
    return occupancy


def occupancy_multiplier(curve: tuple[tuple[Decimal, Decimal], ...], occupancy: Decimal) -> Decimal:
    """Piecewise-linear multiplier: flat before the first point and after the last."""
    first_occ, first_mult = curve[0]
    if occupancy <= first_occ:
        return first_mult
    for (occ0, mult0), (occ1, mult1) in zip(curve, curve[1:], strict=False):
        if occupancy <= occ1:
            return mult0 + (mult1 - mult0) * (occupancy - occ0) / (occ1 - occ0)
    return curve[-1][1]


def event_multiplier(tariff: Tariff, at: datetime) -> Decimal:
    """Product of the multipliers of the calendar events in progress at `at`."""
    mult = ONE
    for event in tariff.events:
        if event.multiplier is not None and event.active(at):
            mult *= event.multiplier
    return mult


def entry_rate_multiplier(tariff: Tariff, *, occupancy: Decimal | Fraction | int | None,
                          at: datetime) -> Decimal:
    """The multiplier to lock on a ticket issued at aware `at` with lot `occupancy` (0..1).

    Without a `[tariff.dynamic]` section occupancy is ignored and only event multipliers apply
    (unclamped); with it, occupancy curve x events, clamped to [min_multiplier, max_multiplier].
    `occupancy=None` means unknown: the occupancy factor is 1.
    """
    if at.utcoffset() is None:
        raise FeeError("entry time must be timezone-aware")
    mult = event_multiplier(tariff, at)
    dynamic = tariff.dynamic
    if dynamic is not None:
        if occupancy is not None:
            mult *= occupancy_multiplier(dynamic.occupancy_curve, as_occupancy(occupancy))
        mult = min(max(mult, dynamic.min_multiplier), dynamic.max_multiplier)
    elif occupancy is not None:
        as_occupancy(occupancy)
    return _plain(mult.quantize(MULTIPLIER_QUANTUM, rounding=ROUND_HALF_UP))


def _plain(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (1.2500 -> 1.25, 10 -> 10)."""
    normal = value.normalize()
    return normal.quantize(ONE) if normal.as_tuple().exponent > 0 else normal

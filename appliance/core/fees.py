"""Parking fees: pure, exact (integer cents, Decimal), explained line by line.

Rounding rule: intermediate amounts are exact Decimals; the total is rounded half up to the
cent once, at the end. Each breakdown line shows its own exact amount rounded the same way, and
an explicit "Rounding" line makes the lines add up exactly to the total.

Durations are real elapsed time (both instants converted to UTC first), so a stay across a DST
change is charged for the hours actually parked; time-of-day rules (bands, early bird) look at
the entry time in the lot's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from appliance.core.money import round_cents
from appliance.core.tariff import Band, FlatRate, Tariff, TariffEvent
from appliance.core.types import SpotType
from appliance.core.validations import apply_validations, resolve_validations
from appliance.errors import FeeError

__all__ = ["DAY", "Fee", "FeeError", "FeeLine", "compute_fee", "lost_ticket_fee"]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
ZERO = Decimal(0)
ONE = Decimal(1)
ROUNDING_LABEL = "Rounding to the cent (half up)"


@dataclass(frozen=True, kw_only=True, slots=True)
class FeeLine:
    """One line of a fee breakdown."""

    label: str
    amount_cents: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Fee:
    """A computed fee with its breakdown; the lines add up exactly to `total_cents`."""

    total_cents: int
    duration_minutes: int
    breakdown: tuple[FeeLine, ...]
    product: str = "hourly"


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise FeeError(f"{name} time must be timezone-aware (give a UTC offset)")
    return moment.astimezone(UTC)


def _money(cents: int) -> str:
    whole, part = divmod(cents, 100)
    return f"{whole}.{part:02d}"


def _hm(delta: timedelta) -> str:
    minutes = _minutes(delta)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _minutes(delta: timedelta) -> int:
    return -(-delta // MINUTE)


def _started_hours(tariff: Tariff, elapsed: timedelta, what: str) -> tuple[str, int]:
    hours = -(-elapsed // HOUR)
    raw = hours * tariff.hourly_cents
    label = f"{what}: {hours} started hour{'s' if hours != 1 else ''} x {_money(tariff.hourly_cents)}"
    if raw > tariff.daily_max_cents:
        return f"{label}, capped at daily max {_money(tariff.daily_max_cents)}", tariff.daily_max_cents
    return label, raw


def _time_charge(tariff: Tariff, elapsed: timedelta) -> list[tuple[str, int]]:
    """Charge lines for a stay longer than grace: minimum, started hours, 24-hour periods."""
    if elapsed <= tariff.minimum_window:
        return [(f"{_hm(elapsed)}: minimum charge (up to {tariff.minimum_charge_minutes} min)",
                 min(tariff.minimum_charge_cents, tariff.daily_max_cents))]
    if elapsed <= DAY:
        return [_started_hours(tariff, elapsed, _hm(elapsed))]
    full_days, remainder = divmod(elapsed, DAY)
    lines = [(f"{full_days} x 24 h at daily max {_money(tariff.daily_max_cents)}",
              full_days * tariff.daily_max_cents)]
    if remainder:
        lines.append(_started_hours(tariff, remainder, f"then {_hm(remainder)}"))
    return lines


def _band(tariff: Tariff, local_entry: datetime) -> Band | None:
    for band in tariff.bands:
        if band.matches(local_entry):
            return band
    return None


def _event_flat(tariff: Tariff, entry_utc: datetime) -> TariffEvent | None:
    for event in tariff.events:
        if event.flat_cents is not None and event.active(entry_utc):
            return event
    return None


def _early_bird(tariff: Tariff, local_entry: datetime, exit_utc: datetime,
                tz: ZoneInfo) -> FlatRate | None:
    """The cheapest flat-rate product this stay qualifies for."""
    best = None
    entry_time = local_entry.time()
    for product in tariff.flat_rates:
        if (local_entry.weekday() in product.weekdays
                and product.entry_start <= entry_time < product.entry_end
                and exit_utc <= datetime.combine(local_entry.date(), product.exit_by, tzinfo=tz)
                and (best is None or product.amount_cents < best.amount_cents)):
            best = product
    return best


def compute_fee(
    tariff: Tariff,
    *,
    entry: datetime,
    exit: datetime,
    spot_type: SpotType = SpotType.REGULAR,
    tz: ZoneInfo | None = None,
    rate_multiplier: Decimal = ONE,
    validations: Sequence[str] = (),
) -> Fee:
    """Fee for a stay from `entry` to `exit` (aware datetimes; real elapsed time).

    `tz` is the lot's time zone (needed when the tariff has bands or flat-rate products);
    `rate_multiplier` is the dynamic multiplier locked on the ticket at entry; `validations`
    are merchant validation codes, each at most once.
    """
    entry_utc = _as_utc(entry, "entry")
    exit_utc = _as_utc(exit, "exit")
    if exit_utc < entry_utc:
        raise FeeError(f"exit {exit.isoformat()} is before entry {entry.isoformat()}")
    if isinstance(rate_multiplier, int) and not isinstance(rate_multiplier, bool):
        rate_multiplier = Decimal(rate_multiplier)
    if not isinstance(rate_multiplier, Decimal) or not rate_multiplier.is_finite() \
            or rate_multiplier < 0:
        raise FeeError(f"rate multiplier must be a Decimal >= 0 (got {rate_multiplier!r})")
    try:
        spot_type = SpotType(spot_type)
    except ValueError as err:
        raise FeeError(f"unknown spot type {spot_type!r} "
                       f"(one of {', '.join(t.value for t in SpotType)})") from err
    spot_mult = tariff.spot_multipliers.get(spot_type, ONE)
    applied = resolve_validations(tariff, validations)
    elapsed = exit_utc - entry_utc
    duration_minutes = _minutes(elapsed)

    if elapsed <= tariff.grace:
        lines: list[tuple[str, int | Decimal]] = [
            (f"{_hm(elapsed)}: grace period (up to {tariff.grace_minutes} min) is free", 0)]
        amount, product, hour_value = ZERO, "grace", ZERO
        multipliers: list[tuple[str, Decimal]] = []
    else:
        local_entry = None
        if tariff.bands or tariff.flat_rates:
            if tz is None:
                raise FeeError("the lot time zone is needed for time-of-day rules")
            local_entry = entry_utc.astimezone(tz)
        event = _event_flat(tariff, entry_utc) if tariff.events and elapsed <= DAY else None
        band = _band(tariff, local_entry) if tariff.bands else None
        spot_line = (f"{spot_type.value} spot x{spot_mult}", spot_mult)
        multipliers = [spot_line, ("Rate locked at entry x" + str(rate_multiplier),
                                   rate_multiplier)]
        if band is not None:
            multipliers.insert(0, (f"{band.name} band x{band.multiplier}", band.multiplier))
        time_mult = _product(multipliers)
        # Free-hour validations are worth an hour at this ticket's time rate, whatever product.
        hour_value = tariff.hourly_cents * time_mult
        if event is not None:
            lines = [(f"Event flat rate: {event.name}", event.flat_cents)]
            multipliers = [spot_line]
            base, product = event.flat_cents, "event"
        else:
            lines = _time_charge(tariff, elapsed)
            base, product = sum(amount for _, amount in lines), "hourly"
            if tariff.flat_rates and elapsed <= DAY:
                bird = _early_bird(tariff, local_entry, exit_utc, tz)
                if bird is not None and bird.amount_cents * spot_mult < base * time_mult:
                    lines = [(f"{bird.name} (enter {bird.entry_start:%H:%M}-"
                              f"{bird.entry_end:%H:%M}, leave by {bird.exit_by:%H:%M}): flat",
                              bird.amount_cents)]
                    multipliers = [spot_line]
                    base, product = bird.amount_cents, "flat"
        amount = Decimal(base)
    for label, mult in multipliers:
        if mult != ONE:
            new_amount = amount * mult
            lines.append((label, new_amount - amount))
            amount = new_amount
    if applied:
        amount, validation_lines = apply_validations(amount, applied, hour_value=hour_value)
        lines.extend(validation_lines)
    total = round_cents(amount)
    breakdown = [FeeLine(label=label, amount_cents=value if isinstance(value, int)
                         else round_cents(value)) for label, value in lines]
    rounding = total - sum(line.amount_cents for line in breakdown)
    if rounding:
        breakdown.append(FeeLine(label=ROUNDING_LABEL, amount_cents=rounding))
    return Fee(total_cents=total, duration_minutes=duration_minutes, breakdown=tuple(breakdown),
               product=product)


def _product(multipliers: list[tuple[str, Decimal]]) -> Decimal:
    out = ONE
    for _, mult in multipliers:
        out *= mult
    return out


def lost_ticket_fee(tariff: Tariff) -> Fee:
    """The fee charged when no entry can be matched: the flat lost-ticket fee or the daily max."""
    if tariff.lost_ticket_cents is None:
        label = "Lost ticket (no matching entry): daily max"
    else:
        label = "Lost ticket (no matching entry): flat fee"
    amount = tariff.lost_ticket_fee_cents
    return Fee(total_cents=amount, duration_minutes=0,
               breakdown=(FeeLine(label=label, amount_cents=amount),), product="lost_ticket")

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
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from appliance.core.money import cents_text, round_cents
from appliance.core.tariff import Band, FlatRate, Tariff, TariffEvent, in_window
from appliance.core.types import SpotType
from appliance.core.validations import apply_validations, resolve_validations
from appliance.errors import FeeError

__all__ = ["DAY", "Fee", "FeeError", "FeeLine", "compute_fee", "lost_ticket_fee"]

DAY = timedelta(hours=24)
_OFFSET_ALWAYS = (ZoneInfo, timezone)
MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
ZERO = Decimal(0)
ONE = Decimal(1)
ROUNDING_LABEL = "Rounding to the cent (half up)"
_text = lru_cache(maxsize=1024)(cents_text)


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
    zone = moment.tzinfo
    # astimezone() would read a naive time as the machine's local time: refuse it instead.
    if zone is None or (zone.__class__ not in _OFFSET_ALWAYS and moment.utcoffset() is None):
        raise FeeError(f"{name} time must be timezone-aware (give a UTC offset)")
    return moment.astimezone(UTC)


def _hm(elapsed_us: int) -> str:
    minutes = -(-elapsed_us // MINUTE_US)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _started_hours(tariff: Tariff, elapsed_us: int, what: str) -> tuple[str, int]:
    hours = -(-elapsed_us // HOUR_US)
    raw = hours * tariff.hourly_cents
    label = f"{what}: {hours} started hour{'s' if hours != 1 else ''} x {_text(tariff.hourly_cents)}"
    if raw > tariff.daily_max_cents:
        return f"{label}, capped at daily max {_text(tariff.daily_max_cents)}", tariff.daily_max_cents
    return label, raw


def _time_charge(tariff: Tariff, elapsed_us: int) -> list[tuple[str, int]]:
    """Charge lines for a stay longer than grace: minimum, started hours, 24-hour periods."""
    if elapsed_us <= tariff.minimum_charge_minutes * MINUTE_US:
        return [(f"{_hm(elapsed_us)}: minimum charge (up to {tariff.minimum_charge_minutes} min)",
                 min(tariff.minimum_charge_cents, tariff.daily_max_cents))]
    if elapsed_us <= DAY_US:
        return [_started_hours(tariff, elapsed_us, _hm(elapsed_us))]
    full_days, remainder_us = divmod(elapsed_us, DAY_US)
    lines = [(f"{full_days} x 24 h at daily max {_text(tariff.daily_max_cents)}",
              full_days * tariff.daily_max_cents)]
    if remainder_us:
        lines.append(_started_hours(tariff, remainder_us, f"then {_hm(remainder_us)}"))
    return lines


def _band(tariff: Tariff, local_entry: datetime) -> Band | None:
    weekday, wall = local_entry.weekday(), local_entry.time()
    for band in tariff.bands:
        if weekday in band.weekdays and in_window(wall, band.start, band.end):
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
    if type(rate_multiplier) is not Decimal:
        if not isinstance(rate_multiplier, int | Decimal) or isinstance(rate_multiplier, bool):
            raise FeeError(f"rate multiplier must be a Decimal >= 0 (got {rate_multiplier!r})")
        rate_multiplier = Decimal(rate_multiplier)
    if not rate_multiplier.is_finite() or rate_multiplier < 0:
        raise FeeError(f"rate multiplier must be a Decimal >= 0 (got {rate_multiplier!r})")
    if type(spot_type) is not SpotType:
        try:
            spot_type = SpotType(spot_type)
        except ValueError as err:
            raise FeeError(f"unknown spot type {spot_type!r} "
                           f"(one of {', '.join(t.value for t in SpotType)})") from err
    spot_mult = tariff.spot_multipliers.get(spot_type, ONE)
    applied = resolve_validations(tariff, validations)
    elapsed = exit_utc - entry_utc
    elapsed_us = (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000 + elapsed.microseconds
    duration_minutes = -(-elapsed_us // MINUTE_US)

    if elapsed_us <= tariff.grace_minutes * MINUTE_US:
        lines: list[tuple[str, int | Decimal]] = [
            (f"{_hm(elapsed_us)}: grace period (up to {tariff.grace_minutes} min) is free", 0)]
        amount, product, hour_value = ZERO, "grace", ZERO
        multipliers: list[tuple[str, str, Decimal]] = []
        time_mult = ONE
    else:
        local_entry = None
        if tariff.bands or tariff.flat_rates:
            if tz is None:
                raise FeeError("the lot time zone is needed for time-of-day rules")
            local_entry = entry.astimezone(tz)
        event = _event_flat(tariff, entry_utc) if tariff.events and elapsed_us <= DAY_US else None
        band = _band(tariff, local_entry) if tariff.bands else None
        spot_line = (spot_type, " spot x", spot_mult)
        if band is None:
            multipliers = [spot_line, ("Rate", " locked at entry x", rate_multiplier)]
            time_mult = spot_mult * rate_multiplier
        else:
            multipliers = [(band.name, " band x", band.multiplier), spot_line,
                           ("Rate", " locked at entry x", rate_multiplier)]
            time_mult = band.multiplier * spot_mult * rate_multiplier
        # Free-hour validations are worth an hour at this ticket's time rate, whatever product.
        hour_value = tariff.hourly_cents * time_mult
        if event is not None:
            lines = [(f"Event flat rate: {event.name}", event.flat_cents)]
            multipliers = [spot_line]
            base, product = event.flat_cents, "event"
        else:
            lines = _time_charge(tariff, elapsed_us)
            base, product = sum(amount for _, amount in lines), "hourly"
            if tariff.flat_rates and elapsed_us <= DAY_US:
                bird = _early_bird(tariff, local_entry, exit_utc, tz)
                if bird is not None and bird.amount_cents * spot_mult < base * time_mult:
                    lines = [(f"{bird.name} (enter {bird.entry_start:%H:%M}-"
                              f"{bird.entry_end:%H:%M}, leave by {bird.exit_by:%H:%M}): flat",
                              bird.amount_cents)]
                    multipliers = [spot_line]
                    base, product = bird.amount_cents, "flat"
        amount = Decimal(base)
    for name, what, mult in multipliers:
        if mult != ONE:
            new_amount = amount * mult
            lines.append((f"{name}{what}{mult}", new_amount - amount))
            amount = new_amount
    if applied:
        amount, validation_lines = apply_validations(amount, applied, hour_value=hour_value)
        lines.extend(validation_lines)
    total = round_cents(amount)
    breakdown = []
    rounding = total
    for label, value in lines:
        cents = value if value.__class__ is int else round_cents(value)
        rounding -= cents
        breakdown.append(FeeLine(label=label, amount_cents=cents))
    if rounding:
        breakdown.append(FeeLine(label=ROUNDING_LABEL, amount_cents=rounding))
    return Fee(total_cents=total, duration_minutes=duration_minutes, breakdown=tuple(breakdown),
               product=product)


def lost_ticket_fee(tariff: Tariff) -> Fee:
    """The fee charged when no entry can be matched: the flat lost-ticket fee or the daily max."""
    if tariff.lost_ticket_cents is None:
        label = "Lost ticket (no matching entry): daily max"
    else:
        label = "Lost ticket (no matching entry): flat fee"
    amount = tariff.lost_ticket_fee_cents
    return Fee(total_cents=amount, duration_minutes=0,
               breakdown=(FeeLine(label=label, amount_cents=amount),), product="lost_ticket")

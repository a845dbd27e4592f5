"""Tariff definition: the lot's prices as a frozen value, validated by the config loader.

Money is integer cents (`*_cents`; a TOML float is rejected); multipliers and percentages are
exact Decimals (write `1.25` or `"1.25"`). Times of day are lot-local wall-clock times; event
start/end are datetimes with a UTC offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from functools import cached_property
from typing import Annotated

from pydantic import Strict

from appliance.core.types import SpotType

_FORBID = {"extra": "forbid"}

Cents = Annotated[int, Strict()]
"""Integer minor units; strict so that `3.5` or even `350.0` in TOML is an error."""

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS = {"all": range(7), "weekdays": range(5), "weekend": range(5, 7)}

# Occupancy -> multiplier: 1.0 below 50 %, then linear to 1.2 at 70 %, 1.5 at 90 %, 2.0 at 100 %.
DEFAULT_OCCUPANCY_CURVE: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("0.5"), Decimal("1.0")),
    (Decimal("0.7"), Decimal("1.2")),
    (Decimal("0.9"), Decimal("1.5")),
    (Decimal("1.0"), Decimal("2.0")),
)


_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ALIASES: dict[str, tuple[int, ...]] = {
    **{name: (i,) for i, name in enumerate(DAY_NAMES)},
    **{name: (i,) for i, name in enumerate(_FULL_DAY_NAMES)},
    **{name: tuple(days) for name, days in DAY_GROUPS.items()},
}


def weekday_set(days: tuple[str, ...]) -> frozenset[int]:
    """Weekday numbers (Monday = 0) named by `days`: mon..sun, weekdays, weekend, all."""
    out: set[int] = set()
    for day in days:
        numbers = _DAY_ALIASES.get(day.strip().lower())
        if numbers is None:
            raise ValueError(f"days: unknown day {day!r} (use mon..sun, weekdays, weekend, all)")
        out.update(numbers)
    if not out:
        raise ValueError("days: must name at least one day")
    return frozenset(out)


def in_window(t: time, start: time, end: time) -> bool:
    """Whether wall-clock `t` is in [start, end); a window with end <= start wraps midnight."""
    if start < end:
        return start <= t < end
    return t >= start or t < end


def _check_naive_time(name: str, value: time) -> None:
    if value.tzinfo is not None:
        raise ValueError(f"{name}: a lot-local time of day without offset, like 09:00")


def _check_multiplier(name: str, value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name}: must be a finite number >= 0")


@dataclass(frozen=True, kw_only=True)
class Band:
    """A time-of-day / weekday multiplier, chosen by the lot-local entry time (first match)."""

    __pydantic_config__ = _FORBID

    name: str
    """The band's name, shown in the fee breakdown."""
    multiplier: Decimal
    """Multiplies the time charge of stays whose lot-local entry falls in the band."""
    start: time
    """Start of the daily window (lot-local, inclusive)."""
    end: time
    """End of the window (exclusive); an end not after the start wraps midnight (00:00-00:00 is all
    day).
    """
    days: tuple[str, ...] = ("all",)
    """Weekdays it applies on: mon..sun, weekdays, weekend, all."""

    def __post_init__(self) -> None:
        _check_naive_time("start", self.start)
        _check_naive_time("end", self.end)
        _check_multiplier("multiplier", self.multiplier)
        weekday_set(self.days)

    @cached_property
    def weekdays(self) -> frozenset[int]:
        """The weekday numbers this band applies on."""
        return weekday_set(self.days)

    def matches(self, local_entry: datetime) -> bool:
        """Whether a lot-local entry time falls in this band."""
        return (local_entry.weekday() in self.weekdays
                and in_window(local_entry.time(), self.start, self.end))


@dataclass(frozen=True, kw_only=True)
class FlatRate:
    """A flat-rate product such as early bird: enter in a window, leave by a time, pay a flat amount.

    Args:
        name: shown on receipts.
        amount_cents: the flat price (the spot-type multiplier still applies).
        entry_start: earliest lot-local entry time (inclusive).
        entry_end: latest lot-local entry time (exclusive); must be after entry_start.
        exit_by: lot-local time on the entry day by which the car must have left (inclusive).
        days: weekdays the product is sold on.
    """

    __pydantic_config__ = _FORBID

    name: str
    amount_cents: Cents
    entry_start: time
    entry_end: time
    exit_by: time
    days: tuple[str, ...] = ("weekdays",)

    def __post_init__(self) -> None:
        for key in ("entry_start", "entry_end", "exit_by"):
            _check_naive_time(key, getattr(self, key))
        if self.amount_cents < 0:
            raise ValueError("amount_cents: must not be negative")
        if not self.entry_start < self.entry_end:
            raise ValueError("entry_end: must be after entry_start (windows do not wrap midnight)")
        if not self.entry_start < self.exit_by:
            raise ValueError("exit_by: must be after entry_start on the same day")
        weekday_set(self.days)

    @cached_property
    def weekdays(self) -> frozenset[int]:
        """The weekday numbers this product is sold on."""
        return weekday_set(self.days)


@dataclass(frozen=True, kw_only=True)
class TariffEvent:
    """A calendar event: entries in [start, end) get its multiplier and/or its flat rate."""

    __pydantic_config__ = _FORBID

    name: str
    """The event's name, shown in the fee breakdown."""
    start: datetime
    """Start (date-time with a UTC offset, inclusive) of the entries it applies to."""
    end: datetime
    """End (exclusive)."""
    multiplier: Decimal | None = None
    """Multiplies the dynamic rate locked at entry for entries during the event."""
    flat_cents: Cents | None = None
    """A flat fee replacing the time charge for entries during the event and stays of at most 24 h
    (even if dearer).
    """

    def __post_init__(self) -> None:
        for key in ("start", "end"):
            if getattr(self, key).utcoffset() is None:
                raise ValueError(f"{key}: needs a UTC offset, like 2026-07-04T17:00:00-04:00")
        if not self.start < self.end:
            raise ValueError("end: must be after start")
        if self.multiplier is None and self.flat_cents is None:
            raise ValueError("an event needs a multiplier, a flat_cents, or both")
        if self.multiplier is not None:
            _check_multiplier("multiplier", self.multiplier)
        if self.flat_cents is not None and self.flat_cents < 0:
            raise ValueError("flat_cents: must not be negative")

    def active(self, at: datetime) -> bool:
        """Whether the aware instant `at` is within the event."""
        return self.start <= at < self.end


@dataclass(frozen=True, kw_only=True)
class Validation:
    """A merchant validation code: exactly one of an amount off, a percentage off, free hours."""

    __pydantic_config__ = _FORBID

    code: str
    """The code typed or scanned at the booth or pay station (each once per ticket)."""
    name: str = ""
    """The merchant's name, shown in the breakdown."""
    amount_off_cents: Cents | None = None
    """An amount taken off the fee (give exactly one of the three)."""
    percent_off: Decimal | None = None
    """A percentage taken off the fee (0-100)."""
    free_hours: Annotated[int, Strict()] | None = None
    """Hours not charged, each worth hourly_cents times the ticket's band, spot and rate multipliers.
    """

    def __post_init__(self) -> None:
        if not self.code or not self.code.strip() or self.code != self.code.strip():
            raise ValueError("code: must be a non-empty code without surrounding spaces")
        given = [k for k in ("amount_off_cents", "percent_off", "free_hours")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of amount_off_cents, percent_off, free_hours")
        if self.amount_off_cents is not None and self.amount_off_cents < 0:
            raise ValueError("amount_off_cents: must not be negative")
        if self.percent_off is not None and not (
                self.percent_off.is_finite() and 0 <= self.percent_off <= 100):
            raise ValueError("percent_off: must be between 0 and 100")
        if self.free_hours is not None and self.free_hours < 0:
            raise ValueError("free_hours: must not be negative")

    @cached_property
    def label(self) -> str:
        """What this validation gives, in words (for the breakdown)."""
        if self.amount_off_cents is not None:
            whole, cents = divmod(self.amount_off_cents, 100)
            what = f"{whole}.{cents:02d} off"
        elif self.percent_off is not None:
            what = f"{self.percent_off}% off"
        else:
            what = f"{self.free_hours} free hour{'s' if self.free_hours != 1 else ''}"
        return f"Validation {self.code}{' (' + self.name + ')' if self.name else ''}: {what}"


@dataclass(frozen=True, kw_only=True)
class DynamicPricing:
    """Occupancy-based multiplier (piecewise linear) combined with event multipliers, clamped."""

    __pydantic_config__ = _FORBID

    occupancy_curve: tuple[tuple[Decimal, Decimal], ...] = DEFAULT_OCCUPANCY_CURVE
    """Points [occupancy 0-1, multiplier], linear in between and flat outside: the occupancy
    multiplier at entry.
    """
    min_multiplier: Decimal = Decimal(1)
    """The locked rate (occupancy multiplier times event multipliers) is at least this."""
    max_multiplier: Decimal = Decimal(2)
    """The locked rate is at most this."""

    def __post_init__(self) -> None:
        if not self.occupancy_curve:
            raise ValueError("occupancy_curve: needs at least one [occupancy, multiplier] point")
        previous = None
        for occupancy, mult in self.occupancy_curve:
            if not (occupancy.is_finite() and 0 <= occupancy <= 1):
                raise ValueError("occupancy_curve: occupancies must be between 0 and 1")
            _check_multiplier("occupancy_curve", mult)
            if previous is not None and occupancy <= previous:
                raise ValueError("occupancy_curve: occupancies must be strictly increasing")
            previous = occupancy
        _check_multiplier("min_multiplier", self.min_multiplier)
        _check_multiplier("max_multiplier", self.max_multiplier)
        if self.min_multiplier > self.max_multiplier:
            raise ValueError("max_multiplier: must not be below min_multiplier")


@dataclass(frozen=True, kw_only=True)
class Tariff:
    """Prices in integer cents; multipliers as exact Decimals; see README "Fees and pricing"."""

    __pydantic_config__ = _FORBID

    grace_minutes: Annotated[int, Strict()] = 10
    """A stay of at most this many minutes is free (even during an event)."""
    minimum_charge_cents: Cents = 200
    """The charge of a stay longer than the grace and at most minimum_charge_minutes."""
    minimum_charge_minutes: Annotated[int, Strict()] = 30
    """Stays up to this long pay the minimum charge."""
    hourly_cents: Cents = 300
    """Otherwise each started hour costs this ..."""
    daily_max_cents: Cents = 2400
    """... up to this per 24 h counted from entry; longer stays pay it per full 24 h plus the
    remainder's started hours, capped again.
    """
    lost_ticket_cents: Cents | None = None
    """The fee when no entry can be matched; none: daily_max_cents."""
    spot_multipliers: dict[SpotType, Decimal] = field(default_factory=dict)
    """Spot type = multiplier of the charge (flat rates too), e.g. { EV = 1.5 }."""
    bands: tuple[Band, ...] = ()
    """Time-of-day and weekday multipliers, by lot-local entry time; the first match wins."""
    flat_rates: tuple[FlatRate, ...] = ()
    """Flat-rate products such as early bird, charged instead of the time charge when the stay
    qualifies and it is cheaper.
    """
    events: tuple[TariffEvent, ...] = ()
    """Calendar events: a multiplier of the locked rate and/or a flat fee for entries during them.
    """
    validations: tuple[Validation, ...] = ()
    """Merchant validation codes."""
    dynamic: DynamicPricing | None = None
    """Dynamic pricing: an occupancy multiplier at entry, locked on the ticket; none: only event
    multipliers apply.
    """

    def __post_init__(self) -> None:
        for name in ("grace_minutes", "minimum_charge_cents", "minimum_charge_minutes",
                     "hourly_cents", "daily_max_cents"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        if self.lost_ticket_cents is not None and self.lost_ticket_cents < 0:
            raise ValueError("lost_ticket_cents: must not be negative")
        if self.grace_minutes > 24 * 60:
            raise ValueError("grace_minutes: must be at most 1440 (24 h)")
        for spot_type, mult in self.spot_multipliers.items():
            _check_multiplier(f"spot_multipliers.{spot_type}", mult)
        seen: set[str] = set()
        for i, validation in enumerate(self.validations):
            if validation.code in seen:
                raise ValueError(f"validations.{i}: duplicate code {validation.code!r}")
            seen.add(validation.code)

    @property
    def lost_ticket_fee_cents(self) -> int:
        """The flat lost-ticket fee, or the daily max when none is configured."""
        return self.daily_max_cents if self.lost_ticket_cents is None else self.lost_ticket_cents

    @cached_property
    def validations_by_code(self) -> dict[str, Validation]:
        """The validation codes this lot accepts."""
        return {v.code: v for v in self.validations}

"""Fee rules, table-driven: every boundary with its hand-computed amount, DST nights, products."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from appliance.core.fees import ROUNDING_LABEL, compute_fee, lost_ticket_fee
from appliance.core.tariff import Band, FlatRate, Tariff, TariffEvent, Validation
from appliance.core.types import SpotType
from appliance.errors import FeeError, LotedgeError

NY = ZoneInfo("America/New_York")
D = Decimal

# grace 10 min, minimum 2.00 up to 30 min, 3.00 per started hour, 24.00 per 24 h.
BASE = Tariff(grace_minutes=10, minimum_charge_cents=200, hourly_cents=300,
              daily_max_cents=2400, spot_multipliers={SpotType.EV: D("1.5"),
                                                       SpotType.MOTORCYCLE: D("0.5")})
MONDAY_10 = datetime(2026, 3, 9, 10, 0, tzinfo=NY)


def fee(tariff: Tariff = BASE, *, entry: datetime = MONDAY_10, stay: timedelta | None = None,
        exit: datetime | None = None, **kw):
    return compute_fee(tariff, entry=entry, exit=exit or entry + stay, tz=NY, **kw)


def assert_adds_up(result) -> None:
    assert sum(line.amount_cents for line in result.breakdown) == result.total_cents


@pytest.mark.parametrize(("stay", "total_cents"), [
    (timedelta(0), 0),
    (timedelta(minutes=9, seconds=59), 0),
    (timedelta(minutes=10), 0),                          # exactly grace: free
    (timedelta(minutes=10, seconds=1), 200),             # just over grace: minimum
    (timedelta(minutes=30), 200),                        # exactly 30 min: still minimum
    (timedelta(minutes=30, seconds=1), 300),             # started first hour
    (timedelta(hours=1), 300),                           # exactly 1 h
    (timedelta(hours=1, seconds=1), 600),                # second hour started
    (timedelta(hours=7, minutes=59), 2400),              # 8 started hours = the cap
    (timedelta(hours=8, minutes=1), 2400),               # 9 hours would be 27.00: capped
    (timedelta(hours=23, minutes=59), 2400),
    (timedelta(hours=24), 2400),
    (timedelta(hours=24, minutes=1), 2700),              # daily max + 1 started hour
    (timedelta(hours=30), 2400 + 6 * 300),
    (timedelta(hours=40), 2400 + 2400),                  # remainder capped too
    (timedelta(hours=48), 4800),
    (timedelta(hours=72, minutes=5), 3 * 2400 + 300),
])
def test_base_rules_at_every_boundary(stay, total_cents):
    result = fee(stay=stay)
    assert result.total_cents == total_cents
    assert_adds_up(result)


def test_duration_minutes_counts_started_minutes():
    assert fee(stay=timedelta(hours=2, seconds=1)).duration_minutes == 121
    assert fee(stay=timedelta(hours=2)).duration_minutes == 120


def test_breakdown_explains_periods_in_words():
    lines = fee(stay=timedelta(hours=72, minutes=5)).breakdown
    assert [(line.label, line.amount_cents) for line in lines] == [
        ("3 x 24 h at daily max 24.00", 7200),
        ("then 0 h 05 min: 1 started hour x 3.00", 300),
    ]
    capped = fee(stay=timedelta(hours=9)).breakdown
    assert capped[0].label == "9 h 00 min: 9 started hours x 3.00, capped at daily max 24.00"
    assert "grace" in fee(stay=timedelta(minutes=5)).breakdown[0].label


# America/New_York 2026: clocks go 02:00 -> 03:00 on 8 March, 02:00 -> 01:00 on 1 November.
@pytest.mark.parametrize(("entry", "exit", "minutes", "total_cents"), [
    # spring forward: 01:30 EST -> 03:30 EDT is 1 h of parking, not 2
    (datetime(2026, 3, 8, 1, 30, tzinfo=NY), datetime(2026, 3, 8, 3, 30, tzinfo=NY), 60, 300),
    # overnight across spring forward: 22:00 -> 06:00 wall clock is 7 real hours
    (datetime(2026, 3, 7, 22, 0, tzinfo=NY), datetime(2026, 3, 8, 6, 0, tzinfo=NY), 420, 2100),
    # fall back: 00:30 EDT -> 03:30 EST is 4 real hours
    (datetime(2026, 11, 1, 0, 30, tzinfo=NY), datetime(2026, 11, 1, 3, 30, tzinfo=NY), 240, 1200),
    # inside the repeated hour: 01:30 EDT (fold 0) -> 01:20 EST (fold 1) is 50 min later
    (datetime(2026, 11, 1, 1, 30, tzinfo=NY), datetime(2026, 11, 1, 1, 20, fold=1, tzinfo=NY),
     50, 300),
])
def test_dst_nights_charge_real_elapsed_time(entry, exit, minutes, total_cents):
    result = compute_fee(BASE, entry=entry, exit=exit, tz=NY)
    assert result.duration_minutes == minutes
    assert result.total_cents == total_cents


def test_mixed_offsets_are_the_same_instants():
    entry = datetime.fromisoformat("2026-03-09T14:00:00+00:00")
    exit = datetime.fromisoformat("2026-03-09T12:00:00-04:00")   # 16:00 UTC
    assert compute_fee(BASE, entry=entry, exit=exit, tz=NY).total_cents == 600


@pytest.mark.parametrize(("spot_type", "stay", "total_cents"), [
    (SpotType.EV, timedelta(hours=2), 900),
    (SpotType.MOTORCYCLE, timedelta(hours=2), 300),
    (SpotType.LARGE, timedelta(hours=2), 600),           # no multiplier configured
    ("EV", timedelta(hours=1), 450),                      # plain strings work too
])
def test_spot_multipliers(spot_type, stay, total_cents):
    assert fee(stay=stay, spot_type=spot_type).total_cents == total_cents


def test_rounding_half_up_once_with_explicit_line():
    odd = Tariff(hourly_cents=333, daily_max_cents=5000, spot_multipliers={SpotType.EV: D("1.5")})
    # 333 x 1.5 = 499.5 ; x 1.5 = 749.25 -> 749; lines rounded alone give 333 + 167 + 250 = 750
    result = fee(odd, stay=timedelta(hours=1), spot_type=SpotType.EV, rate_multiplier=D("1.5"))
    assert result.total_cents == 749
    assert [line.amount_cents for line in result.breakdown] == [333, 167, 250, -1]
    assert result.breakdown[-1].label == ROUNDING_LABEL
    half = Tariff(hourly_cents=5, spot_multipliers={SpotType.MOTORCYCLE: D("0.5")})
    assert fee(half, stay=timedelta(hours=1), spot_type=SpotType.MOTORCYCLE).total_cents == 3


@pytest.mark.parametrize(("rate", "total_cents"), [
    (D("1"), 600), (D("1.425"), 855), (D("2"), 1200), (D("0.8"), 480), (1, 600),
])
def test_locked_rate_multiplier(rate, total_cents):
    result = fee(stay=timedelta(hours=2), rate_multiplier=rate)
    assert result.total_cents == total_cents
    assert_adds_up(result)


BANDED = Tariff(
    grace_minutes=10, minimum_charge_cents=200, hourly_cents=300, daily_max_cents=2400,
    bands=(Band(name="Peak", days=("weekdays",), start=time(9), end=time(18),
                multiplier=D("1.25")),
           Band(name="Evening", days=("all",), start=time(18), end=time(6),
                multiplier=D("0.8"))),
)


@pytest.mark.parametrize(("entry", "stay", "total_cents", "band"), [
    (datetime(2026, 3, 9, 10, 0, tzinfo=NY), timedelta(hours=2), 750, "Peak"),     # Monday
    (datetime(2026, 3, 14, 10, 0, tzinfo=NY), timedelta(hours=2), 600, None),      # Saturday
    (datetime(2026, 3, 9, 8, 59, tzinfo=NY), timedelta(hours=2), 600, None),
    (datetime(2026, 3, 9, 9, 0, tzinfo=NY), timedelta(hours=2), 750, "Peak"),
    (datetime(2026, 3, 9, 17, 59, tzinfo=NY), timedelta(hours=3), 1125, "Peak"),   # by entry
    (datetime(2026, 3, 9, 18, 0, tzinfo=NY), timedelta(hours=3), 720, "Evening"),
    (datetime(2026, 3, 10, 2, 0, tzinfo=NY), timedelta(hours=1), 240, "Evening"),  # wraps
    (datetime(2026, 3, 14, 23, 0, tzinfo=NY), timedelta(hours=1), 240, "Evening"),
])
def test_bands_chosen_by_lot_local_entry_time(entry, stay, total_cents, band):
    result = fee(BANDED, entry=entry, stay=stay)
    assert result.total_cents == total_cents
    labels = " ".join(line.label for line in result.breakdown)
    assert (band is None and "band" not in labels) or f"{band} band" in labels


def test_band_uses_the_lot_zone_not_utc():
    # 13:30 UTC is 09:30 EDT in March (peak) but 08:30 EST in January (not peak).
    march = datetime.fromisoformat("2026-03-09T13:30:00+00:00")
    january = datetime.fromisoformat("2026-01-12T13:30:00+00:00")
    assert fee(BANDED, entry=march, stay=timedelta(hours=2)).total_cents == 750
    assert fee(BANDED, entry=january, stay=timedelta(hours=2)).total_cents == 600


def test_time_of_day_rules_need_the_lot_zone():
    with pytest.raises(FeeError, match="time zone"):
        compute_fee(BANDED, entry=MONDAY_10, exit=MONDAY_10 + timedelta(hours=2))


EARLY = Tariff(
    hourly_cents=300, daily_max_cents=2400, spot_multipliers={SpotType.EV: D("1.5")},
    flat_rates=(FlatRate(name="Early bird", amount_cents=1200, entry_start=time(6),
                         entry_end=time(9), exit_by=time(19), days=("weekdays",)),),
)


@pytest.mark.parametrize(("entry", "exit", "total_cents", "product"), [
    ((3, 9, 7, 0), (3, 9, 18, 30), 1200, "flat"),
    ((3, 9, 6, 0), (3, 9, 19, 0), 1200, "flat"),       # window start and exit_by inclusive
    ((3, 9, 7, 0), (3, 9, 19, 1), 2400, "hourly"),     # left after 19:00
    ((3, 9, 7, 0), (3, 9, 9, 0), 600, "hourly"),       # hourly is cheaper
    ((3, 9, 9, 0), (3, 9, 17, 0), 2400, "hourly"),     # entry window end exclusive
    ((3, 14, 7, 0), (3, 14, 18, 0), 2400, "hourly"),   # Saturday: not sold
    ((3, 9, 7, 0), (3, 10, 7, 0), 2400, "hourly"),     # next day
])
def test_early_bird(entry, exit, total_cents, product):
    result = compute_fee(EARLY, entry=datetime(2026, *entry, tzinfo=NY),
                         exit=datetime(2026, *exit, tzinfo=NY), tz=NY)
    assert (result.total_cents, result.product) == (total_cents, product)


def test_early_bird_keeps_spot_multiplier():
    result = compute_fee(EARLY, entry=datetime(2026, 3, 9, 7, tzinfo=NY),
                         exit=datetime(2026, 3, 9, 18, tzinfo=NY), tz=NY, spot_type=SpotType.EV)
    assert [line.amount_cents for line in result.breakdown] == [1200, 600]
    assert result.breakdown[0].label.startswith("Early bird (enter 06:00-09:00, leave by 19:00)")


EVENTFUL = Tariff(
    hourly_cents=300, daily_max_cents=2400,
    events=(TariffEvent(name="Concert", start=datetime.fromisoformat("2026-07-04T16:00-04:00"),
                        end=datetime.fromisoformat("2026-07-04T23:30-04:00"), flat_cents=2000),),
)


@pytest.mark.parametrize(("entry", "stay", "total_cents", "product"), [
    ("2026-07-04T17:00-04:00", timedelta(hours=1), 2000, "event"),   # flat even if dearer
    ("2026-07-04T17:00-04:00", timedelta(minutes=5), 0, "grace"),
    ("2026-07-04T15:59-04:00", timedelta(hours=1), 300, "hourly"),
    ("2026-07-04T23:30-04:00", timedelta(hours=1), 300, "hourly"),    # end exclusive
    ("2026-07-04T17:00-04:00", timedelta(hours=24, minutes=1), 2700, "hourly"),
])
def test_event_flat_rate(entry, stay, total_cents, product):
    result = fee(EVENTFUL, entry=datetime.fromisoformat(entry), stay=stay)
    assert (result.total_cents, result.product) == (total_cents, product)


VALIDATING = Tariff(
    hourly_cents=300, daily_max_cents=2400, spot_multipliers={SpotType.EV: D("1.5")},
    validations=(Validation(code="AMT5", amount_off_cents=500),
                 Validation(code="AMT2", amount_off_cents=200),
                 Validation(code="PCT15", percent_off=D(15)),
                 Validation(code="PCT50", percent_off=D(50)),
                 Validation(code="FREE1", free_hours=1),
                 Validation(code="FREE2", free_hours=2),
                 Validation(code="FREE5", free_hours=5)),
)


@pytest.mark.parametrize(("codes", "total_cents", "lines"), [
    ((), 900, [900]),
    (("AMT5",), 400, [900, -500]),
    (("PCT15",), 765, [900, -135]),
    (("FREE2",), 300, [900, -600]),
    (("FREE5",), 0, [900, -900]),                           # never below zero
    (("AMT5", "PCT50", "FREE1"), 0, [900, -300, -300, -300]),  # stacking to zero
    (("AMT2", "PCT50"), 250, [900, -450, -200]),            # percent before amount ...
    (("PCT50", "AMT2"), 250, [900, -450, -200]),            # ... whatever the order given
])
def test_validations(codes, total_cents, lines):
    result = fee(VALIDATING, stay=timedelta(hours=3), validations=codes)
    assert result.total_cents == total_cents
    assert [line.amount_cents for line in result.breakdown] == lines


def test_free_hours_are_worth_an_hour_at_the_ticket_rate():
    result = fee(VALIDATING, stay=timedelta(hours=3), spot_type=SpotType.EV, validations=["FREE1"])
    assert result.total_cents == 1350 - 450
    assert result.breakdown[-1].label == "Validation FREE1: 1 free hour"


def test_validation_codes_unknown_or_repeated_are_refused():
    with pytest.raises(FeeError, match="unknown validation code 'NOPE'"):
        fee(VALIDATING, stay=timedelta(hours=1), validations=["NOPE"])
    with pytest.raises(FeeError, match="once per ticket"):
        fee(VALIDATING, stay=timedelta(hours=1), validations=["AMT5", "AMT5"])
    with pytest.raises(FeeError, match="has none"):
        fee(stay=timedelta(hours=1), validations=["AMT5"])


def test_lost_ticket_fee():
    assert lost_ticket_fee(Tariff(lost_ticket_cents=3500)).total_cents == 3500
    daily = lost_ticket_fee(Tariff(daily_max_cents=2400))
    assert daily.total_cents == 2400 and "daily max" in daily.breakdown[0].label


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"entry": datetime(2026, 3, 9, 10), "exit": MONDAY_10}, "entry time must be timezone-aware"),
    ({"entry": MONDAY_10, "exit": datetime(2026, 3, 9, 12)}, "exit time must be timezone-aware"),
    ({"entry": MONDAY_10, "exit": MONDAY_10 - timedelta(seconds=1)}, "before entry"),
    ({"entry": MONDAY_10, "exit": MONDAY_10, "rate_multiplier": 1.5}, "rate multiplier"),
    ({"entry": MONDAY_10, "exit": MONDAY_10, "rate_multiplier": D(-1)}, "rate multiplier"),
    ({"entry": MONDAY_10, "exit": MONDAY_10, "spot_type": "TRUCK"}, "unknown spot type 'TRUCK'"),
])
def test_bad_inputs_raise_fee_error(kwargs, message):
    with pytest.raises(FeeError, match=message) as info:
        compute_fee(BASE, tz=NY, **kwargs)
    assert isinstance(info.value, LotedgeError) and isinstance(info.value, ValueError)

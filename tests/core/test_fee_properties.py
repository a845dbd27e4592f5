"""Fee properties over generated tariffs and stays (hypothesis)."""

from __future__ import annotations

import os
import time as systime
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.fees import compute_fee
from appliance.core.money import round_cents
from appliance.core.tariff import Band, FlatRate, Tariff, Validation
from appliance.core.types import SpotType

ZONES = [ZoneInfo(name) for name in ("America/New_York", "Europe/London", "Australia/Sydney",
                                      "Asia/Kolkata", "UTC")]
MULTIPLIERS = st.sampled_from([Decimal(x) for x in ("0", "0.5", "0.8", "1", "1.25", "1.5", "2")])
WINDOWS = st.tuples(st.integers(0, 23), st.integers(0, 23))


@st.composite
def tariffs(draw) -> Tariff:
    hourly = draw(st.integers(0, 2000))
    bands = tuple(
        Band(name=f"b{i}", start=time(start), end=time(end), multiplier=draw(MULTIPLIERS),
             days=(draw(st.sampled_from(["all", "weekdays", "weekend", "sat"])),))
        for i, (start, end) in enumerate(draw(st.lists(WINDOWS, max_size=3))))
    flat_rates = ()
    if draw(st.booleans()):
        start = draw(st.integers(0, 20))
        flat_rates = (FlatRate(name="early", amount_cents=draw(st.integers(0, 5000)),
                               entry_start=time(start), entry_end=time(start + 2),
                               exit_by=time(draw(st.integers(start + 1, 23)))),)
    return Tariff(
        grace_minutes=draw(st.integers(0, 60)),
        minimum_charge_cents=draw(st.integers(0, hourly)),   # monotonic needs minimum <= hourly
        minimum_charge_minutes=draw(st.integers(0, 59)),
        hourly_cents=hourly,
        daily_max_cents=draw(st.integers(0, 40000)),
        spot_multipliers={SpotType.EV: draw(MULTIPLIERS)},
        bands=bands,
        flat_rates=flat_rates,
        validations=(Validation(code="A", amount_off_cents=draw(st.integers(0, 3000))),
                     Validation(code="P", percent_off=draw(st.decimals(0, 100, places=2))),
                     Validation(code="H", free_hours=draw(st.integers(0, 5)))),
    )


STAYS = st.builds(  # short stays often, so the grace / minimum / first-hour edges get hit
    timedelta,
    minutes=st.one_of(st.integers(0, 90), st.integers(0, 8 * 24 * 60)),
    seconds=st.integers(0, 59),
)
ENTRIES = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31),
                       timezones=st.just(UTC))
CODES = st.lists(st.sampled_from(["A", "P", "H"]), unique=True)
RATES = st.decimals(min_value=0, max_value=3, places=4)


def quote(tariff, entry, stay, *, tz, spot, rate, codes):
    return compute_fee(tariff, entry=entry, exit=entry + stay, tz=tz, spot_type=spot,
                       rate_multiplier=rate, validations=codes)


@settings(max_examples=300, deadline=None)
@given(tariff=tariffs(), entry=ENTRIES, short=STAYS, more=STAYS, tz=st.sampled_from(ZONES),
       spot=st.sampled_from([SpotType.REGULAR, SpotType.EV]), rate=RATES, codes=CODES)
def test_monotonic_in_exit_time(tariff, entry, short, more, tz, spot, rate, codes):
    long = short + more
    kw = {"tz": tz, "spot": spot, "rate": rate, "codes": codes}
    assert (quote(tariff, entry, short, **kw).total_cents
            <= quote(tariff, entry, long, **kw).total_cents)


@settings(max_examples=300, deadline=None)
@given(tariff=tariffs(), entry=ENTRIES, stay=STAYS, tz=st.sampled_from(ZONES),
       spot=st.sampled_from([SpotType.REGULAR, SpotType.EV]), rate=RATES, codes=CODES)
def test_never_negative_never_above_cap_and_lines_add_up(tariff, entry, stay, tz, spot, rate,
                                                          codes):
    result = quote(tariff, entry, stay, tz=tz, spot=spot, rate=rate, codes=codes)
    assert result.total_cents >= 0
    assert sum(line.amount_cents for line in result.breakdown) == result.total_cents
    periods = max(1, -(-stay // timedelta(hours=24)))
    band = next((b.multiplier for b in tariff.bands if b.matches(entry.astimezone(tz))),
                Decimal(1))
    worst = periods * tariff.daily_max_cents * band * tariff.spot_multipliers.get(
        spot, Decimal(1)) * rate
    assert result.total_cents <= round_cents(worst)


@settings(max_examples=60, deadline=None)
@given(tariff=tariffs(), entry=ENTRIES, stay=STAYS, codes=CODES)
def test_independent_of_the_machine_time_zone(tariff, entry, stay, codes):
    lot = ZoneInfo("America/New_York")
    saved = os.environ.get("TZ")
    results = []
    try:
        for machine_tz in ("UTC", "Asia/Tokyo", "America/Los_Angeles", "Pacific/Chatham"):
            os.environ["TZ"] = machine_tz
            systime.tzset()
            results.append(quote(tariff, entry, stay, tz=lot, spot=SpotType.REGULAR,
                                 rate=Decimal(1), codes=codes))
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        systime.tzset()
    assert all(r == results[0] for r in results)

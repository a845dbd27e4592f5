"""Dynamic pricing: occupancy curve, event multipliers, clamping, exact inputs only."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from appliance.core.pricing import entry_rate_multiplier
from appliance.core.tariff import DynamicPricing, Tariff, TariffEvent
from appliance.errors import FeeError

D = Decimal
AT = datetime.fromisoformat("2026-11-01T10:00:00-05:00")
MARATHON = TariffEvent(name="Marathon", start=datetime.fromisoformat("2026-11-01T05:00-05:00"),
                       end=datetime.fromisoformat("2026-11-01T15:00-05:00"),
                       multiplier=D("1.3"))
DYNAMIC = Tariff(dynamic=DynamicPricing())


@pytest.mark.parametrize(("occupancy", "expected"), [
    (D("0"), D("1")),
    (D("0.3"), D("1")),
    (D("0.5"), D("1")),
    (D("0.6"), D("1.1")),
    (D("0.7"), D("1.2")),
    (D("0.8"), D("1.35")),
    (D("0.85"), D("1.425")),
    (D("0.9"), D("1.5")),
    (D("0.95"), D("1.75")),
    (D("1"), D("2")),
    (Fraction(17, 20), D("1.425")),
    (Fraction(2, 3), D("1.1667")),     # 1 + 0.2 x (1/6 / 0.2), quantized to 4 places half up
    (1, D("2")),
])
def test_occupancy_curve(occupancy, expected):
    got = entry_rate_multiplier(DYNAMIC, occupancy=occupancy, at=AT)
    assert got == expected
    assert str(got) == str(expected)     # stored on the ticket as this string


def test_events_combine_multiplicatively_and_clamp():
    tariff = Tariff(events=(MARATHON,), dynamic=DynamicPricing())
    assert entry_rate_multiplier(tariff, occupancy=D("0.85"), at=AT) == D("1.8525")
    assert entry_rate_multiplier(tariff, occupancy=D("0.95"), at=AT) == D("2")   # 2.275 clamped
    before = datetime.fromisoformat("2026-11-01T04:59:59-05:00")
    assert entry_rate_multiplier(tariff, occupancy=D("0.85"), at=before) == D("1.425")


def test_min_clamp_and_custom_curve():
    tariff = Tariff(dynamic=DynamicPricing(
        occupancy_curve=((D("0.2"), D("0.5")), (D("0.6"), D("1.5"))),
        min_multiplier=D("0.75"), max_multiplier=D("1.25")))
    assert entry_rate_multiplier(tariff, occupancy=D("0.1"), at=AT) == D("0.75")
    assert entry_rate_multiplier(tariff, occupancy=D("0.4"), at=AT) == D("1")
    assert entry_rate_multiplier(tariff, occupancy=D("0.9"), at=AT) == D("1.25")


def test_without_dynamic_section_only_events_apply():
    assert entry_rate_multiplier(Tariff(), occupancy=D("0.99"), at=AT) == D("1")
    assert entry_rate_multiplier(Tariff(events=(MARATHON,)), occupancy=None, at=AT) == D("1.3")
    assert entry_rate_multiplier(DYNAMIC, occupancy=None, at=AT) == D("1")


@pytest.mark.parametrize(("occupancy", "error"), [
    (0.85, TypeError),
    (True, TypeError),
    (D("1.01"), FeeError),
    (D("-0.1"), FeeError),
    (D("NaN"), FeeError),
])
def test_occupancy_must_be_exact_and_in_range(occupancy, error):
    with pytest.raises(error):
        entry_rate_multiplier(DYNAMIC, occupancy=occupancy, at=AT)


def test_entry_time_must_be_aware():
    with pytest.raises(FeeError, match="timezone-aware"):
        entry_rate_multiplier(DYNAMIC, occupancy=D("0.5"), at=datetime(2026, 1, 1))

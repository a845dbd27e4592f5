"""The [tariff] section: shipped lots show every feature; mistakes are named with key and line."""

from __future__ import annotations

from decimal import Decimal

import pytest

from appliance.config import load_config, parse_config
from appliance.core.types import SpotType
from appliance.errors import ConfigError
from tests.conftest import REPO

DEMO = REPO / "config" / "demo-lot.toml"
COUNTER = REPO / "config" / "counter-lot.toml"


def test_demo_lot_tariff_uses_every_feature():
    tariff = load_config(DEMO).tariff
    assert (tariff.hourly_cents, tariff.daily_max_cents, tariff.lost_ticket_cents) == (
        350, 2800, 3500)
    assert tariff.spot_multipliers[SpotType.EV] == Decimal("1.5")
    assert [b.name for b in tariff.bands] == ["Weekday peak", "Evening"]
    assert tariff.bands[0].multiplier == Decimal("1.25")
    assert [p.name for p in tariff.flat_rates] == ["Early bird"]
    assert [e.name for e in tariff.events] == ["Stadium concert", "Marathon day"]
    assert sorted(tariff.validations_by_code) == ["CAFE15", "CINEMA2H", "MALL5"]
    assert tariff.dynamic is not None and tariff.dynamic.max_multiplier == Decimal(2)


def test_counter_lot_tariff_loads():
    tariff = load_config(COUNTER).tariff
    assert tariff.lost_ticket_fee_cents == tariff.daily_max_cents == 1500
    assert tariff.bands[0].weekdays == frozenset({5, 6})
    assert tariff.dynamic is not None and tariff.dynamic.max_multiplier == Decimal("1.5")


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == nth:
                return number
    raise AssertionError(needle)


@pytest.mark.parametrize(("old", "new", "key", "needle", "nth"), [
    ("amount_cents = 1200", "amount_cents = 12.0", "tariff.flat_rates[0].amount_cents",
     "amount_cents = 12.0", 1),
    ("hourly_cents = 350", "hourly_cents = 350.0", "tariff.hourly_cents", "hourly_cents", 1),
    ("start = 2026-07-04T16:00:00-04:00", "start = 2026-07-04T16:00:00",
     "tariff.events[0].start: needs a UTC offset", "start = 2026-07-04T16:00:00", 1),
    ('start = "09:00"', 'start = "9am"', "tariff.bands[0].start", 'start = "9am"', 1),
    ('days = ["weekdays"]', 'days = ["funday"]', "tariff.bands[0].days: unknown day 'funday'",
     'days = ["funday"]', 1),
    ('code = "MALL5"', 'code = "CAFE15"', "tariff.validations[2]: duplicate code 'CAFE15'",
     "[[tariff.validations]]", 3),
    ("free_hours = 2", "free_hours = 2\npercent_off = 10",
     "tariff.validations[1]: give exactly one of", "[[tariff.validations]]", 2),
    ("percent_off = 15", "percent_off = 150", "tariff.validations[0].percent_off",
     "percent_off = 150", 1),
    ('entry_end = "09:00"', 'entry_end = "05:00"', "tariff.flat_rates[0].entry_end",
     'entry_end = "05:00"', 1),
    ("min_multiplier = 1.0", "min_multiplier = 3.0", "tariff.dynamic.max_multiplier",
     "max_multiplier", 1),
    ("multiplier = 1.25", "multiplier = -1", "tariff.bands[0].multiplier", "multiplier = -1", 1),
    ("spot_multipliers = { EV = 1.5,", "spot_multipliers = { TRUCK = 1.5,",
     "tariff.spot_multipliers.TRUCK", "spot_multipliers", 1),
])
def test_tariff_mistakes_name_key_and_line(old, new, key, needle, nth):
    text = DEMO.read_text()
    assert old in text
    text = text.replace(old, new, 1)
    with pytest.raises(ConfigError) as info:
        parse_config(text, path="lot.toml")
    assert key in str(info.value)
    assert info.value.line == _line_of(text, needle, nth)
    assert "\n" not in str(info.value)

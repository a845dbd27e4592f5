"""Fee quotes per second from Python on the demo lot's realistic tariff."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from appliance.config import LotConfig, load_config
from appliance.core.fees import compute_fee
from appliance.core.pricing import entry_rate_multiplier
from appliance.core.types import SpotType

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo-lot.toml"


def _cases(n: int) -> tuple[LotConfig, list[tuple]]:
    """Varied stays: weekday peak / evening / weekend entries, 5 min to 3 days, EV and regular."""
    cfg = load_config(DEMO)
    start = datetime(2026, 3, 2, 6, 0, tzinfo=cfg.lot.tz)
    validations = ((), ("CAFE15",), ("CINEMA2H",), ("MALL5", "CAFE15"))
    cases = []
    for i in range(n):
        entry = start + timedelta(minutes=37 * i % (14 * 24 * 60))
        stay = timedelta(minutes=5 + (i * 53) % (3 * 24 * 60))
        spot = SpotType.EV if i % 5 == 0 else SpotType.REGULAR
        rate = entry_rate_multiplier(cfg.tariff, occupancy=Decimal(i % 101) / 100, at=entry)
        cases.append((entry, entry + stay, spot, rate, validations[i % len(validations)]))
    return cfg, cases


def run() -> list[dict]:
    """Quotes per second (compute_fee with bands, spot multipliers, a locked rate, validations)."""
    cfg, cases = _cases(2000)
    tariff, tz = cfg.tariff, cfg.lot.tz
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        for entry, exit_at, spot, rate, codes in cases:
            compute_fee(tariff, entry=entry, exit=exit_at, spot_type=spot, tz=tz,
                        rate_multiplier=rate, validations=codes)
        best = max(best, len(cases) / (time.perf_counter() - started))
    started = time.perf_counter()
    for entry, _, _, _, _ in cases:
        entry_rate_multiplier(tariff, occupancy=Decimal("0.85"), at=entry)
    locks = len(cases) / (time.perf_counter() - started)
    return [
        {"name": "fee quotes (demo tariff, bands+EV+rate+validations)", "value": best,
         "unit": "quotes/s", "goal": ">= 50,000"},
        {"name": "entry rate multiplier (occupancy x events)", "value": locks, "unit": "calls/s"},
    ]

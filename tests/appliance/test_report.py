"""The hourly report adds up what the ledger holds, per lot-local hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appliance.config import load_config
from appliance.lot.report import hourly
from appliance.lot.tickets import admit, release
from appliance.service import Service
from drivers.payment import SimulatedTerminal
from tests.conftest import write_lot


async def test_hourly_rows(tmp_path):
    cfg = load_config(write_lot(tmp_path))  # America/New_York
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    start = await service.ledger.last_seq()
    t0 = datetime(2026, 7, 1, 13, 10, tzinfo=UTC)  # 09:10 local (EDT)
    clock_at = {"t": t0}

    class Clock:
        def now(self):
            return clock_at["t"]

        def monotonic_ns(self):
            return 0

    service.ledger.clock = Clock()
    for i in range(3):
        await admit(service.ledger, cfg, lane="in-1", plate=f"HR{i}", confidence=1, at=t0)
    clock_at["t"] = t0 + timedelta(hours=1, minutes=30)  # 10:40 local
    ok = SimulatedTerminal(decline_rate=0)
    bad = SimulatedTerminal(decline_rate=1)
    await release(service.ledger, cfg, lane="out-1", plate="HR0", scanned_ticket=None, terminal=ok,
                  at=clock_at["t"])
    await release(service.ledger, cfg, lane="out-1", plate="HR1", scanned_ticket=None, terminal=bad,
                  at=clock_at["t"])
    rows = await hourly(service.ledger, after_seq=start)
    await service.stop()
    by_hour = {r["hour"]: r for r in rows}
    assert set(by_hour) >= {"2026-07-01T09", "2026-07-01T10"}
    nine, ten = by_hour["2026-07-01T09"], by_hour["2026-07-01T10"]
    assert (nine["entries"], nine["exits"]) == (3, 0)
    assert (ten["entries"], ten["exits"]) == (0, 2)
    assert ten["revenue_cents"] == 600 and ten["invoices"] == 1 and ten["invoiced_cents"] == 600

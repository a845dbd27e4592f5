"""Dynamic pricing through the real entry/exit transactions: the rate is locked at entry."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from appliance.config import LotConfig, parse_config
from appliance.core.events import NewEvent
from appliance.ledger import Ledger
from appliance.lot.layout import layout_payload
from appliance.lot.tickets import admit, release
from drivers.payment import SimulatedTerminal

LOT = """
[lot]
id = "dyn"
timezone = "America/New_York"
mode = "counter"

[[levels]]
id = "G"
capacity = { REGULAR = 10 }

[tariff]
grace_minutes = 10
minimum_charge_cents = 200
hourly_cents = 300
daily_max_cents = 2400

[tariff.dynamic]
max_multiplier = 2.0
"""

SATURDAY = datetime.fromisoformat("2026-03-14T10:00:00-04:00")


@pytest.fixture
async def lot(tmp_path: Path):
    cfg: LotConfig = parse_config(LOT)
    ledger = await Ledger.open(tmp_path / "dyn.sqlite3", lot_id="dyn", tz=cfg.lot.tz)
    await ledger.append(NewEvent(type="lot.configured", payload=layout_payload(cfg)))
    yield ledger, cfg
    await ledger.close()


async def test_multiplier_locked_at_entry_is_charged_at_exit(lot):
    ledger, cfg = lot
    tickets = []
    for i in range(9):   # car i enters with i of 10 spaces taken
        outcome = await admit(ledger, cfg, lane="in", plate=f"CAR{i}", confidence=0.99,
                              at=SATURDAY + timedelta(minutes=i))
        assert outcome.allow
        tickets.append(outcome.ticket_id)
    rows = {r["id"]: r["rate_multiplier"]
            for r in await ledger.fetchall("SELECT id, rate_multiplier FROM tickets")}
    # 0-50 % -> 1, 60 % -> 1.1, 70 % -> 1.2, 80 % -> 1.35 (linear between 70 % 1.2 and 90 % 1.5)
    assert [rows[t] for t in tickets] == ["1"] * 6 + ["1.1", "1.2", "1.35"]

    terminal = SimulatedTerminal(decline_rate=0.0, seed=1)
    for i, ticket in enumerate(tickets[:8]):   # the lot empties before the last car leaves
        await release(ledger, cfg, lane="out", plate=f"CAR{i}", scanned_ticket=ticket,
                      terminal=terminal, at=SATURDAY + timedelta(hours=1))
    last = await release(ledger, cfg, lane="out", plate="CAR8", scanned_ticket=tickets[8],
                         terminal=terminal, at=SATURDAY + timedelta(minutes=8, hours=2))
    # 2 started hours x 3.00 = 6.00, x1.35 locked at entry = 8.10 (lot now nearly empty)
    assert last.fee_cents == 810
    closed = await ledger.fetchone(
        "SELECT payload FROM events WHERE type = 'ticket.closed' ORDER BY seq DESC LIMIT 1")
    assert '"Rate locked at entry x1.35"' in closed["payload"]

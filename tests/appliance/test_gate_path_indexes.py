"""Every statement on a gate's path reads through an index: none scans a table that grows with
the lot's history (a year of tickets must not slow an entry or exit decision down)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from appliance.config import load_config
from appliance.lot.tickets import admit, release
from appliance.service import Service
from drivers.payment import SimulatedTerminal
from tests.conftest import write_lot

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
# Tables that grow with traffic and time; small configuration tables may be scanned.
GROWING = {"events", "tickets", "payments", "invoices", "vehicles", "reservations", "alarms",
           "spots", "bundles", "tariffs"}


def scans_of_growing_tables(db, statements: set[str]) -> dict[str, list[str]]:
    found = {}
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper()
        if head not in ("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"):
            continue
        if sql.endswith("ORDER BY seq DESC LIMIT 1"):  # walks the rowid b-tree back one row
            continue
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
        bad = [step for step in plan if step.startswith("SCAN ")
               and step.split()[1] in GROWING]
        if bad:
            found[sql] = bad
    return found


@pytest.mark.parametrize("mode", ["counter", "per_spot"])
async def test_entry_and_exit_decisions_never_scan_a_growing_table(tmp_path, mode):
    cfg = load_config(write_lot(tmp_path, mode=mode, per_level=30))
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    statements: set[str] = set()
    try:
        raw = service.ledger.conn._conn
        await service.ledger.conn._execute(raw.set_trace_callback, statements.add)
        card = SimulatedTerminal(decline_rate=0.0, seed=1)
        declining = SimulatedTerminal(decline_rate=1.0, seed=1)
        t = T0
        for i in range(3):
            out = await admit(service.ledger, cfg, lane="in-1", plate=f"ABC12{i}", confidence=0.9,
                              at=t, tariffs=service.tariffs)
            assert out.allow
        printed = await admit(service.ledger, cfg, lane="in-1", plate=None, confidence=0.0,
                              at=t, tariffs=service.tariffs)
        t += timedelta(hours=2)
        exits = [
            dict(plate="ABC120", scanned_ticket=None, terminal=card),          # exact plate
            dict(plate="ABC12I", scanned_ticket=None, terminal=declining),     # tolerant, invoice
            dict(plate=None, scanned_ticket=printed.ticket_id, terminal=card),  # scanned ticket
            dict(plate="ZZZ999", scanned_ticket=None, terminal=card),          # lost ticket
        ]
        for ex in exits:
            out = await release(service.ledger, cfg, lane="out-1", at=t, tariffs=service.tariffs,
                                **ex)
            assert out.allow
        await service.ledger.conn._execute(raw.set_trace_callback, None)
    finally:
        await service.stop()
    assert len(statements) > 20, "the trace saw the decisions' statements"
    db = sqlite3.connect(cfg.db_path(None))
    try:
        assert scans_of_growing_tables(db, statements) == {}
    finally:
        db.close()

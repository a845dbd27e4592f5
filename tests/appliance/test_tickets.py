"""Entry and exit paths through the real ledger: policy, payments, invoices, never trapping."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from appliance.core.events import NewEvent
from appliance.core.types import AllocationStrategy
from appliance.lot import tickets
from appliance.lot.tickets import admit, release
from drivers.payment import SimulatedTerminal

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def _with(service, **policy):
    cfg = service.cfg
    return dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, **policy))


async def _types(service):
    return [r[0] for r in await service.ledger.fetchall("SELECT type FROM events ORDER BY seq")]


async def _payloads(service, event_type):
    rows = await service.ledger.fetchall(
        "SELECT payload FROM events WHERE type = ? ORDER BY seq", (event_type,))
    return [json.loads(r[0]) for r in rows]


async def _list(service, plate, name):
    await service.ledger.append(NewEvent(type="plate.listed", payload={
        "plate": plate, "list": name, "source": "test"}))


async def test_walk_in_ticket_is_written_before_gate_command(lot):
    out = await admit(lot.ledger, lot.cfg, lane="in-1", plate="ABC1234", confidence=0.9, at=T0)
    assert out.allow and out.kind == "walk_in"
    types = await _types(lot)
    assert types.index("ticket.issued") < types.index("gate.open_commanded")
    row = await lot.ledger.fetchone("SELECT * FROM tickets WHERE id = ?", (out.ticket_id,))
    assert row["status"] == "OPEN" and row["plate"] == "ABC1234"


async def test_blocked_plate_is_refused_with_alarm(lot):
    await _list(lot, "BAD0001", "blocked")
    out = await admit(lot.ledger, lot.cfg, lane="in-1", plate="BAD0001", confidence=0.9, at=T0)
    assert not out.allow and out.kind == "blocked"
    alarms = await lot.ledger.fetchall("SELECT code, severity FROM alarms")
    assert [tuple(a) for a in alarms] == [("blocked_plate", "critical")]


async def test_blocked_plate_matches_with_one_misread_character(lot):
    await _list(lot, "BAD0001", "blocked")
    out = await admit(lot.ledger, lot.cfg, lane="in-1", plate="BAD0O01", confidence=0.9, at=T0)
    assert not out.allow


async def test_anti_passback_hard_and_soft(lot):
    first = await admit(lot.ledger, lot.cfg, lane="in-1", plate="PAS1234", confidence=1, at=T0)
    assert first.allow
    again = await admit(lot.ledger, lot.cfg, lane="in-2", plate="PAS1234", confidence=1, at=T0)
    assert not again.allow and "passback" in again.reason
    assert (await lot.ledger.fetchone("SELECT code FROM alarms"))[0] == "passback"
    soft = await admit(lot.ledger, _with(lot, passback="soft"), lane="in-2", plate="PAS1234",
                       confidence=1, at=T0)
    assert soft.allow
    assert len(await _payloads(lot, "entry.passback_allowed")) == 1


async def test_full_refuses_walk_in_but_admits_permit_holder(lot):
    cap = lot.availability.capacity
    admitted = 0
    for i in range(cap + 5):
        out = await admit(lot.ledger, lot.cfg, lane="in-1", plate=f"W{i:05d}", confidence=1,
                          at=T0)
        admitted += out.allow
    # REGULAR walk-ins can use REGULAR and LARGE, not COMPACT or EV spaces
    regular_like = sum(p.capacity for p in lot.availability.pools
                       if str(p.spot_type) in ("REGULAR", "LARGE"))
    assert admitted == regular_like
    walk = await admit(lot.ledger, lot.cfg, lane="in-1", plate="LATE001", confidence=1, at=T0)
    assert not walk.allow and walk.reason == "FULL"
    await _list(lot, "PRM0001", "permit")
    permit = await admit(lot.ledger, lot.cfg, lane="in-1", plate="PRM0001", confidence=1, at=T0)
    assert permit.allow and permit.kind == "permit"
    neg = await lot.ledger.fetchone("SELECT COUNT(*) FROM capacity WHERE occupied < 0")
    assert neg[0] == 0


async def test_prepay_required_needs_authorisation(lot):
    await _list(lot, "PRE0001", "prepay")
    down = SimulatedTerminal(seed=1, mode="down")
    out = await admit(lot.ledger, lot.cfg, lane="in-1", plate="PRE0001", confidence=1, at=T0,
                      terminal=down)
    assert not out.allow and "prepay" in out.reason
    ok = SimulatedTerminal(seed=1, decline_rate=0)
    out = await admit(lot.ledger, lot.cfg, lane="in-1", plate="PRE0001", confidence=1, at=T0,
                      terminal=ok)
    assert out.allow and out.kind == "prepay_required"
    issued = (await _payloads(lot, "ticket.issued"))[-1]
    assert issued["prepay_token"].startswith("tok_")


async def test_exit_paid_by_card(lot):
    out = await admit(lot.ledger, lot.cfg, lane="in-1", plate="EXT0001", confidence=1, at=T0)
    term = SimulatedTerminal(seed=2, decline_rate=0)
    res = await release(lot.ledger, lot.cfg, lane="out-1", plate="EXT0001", scanned_ticket=None,
                        terminal=term, at=T0 + timedelta(hours=2, minutes=5))
    assert res.allow and res.ticket_id == out.ticket_id
    assert res.fee_cents == 3 * 300 and res.paid_cents == 900
    assert term.captured_cents == 900
    pay = (await _payloads(lot, "payment.recorded"))[-1]
    assert pay["status"] == "captured" and len(pay["last4"]) == 4 and "card_number" not in pay


async def test_decline_opens_gate_invoices_and_flags_then_prepay_after_three(lot):
    declining = SimulatedTerminal(seed=3, decline_rate=1.0)
    for visit in range(3):
        at = T0 + timedelta(days=visit)
        await admit(lot.ledger, lot.cfg, lane="in-1", plate="DEC0001", confidence=1, at=at)
        res = await release(lot.ledger, lot.cfg, lane="out-1", plate="DEC0001",
                            scanned_ticket=None, terminal=declining,
                            at=at + timedelta(hours=1, minutes=30))
        assert res.allow and res.reason == "exit invoiced" and res.paid_cents == 0
    invoices = await lot.ledger.fetchall("SELECT amount_cents FROM invoices WHERE plate = 'DEC0001'")
    assert [r[0] for r in invoices] == [600, 600, 600]
    lists = {r[0] for r in await lot.ledger.fetchall(
        "SELECT list FROM plate_lists WHERE plate = 'DEC0001'")}
    assert lists == {"flagged", "prepay"}
    types = await _types(lot)
    assert types.count("gate.open_commanded") == 6


async def test_terminal_timeout_still_opens(lot, monkeypatch):
    monkeypatch.setattr(tickets, "PAYMENT_TIMEOUT_S", 0.05)
    await admit(lot.ledger, lot.cfg, lane="in-1", plate="HNG0001", confidence=1, at=T0)
    res = await release(lot.ledger, lot.cfg, lane="out-1", plate="HNG0001", scanned_ticket=None,
                        terminal=SimulatedTerminal(mode="hang"), at=T0 + timedelta(hours=3))
    assert res.allow and res.reason == "exit invoiced"
    inv = await lot.ledger.fetchone("SELECT reason FROM invoices")
    assert inv[0] == "terminal timeout"


async def test_payment_retry_never_double_charges():
    term = SimulatedTerminal(seed=4, decline_rate=0)
    first = await tickets._charge(term, "T1:0", 750)
    second = await tickets._charge(term, "T1:0", 750)
    assert first == second and first.status == "captured"
    assert term.capture_calls == 1 and term.captured_cents == 750


async def test_exit_matches_a_misread_plate_and_scanned_ticket(lot):
    a = await admit(lot.ledger, lot.cfg, lane="in-1", plate="ABC1234", confidence=1, at=T0)
    b = await admit(lot.ledger, lot.cfg, lane="in-1", plate=None, confidence=0, at=T0)
    term = SimulatedTerminal(decline_rate=0)
    ra = await release(lot.ledger, lot.cfg, lane="out-1", plate="A8C1234", scanned_ticket=None,
                       terminal=term, at=T0 + timedelta(hours=1))
    rb = await release(lot.ledger, lot.cfg, lane="out-1", plate=None, scanned_ticket=b.ticket_id,
                       terminal=term, at=T0 + timedelta(hours=1))
    assert (ra.ticket_id, rb.ticket_id) == (a.ticket_id, b.ticket_id)
    closed = await _payloads(lot, "ticket.closed")
    assert [c["matched_by"] for c in closed] == ["plate~", "scanned"]


async def test_lost_ticket_pays_lost_fee(lot):
    term = SimulatedTerminal(decline_rate=0)
    res = await release(lot.ledger, lot.cfg, lane="out-1", plate="NOPE999", scanned_ticket=None,
                        terminal=term, at=T0)
    assert res.allow and res.kind == "lost"
    assert res.fee_cents == lot.cfg.tariff.lost_ticket_fee_cents == term.captured_cents


async def test_prepaid_ticket_exits_free_within_grace_then_pays_extra(lot):
    from appliance.lot import commands

    out = await admit(lot.ledger, lot.cfg, lane="in-1", plate="PAY0001", confidence=1, at=T0)
    lot.ledger.clock = _Fixed(T0 + timedelta(hours=1, minutes=40))
    at_booth = dataclasses.replace(lot.runtime, clock=lot.ledger.clock)
    ticket = await commands.ticket_with_fee(at_booth, out.ticket_id)
    await commands.pay_cash(at_booth, out.ticket_id, amount_cents=ticket["fee"]["due_cents"],
                            attendant="paystation-1")
    term = SimulatedTerminal(decline_rate=0)
    res = await release(lot.ledger, lot.cfg, lane="out-1", plate="PAY0001", scanned_ticket=None,
                        terminal=term, at=T0 + timedelta(hours=1, minutes=50))
    assert res.fee_cents == 0 and term.captured_cents == 0
    out2 = await admit(lot.ledger, lot.cfg, lane="in-1", plate="PAY0002", confidence=1, at=T0)
    lot.ledger.clock = _Fixed(T0 + timedelta(minutes=50))
    at_booth = dataclasses.replace(lot.runtime, clock=lot.ledger.clock)
    ticket = await commands.ticket_with_fee(at_booth, out2.ticket_id)
    await commands.pay_cash(at_booth, out2.ticket_id, amount_cents=ticket["fee"]["due_cents"],
                            attendant="paystation-1")
    late = await release(lot.ledger, lot.cfg, lane="out-1", plate="PAY0002", scanned_ticket=None,
                         terminal=term, at=T0 + timedelta(hours=2, minutes=30))
    assert late.fee_cents == 900 - 300 and term.captured_cents == 600


class _Fixed:
    def __init__(self, at):
        self.at = at

    def now(self):
        return self.at

    def monotonic_ns(self):
        return 0


async def test_reservation_is_honoured_and_held_back_from_walk_ins(lot):
    cfg = dataclasses.replace(lot.cfg, lot=dataclasses.replace(
        lot.cfg.lot, allocation=AllocationStrategy.RESERVATION_AWARE))
    ev_free = sum(p.free for p in lot.availability.pools if str(p.spot_type) == "LARGE")
    for i in range(ev_free):
        await lot.ledger.append(NewEvent(type="reservation.created", payload={
            "reservation_id": f"R{i}", "plate": f"RES{i:04d}", "spot_type": "LARGE",
            "start_utc": (T0 + timedelta(hours=1)).isoformat(),
            "end_utc": (T0 + timedelta(hours=5)).isoformat()}))
    # a LARGE walk-in now would still be parked when the reservations start
    out = await admit(lot.ledger, cfg, lane="in-1", plate="BIG0001", confidence=1, at=T0,
                      vehicle_type="LARGE")
    assert not out.allow and out.reason == "FULL"
    # the reserved car arriving on time gets in and the reservation is marked arrived
    res = await admit(lot.ledger, cfg, lane="in-1", plate="RES0000", confidence=1,
                      at=T0 + timedelta(hours=1, minutes=5), vehicle_type="LARGE")
    assert res.allow and res.kind == "reservation"
    status = await lot.ledger.fetchone("SELECT status, ticket_id FROM reservations WHERE id='R0'")
    assert tuple(status) == ("ARRIVED", res.ticket_id)


async def test_offline_approvals_are_reconciled_and_reported(lot):
    from appliance.lot.payments import offline_report, reconcile_offline

    term = SimulatedTerminal(seed=5, mode="offline", offline_failure_rate=0.5)
    runtime = dataclasses.replace(lot.runtime, terminal=term)
    for i in range(6):
        await admit(lot.ledger, lot.cfg, lane="in-1", plate=f"OFF{i}", confidence=1, at=T0)
        res = await release(lot.ledger, lot.cfg, lane="out-1", plate=f"OFF{i}",
                            scanned_ticket=None, terminal=term, at=T0 + timedelta(hours=1))
        assert res.allow and res.paid_cents == 300  # approved offline, below the floor limit
    assert {r["state"] for r in await offline_report(lot.ledger)} == {"pending"}
    assert await reconcile_offline(runtime) == {"settled": 0, "uncollectable": 0}  # still offline
    term.mode = "online"
    result = await reconcile_offline(runtime)
    assert result["settled"] + result["uncollectable"] == 6
    report = await offline_report(lot.ledger)
    unable = [r for r in report if r["state"] == "offline, unable to collect"]
    assert len(unable) == result["uncollectable"]
    invoices = await lot.ledger.fetchall(
        "SELECT plate FROM invoices WHERE reason LIKE 'offline card payment%'")
    assert sorted(r[0] for r in invoices) == sorted(r["plate"] for r in unable)
    assert await reconcile_offline(runtime) == {"settled": 0, "uncollectable": 0}  # only once


async def test_entry_message_shows_the_locked_rate(lot):
    out = await admit(lot.ledger, lot.cfg, lane="in-1", plate="MSG0001", confidence=1, at=T0)
    assert out.message == f"WELCOME - {out.level} - 3.00 USD/h"

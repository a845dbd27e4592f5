"""Exit payments through a ZVT terminal (the emulator over TCP) and the real ledger: a dropped
link or a late answer never charges twice and never traps a car."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.lot import tickets
from appliance.lot.tickets import admit, release
from drivers.zvt.client import ZvtTerminal
from drivers.zvt.emulator import ZvtEmulator
from tests.appliance.test_tickets import _payloads


@pytest.fixture
async def emulator():
    emu = ZvtEmulator(seed=1)
    await emu.start()
    yield emu
    await emu.stop()


def client(emu: ZvtEmulator) -> ZvtTerminal:
    return ZvtTerminal(host="127.0.0.1", port=emu.port, answer_timeout_s=2.0)


T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


async def test_exit_with_zvt_pays_once_through_a_dropped_link(lot, emulator):
    term = client(emulator)
    await admit(lot.ledger, lot.cfg, lane="in-1", plate="ZVT0001", confidence=1, at=T0)
    emulator.drop_after_approval = 2  # both the reservation and the booking lose their answer
    out = await release(lot.ledger, lot.cfg, lane="out-1", plate="ZVT0001", scanned_ticket=None,
                        terminal=term, at=T0 + timedelta(hours=2, minutes=5))
    assert out.allow and out.reason == "exit paid" and out.paid_cents == 900
    assert emulator.charged_cents == 900 and emulator.bookings == 1
    pay = (await _payloads(lot, "payment.recorded"))[-1]
    assert pay["status"] == "captured" and pay["last4"] == "4242"
    assert pay["processor_token"].startswith("zvt:")


async def test_exit_with_a_terminal_too_slow_opens_invoices_and_never_charges(lot, emulator,
                                                                               monkeypatch):
    monkeypatch.setattr(tickets, "PAYMENT_TIMEOUT_S", 0.3)
    term = client(emulator)
    await admit(lot.ledger, lot.cfg, lane="in-1", plate="ZVT0002", confidence=1, at=T0)
    emulator.delay_s = 1.0
    out = await release(lot.ledger, lot.cfg, lane="out-1", plate="ZVT0002", scanned_ticket=None,
                        terminal=term, at=T0 + timedelta(hours=1))
    assert out.allow and out.reason == "exit invoiced"  # the gate opens: never trapped
    invoices = await _payloads(lot, "invoice.created")
    assert invoices and invoices[-1]["amount_cents"] == out.fee_cents
    await asyncio.sleep(1.0)
    emulator.delay_s = 0
    # the next car's payment first undoes the late reservation nobody captured
    await admit(lot.ledger, lot.cfg, lane="in-1", plate="ZVT0003", confidence=1, at=T0)
    paid = await release(lot.ledger, lot.cfg, lane="out-1", plate="ZVT0003", scanned_ticket=None,
                         terminal=term, at=T0 + timedelta(hours=1))
    assert paid.reason == "exit paid"
    assert emulator.charged_cents == paid.paid_cents  # the invoiced car was not charged too
    assert not any(b.kind == "preauth" and not b.reversed and not b.booked_cents
                   for b in emulator.journal)


async def test_a_terminal_repeating_its_answers_charges_each_exit_once(lot, emulator):
    term = client(emulator)
    emulator.repeat_answers = True
    paid = 0
    for n, plate in enumerate(("REP0001", "REP0002")):
        await admit(lot.ledger, lot.cfg, lane="in-1", plate=plate, confidence=1, at=T0)
        out = await release(lot.ledger, lot.cfg, lane="out-1", plate=plate, scanned_ticket=None,
                            terminal=term, at=T0 + timedelta(hours=1 + n))
        assert out.reason == "exit paid"
        paid += out.paid_cents
    assert emulator.charged_cents == paid and emulator.bookings == 2
    payments = await _payloads(lot, "payment.recorded")
    assert len(payments) == 2 and len({p["processor_token"] for p in payments}) == 2


async def test_printer_state_is_in_device_health(lot):
    health = lot.device_health()
    assert {p["printer"] for p in health["printers"]} == {"in-1", "in-2", "booth"}
    assert all(p["ok"] for p in health["printers"])


FAULTS = st.sampled_from(["none", "none", "drop", "late", "repeat", "decline"])


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=st.lists(st.tuples(FAULTS, FAULTS), min_size=1, max_size=4),
       flow=st.sampled_from(["preauth", "sale"]))
async def test_whatever_the_terminal_does_the_cards_pay_what_the_ledger_says(
        lot, faults, flow, monkeypatch):
    """Exits through a terminal that drops, answers late, repeats or declines, in any order:
    every car leaves, and once the last doubt is settled the money taken from cards is the
    money the ledger records as paid (never twice, never unrecorded)."""
    monkeypatch.setattr(tickets, "PAYMENT_TIMEOUT_S", 0.3)
    emu = ZvtEmulator(seed=1)
    await emu.start()
    term = ZvtTerminal(port=emu.port, answer_timeout_s=2.0, flow=flow)
    try:
        recorded = 0
        for n, (on_auth, on_capture) in enumerate(faults):
            plate = f"PRP{n:04d}"
            await admit(lot.ledger, lot.cfg, lane="in-1", plate=plate, confidence=1,
                        at=T0 + timedelta(days=n))
            for fault in (on_auth, on_capture):  # the second applies to the Book Total
                emu.drop_after_approval += fault == "drop"
            emu.delay_s = 0.6 if "late" in (on_auth, on_capture) else 0.0
            emu.repeat_answers = "repeat" in (on_auth, on_capture)
            emu.decline_above_cents = 0 if on_auth == "decline" else None
            out = await release(lot.ledger, lot.cfg, lane="out-1", plate=plate,
                                scanned_ticket=None, terminal=term,
                                at=T0 + timedelta(days=n, hours=2))
            assert out.allow  # never trapped
            recorded += out.paid_cents
            emu.drop_after_approval = 0
            await asyncio.sleep(emu.delay_s + 0.1)  # a late terminal finishes meanwhile
        emu.delay_s = 0.0
        await term.resolve_in_doubt()
        assert emu.charged_cents == recorded
    finally:
        await emu.stop()

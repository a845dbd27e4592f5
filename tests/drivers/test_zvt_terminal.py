"""The ZVT client against the ZVT emulator over real TCP: payments, faults, never twice."""

from __future__ import annotations

import asyncio

import pytest

from drivers.payment import TerminalUnavailable
from drivers.zvt.client import ZvtTerminal
from drivers.zvt.emulator import ZvtEmulator


@pytest.fixture
async def emulator():
    emu = ZvtEmulator(seed=1)
    await emu.start()
    yield emu
    await emu.stop()


def client(emu: ZvtEmulator, **kw) -> ZvtTerminal:
    kw.setdefault("answer_timeout_s", 2.0)
    return ZvtTerminal(host="127.0.0.1", port=emu.port, **kw)


async def test_preauth_then_book_total_charges_the_fee_once(emulator):
    term = client(emulator)
    auth = await term.authorize(idempotency_key="k1", amount_cents=2000)
    assert auth.approved and auth.status == "authorized" and auth.last4 == "4242"
    assert emulator.charged_cents == 0  # a reservation takes no money yet
    cap = await term.capture(idempotency_key="k1", amount_cents=1500)
    assert cap.approved and cap.status == "captured" and cap.amount_cents == 1500
    assert cap.processor_token.startswith("zvt:52500001:") and cap.brand == "VISA"
    assert any("4242" in line for line in cap.receipt_lines)
    again = await term.capture(idempotency_key="k1", amount_cents=1500)
    assert again == cap and emulator.charged_cents == 1500 and emulator.bookings == 1
    assert emulator.commands.count((0x06, 0x24)) == 1


async def test_sale_flow_books_at_authorisation(emulator):
    term = client(emulator, flow="sale")
    auth = await term.authorize(idempotency_key="k", amount_cents=700)
    cap = await term.capture(idempotency_key="k", amount_cents=700)
    assert auth.approved and cap.status == "captured"
    assert emulator.charged_cents == 700 and emulator.commands == [(0x06, 0x00), (0x06, 0x01)]


async def test_decline_and_refund(emulator):
    emulator.decline_above_cents = 5000
    term = client(emulator)
    declined = await term.authorize(idempotency_key="big", amount_cents=9000)
    assert not declined.approved and declined.status == "declined"
    await term.authorize(idempotency_key="k", amount_cents=900)
    await term.capture(idempotency_key="k", amount_cents=900)
    refund = await term.refund(idempotency_key="k", amount_cents=900)
    assert refund.approved and refund.status == "refunded"
    assert emulator.charged_cents == 0
    assert (await term.refund(idempotency_key="k", amount_cents=900)) == refund


async def test_offline_below_floor_then_end_of_day_settles(emulator):
    emulator.mode = "offline"
    emulator.offline_floor_cents = 1000
    term = client(emulator)
    above = await term.authorize(idempotency_key="a", amount_cents=2000)
    assert not above.approved
    ok = await term.authorize(idempotency_key="b", amount_cents=800)
    assert ok.approved and ok.offline
    cap = await term.capture(idempotency_key="b", amount_cents=800)
    assert cap.offline
    assert term.settle_offline() == {}  # not submitted until the end-of-day
    day = await term.end_of_day()
    assert day["ok"] and day["total_cents"] == 800 and "END-OF-DAY" in day["receipt_lines"]
    assert term.settle_offline() == {"b": True}
    assert term.settle_offline() == {}


async def test_status_registration_and_abort(emulator):
    term = client(emulator)
    assert (await term.register())["registered"]
    status = await term.status()
    assert status["ready"] and status["terminal_id"] == "52500001"
    assert await term.abort()


async def test_wrong_password_is_refused_not_hung(emulator):
    term = client(emulator, password="123456")
    with pytest.raises(TerminalUnavailable, match="registration"):
        await term.end_of_day()
    with pytest.raises(TerminalUnavailable, match="registration"):
        await term.authorize(idempotency_key="k", amount_cents=100)
    assert emulator.charged_cents == 0


async def test_unreachable_terminal_is_a_device_error():
    term = ZvtTerminal(host="127.0.0.1", port=1, connect_timeout_s=1)
    with pytest.raises(TerminalUnavailable):
        await term.authorize(idempotency_key="k", amount_cents=100)


async def test_link_dropped_after_approval_is_recovered_not_charged_twice(emulator):
    term = client(emulator)
    emulator.drop_after_approval = 1
    auth = await term.authorize(idempotency_key="k", amount_cents=1200)
    assert auth.approved  # learnt through Repeat Receipt, not a second reservation
    emulator.drop_after_approval = 1
    cap = await term.capture(idempotency_key="k", amount_cents=1200)
    assert cap.approved and cap.status == "captured"
    assert emulator.charged_cents == 1200 and emulator.bookings == 1
    assert emulator.commands.count((0x06, 0x22)) == 1
    assert emulator.commands.count((0x06, 0x24)) == 1
    assert term.in_doubt is None


async def test_repeated_answers_change_nothing(emulator):
    emulator.repeat_answers = True
    term = client(emulator)
    await term.authorize(idempotency_key="k", amount_cents=500)
    cap = await term.capture(idempotency_key="k", amount_cents=500)
    emulator.repeat_answers = False
    other = await term.authorize(idempotency_key="j", amount_cents=300)
    await term.capture(idempotency_key="j", amount_cents=300)
    assert cap.approved and other.approved and other.amount_cents == 300
    assert emulator.charged_cents == 800 and emulator.bookings == 2


async def test_late_answer_after_the_lane_gave_up_is_reversed(emulator):
    term = client(emulator, flow="sale")
    emulator.delay_s = 1.0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):  # the lane's payment timeout
            await term.authorize(idempotency_key="late", amount_cents=1500)
    assert term.in_doubt is not None
    await asyncio.sleep(1.0)  # the terminal finishes the booking nobody waits for
    assert emulator.charged_cents == 1500
    emulator.delay_s = 0
    nxt = await term.authorize(idempotency_key="next", amount_cents=400)
    assert nxt.approved
    # the late booking was reversed before the next payment: only the next one stands
    assert emulator.charged_cents == 400 and len(term.reversed_receipts) == 1
    assert term.in_doubt is None


async def test_late_answer_retried_with_the_same_key_is_taken_not_recharged(emulator):
    term = client(emulator, flow="sale")
    emulator.delay_s = 1.0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await term.authorize(idempotency_key="k", amount_cents=1500)
    await asyncio.sleep(1.0)
    emulator.delay_s = 0
    retry = await term.authorize(idempotency_key="k", amount_cents=1500)
    assert retry.approved and emulator.charged_cents == 1500 and emulator.bookings == 1


async def test_a_stale_last_transaction_is_not_taken_for_a_command_in_doubt(emulator):
    from datetime import datetime, timedelta

    yesterday = datetime.now() - timedelta(days=1)
    emulator.clock = lambda: yesterday
    first = client(emulator, flow="sale")
    await first.authorize(idempotency_key="old", amount_cents=900)  # yesterday's payment
    emulator.clock = datetime.now
    fresh = client(emulator, flow="sale")  # a restarted appliance: no trace number seen yet
    emulator.drop_after_ack = 1  # the link drops before the card was even read
    with pytest.raises(TerminalUnavailable):
        await fresh.authorize(idempotency_key="new", amount_cents=900)
    # yesterday's 9.00 is neither taken as this payment nor reversed
    assert emulator.charged_cents == 900 and emulator.bookings == 1
    assert fresh.reversed_receipts == [] and fresh.in_doubt is None
    retry = await fresh.authorize(idempotency_key="new", amount_cents=900)
    assert retry.approved and emulator.charged_cents == 1800


async def test_a_doubt_is_settled_in_the_background_without_a_next_payment(emulator):
    from appliance.lot.money_devices import settle_doubts_forever

    term = client(emulator, flow="sale")
    emulator.delay_s = 0.5
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await term.authorize(idempotency_key="late", amount_cents=800)
    await asyncio.sleep(0.6)
    emulator.delay_s = 0
    assert emulator.charged_cents == 800
    rounds = []

    async def sleep(seconds):
        if rounds:
            raise asyncio.CancelledError
        rounds.append(seconds)

    with pytest.raises(asyncio.CancelledError):
        await settle_doubts_forever(term, sleep=sleep)
    assert emulator.charged_cents == 0 and term.in_doubt is None


async def test_unknown_terminal_messages_are_acknowledged_and_ignored(emulator):
    from drivers.zvt.apdu import Apdu

    sent = emulator._payment

    async def with_extras(link, kind, amount):
        # Set Date and Time in ECR (date AA YYMMDD, time 0C HHMMSS): acknowledged, ignored
        await link.exchange(Apdu(0x04, 0x01, bytes.fromhex("AA260302 0C120000")))
        await link.exchange(Apdu(0x06, 0xE0, b"\xf1\xf0\xf5HELLO"))  # display text
        await sent(link, kind, amount)

    emulator._payment = with_extras
    term = client(emulator, flow="sale")
    result = await term.authorize(idempotency_key="k", amount_cents=300)
    assert result.approved and emulator.charged_cents == 300

"""The simulated payment terminal: idempotent inside its key window, bounded memory."""

from __future__ import annotations

import tracemalloc

import pytest

from drivers.payment import SimulatedTerminal


async def pay(term: SimulatedTerminal, key: str, cents: int = 300):
    auth = await term.authorize(idempotency_key=key, amount_cents=cents)
    return auth, await term.capture(idempotency_key=key, amount_cents=cents)


async def test_a_retry_inside_the_window_gets_the_first_answer_and_charges_once():
    term = SimulatedTerminal(decline_rate=0.0, seed=1, retain_keys=10)
    auth, cap = await pay(term, "k1")
    for i in range(9):  # nine more keys: k1 is still inside the window of 10
        await pay(term, f"other{i}")
    again_auth, again_cap = await pay(term, "k1")
    assert again_auth == auth and again_cap == cap
    assert term.capture_calls == 10 and term.captured_cents == 10 * 300
    refund = await term.refund(idempotency_key="k1", amount_cents=300)
    assert refund.status == "refunded"
    assert await term.refund(idempotency_key="k1", amount_cents=300) == refund
    assert term.captured_cents == 9 * 300


async def test_a_key_older_than_the_window_is_a_new_operation():
    term = SimulatedTerminal(decline_rate=0.0, seed=1, retain_keys=10)
    auth, _ = await pay(term, "k1")
    for i in range(10):
        await pay(term, f"other{i}")
    assert (await term.capture(idempotency_key="k1", amount_cents=300)).status == "error"
    fresh = await term.authorize(idempotency_key="k1", amount_cents=300)
    assert fresh.approved and fresh.processor_token != auth.processor_token


async def test_offline_captures_outlive_the_window_until_settled():
    term = SimulatedTerminal(seed=3, mode="offline", offline_failure_rate=0.0, retain_keys=5)
    offline = [f"off{i}" for i in range(8)]
    for key in offline:
        _, cap = await pay(term, key)
        assert cap.offline and cap.status == "captured"
    assert term.settle_offline() == {}  # processor still unreachable
    term.mode = "online"
    for i in range(20):  # every offline key has left the window by now
        await pay(term, f"online{i}")
    assert term.settle_offline() == {key: True for key in offline}
    assert term.settle_offline() == {}  # settled once


async def test_memory_stays_flat_over_many_payments():
    term = SimulatedTerminal(decline_rate=0.03, seed=2, retain_keys=500)
    tracemalloc.start()
    try:
        for i in range(2_000):
            await pay(term, f"warm{i}")
        warm = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            await pay(term, f"busy{i}")
        grown = tracemalloc.get_traced_memory()[0] - warm
    finally:
        tracemalloc.stop()
    # unbounded, 20,000 more payments held ~10 MiB; bounded, the window is already full
    assert grown < 64 * 1024, grown


def test_the_window_must_hold_a_key():
    with pytest.raises(ValueError, match="retain_keys"):
        SimulatedTerminal(retain_keys=0)

"""The uplink's flow control, pure (sync/flow.py), with properties over random histories, and
the simulated fleet (sync/flow_model.py): the old policy collapses, the new one does not."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.flow import AckWindow, Backoff, PaceHint, RtoEstimator, pace_for
from sync.flow_model import simulate

rtts = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False)


@given(st.lists(rtts, max_size=60), st.floats(0.01, 100), st.floats(0.01, 10))
def test_rto_stays_within_its_clamp_and_never_below_srtt(samples, initial, floor):
    est = RtoEstimator(initial_s=initial, min_s=floor, max_s=600.0)
    assert est.rto_s == min(600.0, max(floor, initial))
    for r in samples:
        est.sample(r)
        assert floor <= est.rto_s <= 600.0
        assert est.rto_s >= min(600.0, est.srtt_s)
        assert est.rttvar_s >= 0


@given(st.floats(0.001, 100.0))
def test_steady_round_trips_converge_to_the_round_trip(rtt):
    est = RtoEstimator(initial_s=30.0, min_s=0.0)
    est.sample(rtt)
    assert est.rto_s == min(600.0, 3 * rtt)  # RFC 6298: SRTT = R, RTTVAR = R/2
    for _ in range(200):
        est.sample(rtt)
    assert abs(est.srtt_s - rtt) < 1e-6 * max(1, rtt)
    assert rtt <= est.rto_s <= rtt * 1.01 + 1e-9


@given(st.floats(0.01, 100.0), st.integers(0, 40), st.floats(0.0, 0.999))
def test_backoff_doubles_up_to_the_cap_and_jitter_stays_inside_it(rto, attempt, u):
    b = Backoff(cap_s=600.0)
    assert b.wait_s(rto, attempt) == min(600.0, rto * 2 ** attempt)
    assert b.wait_s(rto, attempt + 1) >= b.wait_s(rto, attempt)
    assert 0 <= b.jitter_s(rto, attempt, u) <= b.wait_s(rto, attempt)


# A history: ("send", _) / ("ack", k: ack the k-th of the batches in flight) / ("wait", s)
steps = st.lists(st.one_of(
    st.tuples(st.just("send"), st.integers(1, 500)),
    st.tuples(st.just("ack"), st.integers(0, 10)),
    st.tuples(st.just("wait"), st.floats(0.0, 50.0)),
    st.tuples(st.just("pace"), st.floats(0.0, 100.0))), max_size=80)


@settings(max_examples=300)
@given(steps, st.integers(1, 8), st.integers(0, 2**32))
def test_window_invariants_over_random_histories(history, window, seed):
    rng = random.Random(seed)
    w = AckWindow(max_inflight=window, rto=RtoEstimator(initial_s=5.0, min_s=1.0),
                  rng=rng.random)
    now, last_progress = 0.0, 0.0
    for kind, arg in history:
        if kind == "send" and w.can_send():
            w.on_sent(w.sent_through + 1, w.sent_through + arg, now)
        elif kind == "ack" and w.batches:
            target = w.batches[min(arg, len(w.batches) - 1)].last_seq
            before = w.acked_through
            assert w.on_ack(target, now) == (target > before)
            last_progress = now
        elif kind == "wait":
            now += arg
        elif kind == "pace":
            w.set_pace(PaceHint(wait_s=arg), now)
        resent = w.due(now)
        if resent is not None:
            # only ever the oldest unacknowledged batch, and only after a full timeout
            assert resent is w.batches[0]
            assert resent.first_seq == w.acked_through + 1
            assert now - last_progress >= w.rto.min_s - 1e-9
        assert len(w.batches) <= window
        assert all(b.last_seq > w.acked_through for b in w.batches)
        firsts = [b.first_seq for b in w.batches]
        assert firsts == sorted(firsts)
        assert all(a.last_seq + 1 == b.first_seq for a, b in zip(w.batches, w.batches[1:], strict=False))
        assert w.sent_through >= w.acked_through


@given(st.lists(st.floats(0.0, 1.9), min_size=1, max_size=100))
def test_a_lot_whose_acks_keep_coming_never_resends(gaps):
    """Acks arrive (however slowly) more often than the smallest timeout: no resend, ever."""
    w = AckWindow(max_inflight=8, rto=RtoEstimator(initial_s=30.0, min_s=2.0))
    now, seq = 0.0, 0
    for _ in range(8):
        w.on_sent(seq + 1, seq + 10, now)
        seq += 10
    for gap in gaps:
        now += gap
        assert w.due(now) is None
        w.on_ack(w.batches[0].last_seq, now)
        w.on_sent(seq + 1, seq + 10, now)
        seq += 10
        assert w.due(now) is None
    assert w.resent_batches == 0


def test_timeouts_back_off_and_karn_takes_no_sample_from_a_resent_batch():
    w = AckWindow(max_inflight=4, rto=RtoEstimator(initial_s=1.0, min_s=1.0),
                  rng=lambda: 0.0)
    w.on_sent(1, 10, 0.0)
    w.on_sent(11, 20, 0.0)
    assert w.due(0.99) is None
    assert w.due(1.0).first_seq == 1  # first timeout: the oldest only
    assert w.deadline_s == 1.0 + 2.0  # the wait doubled (jitter 0 here)
    assert w.due(2.9) is None
    assert w.due(3.0).first_seq == 1 and w.deadline_s == 3.0 + 4.0
    w.on_ack(20, 3.5)  # covers the resent batch and the other: one ack for both
    assert w.rto.samples == 1  # from the batch never resent (sent at 0, rtt 3.5)
    assert w.rto.srtt_s == 3.5 and w.attempt == 0 and not w.batches
    assert w.resent_events == 20


def test_a_pace_hint_moves_the_timer_out_and_narrows_the_window():
    w = AckWindow(max_inflight=8, rto=RtoEstimator(initial_s=30.0))
    w.on_sent(1, 500, 0.0)
    w.set_pace(PaceHint(wait_s=100.0, max_inflight_batches=2), 1.0)
    assert w.deadline_s == 30.0 + 200.0  # the timer plus twice the cloud's expected wait
    assert w.window() == 2
    w.on_sent(501, 1000, 1.0)
    assert not w.can_send()
    assert w.due(100.0) is None
    w.set_pace(PaceHint(), 101.0)  # the cloud caught up: the hint is cleared ...
    assert w.window() == 8
    assert w.deadline_s == 230.0  # ... but what was sent under it keeps the promised wait
    assert w.due(229.0) is None
    w.on_ack(500, 229.0)  # the next timer starts without it
    assert w.deadline_s == 229.0 + w.rto.rto_s


def test_pace_hints_parse_strictly_and_combine_to_the_strictest():
    assert PaceHint.parse(b'{"wait_s": 12.5, "max_inflight_batches": 2}') == PaceHint(
        wait_s=12.5, max_inflight_batches=2)
    for bad in (b"", b"[]", b'{"wait_s": -1}', b'{"wait_s": true}', b"nope",
                b'{"max_inflight_batches": 0}', b'{"wait_s": "5"}'):
        assert PaceHint.parse(bad) is None, bad
    assert PaceHint.combine([PaceHint(wait_s=3, max_inflight_batches=4),
                             PaceHint(wait_s=9), PaceHint(max_inflight_batches=2)]) == PaceHint(
        wait_s=9, max_inflight_batches=2)
    assert pace_for(queued_events=110_000, rate_events_s=11_000, active_lots=1000,
                    batch_events=500) == PaceHint(wait_s=10.0, max_inflight_batches=1)
    assert pace_for(queued_events=0, rate_events_s=30_000, active_lots=10,
                    batch_events=500).max_inflight_batches == 60


def test_the_simulated_fleet_collapses_under_the_old_policy_and_not_under_the_new():
    """200 lots back at once, 20,000 events each, against 11,000 events/s: 364 s of work."""
    kw = {"lots": 200, "events_per_lot": 20_000, "capacity_events_s": 11_000.0,
          "limit_s": 600.0}
    old = simulate(policy="old", **kw)
    new = simulate(policy="new", **kw)
    total = 200 * 20_000
    assert new.catch_up_s is not None and new.catch_up_s < total / 11_000 * 1.05
    assert new.stored_events == total and new.resent_share <= 0.01
    assert old.resent_share > 0.5  # most of what the old policy sends is a resend
    assert old.catch_up_s is None or old.catch_up_s > 2 * new.catch_up_s
    assert old.stored_by_limit < new.stored_by_limit

"""A simulated fleet coming back at once (pure, discrete-event, simulated time): N lots with a
backlog each against a cloud that stores a fixed number of events per second, under the old
uplink policy or the new one (`sync.flow`). Used by tests/sync/test_flow_model.py and
`python -m bench fleet` to show the old policy collapse and the new one not.

The cloud is one FIFO queue served at `capacity_events_s` (a resent batch costs the same work
as a new one: the ingest parses, verifies and offers it to the database before it finds it
stored); it stores out of order and acks the lot's contiguous frontier after each batch. Every
`pace_interval_s` it publishes the pace hint `sync.flow.pace_for` computes from its queue.

The old policy is the uplink as it was: a fixed `ack_timeout_s` (30 s) from the last progress,
5 s for the first wait of a session, and on a timeout the whole unacknowledged window sent
again. The new one is `sync.flow.AckWindow`: RTO from round trips, backoff with jitter, only the
oldest batch resent, the pace hint honoured.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from sync.flow import AckWindow, Backoff, PaceHint, RtoEstimator, pace_for


@dataclass(frozen=True, kw_only=True)
class FleetResult:
    """What a simulated catch-up did."""

    policy: str
    lots: int
    events_per_lot: int
    sent_events: int
    resent_events: int
    stored_events: int  # distinct events stored (never more than lots * events_per_lot)
    catch_up_s: float | None  # when the last lot was fully acked (None: not within 20 limits)
    stored_by_limit: int  # distinct events stored by the time limit
    limit_s: float

    @property
    def new_events_s(self) -> float:
        """Distinct events stored per second up to the limit (or the catch-up, if sooner)."""
        span = min(self.limit_s, self.catch_up_s or self.limit_s)
        return self.stored_by_limit / span if span else 0.0

    @property
    def resent_share(self) -> float:
        """Resent events as a share of all events sent."""
        return self.resent_events / self.sent_events if self.sent_events else 0.0


@dataclass
class _OldWindow:
    """The uplink's policy before the fleet work: fixed timeout, whole window resent."""

    max_inflight: int
    ack_timeout_s: float = 30.0
    quick_retry_s: float = 5.0
    acked_through: int = 0
    sent_through: int = 0
    waiting_since: float = 0.0
    quick: bool = True
    inflight: list[int] = field(default_factory=list)
    resend_mark: int = 0  # batches below this one were sent before

    def timeout(self) -> float:
        return min(self.ack_timeout_s, self.quick_retry_s) if self.quick else self.ack_timeout_s


@dataclass
class _Lot:
    index: int
    batches: int
    window: AckWindow | _OldWindow
    next_timer: float | None = None
    finished: bool = False


def simulate(*, policy: str, lots: int = 1000, events_per_lot: int = 20_000,
             batch_events: int = 500, max_inflight: int = 8,
             capacity_events_s: float = 11_000.0, limit_s: float = 600.0,
             connect_spread_s: float = 5.0, link_delay_s: float = 0.02,
             pace_interval_s: float = 1.0, ack_timeout_s: float = 30.0,
             seed: int = 1) -> FleetResult:
    """Run the fleet until every lot is acked or `limit_s` of simulated time has passed."""
    if policy not in ("old", "new"):
        raise ValueError(f"policy: 'old' or 'new', not {policy!r}")
    rng = random.Random(seed)
    per_lot = -(-events_per_lot // batch_events)
    fleet: list[_Lot] = []
    for i in range(lots):
        if policy == "new":
            window: AckWindow | _OldWindow = AckWindow(
                max_inflight=max_inflight, rto=RtoEstimator(initial_s=ack_timeout_s),
                backoff=Backoff(), rng=rng.random)
        else:
            window = _OldWindow(max_inflight=max_inflight, ack_timeout_s=ack_timeout_s)
        fleet.append(_Lot(i, per_lot, window))

    heap: list[tuple[float, int, str, int, int]] = []
    counter = 0

    def push(at: float, kind: str, lot: int, value: int = 0) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(heap, (at, counter, kind, lot, value))

    queue: deque[tuple[int, int]] = deque()  # (lot, batch index)
    queued_events = 0
    busy = False
    stored: list[set[int]] = [set() for _ in range(lots)]
    frontier = [0] * lots  # contiguous stored batches
    stored_total = 0
    done_lots = 0
    catch_up: float | None = None
    sent = resent = 0
    served_events = 0
    window_seen: dict[int, float] = {}  # lot -> last time it sent (active lots)

    def size(b: int) -> int:
        return min(batch_events, events_per_lot - b * batch_events)

    def send(lot: _Lot, b: int, now: float, *, again: bool) -> None:
        nonlocal sent, resent
        sent += size(b)
        if again:
            resent += size(b)
        window_seen[lot.index] = now
        push(now + link_delay_s, "arrive", lot.index, b)

    def pump(lot: _Lot, now: float) -> None:
        w = lot.window
        if isinstance(w, AckWindow):
            while w.can_send() and w.sent_through < lot.batches:
                b = w.sent_through
                w.on_sent(b + 1, b + 1, now)
                send(lot, b, now, again=False)
            when = w.deadline_s
        else:
            if not w.inflight:
                w.waiting_since = now
            while len(w.inflight) < w.max_inflight and w.sent_through < lot.batches:
                b = w.sent_through
                w.sent_through += 1
                w.inflight.append(w.sent_through)
                send(lot, b, now, again=b < w.resend_mark)
            when = w.waiting_since + w.timeout() if w.inflight else None
        if when is not None and (lot.next_timer is None or when < lot.next_timer - 1e-9
                                 or lot.next_timer <= now):
            lot.next_timer = when
            push(when, "timer", lot.index)

    def timer(lot: _Lot, now: float) -> None:
        w = lot.window
        if isinstance(w, AckWindow):
            batch = w.due(now)
            if batch is not None:
                send(lot, batch.first_seq - 1, now, again=True)
        else:
            if w.inflight and now - w.waiting_since >= w.timeout() - 1e-9:
                w.resend_mark = max(w.resend_mark, w.sent_through)
                w.sent_through = w.acked_through
                w.inflight = []
                w.quick = False
                w.waiting_since = now
        lot.next_timer = None
        pump(lot, now)

    def serve(now: float) -> None:
        nonlocal busy
        if busy or not queue:
            return
        lot, b = queue[0]
        busy = True
        push(now + size(b) / capacity_events_s, "stored", lot, b)

    for lot in fleet:
        push(rng.uniform(0, connect_spread_s), "connect", lot.index)
    next_pace = pace_interval_s
    push(next_pace, "pace", -1)
    stored_by_limit: int | None = None
    while heap:
        now, _, kind, i, value = heapq.heappop(heap)
        if now > limit_s and stored_by_limit is None:
            stored_by_limit = stored_total
        if now > limit_s * 20:
            break
        if kind == "connect":
            pump(fleet[i], now)
        elif kind == "arrive":
            queue.append((i, value))
            queued_events += size(value)
            serve(now)
        elif kind == "stored":
            queue.popleft()
            queued_events -= size(value)
            served_events += size(value)
            busy = False
            if value not in stored[i]:
                stored[i].add(value)
                stored_total += size(value)
                while frontier[i] in stored[i]:
                    frontier[i] += 1
            push(now + link_delay_s, "ack", i, frontier[i])
            serve(now)
        elif kind == "ack":
            lot = fleet[i]
            w = lot.window
            if isinstance(w, AckWindow):
                w.on_ack(value, now)
            elif value > w.acked_through:
                w.acked_through = value
                w.sent_through = max(w.sent_through, value)
                w.inflight = [s for s in w.inflight if s > value]
                w.waiting_since = now
                w.quick = False
            if value == lot.batches and not lot.finished:
                lot.finished = True
                done_lots += 1
                if done_lots == lots:
                    catch_up = now
                    break
            pump(lot, now)
        elif kind == "timer":
            lot = fleet[i]
            if lot.next_timer is not None and abs(lot.next_timer - now) < 1e-9:
                timer(lot, now)
        elif kind == "pace":
            if policy == "new":
                active = sum(1 for t in window_seen.values() if now - t < 60)
                hint = pace_for(queued_events=queued_events, rate_events_s=capacity_events_s,
                                active_lots=active, batch_events=batch_events)
                for lot in fleet:
                    push(now + link_delay_s, "hint", lot.index,
                         int(hint.wait_s * 1000) * 1000 + (hint.max_inflight_batches or 0))
            push(now + pace_interval_s, "pace", -1)
        elif kind == "hint":
            lot = fleet[i]
            assert isinstance(lot.window, AckWindow)
            lot.window.set_pace(PaceHint(wait_s=(value // 1000) / 1000,
                                         max_inflight_batches=(value % 1000) or None), now)
            pump(lot, now)
    return FleetResult(policy=policy, lots=lots, events_per_lot=events_per_lot,
                       sent_events=sent, resent_events=resent, stored_events=stored_total,
                       catch_up_s=catch_up,
                       stored_by_limit=stored_total if stored_by_limit is None
                       else stored_by_limit, limit_s=limit_s)

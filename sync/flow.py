"""Uplink flow control, pure: the ack timeout from measured round trips, the resend backoff and
the window of batches in flight. No IO and no clock reads: every time is an argument.

* `RtoEstimator`: Jacobson/Karels as TCP does it (RFC 6298): SRTT and RTTVAR from round-trip
  samples, RTO = SRTT + 4 * RTTVAR, clamped to [min_s, max_s]; before any sample it is the
  configured `initial_s` (`[cloud] ack_timeout_s`).
* `Backoff`: after the k-th timeout in a row (k = 1, 2, ...) the wait is min(cap, RTO * 2**k)
  and the resend is delayed by full jitter, a uniform share of that wait, so a fleet that timed
  out together does not resend together.
* `AckWindow`: the batches sent and not yet covered by an ack, in seq order. An ack that moves
  the frontier is progress: the covered batches leave, a round trip is sampled from the newest
  covered batch that was never resent (Karn: a resent batch's ack is ambiguous), the backoff
  resets and the timer restarts, so a lot whose acks keep coming (however slowly) never resends.
  When the timer runs out only the oldest unacknowledged batch is resent: the cloud stores out
  of order and acks cumulatively, so if the others got through one ack covers them all.
* `PaceHint`: what the cloud asks of the lots (see docs/cloud-protocol.md): `wait_s`, how long
  a batch sent now is expected to wait before it is stored, is added (twice) to the timeout, and
  `max_inflight_batches` narrows the window.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

ALPHA = 1 / 8  # RFC 6298 gains
BETA = 1 / 4
K = 4


@dataclass
class RtoEstimator:
    """Retransmission timeout from round-trip samples (RFC 6298, in seconds)."""

    initial_s: float = 30.0
    min_s: float = 2.0
    max_s: float = 600.0
    srtt_s: float | None = None
    rttvar_s: float = 0.0
    samples: int = 0

    def sample(self, rtt_s: float) -> None:
        """Take one round-trip measurement (negative ones are clock noise: ignored)."""
        if rtt_s < 0:
            return
        if self.srtt_s is None:
            self.srtt_s, self.rttvar_s = rtt_s, rtt_s / 2
        else:
            self.rttvar_s = (1 - BETA) * self.rttvar_s + BETA * abs(self.srtt_s - rtt_s)
            self.srtt_s = (1 - ALPHA) * self.srtt_s + ALPHA * rtt_s
        self.samples += 1

    @property
    def rto_s(self) -> float:
        """The current timeout: initial_s before any sample, else SRTT + 4 RTTVAR, clamped."""
        raw = self.initial_s if self.srtt_s is None else self.srtt_s + K * self.rttvar_s
        return min(self.max_s, max(self.min_s, raw))

    def reset(self) -> None:
        """Forget the samples (a new session after an outage: old round trips say nothing)."""
        self.srtt_s, self.rttvar_s, self.samples = None, 0.0, 0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter for resends."""

    cap_s: float = 600.0

    def wait_s(self, rto_s: float, attempt: int) -> float:
        """How long to wait for an ack after `attempt` timeouts in a row (0: none)."""
        return min(self.cap_s, rto_s * 2 ** min(attempt, 30))

    def jitter_s(self, rto_s: float, attempt: int, u: float) -> float:
        """Full jitter before a resend: a uniform share (`u` in [0, 1)) of the wait."""
        return u * self.wait_s(rto_s, attempt)


@dataclass(frozen=True, kw_only=True)
class PaceHint:
    """The cloud's request to the lots: expected wait before storing, and a window."""

    wait_s: float = 0.0
    max_inflight_batches: int | None = None

    @classmethod
    def parse(cls, payload: bytes | str) -> PaceHint | None:
        """The hint in a retained message, or None when it is empty (cleared) or malformed."""
        try:
            data = json.loads(payload) if payload else None
        except (ValueError, TypeError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        wait, window = data.get("wait_s", 0), data.get("max_inflight_batches")
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < 1e6:
            return None
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                                   or window < 1):
            return None
        return cls(wait_s=float(wait), max_inflight_batches=window)

    @staticmethod
    def combine(hints: list[PaceHint]) -> PaceHint:
        """The strictest of several hints (longest wait, narrowest window)."""
        windows = [h.max_inflight_batches for h in hints if h.max_inflight_batches is not None]
        return PaceHint(wait_s=max((h.wait_s for h in hints), default=0.0),
                        max_inflight_batches=min(windows) if windows else None)


@dataclass
class Inflight:
    """One batch sent and not yet acknowledged."""

    first_seq: int
    last_seq: int
    sent_s: float
    resent: bool = False


@dataclass
class AckWindow:
    """Batches in flight, the ack timer and the resend decision of one lot's uplink.

    Args:
        max_inflight: most batches in flight (the configured window).
        rto: the round-trip estimator.
        backoff: the resend backoff.
        rng: uniform random numbers in [0, 1) for the jitter (the shell passes random.random).
    """

    max_inflight: int
    rto: RtoEstimator
    backoff: Backoff = field(default_factory=Backoff)
    rng: Callable[[], float] = field(default=lambda: 0.5)
    acked_through: int = 0
    sent_through: int = 0
    batches: list[Inflight] = field(default_factory=list)
    attempt: int = 0
    armed_s: float | None = None  # when the ack timer last started (send, progress, resend)
    jitter_s: float = 0.0  # the full-jitter delay drawn for the current resend timer
    armed_pace_s: float = 0.0  # the hint's wait when the timer started: a later, shorter hint
    # does not cut it short (batches sent under a hint were promised that wait)
    pace: PaceHint = field(default_factory=PaceHint)
    resent_batches: int = 0
    resent_events: int = 0

    def window(self) -> int:
        """The window in force: the configured one, narrowed by the pace hint."""
        hint = self.pace.max_inflight_batches
        return max(1, min(self.max_inflight, hint)) if hint is not None else self.max_inflight

    def can_send(self) -> bool:
        """Whether a new batch may go out now."""
        return len(self.batches) < self.window()

    def timeout_s(self) -> float:
        """How long the oldest batch may wait for an ack before a resend (without jitter)."""
        return self.backoff.wait_s(self.rto.rto_s, self.attempt) + 2 * self.pace.wait_s

    @property
    def deadline_s(self) -> float | None:
        """When the oldest batch is to be resent (None: nothing in flight). A longer pace hint
        lengthens the running timer at once; a shorter one (or none) counts from the next time
        the timer starts, so a fleet whose hint drops does not time out all at once."""
        if self.armed_s is None or not self.batches:
            return None
        pace = max(self.armed_pace_s, self.pace.wait_s)
        return (self.armed_s + self.backoff.wait_s(self.rto.rto_s, self.attempt) + 2 * pace
                + self.jitter_s)

    def _arm(self, now_s: float | None, jitter_s: float = 0.0) -> None:
        self.armed_s, self.jitter_s, self.armed_pace_s = now_s, jitter_s, self.pace.wait_s

    def restart(self, acked_through: int) -> None:
        """Start over from `acked_through` (a new session, a resync, an ingest came online):
        everything after it is to be sent again."""
        self.acked_through = self.sent_through = acked_through
        self.batches.clear()
        self.attempt = 0
        self._arm(None)

    def on_sent(self, first_seq: int, last_seq: int, now_s: float) -> None:
        """A new batch went out."""
        self.batches.append(Inflight(first_seq, last_seq, now_s))
        self.sent_through = max(self.sent_through, last_seq)
        if self.armed_s is None or len(self.batches) == 1:
            self._arm(now_s)

    def on_ack(self, acked_through: int, now_s: float) -> bool:
        """An ack arrived; True when it moved the frontier (progress)."""
        if acked_through <= self.acked_through:
            return False
        self.acked_through = acked_through
        self.sent_through = max(self.sent_through, acked_through)
        covered = [b for b in self.batches if b.last_seq <= acked_through]
        fresh = [b for b in covered if not b.resent]
        if fresh:
            self.rto.sample(now_s - fresh[-1].sent_s)
        self.batches = [b for b in self.batches if b.last_seq > acked_through]
        self.attempt = 0
        self._arm(now_s if self.batches else None)
        return True

    def set_pace(self, hint: PaceHint, now_s: float) -> None:
        """Adopt a new pace hint (the running timer follows it, see `deadline_s`); a longer
        wait also counts from now, as the cloud has just said how far behind it is."""
        longer = hint.wait_s > self.pace.wait_s
        self.pace = hint
        if longer and self.armed_s is not None:
            self.armed_s = max(self.armed_s, now_s - self.backoff.wait_s(self.rto.rto_s,
                                                                         self.attempt))
            self.armed_pace_s = max(self.armed_pace_s, hint.wait_s)

    def due(self, now_s: float) -> Inflight | None:
        """The batch to resend now (the oldest unacknowledged), or None. Calling it when it
        returns a batch counts the resend and arms the backed-off, jittered timer."""
        if self.deadline_s is None or not self.batches or now_s < self.deadline_s:
            return None
        self.attempt += 1
        oldest = self.batches[0]
        oldest.sent_s, oldest.resent = now_s, True
        self.resent_batches += 1
        self.resent_events += oldest.last_seq - oldest.first_seq + 1
        self._arm(now_s, self.backoff.jitter_s(self.rto.rto_s, self.attempt, self.rng()))
        return oldest

    def seconds_until_due(self, now_s: float) -> float | None:
        """Time left on the ack timer (None: nothing in flight)."""
        if self.deadline_s is None or not self.batches:
            return None
        return max(0.0, self.deadline_s - now_s)


def pace_for(*, queued_events: int, rate_events_s: float, active_lots: int,
             batch_events: float, target_wait_s: float = 10.0,
             max_window: int = 64) -> PaceHint:
    """The hint an ingest worker publishes: its queue's expected wait at its measured rate, and
    the window that would keep that wait near `target_wait_s` with `active_lots` sending."""
    if rate_events_s <= 0:
        return PaceHint(wait_s=0.0, max_inflight_batches=None)
    wait = queued_events / rate_events_s
    lots = max(1, active_lots)
    window = int(rate_events_s * target_wait_s / (lots * max(1.0, batch_events)))
    return PaceHint(wait_s=round(wait, 2), max_inflight_batches=max(1, min(max_window, window)))

"""Spot occupancy from distance readings: threshold, hysteresis, debounce, confidence, staleness.

Pure: every method takes the monotonic time in seconds; nothing here reads a clock or a port.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from appliance.core.types import SpotState

# A sensor reading's classification before debouncing.
_OCCUPIED, _FREE, _BAND = "occupied", "free", "band"


@dataclass(frozen=True, kw_only=True, slots=True)
class OccupancySettings:
    """How distance readings become a spot state.

    Args:
        occupied_below_cm: a reading closer than this means a vehicle is in the spot.
        hysteresis_cm: the spot is free again only beyond `occupied_below_cm + hysteresis_cm`.
        debounce_s: a new state must be seen this long before it is reported ...
        settle_ratio: ... and at that point agree with at least this share of the readings of
            the last `debounce_s` (band readings count for neither side). A contrary reading
            does not restart the wait; the candidate is dropped only once most readings since
            it was first seen contradict it. A sensor right 80 % of the time still settles.
        settle_min_readings: between OCCUPIED and AVAILABLE the share is taken over at least
            this many readings (reaching back before the window when the sensor is slow), so a
            few wrong readings in a row from a slow sensor cannot flip a spot; the first state
            after UNKNOWN needs only the window.
        heartbeat_s: with no valid reading for this long the spot becomes UNKNOWN.
        min_valid_cm, max_valid_cm: readings outside this range are invalid (sensor limits).
    """

    occupied_below_cm: int = 150
    hysteresis_cm: int = 20
    debounce_s: float = 3.0
    settle_ratio: float = 0.8
    settle_min_readings: int = 1
    heartbeat_s: float = 1800.0
    min_valid_cm: int = 20
    max_valid_cm: int = 765

    def __post_init__(self) -> None:
        if self.occupied_below_cm <= 0:
            raise ValueError("occupied_below_cm: must be positive")
        if self.hysteresis_cm < 0:
            raise ValueError("hysteresis_cm: must not be negative")
        if self.debounce_s < 0:
            raise ValueError("debounce_s: must not be negative")
        if not 0.5 < self.settle_ratio <= 1:
            raise ValueError("settle_ratio: must be above 0.5 and at most 1")
        if self.settle_min_readings < 1:
            raise ValueError("settle_min_readings: must be at least 1")
        if self.heartbeat_s <= 0:
            raise ValueError("heartbeat_s: must be positive")
        if not 0 <= self.min_valid_cm < self.max_valid_cm:
            raise ValueError("min_valid_cm: must be >= 0 and below max_valid_cm")


@dataclass(frozen=True, kw_only=True, slots=True)
class SpotChange:
    """A reported change of one spot's state (the payload of `spot.state_changed`)."""

    spot_id: str
    state: SpotState
    previous: SpotState
    distance_cm: int | None
    confidence: float
    at_s: float
    reason: str

    def payload(self) -> dict:
        """The ledger payload of this change."""
        return {"spot_id": self.spot_id, "state": str(self.state),
                "previous": str(self.previous), "distance_cm": self.distance_cm,
                "confidence": self.confidence, "reason": self.reason}


class SpotOccupancyFilter:
    """Turns one spot sensor's readings into debounced OCCUPIED/AVAILABLE/UNKNOWN changes.

    A spot starts UNKNOWN. A reading inside the hysteresis band keeps whatever is pending or
    current. Confidence is the share of the valid readings in the debounce window that agree
    with the reported state (band readings count half).
    """

    def __init__(self, spot_id: str, settings: OccupancySettings) -> None:
        self.spot_id = spot_id
        self.settings = settings
        self.state = SpotState.UNKNOWN
        self.confidence = 0.0
        self.distance_cm: int | None = None
        self.last_valid_s: float | None = None
        self.valid_readings = 0
        self.invalid_readings = 0
        self._candidate: str | None = None
        self._candidate_since = 0.0
        self._for = 0  # readings agreeing with the candidate since it was first seen
        self._against = 0  # readings contradicting it since then
        # the readings a decision can still look at (see `_forget`), at most 256
        self._window: deque[tuple[float, str]] = deque(maxlen=256)
        self._window_sided = 0  # how many of them are not band readings

    def _classify(self, distance_cm: int) -> str:
        s = self.settings
        if distance_cm < s.occupied_below_cm:
            return _OCCUPIED
        if distance_cm > s.occupied_below_cm + s.hysteresis_cm:
            return _FREE
        return _BAND

    def observe(self, distance_cm: int | None, now_s: float) -> SpotChange | None:
        """Take one reading (None or out of range = invalid); return a change if one is due."""
        s = self.settings
        if distance_cm is None or not s.min_valid_cm <= distance_cm <= s.max_valid_cm:
            self.invalid_readings += 1
            return self.tick(now_s)
        self.valid_readings += 1
        self.last_valid_s = now_s
        self.distance_cm = distance_cm
        kind = self._classify(distance_cm)
        if len(self._window) == self._window.maxlen and self._window[0][1] != _BAND:
            self._window_sided -= 1  # the append below pushes it out
        self._window.append((now_s, kind))
        self._window_sided += kind != _BAND
        self._forget(now_s)
        current = _state_kind(self.state)
        if kind != _BAND:
            if kind == self._candidate:
                self._for += 1
            elif self._candidate is not None:
                self._against += 1
            elif kind != current:
                self._start(kind, now_s)
            if self._candidate is not None and self._share() < 0.5:
                # mostly the current state (or, from UNKNOWN, the other kind) after all
                self._candidate = None
                if kind != current:
                    self._start(kind, now_s)
        if self._candidate is None:
            if kind == current:
                self.confidence = self._agreement(kind, now_s)
            return None
        if (now_s - self._candidate_since >= s.debounce_s
                and self._recent_share(now_s) >= s.settle_ratio):
            new = SpotState.OCCUPIED if self._candidate == _OCCUPIED else SpotState.AVAILABLE
            return self._change(new, now_s, "reading")
        return None

    def _forget(self, now_s: float) -> None:
        """Drop the readings no decision can look at again: older than the debounce window
        (readings come in time order, so they never re-enter it) and not among the last
        `settle_min_readings` that are not band readings (`_recent_share` reaches back to those
        when the window holds too few). Keeping all 256 of every spot held ~10 MB for a
        500-spot lot, filled over a quarter of an hour."""
        horizon = now_s - max(self.settings.debounce_s, 0.0)
        keep_sided = self.settings.settle_min_readings
        while self._window and self._window[0][0] < horizon:
            sided = self._window[0][1] != _BAND
            if sided and self._window_sided <= keep_sided:
                break
            self._window.popleft()
            self._window_sided -= sided

    def _start(self, kind: str, now_s: float) -> None:
        self._candidate = kind
        self._candidate_since = now_s
        self._for, self._against = 1, 0

    def _share(self) -> float:
        return self._for / (self._for + self._against)

    def _recent_share(self, now_s: float) -> float:
        # over the last debounce window, or the last `settle_min_readings` since the candidate
        # was first seen if the window holds fewer: an early run of contrary readings does not
        # weigh on the decision for ever, nor can a short run of wrong ones decide it
        s = self.settings
        since = [(t, k) for t, k in self._window if t >= self._candidate_since and k != _BAND]
        recent = [k for t, k in since if t >= now_s - s.debounce_s]
        needed = s.settle_min_readings if self.state != SpotState.UNKNOWN else 1
        if len(recent) < needed:
            if len(since) < needed:
                return 0.0
            recent = [k for _, k in since[-needed:]]
        return recent.count(self._candidate) / len(recent)

    def tick(self, now_s: float) -> SpotChange | None:
        """Time passes: a spot without a valid reading for `heartbeat_s` becomes UNKNOWN."""
        if self.state == SpotState.UNKNOWN:
            return None
        if self.last_valid_s is None or now_s - self.last_valid_s >= self.settings.heartbeat_s:
            self._candidate = None
            return self._change(SpotState.UNKNOWN, now_s, "stale")
        return None

    def _agreement(self, kind: str, now_s: float) -> float:
        horizon = now_s - max(self.settings.debounce_s, 0.0)
        recent = [k for t, k in self._window if t >= horizon] or [kind]
        score = sum(1.0 if k == kind else 0.5 if k == _BAND else 0.0 for k in recent)
        return round(score / len(recent), 2)

    def _change(self, new: SpotState, now_s: float, reason: str) -> SpotChange:
        previous = self.state
        self.state = new
        kind = _state_kind(new)
        self.confidence = self._agreement(kind, now_s) if kind else 0.0
        self._candidate = None
        return SpotChange(spot_id=self.spot_id, state=new, previous=previous,
                          distance_cm=self.distance_cm if kind else None,
                          confidence=self.confidence, at_s=now_s, reason=reason)


def _state_kind(state: SpotState) -> str | None:
    if state == SpotState.OCCUPIED:
        return _OCCUPIED
    if state == SpotState.AVAILABLE:
        return _FREE
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class LevelCount:
    """Free spaces on one level and where the figure came from."""

    level: str
    free: int
    source: str  # "sensors" | "counter"
    unknown_spots: int


def level_free_counts(
    spot_states: Mapping[str, Iterable[SpotState]],
    counter_free: Mapping[str, int],
) -> dict[str, LevelCount]:
    """Free spaces per level: from the sensors when every spot is known, else counter arithmetic.

    `spot_states` maps a level to the sensor states of its spots; `counter_free` maps a level to
    capacity minus open tickets (the counter-mode figure).
    """
    out: dict[str, LevelCount] = {}
    for level in sorted(set(spot_states) | set(counter_free)):
        states = list(spot_states.get(level, ()))
        unknown = sum(1 for st in states if st == SpotState.UNKNOWN)
        if states and unknown == 0:
            free = sum(1 for st in states if st == SpotState.AVAILABLE)
            out[level] = LevelCount(level=level, free=free, source="sensors", unknown_spots=0)
        else:
            out[level] = LevelCount(level=level, free=max(0, counter_free.get(level, 0)),
                                    source="counter", unknown_spots=unknown)
    return out

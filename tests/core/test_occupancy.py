"""Spot occupancy filter: threshold, hysteresis, debounce, confidence, staleness and fallback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.occupancy import (
    OccupancySettings,
    SpotOccupancyFilter,
    level_free_counts,
)
from appliance.core.types import SpotState

SETTINGS = OccupancySettings(occupied_below_cm=150, hysteresis_cm=20, debounce_s=3.0,
                             heartbeat_s=1800.0)


def feed(f: SpotOccupancyFilter, readings: list[tuple[float, int | None]]):
    return [c for t, d in readings if (c := f.observe(d, t)) is not None]


def test_starts_unknown_and_reports_after_the_debounce_window():
    f = SpotOccupancyFilter("A1", SETTINGS)
    assert f.state == SpotState.UNKNOWN
    changes = feed(f, [(0.0, 90), (1.0, 92), (2.9, 91)])
    assert changes == []
    (change,) = feed(f, [(3.0, 90)])
    assert change.state == SpotState.OCCUPIED
    assert change.previous == SpotState.UNKNOWN
    assert change.distance_cm == 90
    assert change.confidence == 1.0
    assert change.payload()["state"] == "OCCUPIED"


def test_a_short_blip_never_changes_the_state():
    f = SpotOccupancyFilter("A1", SETTINGS)
    feed(f, [(0.0, 400), (3.0, 400)])
    assert f.state == SpotState.AVAILABLE
    # a person walks past for 2 s: below threshold, then free again
    assert feed(f, [(10.0, 80), (11.0, 80), (12.0, 400), (13.0, 80), (15.5, 400)]) == []
    assert f.state == SpotState.AVAILABLE


def test_hysteresis_band_keeps_the_current_state():
    f = SpotOccupancyFilter("A1", SETTINGS)
    feed(f, [(0.0, 100), (3.0, 100)])
    assert f.state == SpotState.OCCUPIED
    # 150..170 is the band: an occupied spot stays occupied there however long
    assert feed(f, [(t, 165) for t in range(4, 20)]) == []
    assert f.state == SpotState.OCCUPIED
    (change,) = feed(f, [(20.0, 171), (23.0, 171)])
    assert change.state == SpotState.AVAILABLE
    # band readings after a free candidate started keep that candidate going
    f2 = SpotOccupancyFilter("A2", SETTINGS)
    feed(f2, [(0.0, 100), (3.0, 100)])
    (change2,) = feed(f2, [(10.0, 300), (11.0, 160), (13.0, 160)])
    assert change2.state == SpotState.AVAILABLE
    # window is the last 3 s before 13.0: readings at 10, 11, 13 -> (1 + 0.5 + 0.5) / 3
    assert change2.confidence == 0.67


def test_out_of_range_and_missing_readings_are_invalid_and_counted():
    f = SpotOccupancyFilter("A1", SETTINGS)
    assert feed(f, [(0.0, None), (1.0, 5), (2.0, 9999)]) == []
    assert f.invalid_readings == 3
    assert f.valid_readings == 0
    assert f.state == SpotState.UNKNOWN


def test_stale_sensor_goes_unknown_after_the_heartbeat():
    f = SpotOccupancyFilter("A1", SETTINGS)
    feed(f, [(0.0, 100), (3.0, 100)])
    assert f.tick(1802.9) is None
    # invalid readings do not keep a sensor alive
    assert f.observe(None, 1000.0) is None
    change = f.tick(1803.0)
    assert change is not None and change.state == SpotState.UNKNOWN
    assert change.reason == "stale" and change.distance_cm is None
    assert f.tick(5000.0) is None  # reported once
    (back,) = feed(f, [(6000.0, 400), (6003.0, 400)])
    assert back.state == SpotState.AVAILABLE and back.previous == SpotState.UNKNOWN


def test_settings_are_validated():
    with pytest.raises(ValueError, match="^hysteresis_cm: "):
        OccupancySettings(hysteresis_cm=-1)


def test_level_falls_back_to_counter_arithmetic_when_a_spot_is_unknown():
    states = {
        "L1": [SpotState.AVAILABLE, SpotState.OCCUPIED, SpotState.AVAILABLE],
        "L2": [SpotState.AVAILABLE, SpotState.UNKNOWN],
    }
    counts = level_free_counts(states, {"L1": 1, "L2": 0, "L3": 7})
    assert (counts["L1"].free, counts["L1"].source) == (2, "sensors")
    assert (counts["L2"].free, counts["L2"].source, counts["L2"].unknown_spots) == (0, "counter", 1)
    assert (counts["L3"].free, counts["L3"].source) == (7, "counter")


def test_stale_sensor_to_unknown_to_fallback_end_to_end():
    f1, f2 = SpotOccupancyFilter("S1", SETTINGS), SpotOccupancyFilter("S2", SETTINGS)
    for f in (f1, f2):
        feed(f, [(0.0, 400), (3.0, 400)])
    counts = level_free_counts({"L1": [f1.state, f2.state]}, {"L1": 1})
    assert (counts["L1"].free, counts["L1"].source) == (2, "sensors")
    f1.observe(400, 1000.0)  # S1 keeps reporting, S2 goes silent
    f1.tick(1803.5)
    f2.tick(1803.5)
    assert (f1.state, f2.state) == (SpotState.AVAILABLE, SpotState.UNKNOWN)
    counts = level_free_counts({"L1": [f1.state, f2.state]}, {"L1": 1})
    assert (counts["L1"].free, counts["L1"].source) == (1, "counter")


class _Unforgetting(SpotOccupancyFilter):
    """The filter as it was: every reading kept (up to 256), none dropped for age."""

    def _forget(self, now_s: float) -> None:
        pass


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0.05, 4.0), st.one_of(st.none(), st.integers(0, 800))),
                      min_size=1, max_size=300),
       debounce_s=st.sampled_from([0.0, 1.0, 3.0]), settle_min=st.sampled_from([1, 4, 16]))
def test_forgetting_old_readings_changes_no_decision(steps, debounce_s, settle_min):
    """A spot keeps only the readings a decision can still look at (the debounce window and
    the last `settle_min_readings`); over random readings at random gaps, every change and
    every confidence is what the filter that keeps them all gives."""
    cfg = OccupancySettings(occupied_below_cm=150, hysteresis_cm=20, debounce_s=debounce_s,
                            heartbeat_s=30.0, settle_min_readings=settle_min)
    lean, full = SpotOccupancyFilter("A1", cfg), _Unforgetting("A1", cfg)
    t = 0.0
    for gap, distance in steps:
        t += gap
        assert lean.observe(distance, t) == full.observe(distance, t)
        assert (lean.state, lean.confidence) == (full.state, full.confidence)


def test_a_spot_keeps_only_the_readings_a_decision_can_look_at():
    """A sensor read every 1.7 s (a 500-spot bus) for an hour: the filter holds the readings of
    its 3 s debounce window and the last `settle_min_readings`, not the last 256 (which, over
    500 spots, held ~10 MB)."""
    cfg = OccupancySettings(debounce_s=3.0, settle_min_readings=4)
    f = SpotOccupancyFilter("A1", cfg)
    for k in range(int(3600 / 1.7)):
        f.observe(90 if (k // 200) % 2 == 0 else 400, k * 1.7)  # a car every 11 min
        assert len(f._window) <= 4 + 1  # 4 sided ones, or those of the last 3 s (2)
    assert f.state == SpotState.OCCUPIED

"""Voting across a burst of frames."""

from __future__ import annotations

import pytest

from lpr.vote import vote


def test_majority_wins_with_agreement_weighted_confidence():
    result = vote([("ABC123", 0.9), ("ABC123", 0.8), ("A8C123", 0.95), (None, 0.0),
                   ("ABC123", 0.7)], min_confidence=0.4)
    assert result.plate == "ABC123"
    assert result.agreeing == 3
    assert result.frames == 5
    assert result.confidence == pytest.approx((0.9 + 0.8 + 0.7) / 5)


def test_one_good_frame_of_five_is_a_no_read_below_threshold():
    result = vote([("ABC123", 0.99), (None, 0.0), (None, 0.0), (None, 0.0), (None, 0.0)],
                  min_confidence=0.5)
    assert result.plate is None
    assert result.confidence == pytest.approx(0.99 / 5)


def test_unanimous_confident_burst_is_trusted():
    result = vote([("7XYZ123", 0.97)] * 5, min_confidence=0.9)
    assert result.plate == "7XYZ123"
    assert 0.9 < result.confidence <= 1.0


def test_empty_and_all_none_bursts_are_no_reads():
    assert vote([]).plate is None
    assert vote([(None, 0.0)] * 3).confidence == 0.0


def test_confidence_is_clamped_to_unit_interval():
    assert vote([("AB12", 1.7), ("AB12", -3.0)]).confidence == pytest.approx(0.5)

"""Allow/deny list matching with an edit-distance tolerance."""

from __future__ import annotations

import pytest

from lpr.lists import edit_distance, match_list


@pytest.mark.parametrize(("a", "b", "d"), [
    ("", "", 0), ("ABC", "", 3), ("ABC123", "ABC123", 0), ("ABC123", "A8C123", 1),
    ("ABC123", "ABC1234", 1), ("ABC123", "BC123", 1), ("ABC123", "CBA321", 4),
    ("KITTEN", "SITTING", 3),
])
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


PERMITS = ["ABC123", "7XYZ123", "KM55FGH"]


def test_exact_match_wins():
    m = match_list("ABC123", PERMITS, max_distance=1)
    assert (m.entry, m.distance) == ("ABC123", 0)


def test_one_misread_character_still_matches_within_tolerance():
    m = match_list("A8C123", PERMITS, max_distance=1)
    assert (m.entry, m.distance) == ("ABC123", 1)
    assert match_list("7XYZ12", PERMITS, max_distance=1).entry == "7XYZ123"


def test_outside_tolerance_or_zero_tolerance_is_no_match():
    assert match_list("A8C12", PERMITS, max_distance=1) is None
    assert match_list("A8C123", PERMITS, max_distance=0) is None
    assert match_list(None, PERMITS) is None
    assert match_list("ABC123", []) is None


def test_closest_entry_is_chosen():
    m = match_list("ABC124", ["ABD125", "ABC125"], max_distance=2)
    assert (m.entry, m.distance) == ("ABC125", 1)

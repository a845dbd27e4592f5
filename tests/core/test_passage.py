"""Passage counting from the arming/safety loop sequence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.passage import PassageCounter, PassageKind


def run(counter: PassageCounter, steps: list[tuple[str, bool]]):
    out = []
    for i, (loop, present) in enumerate(steps):
        p = counter.update(loop=loop, present=present, now_s=float(i))
        if p is not None:
            out.append(p.kind)
    return out


FORWARD = [("arming", True), ("safety", True), ("arming", False), ("safety", False)]


def test_a_forward_passage_is_counted_once():
    c = PassageCounter()
    assert run(c, FORWARD) == [PassageKind.PASSED]
    assert c.passed == 1


def test_a_car_backing_out_from_the_arming_loop_is_not_counted():
    c = PassageCounter()
    assert run(c, [("arming", True), ("arming", False)]) == [PassageKind.BACKED_OUT]
    assert (c.passed, c.backed_out) == (0, 1)


def test_a_car_backing_out_from_under_the_barrier_is_not_counted():
    c = PassageCounter()
    steps = [("arming", True), ("safety", True), ("arming", False),  # nose past the barrier
             ("arming", True), ("safety", False), ("arming", False)]  # reverses out
    assert run(c, steps) == [PassageKind.BACKED_OUT]
    assert c.passed == 0


def test_a_wrong_way_vehicle_is_not_counted_as_a_passage():
    c = PassageCounter()
    steps = [("safety", True), ("arming", True), ("safety", False), ("arming", False)]
    assert run(c, steps) == [PassageKind.WRONG_WAY]
    assert c.passed == 0 and c.wrong_way == 1


def test_a_wobbling_car_that_finally_drives_through_counts_once():
    c = PassageCounter()
    steps = [("arming", True), ("safety", True), ("arming", False), ("arming", True),
             ("arming", False), ("safety", False)]
    assert run(c, steps) == [PassageKind.PASSED]


def test_unknown_loop_name_is_rejected():
    with pytest.raises(ValueError, match="^loop: "):
        PassageCounter().update(loop="exit", present=True, now_s=0.0)


@given(st.lists(st.tuples(st.sampled_from(["arming", "safety"]), st.booleans()), max_size=60))
def test_passed_never_exceeds_the_number_of_forward_sequences(steps):
    c = PassageCounter()
    kinds = run(c, steps)
    # every counted passage ends with the safety loop clearing while the arming loop is clear
    clears_from_safety_only = 0
    arming = safety = False
    for loop, present in steps:
        before = (arming, safety)
        if loop == "arming":
            arming = present
        else:
            safety = present
        if before == (False, True) and (arming, safety) == (False, False):
            clears_from_safety_only += 1
    assert c.passed == kinds.count(PassageKind.PASSED) <= clears_from_safety_only

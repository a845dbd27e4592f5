"""The lane state machine follows its transition table."""

from __future__ import annotations

from appliance.core.lane import (
    ArmingCleared,
    ArmingOccupied,
    CloseGate,
    Decide,
    Decided,
    LaneMachine,
    LaneState,
    Note,
    OpenGate,
    PlateRead,
    ReadPlate,
    SafetyCleared,
    SafetyOccupied,
    ShowRefusal,
    Tick,
)


def test_happy_path_entry():
    m = LaneMachine()
    assert m.step(ArmingOccupied(), 0.0) == [ReadPlate()]
    assert m.step(PlateRead("ABC123", 0.9), 0.1) == [Decide("ABC123", 0.9)]
    assert m.step(Decided(True, "entry", "T1"), 0.2) == [OpenGate("entry", "T1")]
    assert m.step(SafetyOccupied(), 0.5) == []
    assert m.state == LaneState.PASSING
    assert m.step(ArmingCleared(), 0.7) == []
    assert m.step(SafetyCleared(), 1.0) == [CloseGate(), Note("passed", "T1")]
    assert m.state == LaneState.IDLE


def test_back_out_before_read_is_not_a_passage():
    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    assert m.step(ArmingCleared(), 1) == [Note("backed_out")]
    assert m.state == LaneState.IDLE


def test_back_out_after_gate_opened_closes_gate():
    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0), 0)
    m.step(Decided(True, "entry", "T9"), 0)
    assert m.step(ArmingCleared(), 1) == [CloseGate(), Note("backed_out", "T9")]


def test_identify_timeout_falls_back_to_ticket():
    m = LaneMachine(identify_timeout_s=3)
    m.step(ArmingOccupied(), 10)
    assert m.step(Tick(), 12.9) == []
    assert m.step(Tick(), 13.0) == [Decide(None, 0.0)]


def test_refusal_waits_for_vehicle_to_leave():
    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0), 0)
    assert m.step(Decided(False, "FULL"), 0) == [ShowRefusal("FULL")]
    assert m.state == LaneState.REFUSED
    m.step(ArmingCleared(), 2)
    assert m.state == LaneState.IDLE


def test_open_timeout_closes_gate():
    m = LaneMachine(open_timeout_s=30)
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0), 0)
    m.step(Decided(True, "entry", "T2"), 0)
    assert m.step(Tick(), 29) == []
    assert m.step(Tick(), 30) == [CloseGate(), Note("no_passage", "T2")]


def test_next_car_waiting_is_identified_immediately():
    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("A", 1.0), 0)
    m.step(Decided(True, "entry", "T1"), 0)
    m.step(SafetyOccupied(), 0)
    m.step(ArmingCleared(), 0)
    m.step(ArmingOccupied(), 0)  # next car pulls up while the first is under the barrier
    cmds = m.step(SafetyCleared(), 0)
    assert cmds == [CloseGate(), Note("passed", "T1"), ReadPlate()]
    assert m.state == LaneState.IDENTIFYING


def test_entry_vehicle_gone_before_the_decision_gets_no_gate_and_its_ticket_is_backed_out():
    m = LaneMachine(entry=True)
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0), 0.1)
    assert m.step(ArmingCleared(), 0.2) == []  # the driver reverses away while deciding
    assert m.step(Decided(True, "entry", "T5"), 0.4) == [Note("backed_out", "T5")]
    assert m.state == LaneState.IDLE and m.ticket_id is None
    # the next car starts afresh
    assert m.step(ArmingOccupied(), 1.0) == [ReadPlate()]


def test_entry_vehicle_already_under_the_barrier_gets_its_gate():
    m = LaneMachine(entry=True)
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0), 0.1)
    m.step(SafetyOccupied(), 0.2)  # a long vehicle crept forward onto the safety loop
    m.step(ArmingCleared(), 0.3)
    assert m.step(Decided(True, "entry", "T6"), 0.4) == [OpenGate("entry", "T6")]


def test_exit_opens_even_if_the_vehicle_left_while_deciding():
    m = LaneMachine()  # an exit: its ticket is closed and charged already
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0), 0.1)
    m.step(ArmingCleared(), 0.2)
    assert m.step(Decided(True, "exit", "T7"), 0.4) == [OpenGate("exit", "T7")]

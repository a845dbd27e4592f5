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
    assert m.step(ArmingOccupied(), 0.0) == [ReadPlate(1)]
    assert m.step(PlateRead("ABC123", 0.9, 1), 0.1) == [Decide("ABC123", 0.9, 1)]
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
    m.step(PlateRead("X", 1.0, 1), 0)
    m.step(Decided(True, "entry", "T9"), 0)
    assert m.step(ArmingCleared(), 1) == [CloseGate(), Note("backed_out", "T9")]


def test_identify_timeout_falls_back_to_ticket():
    m = LaneMachine(identify_timeout_s=3)
    m.step(ArmingOccupied(), 10)
    assert m.step(Tick(), 12.9) == []
    assert m.step(Tick(), 13.0) == [Decide(None, 0.0, 1)]


def test_refusal_waits_for_vehicle_to_leave():
    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0, 1), 0)
    assert m.step(Decided(False, "FULL"), 0) == [ShowRefusal("FULL")]
    assert m.state == LaneState.REFUSED
    m.step(ArmingCleared(), 2)
    assert m.state == LaneState.IDLE


def test_open_timeout_closes_gate():
    m = LaneMachine(open_timeout_s=30)
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0, 1), 0)
    m.step(Decided(True, "entry", "T2"), 0)
    assert m.step(Tick(), 29) == []
    assert m.step(Tick(), 30) == [CloseGate(), Note("no_passage", "T2")]


def test_next_car_waiting_is_identified_immediately():
    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("A", 1.0, 1), 0)
    m.step(Decided(True, "entry", "T1"), 0)
    m.step(SafetyOccupied(), 0)
    m.step(ArmingCleared(), 0)
    m.step(ArmingOccupied(), 0)  # next car pulls up while the first is under the barrier
    cmds = m.step(SafetyCleared(), 0)
    assert cmds == [CloseGate(), Note("passed", "T1"), ReadPlate(2)]
    assert m.state == LaneState.IDENTIFYING


def test_entry_vehicle_gone_before_the_decision_gets_no_gate_and_its_ticket_is_backed_out():
    m = LaneMachine(entry=True)
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0, 1), 0.1)
    assert m.step(ArmingCleared(), 0.2) == []  # the driver reverses away while deciding
    assert m.step(Decided(True, "entry", "T5"), 0.4) == [Note("backed_out", "T5")]
    assert m.state == LaneState.IDLE and m.ticket_id is None
    # the next car starts afresh
    assert m.step(ArmingOccupied(), 1.0) == [ReadPlate(2)]


def test_entry_vehicle_already_under_the_barrier_gets_its_gate():
    m = LaneMachine(entry=True)
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0, 1), 0.1)
    m.step(SafetyOccupied(), 0.2)  # a long vehicle crept forward onto the safety loop
    m.step(ArmingCleared(), 0.3)
    assert m.step(Decided(True, "entry", "T6"), 0.4) == [OpenGate("entry", "T6")]


def test_exit_opens_even_if_the_vehicle_left_while_deciding():
    m = LaneMachine()  # an exit: its ticket is closed and charged already
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0, 1), 0.1)
    m.step(ArmingCleared(), 0.2)
    assert m.step(Decided(True, "exit", "T7"), 0.4) == [OpenGate("exit", "T7")]


def test_a_late_read_is_discarded_and_never_taken_for_the_next_vehicle():
    m = LaneMachine(identify_timeout_s=3)
    assert m.step(ArmingOccupied(), 0) == [ReadPlate(1)]
    assert m.step(Tick(), 3.0) == [Decide(None, 0.0, 1)]  # car 1's read is slow: ticket path
    m.step(Decided(True, "entry", "T1"), 3.1)
    m.step(SafetyOccupied(), 4)
    m.step(ArmingCleared(), 4.5)
    m.step(ArmingOccupied(), 5)  # car 2 pulls up behind
    assert m.step(SafetyCleared(), 6) == [CloseGate(), Note("passed", "T1"), ReadPlate(2)]
    # car 1's read finishes now, while car 2 is being identified: not car 2's plate
    assert m.step(PlateRead("CAR1", 0.99, 1), 6.1) == [Note("read_discarded")]
    assert m.state == LaneState.IDENTIFYING
    assert m.step(PlateRead("CAR2", 0.95, 2), 6.3) == [Decide("CAR2", 0.95, 2)]


def test_a_read_after_its_vehicle_backed_out_is_discarded():
    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    m.step(ArmingCleared(), 1)  # gone before the read finished
    m.step(ArmingOccupied(), 2)
    assert m.step(PlateRead("GONE", 0.9, 1), 2.1) == [Note("read_discarded")]
    assert m.step(PlateRead("HERE", 0.9, 2), 2.2) == [Decide("HERE", 0.9, 2)]


def _drive(read_delays: list[float], gaps: list[float]) -> tuple[list[tuple[str, str | None]], int]:
    """A lane served car after car; car i's plate read takes read_delays[i] s and car i+1
    pulls up gaps[i] s after car i left the arming loop. Returns (car plate, plate decided on)
    for every decision, and how many reads were discarded."""
    import heapq

    m = LaneMachine(identify_timeout_s=3.0)
    plates = [f"CAR{i:03d}" for i in range(len(read_delays))]
    queue: list[tuple[float, int, object, int | None]] = []
    order = 0

    def at(t: float, what: object, car: int | None = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (t, order, what, car))

    at(0.0, ArmingOccupied(), 0)
    at_arming: int | None = None
    presence_car: dict[int, int] = {}
    decided: list[tuple[str, str | None]] = []
    discarded = 0
    t = 0.0
    while queue and t < 10_000:
        t, _, event, car = heapq.heappop(queue)
        if isinstance(event, ArmingOccupied):
            at_arming = car
        elif isinstance(event, ArmingCleared):
            at_arming = None
            if car is not None and car + 1 < len(plates):
                at(t + gaps[car], ArmingOccupied(), car + 1)
        for cmd in m.step(event, t):
            match cmd:
                case ReadPlate(presence=p):
                    presence_car[p] = at_arming
                    at(t + read_delays[at_arming], PlateRead(plates[at_arming], 0.9, p))
                case Decide(plate=plate, presence=p):
                    decided.append((plates[presence_car[p]], plate))
                    at(t + 0.01, Decided(True, "entry", f"T{p}"))
                case OpenGate():
                    who = at_arming
                    at(t + 0.2, SafetyOccupied())
                    at(t + 0.3, ArmingCleared(), who)
                    at(t + 0.8, SafetyCleared())
                case Note(what="read_discarded"):
                    discarded += 1
        if m.state in (LaneState.IDENTIFYING, LaneState.OPEN):
            at(t + 0.1, Tick())
    return decided, discarded


def test_every_decision_uses_its_own_vehicles_read_whatever_the_timings():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.floats(0.0, 6.0), st.floats(0.05, 2.0)), min_size=1,
                    max_size=12))
    def check(cars):
        decided, _ = _drive([d for d, _ in cars], [g for _, g in cars])
        assert len(decided) == len(cars)  # every car was decided once
        for own, used in decided:
            assert used in (own, None)  # its own plate, or the ticket path; never another's

    check()


def test_slow_reads_are_discarded_rather_than_given_to_the_next_car():
    decided, discarded = _drive([4.0, 0.1, 0.1], [0.1, 0.1, 0.1])
    assert decided == [("CAR000", None), ("CAR001", "CAR001"), ("CAR002", "CAR002")]
    assert discarded == 1


def test_releasing_a_hold_on_an_idle_lane_closes_the_gate():
    from appliance.core.lane import HoldReleased

    m = LaneMachine()
    assert m.step(HoldReleased(), 0) == [CloseGate()]
    assert m.state == LaneState.IDLE


def test_releasing_a_hold_over_a_vehicle_closes_once_the_safety_loop_clears():
    from appliance.core.lane import HoldReleased

    m = LaneMachine()
    assert m.step(SafetyOccupied(), 0) == [Note("safety_loop_out_of_turn")]
    assert m.step(HoldReleased(), 1) == []
    assert m.step(SafetyCleared(), 2) == [CloseGate()]
    assert m.step(SafetyCleared(), 3) == []  # once


def test_releasing_a_hold_mid_cycle_leaves_the_closing_to_that_cycle():
    from appliance.core.lane import HoldReleased

    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    m.step(PlateRead("X", 1.0, 1), 0)
    m.step(Decided(True, "entry", "T1"), 0)
    assert m.step(HoldReleased(), 1) == []
    m.step(SafetyOccupied(), 2)
    m.step(ArmingCleared(), 2.5)
    assert m.step(SafetyCleared(), 3) == [CloseGate(), Note("passed", "T1")]


def test_releasing_a_hold_while_a_car_is_identified_closes_in_front_of_it():
    from appliance.core.lane import HoldReleased

    m = LaneMachine()
    m.step(ArmingOccupied(), 0)
    assert m.step(HoldReleased(), 1) == [CloseGate()]
    assert m.state == LaneState.IDENTIFYING  # its read and decision go on as usual


def test_a_refused_close_is_done_once_the_safety_loop_clears():
    from appliance.core.lane import CloseRefused

    m = LaneMachine()
    assert m.step(CloseRefused(), 0) == []  # a raw contact under the barrier, not debounced
    assert m.step(SafetyOccupied(), 0.1) == [Note("safety_loop_out_of_turn")]
    assert m.step(SafetyCleared(), 1) == [CloseGate()]

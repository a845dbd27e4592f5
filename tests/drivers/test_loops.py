"""Loop detectors on gpiozero MockFactory pins: debounce, passage counting, stuck/dead faults."""

from __future__ import annotations

import time

from gpiozero.pins.mock import MockFactory

from appliance.core.passage import PassageKind
from drivers.health import FaultChange, HealthRegistry
from drivers.lane_loops import LaneLoops
from drivers.loop_faults import LoopFaultMonitor
from drivers.loops import LoopDetector, LoopEdge, SimulatedLoop
from tests.drivers.helpers import settle


async def test_flapping_contact_shorter_than_the_window_never_makes_an_edge():
    factory = MockFactory()
    health = HealthRegistry()
    loop_det = LoopDetector("in/arming", 4, pin_factory=factory, debounce_ms=200, health=health)
    edges: list[LoopEdge] = []
    loop_det.on_edge(edges.append)
    contact = SimulatedLoop(factory, 4)
    for _ in range(20):
        contact.occupy()
        await settle(0.002)
        contact.clear()
        await settle(0.01)
    await settle(0.25)
    assert edges == []
    assert loop_det.present is False
    assert loop_det.glitches == 20
    started = time.monotonic_ns()
    contact.occupy()
    await settle(0.3)
    assert [e.present for e in edges] == [True]
    assert edges[0].raw_ns >= started
    assert edges[0].stable_ns - edges[0].raw_ns >= 200_000_000  # held for the whole window
    snap = health.snapshot()["devices"][0]
    assert snap["state"] == "present" and snap["counters"] == {"glitches": 20, "edges": 1}
    loop_det.close()


async def test_active_low_contact_with_pull_up():
    factory = MockFactory()
    det = LoopDetector("in/safety", 17, pin_factory=factory, debounce_ms=0, active_low=True)
    contact = SimulatedLoop(factory, 17, active_low=True)
    contact.clear()
    await settle()
    assert det.present is False
    contact.occupy()
    await settle()
    assert det.present is True and det.raw_active is True
    det.close()


async def drive(arming: SimulatedLoop, safety: SimulatedLoop, steps: str) -> None:
    # steps: 'A'/'a' arming occupy/clear, 'S'/'s' safety occupy/clear
    for step in steps:
        loop, occupy = (arming if step in "Aa" else safety), step.isupper()
        loop.occupy() if occupy else loop.clear()
        await settle(0.004)


async def test_a_car_backing_out_is_not_counted():
    factory = MockFactory()
    health = HealthRegistry()
    arming = LoopDetector("in/arming", 4, pin_factory=factory, debounce_ms=1)
    safety = LoopDetector("in/safety", 17, pin_factory=factory, debounce_ms=1)
    lane = LaneLoops("in", arming, safety, health=health)
    kinds: list[PassageKind] = []
    lane.on_passage(lambda p: kinds.append(p.kind))
    a, s = SimulatedLoop(factory, 4), SimulatedLoop(factory, 17)
    await drive(a, s, "ASas")  # drives through
    await drive(a, s, "Aa")  # backs out at the arming loop
    await drive(a, s, "ASaAsa")  # nose under the barrier, then reverses out
    await drive(a, s, "ASas")
    assert kinds == [PassageKind.PASSED, PassageKind.BACKED_OUT, PassageKind.BACKED_OUT,
                     PassageKind.PASSED]
    assert lane.counter.passed == 2


def test_stuck_and_dead_loop_monitor():
    m = LoopFaultMonitor(stuck_after_s=60, dead_after_s=3600, dead_min_edges=3)
    assert m.edge(True, 100.0) == []
    assert m.check(159.0) == []
    (stuck,) = m.check(160.0)
    assert (stuck.code, stuck.active) == ("stuck", True)
    assert m.check(500.0) == []  # raised once
    (cleared,) = m.edge(False, 600.0)
    assert (cleared.code, cleared.active) == ("stuck", False)
    # an hour without an edge is only "dead" if the lane had traffic meanwhile
    assert m.check(4300.0) == []
    for _ in range(3):
        m.lane_traffic()
    (dead,) = m.check(4300.0)
    assert (dead.code, dead.active) == ("dead", True)
    (alive,) = m.edge(True, 4400.0)
    assert (alive.code, alive.active) == ("dead", False)


async def test_lane_loops_report_stuck_loop_faults_to_health():
    factory = MockFactory()
    health = HealthRegistry()
    faults: list[FaultChange] = []
    health.on_fault(faults.append)
    arming = LoopDetector("in/arming", 4, pin_factory=factory, debounce_ms=0)
    safety = LoopDetector("in/safety", 17, pin_factory=factory, debounce_ms=0)
    lane = LaneLoops("in", arming, safety, health=health, stuck_after_s=0.05, dead_after_s=0.05,
                     dead_min_edges=2)
    a, s = SimulatedLoop(factory, 4), SimulatedLoop(factory, 17)
    a.occupy()
    await settle(0.08)
    lane.check()
    a.clear()
    await settle()
    s.occupy()
    await settle()
    s.clear()
    await settle(0.08)
    lane.check()
    got = [(f.device, f.code, f.active) for f in faults]
    assert ("in/arming", "loop_stuck", True) in got
    assert ("in/arming", "loop_stuck", False) in got
    # the arming loop saw no edge for 0.05 s while the safety loop saw two
    assert ("in/arming", "loop_dead", True) in got


async def test_fail_safe_wiring_reads_a_cut_wire_as_a_vehicle():
    factory = MockFactory()
    det = LoopDetector("in/safety", 17, pin_factory=factory, debounce_ms=0, fail_safe=True)
    pin = factory.pin(17)
    assert pin.pull == "up"
    pin.drive_low()  # NC contact closed to ground: no vehicle
    await settle()
    assert det.present is False
    pin.drive_high()  # contact open: a vehicle, or the wire was cut, or the detector died
    await settle()
    assert det.present is True
    det.close()

"""Releasing a hold closes the barrier: at once when the safety loop is clear, else once the
vehicle under it has cleared; the lane is IDLE with its gate closed either way (the running
lane: real loops on mock pins, the real ledger)."""

from __future__ import annotations

import asyncio
import json

from appliance.lot import commands
from drivers.loops import SimulatedLoop
from tests.conftest import RunningService


async def _wait(predicate, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def _entry(running: RunningService):
    lane = next(ln for ln in running.cfg.lanes if ln.direction == "entry")
    controller = running.service.lanes[lane.id]
    return lane, controller


async def test_releasing_a_hold_closes_the_gate_when_the_safety_loop_is_clear(counter_lot):
    async with RunningService(counter_lot) as running:
        lane, controller = _entry(running)
        await commands.hold_open(running.service.runtime, lane.id, hold=True, attendant="sue",
                                 reason="concert")
        await _wait(lambda: controller.gate.is_open)
        await commands.hold_open(running.service.runtime, lane.id, hold=False,
                                 attendant="sue", reason="concert over")
        await _wait(lambda: not controller.gate.is_open)
        snap = controller.snapshot()
        assert snap["state"] == "IDLE" and not snap["gate_open"] and not snap["held_open"]
        rows = await running.service.ledger.fetchall(
            "SELECT payload FROM events WHERE type = 'gate.close_commanded'")
        assert [json.loads(r[0])["lane"] for r in rows] == [lane.id]


async def test_releasing_a_hold_over_a_vehicle_closes_once_it_has_cleared(counter_lot):
    async with RunningService(counter_lot) as running:
        lane, controller = _entry(running)
        controller.gate.auto_close_s = None  # the lane, not the driver's timer, must close it
        safety = SimulatedLoop(running.service.pin_factory, lane.safety_loop_pin)
        await commands.hold_open(running.service.runtime, lane.id, hold=True, attendant="sue",
                                 reason="event")
        safety.occupy()
        await _wait(lambda: controller.safety.present)
        await commands.hold_open(running.service.runtime, lane.id, hold=False,
                                 attendant="sue", reason="event over")
        await asyncio.sleep(0.3)
        assert controller.gate.is_open  # never down on a car
        safety.clear()
        await _wait(lambda: not controller.gate.is_open)
        snap = controller.snapshot()
        assert snap["state"] == "IDLE" and not snap["gate_open"]


async def test_a_hand_close_over_a_car_not_yet_debounced_is_refused_and_recorded(counter_lot):
    async with RunningService(counter_lot) as running:
        lane, controller = _entry(running)
        runtime = running.service.runtime
        await commands.open_gate(runtime, lane.id, attendant="ann", reason="ticket jam")
        await _wait(lambda: controller.gate.is_open)
        safety = SimulatedLoop(running.service.pin_factory, lane.safety_loop_pin)
        safety.occupy()  # the contact is made; its debounce has not run yet (no await since)
        assert controller.gate.vehicle_under and not controller.safety.present
        try:
            await commands.close_gate(runtime, lane.id, attendant="ann")
        except commands.ConflictError as err:
            assert "safety loop" in str(err)
        else:
            raise AssertionError("closed over a car")
        assert controller.gate.is_open
        rows = await running.service.ledger.fetchall(
            "SELECT type FROM events WHERE type LIKE 'gate.%close%' ORDER BY seq")
        assert [r[0] for r in rows] == ["gate.close_refused"]  # no manual_close written
        safety.clear()

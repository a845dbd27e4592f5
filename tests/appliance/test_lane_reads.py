"""A plate read belongs to the car it was taken for, in the running lane (real loops on mock
pins, the real ledger): a read that finishes late is discarded, counted, never given to the
next car."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from drivers.loops import SimulatedLoop
from lpr.source import PlateResult
from tests.conftest import RunningService


class ScriptedCamera:
    """A camera whose reads take the scripted time and return the scripted plate, in order."""

    def __init__(self, script: list[tuple[str, float]]) -> None:
        self.script = list(script)

    async def read(self, lane_id: str) -> PlateResult:
        plate, delay_s = self.script.pop(0)
        await asyncio.sleep(delay_s)
        return PlateResult(plate=plate, confidence=0.95)


async def _drive_through(arming: SimulatedLoop, safety: SimulatedLoop) -> None:
    """A car under the open barrier: onto the safety loop, off the arming loop, gone."""
    safety.occupy()
    await asyncio.sleep(0.1)
    arming.clear()
    await asyncio.sleep(0.1)
    safety.clear()


async def _wait(predicate, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_a_slow_read_is_not_taken_for_the_next_car(counter_lot):
    running = RunningService(counter_lot)
    camera = ScriptedCamera([("CAR1", 2.0), ("CAR2", 1.0)])
    running.service.plates = camera
    async with running:
        service = running.service
        lane = next(ln for ln in counter_lot.lanes if ln.direction == "entry")
        controller = service.lanes[lane.id]
        controller.plates = camera
        controller.machine.identify_timeout_s = 0.6
        arming = SimulatedLoop(service.pin_factory, lane.arming_loop_pin)
        safety = SimulatedLoop(service.pin_factory, lane.safety_loop_pin)
        # car 1: its read is slow, the lane falls back to a ticket after 0.6 s and opens
        arming.occupy()
        await _wait(lambda: controller.gate.is_open)
        await _drive_through(arming, safety)
        await asyncio.sleep(0.1)
        # car 2 pulls up; car 1's read finishes while car 2 is being identified
        controller.machine.identify_timeout_s = 3.0
        arming.occupy()
        await _wait(lambda: controller.stats.vehicles_passed == 1 and controller.gate.is_open)
        await _drive_through(arming, safety)
        await _wait(lambda: controller.stats.vehicles_passed == 2)
        rows = await service.ledger.fetchall(
            "SELECT payload FROM events WHERE type = 'ticket.issued' ORDER BY seq")
        plates = [json.loads(r[0]).get("plate") for r in rows]
        assert plates == [None, "CAR2"], plates
        assert controller.stats.reads_discarded == 1


async def test_lane_facts_carry_the_time_they_happened_not_their_batch_write(counter_lot):
    from appliance.lot.report import hourly

    running = RunningService(counter_lot)
    camera = ScriptedCamera([("CAR7", 0.3)])
    async with running:
        service = running.service
        lane = next(ln for ln in counter_lot.lanes if ln.direction == "entry")
        controller = service.lanes[lane.id]
        controller.plates = camera
        arming = SimulatedLoop(service.pin_factory, lane.arming_loop_pin)
        safety = SimulatedLoop(service.pin_factory, lane.safety_loop_pin)
        arming.occupy()
        await _wait(lambda: controller.gate.is_open)
        await _drive_through(arming, safety)
        await _wait(lambda: controller.stats.vehicles_passed == 1)
        await asyncio.sleep(0.3)  # let the recorder's batch land
        rows = [dict(r) for r in await service.ledger.fetchall(
            "SELECT seq, type, ts_utc, payload FROM events ORDER BY seq")]
        report = await hourly(service.ledger)
    for r in rows:
        r["payload"] = json.loads(r["payload"])
    read = next(r for r in rows if r["type"] == "lane.plate_read")
    opened = next(r for r in rows if r["type"] == "gate.commanded"
                  and r["payload"]["command"] == "open")
    deciding = next(r for r in rows if r["type"] == "lane.transition"
                    and r["payload"]["to"] == "DECIDING")
    assert read["payload"]["plate"] == "CAR7" and read["payload"]["read_ms"] >= 250
    # written in batches after the gate opened, yet stamped when they happened: before it
    assert read["payload"]["fact_mono_ns"] <= opened["payload"]["fact_mono_ns"]
    assert deciding["payload"]["fact_mono_ns"] <= opened["payload"]["fact_mono_ns"]
    for r in (read, opened, deciding):  # the fact is never after its write
        happened = datetime.fromisoformat(r["payload"]["fact_utc"])
        assert happened <= datetime.fromisoformat(r["ts_utc"]) + timedelta(milliseconds=5)
        assert datetime.fromisoformat(r["payload"]["fact_local"]) == happened
    assert sum(row["plate_reads"] for row in report) == 1
    assert all(row["read_ms_avg"] is None or row["read_ms_avg"] >= 250 for row in report)

"""Outages: a dead camera, a full disk, a stepped wall clock and a spot-sensor bus pulled out
each keep the gates working.

Covered elsewhere (not repeated here): payment terminal down or hanging
(tests/appliance/test_tickets.py), the spot-sensor driver's reopen backoff and counter fallback
(tests/drivers/test_spot_sensors.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from datetime import timedelta

import pytest

from appliance.clock import SimClock
from appliance.config import load_config
from appliance.service import Service
from drivers.loops import SimulatedLoop
from lpr.camera_source import CameraPlates
from lpr.capture import CameraError
from lpr.source import PlateResult
from tests.conftest import write_lot


class SteppedClock(SimClock):
    """A wall clock that NTP steps (monotonic time is untouched), as on a Pi without an RTC."""

    def __init__(self) -> None:
        super().__init__(speed=1.0)
        self.step_s = 0.0

    def now(self):
        """Wall time including every step so far."""
        return super().now() + timedelta(seconds=self.step_s)


async def _pass(service: Service, lane_id: str, plate: str | None, *,
                ticket: str | None = None, timeout_s: float = 8.0) -> bool:
    """Drive one car over a lane's loops; True when the barrier opened for it."""
    lane = service.cfg.lane(lane_id)
    arming = SimulatedLoop(service.pin_factory, lane.arming_loop_pin)
    safety = SimulatedLoop(service.pin_factory, lane.safety_loop_pin)
    gate = service.lanes[lane_id].gate  # up or down whatever the relay's wiring
    service.plates_sim.present(lane_id, PlateResult(plate=plate, confidence=0.95 if plate else 0))
    if ticket:
        service.scanner.present(lane_id, ticket)
    try:
        arming.occupy()
        deadline = time.monotonic() + timeout_s
        while not gate.is_open and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        opened = gate.is_open
        if opened:
            safety.occupy()
            await asyncio.sleep(0.03)
        arming.clear()
        await asyncio.sleep(0.03)
        safety.clear()
        while gate.is_open and time.monotonic() < deadline + 2:
            await asyncio.sleep(0.005)
        return opened
    finally:
        service.plates_sim.leave(lane_id)
        service.scanner.leave(lane_id)


async def _running(cfg, **kwargs):
    service = Service(cfg, simulate=True, api=False, **kwargs)
    service.plates_sim = getattr(service.plates, "sim", service.plates)
    await service.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    return service, stop, task


async def test_dead_camera_reports_a_fault_and_cars_still_enter_as_no_reads(tmp_path):
    cfg = load_config(write_lot(tmp_path))
    faults: list[tuple[str, CameraError]] = []
    plates = CameraPlates(cfg.lpr, {"in-1": f"dir:{tmp_path / 'no-such-camera'}"},
                          storage_dir=tmp_path / "lpr",
                          on_fault=lambda lane, err: faults.append((lane, err)))
    plates.start()
    service, stop, task = await _running(cfg, plates=plates)
    try:
        assert await _pass(service, "in-1", "ABC1234")  # the camera shows nothing
        assert await _pass(service, "in-2", "XYZ9876")  # the other lane reads as usual
    finally:
        stop.set()
        await task
        plates.close()
    rows = await service.ledger.fetchall(
        "SELECT entry_lane, plate FROM tickets ORDER BY entry_seq")
    await service.stop()
    assert [(r["entry_lane"], r["plate"]) for r in rows] == [("in-1", None), ("in-2", "XYZ9876")]
    assert faults and faults[0][0] == "in-1"


@pytest.mark.parametrize("step_s", [3600.0, -3600.0])
async def test_wall_clock_stepped_an_hour_never_traps_a_car(tmp_path, step_s):
    cfg = load_config(write_lot(tmp_path))
    clock = SteppedClock()
    service, stop, task = await _running(cfg, clock=clock)
    try:
        assert await _pass(service, "in-1", "STEP001")
        clock.step_s = step_s  # NTP corrects the wall clock while the car is parked
        assert await _pass(service, "out-1", "STEP001")
        rows = await service.ledger.fetchall("SELECT status, fee_cents FROM tickets")
        events = await service.ledger.fetchall(
            "SELECT type, mono_ns FROM events WHERE type IN ('ticket.issued', 'ticket.closed') "
            "ORDER BY seq")
    finally:
        stop.set()
        await task
        await service.stop()
    assert [r["status"] for r in rows] == ["CLOSED"]
    # the ledger records both clocks: the monotonic one still runs forward across the step
    assert [e["type"] for e in events] == ["ticket.issued", "ticket.closed"]
    assert events[1]["mono_ns"] > events[0]["mono_ns"]
    # the stay is measured on the monotonic clock: a step either way neither adds nor removes
    # parked time, so this short stay stays inside the grace period
    assert rows[0]["fee_cents"] == 0


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("needs root to mount a small tmpfs")  # CI runs as root: it mounts
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_full_disk_keeps_gates_opening_and_the_ledger_sound(tmp_path, tiny_disk):
    path = write_lot(tmp_path)
    path.write_text(path.read_text().replace(str(tmp_path / "var"), str(tiny_disk / "var")))
    cfg = load_config(path)
    service, stop, task = await _running(cfg)
    try:
        assert await _pass(service, "in-1", "FULL001")
        filler = tiny_disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # something else fills the disk
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        opened = [await _pass(service, "in-2", f"FULL{i:03d}") for i in range(2, 5)]
        # nothing can be written, yet the attendant sees it at once (health and alarm list)
        during = service.late.status()
        live = service.late.live_alarm()
        filler.unlink()
        for _ in range(100):  # the service writes what it held as soon as it can
            if not service.late.pending:
                break
            await asyncio.sleep(0.1)
        assert await _pass(service, "in-1", "FULL009")  # room again: tickets resume
    finally:
        stop.set()
        await task
    verify = await service.ledger.verify()
    late = [json.loads(r["payload"]) for r in await service.ledger.fetchall(
        "SELECT payload FROM events WHERE type = 'ledger.late_record' ORDER BY seq")]
    alarm = await service.ledger.fetchall(
        "SELECT * FROM alarms WHERE code = 'ledger_unwritable'")
    plates = [r["plate"] for r in await service.ledger.fetchall(
        "SELECT plate FROM tickets ORDER BY entry_seq")]
    await service.stop()
    assert opened == [True, True, True]  # a full disk never traps a car
    assert verify.ok, verify.problems[:5]
    assert not during["writable"] and during["unrecorded"] >= 3
    assert live is not None and live["severity"] == "critical"
    # the cars went through without tickets, and ticketing resumed once there was room again
    assert plates == ["FULL001", "FULL009"]
    # what happened meanwhile was written late, with its original time, and an alarm raised
    failed = [f["payload"]["plate"] for f in late if f["type"] == "lane.decision_failed"]
    assert failed == ["FULL002", "FULL003", "FULL004"]
    assert all(f["error"] and f["happened_utc"] for f in late)
    assert len(alarm) == 1 and alarm[0]["severity"] == "critical"
    assert "3 cars passed without a ticket" in alarm[0]["detail"]


async def test_a_nearly_full_data_disk_raises_an_alarm_before_writes_fail(tmp_path, tiny_disk):
    from appliance.lot import housekeeping

    path = write_lot(tmp_path)
    path.write_text(path.read_text().replace(str(tmp_path / "var"), str(tiny_disk / "var"))
                    .replace("[storage]\n", "[storage]\nmin_free_bytes = 1048576\n"))
    cfg = load_config(path)
    service, stop, task = await _running(cfg)
    try:
        assert await housekeeping.check_disk(service.runtime) == 0  # 2 MiB disk, ~1.5 MiB free: fine
        filler = tiny_disk / "filler"
        filler.write_bytes(b"\0" * (1024 * 1024))
        assert await housekeeping.check_disk(service.runtime) == 1
        assert await housekeeping.check_disk(service.runtime) == 0  # raised once, not again
        active = await service.ledger.fetchall(
            "SELECT * FROM alarms WHERE code = 'disk_low' AND cleared_utc IS NULL")
        filler.unlink()
        await housekeeping.check_disk(service.runtime)
        after = await service.ledger.fetchall(
            "SELECT * FROM alarms WHERE code = 'disk_low' AND cleared_utc IS NULL")
    finally:
        stop.set()
        await task
        await service.stop()
    assert len(active) == 1 and "MiB free" in active[0]["detail"]
    assert after == []  # room again: cleared by itself


async def test_a_spot_sensor_bus_down_raises_an_alarm_gates_keep_working_and_it_recovers(tmp_path):
    import dataclasses

    from appliance.core.types import SpotState
    from tests.integration.soak import soak_lot

    cfg = soak_lot(tmp_path, spots=20, entry_lanes=1, rate_per_lane=0, buses=2, speed=1.0)
    # spots with no reading for 1.5 s turn UNKNOWN (the lot default is 30 min)
    cfg = dataclasses.replace(cfg, devices=dataclasses.replace(cfg.devices, spot_heartbeat_s=1.5))
    service, stop, task = await _running(cfg)
    sensors = service.devices.sensors
    down = {s.id for s in cfg.spots if s.id.startswith("B0")}  # B0R-*, B0L-*: bus 0
    assert down

    async def until(predicate, what: str, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    async def alarms() -> list[tuple[str, bool]]:
        return [(r["code"], r["cleared_utc"] is None) for r in await service.ledger.fetchall(
            "SELECT code, cleared_utc FROM alarms WHERE source = 'bus0' ORDER BY raised_seq")]

    try:
        await until(lambda: all(v == SpotState.AVAILABLE for v in sensors.states().values()),
                    "every spot read AVAILABLE")
        service.devices.sims.buses["bus0"].device.unplug()  # cable pulled out of bus 0
        await until(lambda: all(sensors.states()[s] == SpotState.UNKNOWN for s in down),
                    "bus 0 spots UNKNOWN")
        live = await alarms()
        others = {s: v for s, v in sensors.states().items() if s not in down}
        opened = await _pass(service, "en-1", "BUS0001")  # gates do not wait on sensors
        service.devices.sims.buses["bus0"].device.plug()
        # read again (the car that entered may be parked over one of them by now)
        await until(lambda: all(sensors.states()[s] != SpotState.UNKNOWN for s in down),
                    "bus 0 spots read again")
        for _ in range(100):  # the recovery is recorded by the device recorder
            if ("port_lost", True) not in await alarms():
                break
            await asyncio.sleep(0.1)
        after = await alarms()
    finally:
        stop.set()
        await task
    verify = await service.ledger.verify()
    ticket = await service.ledger.fetchone("SELECT status FROM tickets WHERE plate = 'BUS0001'")
    await service.stop()
    assert ("port_lost", True) in live  # the attendant sees the bus down
    assert all(v == SpotState.AVAILABLE for v in others.values())  # the other bus kept reading
    assert opened and ticket["status"] == "OPEN"
    assert ("port_lost", True) not in after and ("port_lost", False) in after  # cleared by itself
    assert verify.ok, verify.problems[:5]

"""The demo lot's serial devices built from config on pty simulators."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from appliance.config import load_config
from appliance.core.events import NewEvent
from appliance.core.types import FailState, SpotState
from appliance.ledger import Ledger
from appliance.lot.device_log import DeviceLog
from appliance.lot.layout import layout_payload
from drivers.gate import BarrierGate
from drivers.health import HealthRegistry
from drivers.loops import LoopDetector
from drivers.lot_devices import LotDevices, SimulatedPorts, led_signs, spot_sensor_array
from tests.conftest import REPO
from tests.drivers.helpers import eventually, wait_until


async def test_demo_lot_sensors_and_sign_run_on_simulators(tmp_path: Path):
    cfg = load_config(REPO / "config" / "demo-lot.toml")
    fast = dataclasses.replace(cfg.devices, spot_debounce_ms=100)
    buses = tuple(dataclasses.replace(b, poll_interval_ms=50, request_timeout_ms=30)
                  for b in cfg.sensor_buses)
    cfg = dataclasses.replace(cfg, devices=fast, sensor_buses=buses)
    sims = SimulatedPorts.start(cfg, tmp_path / "dev", seed=1)
    health = HealthRegistry()
    array = spot_sensor_array(cfg, health, sims)
    (sign,) = led_signs(cfg, health, sims)
    assert len(array.filters) == len(cfg.spots) == 120
    sims.park("L1-H001")
    sims.park("L3-C008")
    task = asyncio.create_task(array.run())
    try:
        assert await wait_until(lambda: SpotState.UNKNOWN not in array.states().values(), 10)
        states = array.states()
        assert states["L1-H001"] == states["L3-C008"] == SpotState.OCCUPIED
        assert sum(1 for s in states.values() if s == SpotState.AVAILABLE) == 118
        free: dict[str, int] = {}
        for spot in cfg.spots:
            free[spot.level] = free.get(spot.level, 0) + (states[spot.id] == SpotState.AVAILABLE)
        assert await sign.show(free, now_s=0.0)
        sim_sign = sims.signs["sign-entrance"]
        assert await wait_until(lambda: sim_sign.shown.get("ALL") == "118")
        assert sim_sign.shown["L1"] == "039" and sim_sign.shown["L3"] == "039"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sign.link.close()
        sims.stop()
    snap = health.snapshot()
    assert snap["faults"] == 0
    kinds = {d["kind"] for d in snap["devices"]}
    assert kinds == {"sensor_bus", "spot_sensor", "sign"}


async def test_lot_devices_record_spot_changes_faults_and_gate_commands(tmp_path: Path):
    text = (REPO / "config" / "demo-lot.toml").read_text()
    text = text.replace("spot_debounce_ms = 3000", "spot_debounce_ms = 100")
    text = text.replace("poll_interval_ms = 500", "poll_interval_ms = 50")
    cfg_path = tmp_path / "lot.toml"
    cfg_path.write_text(text)
    cfg = load_config(cfg_path)
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=cfg.lot.id, tz=cfg.lot.tz)
    await ledger.append(NewEvent(type="lot.configured", payload=layout_payload(cfg)))
    device_log = DeviceLog()
    devices = LotDevices(cfg, simulate=True, run_dir=tmp_path / "dev",
                         loop=asyncio.get_running_loop(), record=device_log.record)
    factory = MockFactory()
    lane = cfg.lanes[0]
    arming = LoopDetector("entry-1/arming", lane.arming_loop_pin, pin_factory=factory,
                          debounce_ms=0)
    safety = LoopDetector("entry-1/safety", lane.safety_loop_pin, pin_factory=factory,
                          debounce_ms=0)
    gate = BarrierGate(lane.id, lane.barrier_relay_pin, safety_loop=safety, pin_factory=factory,
                       fail_state=FailState.SECURE)
    devices.attach_lane(lane, arming=arming, safety=safety, gate=gate)
    devices.sims.park("L2-C001")
    runner = asyncio.create_task(devices.run())
    recorder = asyncio.create_task(device_log.run(ledger))
    try:
        assert await wait_until(lambda: device_log.recorded >= 120, 10)
        gate.open("test")
        devices.sims.buses["bus3"].device.unplug()
        assert await wait_until(lambda: device_log.recorded >= 122, 10)
        assert devices.free_by_level()["L2"] == 39
        await asyncio.sleep(0.2)  # the bus3 poller keeps failing to reopen meanwhile
        assert [w.crashes for w in devices.sensors.workers] == [0, 0, 0]

        async def alarm(code: str, *, cleared: bool):
            return await ledger.fetchone(
                "SELECT severity FROM alarms WHERE source = 'bus3' AND code = ? AND "
                f"cleared_utc IS {'NOT ' if cleared else ''}NULL", (code,))

        raised = await eventually(lambda: alarm("port_lost", cleared=False))
        assert raised is not None and raised["severity"] == "warning"
        devices.sims.buses["bus3"].device.plug()
        assert await eventually(lambda: alarm("port_lost", cleared=True)) is not None
    finally:
        for task in (runner, recorder):
            task.cancel()
        await asyncio.gather(runner, recorder, return_exceptions=True)
        devices.stop()
    rows = await ledger.fetchall("SELECT type, COUNT(*) AS n FROM events GROUP BY type")
    counts = {r["type"]: r["n"] for r in rows}
    assert counts["spot.state_changed"] == 120
    assert counts["gate.commanded"] == 1
    assert counts["device.fault"] >= 1
    fault = await ledger.fetchone(
        "SELECT payload FROM events WHERE type = 'device.fault' ORDER BY seq LIMIT 1")
    assert json.loads(fault["payload"])["device"] == "bus3"
    assert counts["device.recovered"] >= 1
    state = await ledger.fetchone("SELECT sensor_state FROM spots WHERE id = 'L2-C001'")
    assert state["sensor_state"] == "OCCUPIED"
    snap = devices.snapshot()
    assert snap["spots"]["spots"]["L2-C001"]["state"] == "OCCUPIED"
    assert set(snap["lanes"]) == {"entry-1"}
    assert (await ledger.verify()).ok
    await ledger.close()


async def test_simulated_sensors_follow_tickets_of_a_running_ledger(tmp_path: Path):
    cfg = load_config(REPO / "config" / "demo-lot.toml")
    sims = SimulatedPorts.start(cfg, tmp_path / "dev")
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=cfg.lot.id, tz=cfg.lot.tz)
    ledger.subscribe(sims.follow_tickets)
    sensor = sims.buses["bus2"].distances  # L2-C003 is bus2:3

    async def issue(ticket_id: str, plate: str, hour: int) -> None:
        await ledger.append(NewEvent(type="ticket.issued", payload={
            "ticket_id": ticket_id, "plate": plate, "vehicle_type": "REGULAR", "level": "L2",
            "spot_type": "COMPACT", "spot_id": "L2-C003", "lane": "entry-1",
            "entry_utc": f"2026-01-01T{hour:02d}:00:00+00:00"}))

    try:
        await ledger.append(NewEvent(type="lot.configured", payload=layout_payload(cfg)))
        await issue("T1", "ABC123", 10)
        assert sensor[3] == 60
        await ledger.append(NewEvent(type="ticket.closed", payload={
            "ticket_id": "T1", "lane": "exit-1", "exit_utc": "2026-01-01T11:00:00+00:00",
            "fee_cents": 350}))
        assert sensor[3] == 400
        # a car that backs out of the entry never parks: its voided ticket frees the sensor
        await issue("T2", "XYZ987", 12)
        assert sensor[3] == 60
        await ledger.append(NewEvent(type="ticket.voided", payload={
            "ticket_id": "T2", "reason": "backed out"}))
        assert sensor[3] == 400
        # a car drives out of its spot (by plate) before any exit sees it; the ticket stays open
        await issue("T3", "QRS111", 13)
        assert sensor[3] == 60
        assert sims.depart(plate="QRS111") is True
        assert sensor[3] == 400
        assert sims.depart(plate="QRS111") is False  # gone already
        assert (await ledger.fetchone("SELECT status FROM tickets WHERE id = 'T3'"))[0] == "OPEN"
    finally:
        await ledger.close()
        sims.stop()

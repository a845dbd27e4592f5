"""The drivers wired beside a running simulated service, exactly as the README proposes.

The service itself does not start LotDevices yet; this test does the wiring from outside (the
same five calls the service will make) and audits what reached the ledger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from appliance.clock import SimClock
from appliance.config import load_config
from appliance.lot.device_log import DeviceLog
from appliance.service import Service
from appliance.simulate import TrafficGenerator
from drivers.lot_devices import LotDevices
from tests.conftest import write_lot

SENSORS = """
[[sensor_buses]]
id = "bus1"
port = "sim"
poll_interval_ms = 30
request_timeout_ms = 30

[devices]
spot_debounce_ms = 60
spot_settle_min_readings = 2
"""


def sensor_lot(tmp_path: Path):
    path = write_lot(tmp_path, mode="per_spot", per_level=20)
    text = path.read_text()
    for prefix, first in (("L1-R", 1), ("L1-L", 11), ("L2-R", 21)):
        text = text.replace(f'prefix = "{prefix}"',
                            f'prefix = "{prefix}"\nsensor_bus = "bus1"\n'
                            f"first_sensor_address = {first}")
    path.write_text(text + SENSORS)
    cfg = load_config(path)
    # A Modbus poll takes ~10 ms, so a 40-sensor bus goes round in ~0.4 s (twice that with the
    # service's own simulated bus polling alongside); a change needs two rounds: cars must stay
    # longer than the conftest lot's 2-minute minimum (33 ms of real time at 3600x): 3 s here.
    return dataclasses.replace(cfg, simulation=dataclasses.replace(
        cfg.simulation, min_stay_minutes=180, mean_stay_minutes=200))


async def test_sensors_follow_the_simulated_traffic_into_the_ledger(tmp_path: Path):
    cfg = sensor_lot(tmp_path)
    clock = SimClock(speed=cfg.simulation.speed)
    service = Service(cfg, simulate=True, clock=clock)
    await service.start()
    # 1. build the devices; 2. follow tickets with the simulated sensors; 3. attach lanes
    device_log = DeviceLog()
    devices = LotDevices(cfg, simulate=True, run_dir=tmp_path / "dev",
                         loop=asyncio.get_running_loop(), record=device_log.record)
    service.ledger.subscribe(devices.sims.follow_tickets)
    for lane in cfg.lanes:
        c = service.lanes[lane.id]
        devices.attach_lane(lane, arming=c.arming, safety=c.safety, gate=c.gate)
    traffic = TrafficGenerator(service, cfg.simulation, clock, max_cars=20)
    stop = asyncio.Event()

    async def drive():
        await traffic.run()
        await asyncio.sleep(1.5)  # let the last sensor changes through (a bus round ~0.3 s)
        stop.set()

    # 4. run the devices and 5. their recorder as service tasks
    run = asyncio.create_task(service.run(stop, extra=[
        drive, devices.run, lambda: device_log.run(service.ledger)]))
    try:
        await asyncio.wait_for(run, 120)
    finally:
        devices.stop()
    ledger = service.ledger
    rows = await ledger.fetchall("SELECT type, payload FROM events ORDER BY seq")
    await service.stop()
    assert traffic.stats.trapped == 0 and traffic.stats.entered > 0
    spot_events = [json.loads(r["payload"]) for r in rows if r["type"] == "spot.state_changed"]
    issued = [json.loads(r["payload"]) for r in rows if r["type"] == "ticket.issued"]
    occupied = {e["spot_id"] for e in spot_events if e["state"] == "OCCUPIED"}
    # every spot a ticket sent a car to was seen occupied by its sensor (a car that backed out
    # of the entry, its ticket voided a moment later, never parked)
    voided = {json.loads(r["payload"])["ticket_id"] for r in rows if r["type"] == "ticket.voided"}
    assert {t["spot_id"] for t in issued
            if t.get("spot_id") and t["ticket_id"] not in voided} <= occupied
    assert all(0.0 <= e["confidence"] <= 1.0 for e in spot_events)
    gate_cmds = [json.loads(r["payload"]) for r in rows if r["type"] == "gate.commanded"]
    assert {c["command"] for c in gate_cmds} >= {"open", "close"}
    assert not [r for r in rows if r["type"] == "device.fault"]
    assert sum(s.counter.passed for s in devices.lanes.values()) == (
        traffic.stats.entered + traffic.stats.exited)

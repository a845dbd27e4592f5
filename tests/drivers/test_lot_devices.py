"""The demo lot's serial devices built from config on pty simulators."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from appliance.config import load_config
from appliance.core.types import SpotState
from drivers.health import HealthRegistry
from drivers.lot_devices import SimulatedPorts, led_signs, spot_sensor_array
from tests.conftest import REPO


async def wait_until(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


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

"""A lane whose camera is an image folder (OpenCV): the real ONNX reader decides the entry."""

from __future__ import annotations

import asyncio
import json

import cv2

from appliance.config import load_config
from appliance.service import Service
from drivers.loops import SimulatedLoop
from lpr.synthetic import render_scene
from tests.conftest import write_lot


async def test_entry_uses_the_plate_read_from_the_camera(tmp_path):
    frames = tmp_path / "cam"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.jpg"), render_scene("KXT4821", seed=i))
    path = write_lot(tmp_path)
    text = path.read_text().replace(
        'id = "in-1"\ndirection = "entry"', f'id = "in-1"\ndirection = "entry"\ncamera = "dir:{frames}"')
    path.write_text(text + '\n[lpr]\nburst_frames = 2\nburst_interval_ms = 50\n')
    cfg = load_config(path)
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    stop = asyncio.Event()
    run = asyncio.create_task(service.run(stop))
    try:
        arming = SimulatedLoop(service.pin_factory, cfg.lane("in-1").arming_loop_pin)
        arming.occupy()
        gate = service.lanes["in-1"].gate  # up or down whatever the relay's wiring
        for _ in range(300):
            if gate.is_open:
                break
            await asyncio.sleep(0.05)
        assert gate.is_open, "gate did not open"
        row = await service.ledger.fetchone(
            "SELECT payload FROM events WHERE type = 'ticket.issued'")
        issued = json.loads(row[0])
        assert issued["plate"] == "KXT4821"
        assert 0 < issued["plate_confidence"] <= 1
        arming.clear()
    finally:
        stop.set()
        await run
        await service.stop()


async def test_lane_display_shows_rate_before_the_gate_opens(tmp_path):
    cfg = load_config(write_lot(tmp_path))
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    stop = asyncio.Event()
    run = asyncio.create_task(service.run(stop))
    shown_when_open = []
    try:
        gate = service.lanes["in-1"].gate  # up or down whatever the relay's wiring
        SimulatedLoop(service.pin_factory, cfg.lane("in-1").arming_loop_pin).occupy()
        for _ in range(200):
            if gate.is_open:
                shown_when_open.append(service.lane_display.current.get("in-1"))
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await run
        await service.stop()
    assert shown_when_open and shown_when_open[0].startswith("WELCOME") \
        and shown_when_open[0].endswith("USD/h")

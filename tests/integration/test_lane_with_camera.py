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
        relay = service.pin_factory.pin(cfg.lane("in-1").barrier_relay_pin)
        for _ in range(300):
            if relay.state:
                break
            await asyncio.sleep(0.05)
        assert relay.state, "gate did not open"
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

"""The simulated lot with real pictures on its cameras: each simulated car is a photo (in the
development-set format) whose ground-truth plate becomes the car's plate, and the real reader
reads it at every lane, so what it reads is what the tickets, exits and fees get."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import cv2
import pytest

from appliance.clock import SimClock
from appliance.config import load_config
from appliance.errors import ConfigError
from appliance.service import Service
from appliance.simulate import TrafficGenerator
from lpr.synthetic import render_scene
from tests.conftest import write_lot

PLATES = ("ABC1234", "7XYZ123", "KM55FGH", "BRA2E19", "DEF5678", "GHJ2345")


def _photo_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, plate in enumerate(PLATES):
        cv2.imwrite(str(folder / f"car{i:02d}.jpg"), render_scene(plate, seed=i))
        # the development-set line: image, box (x y w h) and the plate; the name says nothing
        (folder / f"car{i:02d}.txt").write_text(f"car{i:02d}.jpg\t0\t0\t0\t0\t{plate}\n")
    return folder


def _photo_lot(tmp_path: Path) -> Path:
    path = write_lot(tmp_path, mode="counter")
    photos = _photo_folder(tmp_path / "photos")
    text = path.read_text().replace('direction = "entry"',
                                    f'direction = "entry"\ncamera = "photos:{photos}"')
    text = text.replace('direction = "exit"', f'direction = "exit"\ncamera = "photos:{photos}"')
    text += "\n[lpr]\nburst_frames = 2\nburst_interval_ms = 50\n"
    path.write_text(text)
    return path


async def test_real_pictures_flow_from_camera_to_ticket_to_exit(tmp_path: Path):
    cfg = load_config(_photo_lot(tmp_path))
    clock = SimClock(speed=cfg.simulation.speed)
    service = Service(cfg, simulate=True, clock=clock, api=False)
    await service.start()
    stage = service.cameras.stage
    real_show, shown_in = stage.show, []

    def show(lane_id, photo):
        shown_in.append(threading.get_ident())
        real_show(lane_id, photo)

    stage.show = show
    traffic = TrafficGenerator(service, cfg.simulation, clock, max_cars=len(PLATES))
    stop = asyncio.Event()

    async def drive():
        await traffic.run()
        stop.set()

    try:
        await asyncio.wait_for(service.run(stop, extra=[drive]), 240)
        assert service.cameras is not None and service.cameras.stage is not None
    finally:
        await service.stop()
    db = sqlite3.connect(cfg.db_path())
    reads = [json.loads(p) for (p,) in db.execute(
        "SELECT payload FROM events WHERE type = 'lane.plate_read' ORDER BY seq")]
    issued = [json.loads(p)["plate"] for (p,) in db.execute(
        "SELECT payload FROM events WHERE type = 'ticket.issued' ORDER BY seq")]
    closed = db.execute("SELECT COUNT(*) FROM events WHERE type = 'ticket.closed'").fetchone()[0]
    db.close()
    assert traffic.stats.trapped == 0 and traffic.stats.entered >= len(PLATES) - 1
    # each photo is decoded off the event loop, which runs the lanes
    assert shown_in and threading.get_ident() not in shown_in
    # the plates on the tickets are what the reader made of the photos' plates
    read_right = [p for p in issued if p in PLATES]
    assert len(read_right) >= len(issued) * 2 // 3, (issued, reads)
    assert {r["plate"] for r in reads} - {None} <= set(PLATES) | set(issued)
    assert closed >= len(read_right) // 2  # exits found their tickets by the plate they read


def test_a_photos_camera_needs_the_simulator(tmp_path: Path):
    cfg = load_config(_photo_lot(tmp_path))

    async def start():
        service = Service(cfg, simulate=False, api=False)
        try:
            await service.start()
        finally:
            await service.stop()

    with pytest.raises(ConfigError, match="needs --simulate"):
        asyncio.run(start())


def test_the_stage_keeps_only_the_photos_on_show_decoded(tmp_path: Path):
    """Cars that have gone leave no decoded photo behind (a 1080p photo is 6 MB): the stage's
    memory is that of the lanes' current scenes, as with real cameras."""
    from lpr.photo_stage import PhotoStage, load_photos

    folder = _photo_folder(tmp_path / "photos")
    stage = PhotoStage({"in": f"photos:{folder}", "out": f"photos:{folder}"})
    photos = load_photos(folder)
    for photo in photos:
        stage.show("in", photo)
        stage.clear("in")
    assert stage.resident() == 0
    stage.show("in", photos[0])
    stage.show("out", photos[1])
    stage.show("in", photos[2])  # the next car replaces the first
    assert stage.resident() == 2
    assert stage.scene("in").shape == cv2.imread(str(photos[2].path)).shape


def test_cars_take_the_photos_in_a_shuffled_round_not_in_name_order(tmp_path: Path):
    """A short run (a few dozen cars) samples the whole folder: the deck deals every photo
    once a round in a seeded random order, never the folder's first file names in a row,
    and passes over a photo whose plate is inside."""
    import random

    from appliance.simulate import PhotoDeck
    from lpr.photo_stage import Photo

    photos = [Photo(path=tmp_path / f"car{i:03d}.jpg", plate=f"P{i:03d}") for i in range(40)]
    deck = PhotoDeck(photos, random.Random(7))
    dealt = [deck.deal(set()).plate for _ in range(80)]
    first, second = dealt[:40], dealt[40:]
    assert sorted(first) == sorted(second) == [p.plate for p in photos]  # each once a round
    assert first[:10] != [p.plate for p in photos[:10]]  # not name order
    assert first != second  # a new order each round
    again = PhotoDeck(photos, random.Random(7))
    assert [again.deal(set()).plate for _ in range(80)] == dealt  # the seed fixes the order
    inside = {p.plate for p in photos[1:]}  # every plate but P000 is parked
    assert PhotoDeck(photos, random.Random(3)).deal(inside).plate == "P000"

"""Capture threads on real OpenCV backends: image folders, video files, dead and stalled cameras."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from lpr.capture import Camera, CameraError, FolderFrames, VideoFrames, open_frames
from lpr.synthetic import render_scene

from .conftest import write_scenes


def _wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _video(path: Path, plates=("ABC1234", "7XYZ123"), frames_each: int = 3) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 360))
    assert writer.isOpened()
    for i, plate in enumerate(plates):
        for _ in range(frames_each):
            writer.write(render_scene(plate, seed=i))
    writer.release()
    return path


def test_open_frames_chooses_the_backend_from_the_camera_string(tmp_path):
    write_scenes(tmp_path / "imgs")
    assert isinstance(open_frames(f"dir:{tmp_path / 'imgs'}"), FolderFrames)
    video = _video(tmp_path / "v.avi")
    backend = open_frames(str(video))
    assert isinstance(backend, VideoFrames)
    backend.release()
    with pytest.raises(CameraError, match="no such video file") as info:
        open_frames(str(tmp_path / "missing.avi"))
    assert info.value.code == "camera_open_failed"
    with pytest.raises(CameraError, match="no images"):
        (tmp_path / "empty").mkdir()
        open_frames(f"dir:{tmp_path / 'empty'}")


def test_folder_camera_delivers_a_burst_of_frames(tmp_path):
    paths = write_scenes(tmp_path / "imgs")
    camera = Camera(f"dir:{tmp_path / 'imgs'}")
    camera.start()
    try:
        frames = camera.burst(3, interval_s=0.05, timeout_s=5.0)
        status = camera.status()
    finally:
        camera.stop()
    assert len(frames) == 3
    assert all(f.shape == (360, 640, 3) for f in frames)
    originals = [cv2.imread(str(p)) for p in paths]
    assert all(any(np.array_equal(f, o) for o in originals) for f in frames)
    assert status.connected and status.fault is None and status.frames >= 3


def test_video_file_camera_plays_and_loops(tmp_path):
    video = _video(tmp_path / "v.avi", frames_each=2)
    camera = Camera(str(video))
    camera.start()
    try:
        assert _wait_for(lambda: camera.status().frames > 6)  # more than the file holds: looped
        frames = camera.burst(2, interval_s=0.0, timeout_s=5.0)
    finally:
        camera.stop()
    assert len(frames) == 2 and frames[0].shape == (360, 640, 3)
    assert camera.status().reconnects == 0 and not camera.faults


def test_dead_camera_is_a_fault_retried_with_backoff_then_recovers(tmp_path):
    folder = tmp_path / "later"
    seen: list[tuple[float, CameraError]] = []
    camera = Camera(f"dir:{folder}", reconnect_initial_s=0.05, reconnect_max_s=0.2,
                    on_fault=lambda err: seen.append((time.monotonic(), err)))
    camera.start()
    try:
        assert _wait_for(lambda: len(seen) >= 4)
        assert camera.burst(1, interval_s=0.0, timeout_s=0.1) == []
        status = camera.status()
        assert not status.connected and "no such image folder" in status.fault
        gaps = [b[0] - a[0] for a, b in zip(seen, seen[1:], strict=False)]
        # backoff doubles from 0.05 s and is capped at 0.2 s
        assert gaps[0] >= 0.045 and gaps[1] >= 0.09 and gaps[2] >= 0.18
        assert all(err.code == "camera_open_failed" for _, err in seen)
        write_scenes(folder)
        assert _wait_for(lambda: camera.status().connected)
        assert len(camera.burst(2, interval_s=0.0, timeout_s=5.0)) == 2
        assert camera.status().fault is None and camera.status().reconnects >= 4
    finally:
        camera.stop()


def test_camera_that_stops_delivering_is_reported_and_reconnected(tmp_path):
    folder = tmp_path / "imgs"
    paths = write_scenes(folder)
    seen: list[CameraError] = []
    camera = Camera(f"dir:{folder}", stall_s=0.3, reconnect_initial_s=0.05,
                    reconnect_max_s=0.1, on_fault=seen.append)
    camera.start()
    try:
        assert _wait_for(lambda: camera.status().connected)
        for p in paths:
            p.unlink()  # the camera goes blind: frames stop decoding
        assert _wait_for(lambda: any(e.code == "camera_stalled" for e in seen))
        assert not camera.status().connected
        write_scenes(folder)
        assert _wait_for(lambda: camera.status().connected and camera.status().fault is None)
        assert camera.burst(1, interval_s=0.0, timeout_s=5.0)
    finally:
        camera.stop()

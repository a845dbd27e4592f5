"""Camera capture in its own thread: USB index, RTSP URL, video file or a folder of images.

A camera that cannot be opened or stops delivering frames is reported as a fault and reopened
with exponential backoff; the event loop never waits on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.errors import DeviceError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class CameraError(DeviceError):
    """A camera cannot be opened or stopped delivering frames."""


class FolderFrames:
    """A folder of images played as a camera (the simulator's and the tests' camera)."""

    def __init__(self, folder: Path, *, fps: float = 10.0):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CameraError(f"no such image folder: {self.folder}", code="camera_open_failed",
                              device=f"dir:{self.folder}")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise CameraError(f"no images in {self.folder}", code="camera_open_failed",
                              device=f"dir:{self.folder}")
        self.period_s = 1.0 / fps
        self._index = 0

    def read(self) -> np.ndarray | None:
        """The next image (looping), or None if it cannot be decoded."""
        time.sleep(self.period_s)
        path = self.files[self._index % len(self.files)]
        self._index += 1
        return cv2.imread(str(path))

    def release(self) -> None:
        """Nothing to release for a folder."""


class VideoFrames:
    """An OpenCV VideoCapture: USB index, RTSP/HTTP URL or video file."""

    def __init__(self, source: int | str, *, max_fps: float = 30.0):
        self.source = source
        self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            self.capture.release()
            raise CameraError(f"cannot open {source!r}", code="camera_open_failed",
                              device=str(source))
        self.is_file = isinstance(source, str) and Path(source).is_file()
        self.period_s = 1.0 / max_fps if self.is_file else 0.0

    def read(self) -> np.ndarray | None:
        """The next frame, or None when the camera (or the file) stops delivering."""
        if self.period_s:
            time.sleep(self.period_s)
        ok, frame = self.capture.read()
        if not ok and self.is_file:
            # a video file plays in a loop, like a camera that never stops
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.capture.read()
        return frame if ok else None

    def release(self) -> None:
        """Close the capture."""
        self.capture.release()


def open_frames(spec: str):
    """Open the backend a lane's `camera` string names: `0`, `rtsp://...`, a file, `dir:/path`."""
    spec = spec.strip()
    if spec.startswith("dir:"):
        return FolderFrames(Path(spec[4:]))
    if spec.isdigit():
        return VideoFrames(int(spec))
    if "://" in spec:
        return VideoFrames(spec)
    if Path(spec).is_dir():
        return FolderFrames(Path(spec))
    if not Path(spec).is_file():
        raise CameraError(f"no such video file: {spec}", code="camera_open_failed", device=spec)
    return VideoFrames(spec)


@dataclass(frozen=True, kw_only=True, slots=True)
class CameraStatus:
    """A camera's health for status pages and alarms."""

    name: str
    connected: bool
    frames: int
    reconnects: int
    fault: str | None
    last_frame_age_s: float | None


class Camera:
    """Keeps the latest frame of one camera, reading it in a daemon thread.

    Args:
        spec: the lane's `camera` string.
        opener: turns the spec into a frame backend (default `open_frames`).
        stall_s: no frame for this long counts as a dead camera.
        reconnect_initial_s, reconnect_max_s: exponential backoff between reopen attempts.
        on_fault: called (from the capture thread) with a CameraError when the camera fails.
    """

    def __init__(self, spec: str, *, opener: Callable[[str], object] = open_frames,
                 stall_s: float = 5.0, reconnect_initial_s: float = 0.5,
                 reconnect_max_s: float = 30.0,
                 on_fault: Callable[[CameraError], None] | None = None):
        self.spec = spec
        self._opener = opener
        self.stall_s = stall_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self._on_fault = on_fault
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._frame_seq = 0
        self._frame_at = 0.0
        self._connected = False
        self._reconnects = 0
        self._fault: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.faults: list[CameraError] = []

    def start(self) -> None:
        """Start the capture thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"camera {self.spec}",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the capture thread."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _report(self, err: CameraError) -> None:
        with self._cond:
            self._fault = str(err)
            self._connected = False
            self.faults.append(err)
        log.warning("camera fault: %s", err)
        if self._on_fault is not None:
            try:
                self._on_fault(err)
            except Exception:  # a broken alarm hook must not kill the capture thread
                log.exception("camera fault hook failed")

    def _run(self) -> None:
        backoff = self.reconnect_initial_s
        first = True
        while not self._stop.is_set():
            if not first:
                self._reconnects += 1
            first = False
            try:
                backend = self._opener(self.spec)
            except CameraError as err:
                self._report(err)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            except Exception as err:  # library errors become camera faults, never a dead thread
                self._report(CameraError(str(err), code="camera_open_failed", device=self.spec))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            try:
                self._pump(backend)
            finally:
                backend.release()
            if self._stop.is_set():
                break
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.reconnect_max_s)
        with self._cond:
            self._connected = False

    def _pump(self, backend) -> None:
        last_ok = time.monotonic()
        while not self._stop.is_set():
            try:
                frame = backend.read()
            except Exception as err:  # OpenCV backends raise cv2.error on broken streams
                self._report(CameraError(f"read failed: {err}", code="camera_read_failed",
                                         device=self.spec))
                return
            now = time.monotonic()
            if frame is None:
                if now - last_ok > self.stall_s or not self._connected:
                    self._report(CameraError("stopped delivering frames", code="camera_stalled",
                                             device=self.spec))
                    return
                self._stop.wait(0.01)
                continue
            last_ok = now
            with self._cond:
                self._frame = frame
                self._frame_seq += 1
                self._frame_at = now
                self._connected = True
                self._fault = None
                self._cond.notify_all()

    def status(self) -> CameraStatus:
        """Connected, frame count, reconnects, the current fault."""
        with self._cond:
            age = time.monotonic() - self._frame_at if self._frame_seq else None
            return CameraStatus(name=self.spec, connected=self._connected,
                                frames=self._frame_seq, reconnects=self._reconnects,
                                fault=self._fault, last_frame_age_s=age)

    def burst(self, count: int, *, interval_s: float, timeout_s: float) -> list[np.ndarray]:
        """Up to `count` frames captured after this call, about `interval_s` apart (fewer if the
        camera is failing): a frame from before the read was asked for may show the car that
        was there before."""
        frames: list[np.ndarray] = []
        asked = time.monotonic()
        deadline = asked + timeout_s
        seen = -1
        next_at = 0.0
        while len(frames) < count:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if now >= deadline or self._stop.is_set():
                        return frames
                    if (self._frame is not None and self._frame_seq != seen
                            and self._frame_at >= asked and now >= next_at):
                        break
                    self._cond.wait(min(0.05, deadline - now))
                frames.append(self._frame)
                seen = self._frame_seq
            next_at = time.monotonic() + interval_s
        return frames

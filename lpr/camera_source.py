"""The real plate source: one capture thread per lane camera, burst, read, vote, keep evidence."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lpr.capture import Camera, CameraError, open_frames
from lpr.engine import share_one_heap
from lpr.photo_stage import PREFIX as PHOTOS
from lpr.photo_stage import PhotoStage
from lpr.reader import FrameRead, PlateReader
from lpr.retention import PurgeReport, purge, save_evidence
from lpr.source import PlateResult, PlateSource, SimulatedPlates
from lpr.vote import vote

log = logging.getLogger(__name__)

EARLY_AGREEING = 2  # frames agreeing on one plate that end a burst (trusted or not)
EARLY_CONFIDENCE = 0.95  # or a first frame read this surely
EARLY_EMPTY = 2  # frames in a row without anything plate-like end a burst that has no read yet
READER_NICE = 10  # reader threads' niceness above the service's own threads


class CameraPlates:
    """PlateSource backed by cameras: each lane's `camera` string picks its backend.

    `sim` lanes are answered by the simulated camera (`sim`), the others by a Camera thread
    whose frames are read off the event loop by a pool of reader threads: one per camera lane,
    at most one per CPU core, taking bursts in arrival order (so lanes read side by side and
    none waits behind another's queue); the models are loaded once and shared (onnxruntime
    sessions are thread-safe).

    Args:
        lpr: the `[lpr]` config section.
        cameras: lane id -> camera string (`sim`, `0`, `rtsp://...`, a video file, `dir:/path`).
        storage_dir: where evidence (crop + frame) of decided reads is written.
        reader: the plate reader (default: built from `lpr`, loaded once).
        sim: the simulated camera used by `sim` lanes.
        on_fault: called with (lane id, CameraError) when a lane's camera fails.
        wall_clock: seconds since the epoch, for evidence names and the purge.
        workers: reader threads (default: one per camera lane, at most one per core).
        cores: the whole CPUs the service can keep busy (default: the machine's); the wiring
            gives its CPU quota's, so that readers do not outnumber the CPU they share.
        warm_up: `start` has each reader thread read a rendered plate and a bare scene first.
        on_reader_thread: called first in each reader thread (the wiring moves it into the
            readers' CPU group there, see `appliance.host.cpu_quota`).
    """

    def __init__(self, lpr, cameras: Mapping[str, str], *, storage_dir: Path,
                 reader: PlateReader | None = None, sim: PlateSource | None = None,
                 on_fault: Callable[[str, CameraError], None] | None = None,
                 wall_clock: Callable[[], float] = time.time, workers: int | None = None,
                 cores: int | None = None, warm_up: bool = True,
                 on_reader_thread: Callable[[], None] | None = None):
        if any(spec.strip() != "sim" for spec in cameras.values()):
            share_one_heap()  # before the capture and reader threads allocate their first frames
        self.cfg = lpr
        self.storage_dir = Path(storage_dir)
        self.sim = sim or SimulatedPlates()
        self._wall_clock = wall_clock
        self.cameras: dict[str, Camera] = {}
        # `photos:` lanes (simulation only) show real photos of the simulated cars
        self.stage = PhotoStage(dict(cameras)) if any(
            s.strip().startswith(PHOTOS) for s in cameras.values()) else None
        for lane_id, spec in cameras.items():
            if spec.strip() == "sim":
                continue
            hook = (lambda err, lane=lane_id: on_fault(lane, err)) if on_fault else None
            opener = (self.stage.opener(lane_id) if spec.strip().startswith(PHOTOS)
                      else open_frames)
            self.cameras[lane_id] = Camera(spec, opener=opener,
                                           reconnect_initial_s=lpr.reconnect_initial_s,
                                           reconnect_max_s=lpr.reconnect_max_s, on_fault=hook)
        self.reader = reader if reader is not None else (
            PlateReader.from_config(lpr) if self.cameras else None)
        self.workers = workers or max(1, min(len(self.cameras), cores or os.cpu_count() or 1))
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="lpr",
                                            initializer=_behind_the_lanes,
                                            initargs=(on_reader_thread,))
        self.warm_up = warm_up
        self.warmed_up = 0  # reader threads whose warm-up reads have run
        self._warm_up_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg, *, base: Path | None = None, **kwargs) -> CameraPlates:
        """Build from a LotConfig: cameras from its lanes, evidence under data_dir/lpr.storage_dir."""
        storage = Path(cfg.lpr.storage_dir)
        if not storage.is_absolute():
            storage = cfg.db_path(base).parent / storage
        return cls(cfg.lpr, {lane.id: lane.camera for lane in cfg.lanes}, storage_dir=storage,
                   **kwargs)

    def start(self) -> None:
        """Start every camera's capture thread, and warm the reader up in its workers."""
        for camera in self.cameras.values():
            camera.start()
        if self.warm_up and self.reader is not None and self.cameras:
            # A session's first runs allocate and plan (the first car's read took ~200 ms
            # more): run them now, on a rendered plate and a bare scene (the fallback search),
            # in the reader threads; a car that comes meanwhile queues behind them.
            for _ in range(self.workers):
                self._executor.submit(self._warm_up)

    def _warm_up(self) -> None:
        # One thread at a time: the bare scene runs every look down to the last resort, the
        # dearest read in memory; side by side in every thread they were the service's peak
        # (458 MiB at start against ~250 MiB serving four lanes). The bare scene is small
        # (640x360): its memory grows with the frame (at 720p it was the start's peak, ~335
        # MiB), and a small one warms the sessions up as well. A car that comes meanwhile
        # is read by a thread already warm, or queues.
        with self._warm_up_lock:
            try:
                import numpy as np

                from lpr.synthetic import render_scene

                self.reader.read(render_scene("ABC1234", width_px=1280, height_px=720))
                self.reader.read(np.full((360, 640, 3), 110, np.uint8))
            except Exception:  # a warm-up never stops the lot; a broken model shows on reads
                log.warning("plate reader warm-up failed", exc_info=True)
            self.warmed_up += 1

    def close(self) -> None:
        """Stop the capture threads and the inference worker."""
        for camera in self.cameras.values():
            camera.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def read(self, lane_id: str) -> PlateResult:
        """Burst, read and vote for the vehicle at this lane (no read if the camera is down)."""
        camera = self.cameras.get(lane_id)
        if camera is None:
            return await self.sim.read(lane_id)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._read_blocking, lane_id, camera)

    def _read_blocking(self, lane_id: str, camera: Camera) -> PlateResult:
        wanted = self.cfg.burst_frames
        deadline = time.monotonic() + self.cfg.burst_interval_ms / 1000 * wanted + 1.0

        def next_frame():
            frames = camera.burst(1, interval_s=0.0,
                                  timeout_s=max(0.05, deadline - time.monotonic()))
            return frames[0] if frames else None

        reads, failed = read_burst(self.reader, next_frame, wanted)
        if not reads:
            return PlateResult(plate=None)
        votes = [(r.plate, r.confidence) for r, _ in reads]
        if failed:  # frames the camera did not deliver count as frames without a read
            votes += [(None, 0.0)] * (wanted - len(reads))
        result = vote(votes, min_confidence=self.cfg.min_confidence)
        if result.plate is not None:
            winners = [(r, f) for r, f in reads if r.plate == result.plate]
        else:
            winners = [max(reads, key=lambda rf: rf[0].confidence)]
        best, frame = max(winners, key=lambda rf: rf[0].confidence)
        crop_path = None
        try:
            saved = save_evidence(self.storage_dir, lane_id=lane_id, plate=result.plate,
                                  frame=frame, crop=best.crop, when_s=self._wall_clock())
            crop_path = saved.crop_path or saved.frame_path
        except OSError as err:  # evidence is best effort: a full disk never blocks a lane
            log.warning("lane %s: %s", lane_id, err)
        return PlateResult(plate=result.plate, confidence=round(result.confidence, 4),
                           crop_path=crop_path)

    async def snapshot(self, lane_id: str) -> bytes:
        """One JPEG frame from a lane's camera (for `lotedge diag camera LANE snapshot`)."""
        import cv2

        from appliance.errors import DeviceError, InputError

        camera = self.cameras.get(lane_id)
        if camera is None:
            raise InputError(f"lane {lane_id} has no camera of its own (simulated)")
        loop = asyncio.get_running_loop()
        frames = await loop.run_in_executor(
            None, lambda: camera.burst(1, interval_s=0.0, timeout_s=2.0))
        if not frames:
            raise DeviceError("no frame from the camera", code="camera_no_frame", device=lane_id)
        ok, jpeg = cv2.imencode(".jpg", frames[0])
        if not ok:
            raise DeviceError("could not encode the frame", code="camera_encode", device=lane_id)
        return jpeg.tobytes()

    def purge(self) -> PurgeReport:
        """Apply the retention limits (days and megabytes) to the evidence folder now."""
        return purge(self.storage_dir, now_s=self._wall_clock(),
                     retention_days=self.cfg.retention_days,
                     max_bytes=self.cfg.retention_max_mb * 1024 * 1024)

    async def purge_forever(self, interval_s: float = 3600.0) -> None:
        """Purge on a schedule (run as a service task)."""
        loop = asyncio.get_running_loop()
        while True:
            report = await loop.run_in_executor(self._executor, self.purge)
            if report.removed_files:
                log.info("lpr evidence purge: removed %d files (%d bytes)", report.removed_files,
                         report.removed_bytes)
            await asyncio.sleep(interval_s)


def read_burst(reader: PlateReader, next_frame: Callable[[], object | None],
               wanted: int) -> tuple[list[tuple[FrameRead, object]], bool]:
    """A lane's burst: frames read one by one until they settle; (reads with frames, whether
    the camera stopped delivering frames before the burst ended).

    Frame by frame, each read as soon as it is taken; the burst ends early once the reads
    agree (EARLY_AGREEING frames on one plate) or the first is sure (EARLY_CONFIDENCE): a
    clear plate costs one frame, a hard one gets the whole burst to vote on, and a scene
    where the first EARLY_EMPTY frames hold nothing plate-like ends as a no-read.
    """
    reads: list[tuple[FrameRead, object]] = []
    while len(reads) < wanted:
        frame = next_frame()
        if frame is None:
            return reads, True
        # the full search (larger looks down to the last resort: the dearest part of a
        # read) runs on the first frame; later frames of the same car repeat it only once
        # a frame has found a plate, else they take the quick look
        search = not reads or any(r.plate is not None for r, _ in reads)
        reads.append((reader.read(frame, search_frame=search, near=_where_it_was(reads)),
                      frame))
        # the leading plate whatever its confidence: two frames of a standing car that
        # agree end the burst even when that read is too unsure to trust (more frames of the
        # same scene repeat it: 14 of the 111 US dev photos read the same unsure plate five
        # times); whether it is trusted is the final vote's call (min_confidence)
        leading = vote([(r.plate, r.confidence) for r, _ in reads], min_confidence=0.0)
        if leading.plate is not None and (leading.agreeing >= EARLY_AGREEING or (
                len(reads) == 1 and reads[0][0].confidence >= EARLY_CONFIDENCE)):
            break
        if len(reads) == EARLY_EMPTY and all(r.plate is None for r, _ in reads):
            # nothing plate-like in the first frames of a car standing on the loop: more
            # frames of the same (each one the dearest search) would only hold the lane up;
            # the no-read takes the lane's no-plate path (flagged, never trapped)
            break
    return reads, False


def _where_it_was(reads: list[tuple[FrameRead, object]]) -> FrameRead | None:
    """The surest read of the burst's leading plate so far: where a later frame looks first.

    The car stands on the loop, so its plate is where an earlier frame found it; reading that
    spot again costs the recogniser alone instead of the plate detector and, for a plate only
    the last resort found, that look again (the dearest part of a read)."""
    leading = vote([(r.plate, r.confidence) for r, _ in reads], min_confidence=0.0)
    if leading.plate is None:
        return None
    return max((r for r, _ in reads if r.plate == leading.plate), key=lambda r: r.confidence)


def _behind_the_lanes(then: Callable[[], None] | None = None) -> None:
    """Call `then` (the wiring's hook), then lower this reader thread's CPU priority (Linux:
    niceness is per thread).

    A read keeps a core busy for 50-500 ms; the event loop's work (a loop edge, a decision, a
    gate command) takes a few. On a board short of CPU the scheduler then gives a runnable
    service thread the core first, and the reads take the rest (no core is left idle).
    """
    if then is not None:
        then()
    if not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid)
                                                 + READER_NICE))
    except OSError as err:  # a sandbox may forbid it: reads then share the CPU evenly
        log.warning("plate reader thread keeps its priority: %s", err)

"""The camera-backed PlateSource: capture thread, burst, read, vote, evidence, sim lanes."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from appliance.config import LprSection, load_config
from lpr.camera_source import READER_NICE, CameraPlates
from lpr.source import PlateResult, SimulatedPlates

from ..conftest import write_lot
from .conftest import write_scenes

CFG = LprSection(burst_frames=3, burst_interval_ms=20, min_confidence=0.5,
                 reconnect_initial_s=0.05, reconnect_max_s=0.1)


async def test_camera_lane_reads_votes_and_keeps_evidence(tmp_path, reader):
    write_scenes(tmp_path / "cam", plates=("7XYZ123",), repeat=3)
    sim = SimulatedPlates()
    sim.present("in-2", PlateResult(plate="SIM123", confidence=0.9))
    source = CameraPlates(CFG, {"in-1": f"dir:{tmp_path / 'cam'}", "in-2": "sim"},
                          storage_dir=tmp_path / "evidence", reader=reader, sim=sim,
                          wall_clock=lambda: 1_790_000_000.0)
    source.start()
    try:
        loop_thread = threading.get_ident()
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        result = await source.read("in-1")
        task.cancel()
        assert loop_thread == threading.get_ident()
        assert ticks > 3  # the event loop kept running while the burst was read
        assert result.plate == "7XYZ123"
        assert 0.8 < result.confidence <= 1.0
        assert result.crop_path and Path(result.crop_path).is_file()
        assert "in-1_7XYZ123_crop" in result.crop_path
        assert await source.read("in-2") == PlateResult(plate="SIM123", confidence=0.9)
        assert sim.reads == 1
        assert "in-2" not in source.cameras
    finally:
        source.close()


async def test_dead_camera_lane_is_a_no_read_and_a_reported_fault(tmp_path, reader):
    faults = []
    source = CameraPlates(CFG, {"in-1": f"dir:{tmp_path / 'missing'}"},
                          storage_dir=tmp_path / "evidence", reader=reader,
                          on_fault=lambda lane, err: faults.append((lane, err.code)))
    source.start()
    try:
        result = await source.read("in-1")
        assert result.plate is None and result.confidence == 0.0
        assert ("in-1", "camera_open_failed") in faults
    finally:
        source.close()


async def test_scene_without_a_plate_is_a_no_read_with_evidence(tmp_path, reader):
    import cv2
    import numpy as np

    (tmp_path / "cam").mkdir()
    cv2.imwrite(str(tmp_path / "cam" / "empty.png"), np.full((240, 320, 3), 90, np.uint8))
    source = CameraPlates(CFG, {"in-1": f"dir:{tmp_path / 'cam'}"},
                          storage_dir=tmp_path / "evidence", reader=reader)
    source.start()
    try:
        result = await source.read("in-1")
    finally:
        source.close()
    assert result.plate is None
    assert result.crop_path and "noread_frame" in result.crop_path


def test_from_config_puts_evidence_under_the_data_dir_and_skips_sim_cameras(tmp_path):
    cfg = load_config(write_lot(tmp_path))
    source = CameraPlates.from_config(cfg)
    try:
        assert source.cameras == {} and source.reader is None
        assert source.storage_dir == cfg.db_path().parent / "lpr"
    finally:
        source.close()


def test_purge_applies_the_configured_retention(tmp_path, reader):
    import os

    source = CameraPlates(CFG, {}, storage_dir=tmp_path / "ev", reader=reader,
                          wall_clock=lambda: 1_790_000_000.0)
    old = tmp_path / "ev" / "20260101" / "1_in-1_ABC_frame.jpg"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x" * 100)
    os.utime(old, (1_700_000_000, 1_700_000_000))
    assert source.purge().removed_files == 1 and not old.exists()
    source.close()


async def test_purge_forever_purges_on_its_schedule(tmp_path, reader):
    import os

    source = CameraPlates(CFG, {}, storage_dir=tmp_path / "ev", reader=reader,
                          wall_clock=lambda: 1_790_000_000.0)
    folder = tmp_path / "ev" / "20260101"
    folder.mkdir(parents=True)
    task = asyncio.create_task(source.purge_forever(interval_s=0.05))
    try:
        for round_ in range(2):
            old = folder / f"{round_}_in-1_ABC_frame.jpg"
            folder.mkdir(parents=True, exist_ok=True)
            old.write_bytes(b"x" * 100)
            os.utime(old, (1_700_000_000, 1_700_000_000))
            for _ in range(100):
                if not old.exists():
                    break
                await asyncio.sleep(0.02)
            assert not old.exists()
    finally:
        task.cancel()
        source.close()


async def test_two_lanes_read_side_by_side_not_one_behind_the_other(tmp_path, reader):
    """Each lane's burst is read while the other's is still being read: a reader that waits
    for both lanes to be inside it at once passes only if they really overlap."""
    import os

    write_scenes(tmp_path / "a", plates=("7XYZ123",), repeat=3)
    write_scenes(tmp_path / "b", plates=("8ABC456",), repeat=3)
    both_inside = threading.Barrier(2, timeout=10)

    class MeetingReader:
        def read(self, frame, search_frame=True, near=None):
            both_inside.wait()  # blocks (and breaks after 10 s) unless two reads overlap
            return reader.read(frame, search_frame=search_frame)

    source = CameraPlates(LprSection(burst_frames=1, burst_interval_ms=20, min_confidence=0.5,
                                     reconnect_initial_s=0.05, reconnect_max_s=0.1),
                          {"in-1": f"dir:{tmp_path / 'a'}", "in-2": f"dir:{tmp_path / 'b'}"},
                          storage_dir=tmp_path / "evidence", reader=MeetingReader(), workers=2,
                          warm_up=False)
    auto = CameraPlates(CFG, {"in-1": f"dir:{tmp_path / 'a'}", "in-2": f"dir:{tmp_path / 'b'}",
                              "in-3": "sim"}, storage_dir=tmp_path / "evidence", reader=reader)
    assert auto.workers == min(2, os.cpu_count() or 1)  # camera lanes, capped at the cores
    auto.close()
    quota = CameraPlates(CFG, {"in-1": f"dir:{tmp_path / 'a'}", "in-2": f"dir:{tmp_path / 'b'}"},
                         storage_dir=tmp_path / "evidence", reader=reader, cores=1)
    assert quota.workers == 1  # under half a core, one reader; a second would only take turns
    quota.close()
    source.start()
    try:
        first, second = await asyncio.gather(source.read("in-1"), source.read("in-2"))
        assert (first.plate, second.plate) == ("7XYZ123", "8ABC456")
    finally:
        source.close()


async def test_a_clear_plate_costs_one_frame_a_doubtful_one_gets_the_burst_an_empty_scene_two(tmp_path, reader):
    from dataclasses import replace

    write_scenes(tmp_path / "cam", plates=("7XYZ123",), repeat=3)

    class Counting:
        def __init__(self, adjust):
            self.calls = 0
            self.adjust = adjust
            self.real = None
            self.searched: list[bool] = []
            self.near: list[str | None] = []

        def read(self, frame, search_frame=True, near=None):
            # the real reader reads the scene once: five real reads could outlast the burst's
            # deadline on a slow host, and the count of frames is what is tested
            self.calls += 1
            self.searched.append(search_frame)
            self.near.append(None if near is None else f"{near.plate}@{near.confidence}")
            if self.real is None:
                self.real = reader.read(frame)
            return self.adjust(self.real, self.calls)

    cfg = LprSection(burst_frames=5, burst_interval_ms=20, min_confidence=0.5,
                     reconnect_initial_s=0.05, reconnect_max_s=0.1)
    cases = {
        "sure": (lambda r, n: r, 1, "7XYZ123"),  # the first read is >= 0.95 sure
        "unsure": (lambda r, n: replace(r, confidence=0.6), 2, "7XYZ123"),  # two must agree
        # two frames agreeing end the burst even when the read is too unsure to be trusted:
        # more frames of the same standing car repeat it (it stays a no-read, flagged)
        "agreeing, untrusted": (lambda r, n: replace(r, confidence=0.45), 2, None),
        "disagreeing": (lambda r, n: replace(r, plate=f"X{n}", confidence=0.6), 5, None),
        # nothing plate-like in two frames in a row: the rest of the burst is not searched
        "empty": (lambda r, n: replace(r, plate=None, confidence=0.0), 2, None),
        # one plate among empty frames still gets the whole burst to vote on
        "late plate": (lambda r, n: r if n == 2 else replace(r, plate=None, confidence=0.0)
                       if n < 2 else replace(r, confidence=0.6), 3, "7XYZ123"),
    }
    searched, near = {}, {}
    for name, (adjust, frames_read, plate) in cases.items():
        counting = Counting(adjust)
        source = CameraPlates(cfg, {"in-1": f"dir:{tmp_path / 'cam'}"},
                              storage_dir=tmp_path / "evidence", reader=counting,
                              warm_up=False)
        source.start()
        try:
            result = await source.read("in-1")
        finally:
            source.close()
        assert (counting.calls, result.plate) == (frames_read, plate), name
        searched[name] = counting.searched
        near[name] = counting.near
    # the whole-frame search runs on a burst's first frame, and on later ones only once a
    # frame has found a plate (nothing found in the scene: the later frames skip it)
    assert searched["empty"] == [True, False]
    assert searched["late plate"] == [True, False, True]
    assert searched["disagreeing"] == [True] * 5
    # later frames look first where an earlier one found the burst's leading plate (its
    # surest read of it); a burst with no plate yet gives them nowhere to look
    assert near["unsure"] == [None, "7XYZ123@0.6"]
    assert near["empty"] == [None, None]
    assert near["late plate"] == [None, None, f"7XYZ123@{counting.real.confidence}"]
    assert near["disagreeing"][:3] == [None, "X1@0.6", "X2@0.6"]  # a tie: the later plate leads


async def test_start_warms_the_reader_up_in_each_reader_thread_one_at_a_time(tmp_path):
    """A session's first runs are slow (allocation, planning): `start` spends them on a rendered
    plate and a bare scene in every reader thread, before the first car; one thread at a time,
    as the bare scene's whole-frame search is the dearest read in memory."""
    write_scenes(tmp_path / "a", plates=("7XYZ123",), repeat=1)
    threads: list[tuple[str, tuple[int, ...]]] = []
    busy, most = [0], [0]

    class Recording:
        def read(self, frame, search_frame=True, near=None):
            threads.append((threading.current_thread().name, frame.shape))
            busy[0] += 1
            most[0] = max(most[0], busy[0])
            time.sleep(0.05)  # a read takes a while: side by side threads would overlap here
            busy[0] -= 1
            from lpr.reader import FrameRead

            return FrameRead(plate=None, confidence=0.0, bbox=None)

    source = CameraPlates(CFG, {"in-1": f"dir:{tmp_path / 'a'}", "in-2": f"dir:{tmp_path / 'a'}"},
                          storage_dir=tmp_path / "evidence", reader=Recording(), workers=2)
    source.start()
    try:
        for _ in range(200):
            if source.warmed_up == 2:
                break
            await asyncio.sleep(0.01)
        assert source.warmed_up == 2
        # the rendered plate at 720p, the bare scene (the whole-frame search, whose memory
        # grows with the frame: +150 MB at 720p) at 640x360
        assert len(threads) == 4
        assert sorted({shape for _, shape in threads}) == [(360, 640, 3), (720, 1280, 3)]
        assert all(name.startswith("lpr") for name, _ in threads)
        assert len({name for name, _ in threads}) == 2  # each reader thread warmed up
        assert most[0] == 1  # never two warm-ups at once
    finally:
        source.close()


def test_camera_lanes_make_the_threads_share_one_heap(tmp_path):
    """glibc gives each allocating thread an arena of its own, which keeps that thread's freed
    frames and inference buffers resident (~80 MiB more with four busy camera lanes): a lot
    with camera lanes has its threads share the main heap. In a fresh process, threads that
    allocate after the CameraPlates is built all use arena 0 (glibc's malloc_stats). And big
    blocks stay mapped on their own: glibc's default raises its mmap threshold to the largest
    block freed, so the next frame-sized blocks come out of the heap and fragment it."""
    import subprocess
    import sys

    write_scenes(tmp_path / "cam", plates=("7XYZ123",), repeat=1)
    program = f"""
import ctypes, threading
from pathlib import Path
from appliance.config import LprSection
from lpr.camera_source import CameraPlates
if {{build}}:
    CameraPlates(LprSection(), {{{{"in-1": "dir:{tmp_path / 'cam'}"}}}},
                 storage_dir=Path("{tmp_path / 'evidence'}"), reader=object(), warm_up=False)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
held = []
def grab():
    held.append(libc.malloc(4096))
threads = [threading.Thread(target=grab) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc.mallinfo2.restype = Mallinfo2
big = 8 * 1024 * 1024
libc.free(ctypes.c_void_p(libc.malloc(big)))
before = libc.mallinfo2().hblkhd
two = [libc.malloc(big), libc.malloc(big)]  # mapped on their own, or out of the heap
print((libc.mallinfo2().hblkhd - before) // big)
libc.malloc_stats()
"""

    def stats(build: bool) -> tuple[int, int]:
        """(arenas, how many of the two 8 MiB blocks were mapped on their own)"""
        done = subprocess.run([sys.executable, "-c", program.format(build=build)],
                              capture_output=True, text=True, timeout=60, check=True)
        arenas = sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))
        return arenas, int(done.stdout.strip())

    arenas, mapped = stats(False)
    assert arenas > 1  # glibc's default: the threads took arenas of their own
    assert mapped == 0  # and the two 8 MiB blocks came out of the heap
    assert stats(True) == (1, 2)


async def test_reads_run_behind_the_service_threads_in_cpu_priority(tmp_path):
    """A read keeps a core busy for up to half a second: reader threads run niced, so that on a
    board short of CPU the event loop (edges, decisions, gate commands) gets a core first."""
    write_scenes(tmp_path / "a", plates=("7XYZ123",), repeat=1)
    seen: list[int] = []

    class Priority:
        def read(self, frame, search_frame=True, near=None):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            from lpr.reader import FrameRead

            return FrameRead(plate=None, confidence=0.0, bbox=None)

    source = CameraPlates(CFG, {"in-1": f"dir:{tmp_path / 'a'}"}, storage_dir=tmp_path / "ev",
                          reader=Priority(), warm_up=False)
    source.start()
    try:
        await source.read("in-1")
    finally:
        source.close()
    service = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen and set(seen) == {min(19, service + READER_NICE)}
    assert service < 19 and READER_NICE > 0  # the read ran at a lower priority than the loop


async def test_every_reader_thread_runs_the_wiring_hook_first(tmp_path):
    """The wiring moves reader threads into the readers' CPU group (appliance.host.cpu_quota)
    through this hook: every thread that reads a frame has run it."""
    write_scenes(tmp_path / "a", plates=("7XYZ123",), repeat=1)
    entered: list[int] = []
    readers: list[int] = []

    class Reader:
        def read(self, frame, search_frame=True, near=None):
            readers.append(threading.get_native_id())
            from lpr.reader import FrameRead

            return FrameRead(plate=None, confidence=0.0, bbox=None)

    source = CameraPlates(CFG,
                          {"in-1": f"dir:{tmp_path / 'a'}"}, storage_dir=tmp_path / "ev",
                          reader=Reader(), warm_up=False,
                          on_reader_thread=lambda: entered.append(threading.get_native_id()))
    source.start()
    try:
        await source.read("in-1")
    finally:
        source.close()
    assert readers and set(readers) <= set(entered)

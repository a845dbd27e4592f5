"""Plate reading per region: exact-plate and character accuracy, latency, model memory.

Reads the labelled sets under LOTEDGE_PLATES_DIR (default /work/shared/plates): `us/` with
`[lpr] regions = ["us"]`, `eu/` with `["eu"]`, `br/` with `["br"]`, each split in two fixed
halves by sorted file name (`lpr.bench.split_items`): `dev` (even; the recogniser was trained
and the settings tuned on it) and `held-out` (odd; never trained or tuned on). One onnxruntime
thread, the default reader (`detector = "yolo"`); on the held-out halves also the faster
settings (plate detector at 320 px, second recogniser only below 0.9), on the US the
text-detector reader, and per held-out half what a lane makes of each photo (its burst and vote,
`lpr.bench.run_lane_bench`: right, wrong and no plate at the default `min_confidence` and 0.4).
Ground truth comes from the `.txt` files only. The reader runs with the service's heap settings
(`lpr.engine.share_one_heap`).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

DEFAULT_ROOT = Path("/work/shared/plates")
LOOK_LAST_PX = 800  # plate_det_search_px measured against the default's text search
LANE_LOWER_FLOOR = 0.4  # a lower min_confidence, to show what the default trades
# (folder, region codes): European photos also with the generic fallback for show plates
SETS = (("us", ("us",)), ("eu", ("eu",)), ("eu", ("eu", "generic")), ("br", ("br",)))


def _status_mb(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def _rss_mb() -> float:
    rss = _status_mb("VmRSS")
    return rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rows(tag: str, result, goal_exact: str) -> list[dict]:
    return [
        {"name": f"{tag} exact plates ({result.exact}/{result.images})",
         "value": 100 * result.exact_accuracy, "unit": "%", "goal": goal_exact},
        {"name": f"{tag} exact plates, O and 0 as one ({result.exact_o0}/{result.images})",
         "value": 100 * result.exact_o0 / max(1, result.images), "unit": "%"},
        {"name": f"{tag} character accuracy", "value": 100 * result.char_accuracy, "unit": "%"},
        {"name": f"{tag} latency per image, median (1 thread)", "value": result.median_ms,
         "unit": "ms", "goal": "<= 50"},
        {"name": f"{tag} latency per image, p95 (1 thread)", "value": result.p95_ms,
         "unit": "ms", "goal": "<= 150"},
        {"name": f"{tag} CPU time per image, median", "value": result.cpu_median_ms,
         "unit": "ms"},
        {"name": f"{tag} CPU time per image, p95", "value": result.cpu_p95_ms, "unit": "ms"},
    ]


def _lane_rows(tag: str, lane) -> list[dict]:
    """A lane's burst and vote per photo: right, wrong and no plate at the default
    `min_confidence` and at a lower one (the trade docs/lpr.md shows)."""
    from appliance.config import LprSection

    rows = []
    for floor in (LprSection().min_confidence, LANE_LOWER_FLOOR):
        right, wrong, none = lane.at(floor)
        n = right + wrong + none
        for what, count in (("right plate", right), ("wrong plate", wrong), ("no plate", none)):
            rows.append({"name": f"{tag} lane burst, min_confidence {floor}: {what} "
                                 f"({count}/{n})", "value": 100.0 * count / n, "unit": "%"})
    rows.append({"name": f"{tag} lane burst: frames read per photo", "value": lane.frames,
                 "unit": ""})
    return rows


def run() -> list[dict]:
    """Accuracy and latency per region and half; RSS growth from loading the models."""
    import cv2
    import numpy as np

    from appliance.config import LprSection
    from lpr.bench import load_labels, run_bench, run_lane_bench, split_items
    from lpr.engine import share_one_heap
    from lpr.reader import PlateReader
    from lpr.regions import resolve_regions

    cv2.setNumThreads(1)
    share_one_heap()  # the heap the service reads plates with (lpr.camera_source)
    root = Path(os.environ.get("LOTEDGE_PLATES_DIR", DEFAULT_ROOT))
    before = _rss_mb()
    reader = PlateReader(threads=1)
    reader.read(np.full((720, 1280, 3), 127, np.uint8))  # warm-up allocates the arenas
    loaded = _rss_mb() - before
    rows = [{"name": "lpr models resident memory (RSS growth, loaded + warm)", "value": loaded,
             "unit": "MB", "goal": "<= 150"}]
    for folder, codes in SETS:
        path = root / folder
        tag = f"lpr {folder} [regions {'+'.join(codes)}]"
        if not path.is_dir():
            rows.append({"name": f"{tag}: labelled set not found ({path})", "value": "-",
                         "unit": ""})
            continue
        reader.regions = resolve_regions(codes)
        items = load_labels(path)
        for part in ("held-out", "dev"):
            goal = (">= 92" if folder == "us" else ">= 95") if part == "held-out" else ""
            result = run_bench(reader, split_items(items, part))
            rows += _rows(f"{tag} {part}", result, goal)
        if codes != ("eu", "generic"):
            rows += _lane_rows(f"{tag} held-out", run_lane_bench(
                reader, split_items(items, "held-out"), burst_frames=LprSection().burst_frames))
    # the faster settings (they meet the latency goal; see docs/lpr.md for what they cost)
    rows += _held_out_rows(PlateReader(threads=1, plate_det_px=320, second_rec_below=0.9), root,
                           "fast: plate_det_px 320, second_rec_below 0.9")
    # a cheaper last resort than the default's whole-frame text search: the plate detector's
    # own look at 800 px (see docs/lpr.md for what it costs)
    rows += _held_out_rows(PlateReader(threads=1, plate_det_search_px=LOOK_LAST_PX), root,
                           f"plate_det_search_px {LOOK_LAST_PX}")
    us = root / "us"
    if us.is_dir():
        text = PlateReader(threads=1, detector="text")
        result = run_bench(text, split_items(load_labels(us), "held-out"))
        rows += _rows("lpr us held-out [detector=text]", result, "")
    rows.append({"name": "lpr RSS after the sets (both readers)",
                 "value": _rss_mb() - before, "unit": "MB"})
    cpu_ms, peak_mb = _last_resort(lambda frame: reader.detector.detect(frame, max_side_px=896))
    rows += [{"name": "lpr whole-frame text search, 720p frame at 896 px: CPU time (median of 5)",
              "value": cpu_ms, "unit": "ms"},
             {"name": "lpr whole-frame text search, 720p frame at 896 px: peak RSS growth",
              "value": peak_mb, "unit": "MB"}]
    cpu_ms, peak_mb = _last_resort(lambda frame: reader.plate_detector.detect(
        frame, input_px=LOOK_LAST_PX))
    rows += [{"name": f"lpr plate detector look at {LOOK_LAST_PX} px (plate_det_search_px), "
                      "720p frame: CPU time (median of 5)", "value": cpu_ms, "unit": "ms"},
             {"name": f"lpr plate detector look at {LOOK_LAST_PX} px (plate_det_search_px), "
                      "720p frame: peak RSS growth", "value": peak_mb, "unit": "MB"}]
    return rows


def _held_out_rows(reader, root: Path, setting: str) -> list[dict]:
    """Another reader's figures on each region's held-out half (`setting` names it)."""
    from lpr.bench import load_labels, run_bench, split_items
    from lpr.regions import resolve_regions

    rows = []
    for folder, codes in SETS:
        path = root / folder
        if path.is_dir() and codes != ("eu", "generic"):
            reader.regions = resolve_regions(codes)
            result = run_bench(reader, split_items(load_labels(path), "held-out"))
            rows += _rows(f"lpr {folder} [regions {'+'.join(codes)}, {setting}] held-out",
                          result, "")
    return rows


def _last_resort(run) -> tuple[float, float]:
    """A read's dearest run, `run(frame)`, as the service runs it (with its heap settings, set
    in `run`): the plate detector's last-resort look, or the whole-frame text search (896 px,
    in strips), on a 720p frame. (CPU ms, peak MB)."""
    import statistics

    from lpr.engine import release_free_memory
    from lpr.synthetic import render_scene

    frame = render_scene("ABC1234", seed=5, width_px=1280, height_px=720)
    run(frame)
    release_free_memory()
    before = _rss_mb()
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    times = []
    for _ in range(5):
        started = time.process_time()
        run(frame)
        times.append((time.process_time() - started) * 1000)
        release_free_memory()
    return round(statistics.median(times), 1), round((_status_mb("VmHWM") or 0.0) - before, 1)

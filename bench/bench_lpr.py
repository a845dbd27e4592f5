"""Plate reading on the development set: exact and character accuracy, latency, model memory.

Uses /work/shared/plates/us (override with LOTEDGE_PLATES_DIR); one onnxruntime thread; both
pipelines: `detector = "yolo"` (the default: plate detector first, text search as fallback) and
`detector = "text"` (the text detector only).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

DEFAULT_DIR = Path("/work/shared/plates/us")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run() -> list[dict]:
    """Dev-set accuracy and latency; RSS growth from loading the models."""
    import cv2
    import numpy as np

    from lpr.bench import load_labels, run_bench
    from lpr.reader import PlateReader

    cv2.setNumThreads(1)
    folder = Path(os.environ.get("LOTEDGE_PLATES_DIR", DEFAULT_DIR))
    before = _rss_mb()
    reader = PlateReader(threads=1)
    reader.read(np.full((720, 1280, 3), 127, np.uint8))  # warm-up allocates the arenas
    loaded = _rss_mb() - before
    rows = [{"name": "lpr models resident memory (RSS growth, loaded + warm)", "value": loaded,
             "unit": "MB", "goal": "<= 150"}]
    if not folder.is_dir():
        rows.append({"name": f"lpr dev set not found ({folder})", "value": "-", "unit": ""})
        return rows
    labels = load_labels(folder)
    for detector in ("text", "yolo"):
        reader = PlateReader(threads=1, detector=detector)
        result = run_bench(reader, labels)
        tag = f"lpr [{detector}]"
        rows += [
            {"name": f"{tag} exact-plate accuracy ({result.images} dev images)",
             "value": 100 * result.exact_accuracy, "unit": "%", "goal": ">= 90"},
            {"name": f"{tag} character accuracy", "value": 100 * result.char_accuracy,
             "unit": "%"},
            {"name": f"{tag} latency per image, median (1 thread)", "value": result.median_ms,
             "unit": "ms", "goal": "<= 100"},
            {"name": f"{tag} latency per image, p95 (1 thread)", "value": result.p95_ms,
             "unit": "ms"},
        ]
    rows.append({"name": "lpr RSS after the dev set (both readers)",
                 "value": _rss_mb() - before, "unit": "MB"})
    return rows

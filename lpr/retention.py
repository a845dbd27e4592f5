"""Evidence for decided reads (plate crop + full frame) kept under a size and age limit."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.errors import LotedgeError


class EvidenceError(LotedgeError, OSError):
    """An evidence image could not be written."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SavedEvidence:
    """Where a read's crop and frame were written."""

    crop_path: str | None
    frame_path: str


def save_evidence(storage_dir: Path, *, lane_id: str, plate: str | None, frame: np.ndarray,
                  crop: np.ndarray | None, when_s: float) -> SavedEvidence:
    """Write `<storage>/<YYYYMMDD>/<time>_<lane>_<plate>_{frame,crop}.jpg`; return the paths."""
    stamp = time.strftime("%Y%m%d", time.gmtime(when_s))
    folder = Path(storage_dir) / stamp
    safe_lane = "".join(c if c.isalnum() or c in "-_" else "_" for c in lane_id)
    base = f"{int(when_s * 1000)}_{safe_lane}_{plate or 'noread'}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        frame_path = folder / f"{base}_frame.jpg"
        if not cv2.imwrite(str(frame_path), frame, [cv2.IMWRITE_JPEG_QUALITY, 85]):
            raise EvidenceError(f"cannot encode frame for {frame_path}")
        crop_path = None
        if crop is not None and crop.size:
            crop_path = folder / f"{base}_crop.jpg"
            if not cv2.imwrite(str(crop_path), crop, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise EvidenceError(f"cannot encode crop for {crop_path}")
    except OSError as err:
        if isinstance(err, EvidenceError):
            raise
        raise EvidenceError(f"cannot write evidence under {folder}: {err}") from err
    return SavedEvidence(crop_path=str(crop_path) if crop_path else None, frame_path=str(frame_path))


@dataclass(frozen=True, kw_only=True, slots=True)
class PurgeReport:
    """What a purge removed and what is left."""

    removed_files: int
    removed_bytes: int
    kept_bytes: int


def purge(storage_dir: Path, *, now_s: float, retention_days: float, max_bytes: int) -> PurgeReport:
    """Delete evidence older than `retention_days`, then the oldest files until under `max_bytes`."""
    root = Path(storage_dir)
    if not root.is_dir():
        return PurgeReport(removed_files=0, removed_bytes=0, kept_bytes=0)
    files = []
    for path in root.rglob("*.jpg"):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        files.append((st.st_mtime, st.st_size, path))
    files.sort()
    cutoff = now_s - retention_days * 86400
    removed = removed_bytes = 0
    total = sum(size for _, size, _ in files)
    for mtime, size, path in files:
        if mtime >= cutoff and total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        removed += 1
        removed_bytes += size
        total -= size
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return PurgeReport(removed_files=removed, removed_bytes=removed_bytes, kept_bytes=total)

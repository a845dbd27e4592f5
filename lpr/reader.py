"""One image in, one plate read out: detect text lines, read them, keep the best plate-like one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lpr.engine import (
    DEFAULT_DET,
    DEFAULT_DICT,
    DEFAULT_REC,
    TextBox,
    TextDetector,
    TextRecognizer,
    crop_box,
)
from lpr.regions import US, RegionFormat, normalize


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameRead:
    """The best plate in one frame (plate None = nothing plate-like), with its box and crop."""

    plate: str | None
    confidence: float
    bbox: tuple[int, int, int, int] | None
    raw: str = ""
    crop: np.ndarray | None = None
    ms: float = 0.0


class PlateReader:
    """Plate reads from BGR frames with the ONNX text detector and recogniser.

    Args:
        det_model, rec_model, rec_dict: model files (defaults: the shipped PP-OCRv4 models).
        threads: onnxruntime threads per session.
        det_max_side_px: detector input size (longer side); small is fast.
        det_retry_max_side_px: a larger size tried when the first pass finds no valid plate
            (0 = never retry).
        regions: plate formats a read must fit.
        min_char_conf: characters the recogniser is less sure of are dropped as noise.
    """

    def __init__(self, *, det_model: Path | str | None = None, rec_model: Path | str | None = None,
                 rec_dict: Path | str | None = None, threads: int = 1, det_max_side_px: int = 640,
                 det_retry_max_side_px: int = 896, regions: tuple[RegionFormat, ...] = (US,),
                 min_char_conf: float = 0.3, unclip_ratio: float = 1.6,
                 pad_along: float = 0.25):
        self.detector = TextDetector(Path(det_model or DEFAULT_DET), threads=threads,
                                     max_side_px=det_max_side_px, box_thresh=0.4,
                                     unclip_ratio=unclip_ratio, pad_along=pad_along)
        self.retry_side_px = det_retry_max_side_px
        rec_path = Path(rec_model or DEFAULT_REC)
        dict_path = Path(rec_dict) if rec_dict else (DEFAULT_DICT if not rec_model else None)
        self.recognizer = TextRecognizer(rec_path, dict_path, threads=threads)
        self.regions = regions
        self.min_char_conf = min_char_conf

    @classmethod
    def from_config(cls, lpr_cfg) -> PlateReader:
        """A reader built from the `[lpr]` config section."""
        return cls(det_model=lpr_cfg.det_model or None, rec_model=lpr_cfg.rec_model or None,
                   rec_dict=lpr_cfg.rec_dict or None, threads=lpr_cfg.threads,
                   det_max_side_px=lpr_cfg.det_max_side_px,
                   det_retry_max_side_px=lpr_cfg.det_retry_max_side_px, regions=lpr_cfg.regions)

    def read(self, image: np.ndarray) -> FrameRead:
        """The most plate-like text in the frame."""
        started = time.perf_counter()
        if image is None or image.ndim != 3 or image.shape[0] < 8 or image.shape[1] < 8:
            return FrameRead(plate=None, confidence=0.0, bbox=None, ms=0.0)
        best = self._best(image, self.detector.detect(image))
        if best.plate is None and self.retry_side_px > self.detector.max_side_px:
            first = self.detector.max_side_px
            try:
                self.detector.max_side_px = self.retry_side_px
                retry = self._best(image, self.detector.detect(image))
            finally:
                self.detector.max_side_px = first
            if retry.plate is not None or retry.confidence > best.confidence:
                best = retry
        ms = (time.perf_counter() - started) * 1000
        return FrameRead(plate=best.plate, confidence=best.confidence, bbox=best.bbox, raw=best.raw,
                         crop=best.crop, ms=ms)

    def _best(self, image: np.ndarray, boxes: list[TextBox]) -> FrameRead:
        candidates = []
        for box in boxes:
            x1, y1, x2, y2 = box.bbox
            w, h = x2 - x1, y2 - y1
            if h < 6 or w < h * 0.8 or w > image.shape[1] * 0.6:
                continue
            crop = crop_box(image, box.corners)
            # Small plate text gets too few CTC time steps at its natural width.
            crop = cv2.resize(crop, (int(crop.shape[1] * 1.5), crop.shape[0]),
                              interpolation=cv2.INTER_CUBIC)
            candidates.append((box, crop))
        if not candidates:
            return FrameRead(plate=None, confidence=0.0, bbox=None)
        reads = self.recognizer.recognize([c for _, c in candidates])
        best = FrameRead(plate=None, confidence=0.0, bbox=None)
        best_score = -1.0
        for (box, crop), text in zip(candidates, reads, strict=True):
            kept = [(c, p) for c, p in zip(text.text, text.char_conf, strict=True)
                    if p >= self.min_char_conf]
            raw = "".join(c for c, _ in kept)
            plate = normalize(raw, self.regions)
            conf = float(np.mean([p for _, p in kept])) if kept else 0.0
            score = conf * box.score + (1.0 if plate else 0.0)
            if score > best_score:
                best_score = score
                best = FrameRead(plate=plate, confidence=conf if plate else 0.0,
                                 bbox=box.bbox, raw=raw, crop=crop)
        return best

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
    release_free_memory,
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
        unclip_ratio, pad_along: how far detected text boxes are grown before cropping.
        stretches: horizontal scale factors each text line is read at (the variants vote).
        good_score: a first-pass read scoring below this triggers the larger retry pass.
        refine, refine_line_px: re-detect each candidate line in a window around it, scaled so
            the line is about this tall (fixes boxes the coarse pass cut short).
        max_candidates: how many coarse text lines are read per pass.
    """

    def __init__(self, *, det_model: Path | str | None = None, rec_model: Path | str | None = None,
                 rec_dict: Path | str | None = None, threads: int = 1, det_max_side_px: int = 640,
                 det_retry_max_side_px: int = 896, regions: tuple[RegionFormat, ...] = (US,),
                 min_char_conf: float = 0.3, unclip_ratio: float = 1.6,
                 pad_along: float = 0.25, stretches: tuple[float, ...] = (1.5,),
                 good_score: float = 1.4, refine: bool = True, refine_line_px: int = 40,
                 max_candidates: int = 2):
        self.detector = TextDetector(Path(det_model or DEFAULT_DET), threads=threads,
                                     max_side_px=det_max_side_px, box_thresh=0.4,
                                     unclip_ratio=unclip_ratio, pad_along=pad_along)
        self.retry_side_px = det_retry_max_side_px
        rec_path = Path(rec_model or DEFAULT_REC)
        dict_path = Path(rec_dict) if rec_dict else (DEFAULT_DICT if not rec_model else None)
        self.recognizer = TextRecognizer(rec_path, dict_path, threads=threads)
        self.regions = regions
        self.min_char_conf = min_char_conf
        self.stretches = stretches
        self.good_score = good_score
        self.refine = refine
        self.refine_line_px = refine_line_px
        self.max_candidates = max_candidates

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
        best, score = self._best(image, self.detector.detect(image))
        if score < self.good_score and self.retry_side_px > self.detector.max_side_px:
            first = self.detector.max_side_px
            try:
                self.detector.max_side_px = self.retry_side_px
                retry, retry_score = self._best(image, self.detector.detect(image))
            finally:
                self.detector.max_side_px = first
            if retry_score > score:
                best = retry
        release_free_memory()
        ms = (time.perf_counter() - started) * 1000
        return FrameRead(plate=best.plate, confidence=best.confidence, bbox=best.bbox, raw=best.raw,
                         crop=best.crop, ms=ms)

    def _refine(self, image: np.ndarray, box: TextBox) -> list[TextBox]:
        """Re-detect the text line at full resolution in a window around a coarse box."""
        x1, y1, x2, y2 = box.bbox
        h = max(1, y2 - y1)
        rx1, ry1 = max(0, int(x1 - 0.6 * h)), max(0, int(y1 - 0.5 * h))
        rx2 = min(image.shape[1], int(x2 + 0.6 * h))
        ry2 = min(image.shape[0], int(y2 + 0.5 * h))
        roi = image[ry1:ry2, rx1:rx2]
        if roi.shape[0] < 8 or roi.shape[1] < 8:
            return []
        # scale so the text line is about `refine_line_px` tall
        side = int(max(roi.shape[:2]) * self.refine_line_px / h)
        side = int(min(max(side, 64), 480))
        found = self.detector.detect(roi, max_side_px=side, upscale=True)
        cy = (y1 + y2) / 2 - ry1
        out = []
        for b in found:
            bx1, by1, bx2, by2 = b.bbox
            if by1 <= cy <= by2 and (by2 - by1) >= 0.4 * h:
                corners = b.corners + np.array([rx1, ry1], dtype=np.float32)
                out.append(TextBox(corners=corners, score=b.score))
        return out

    def _best(self, image: np.ndarray, boxes: list[TextBox]) -> tuple[FrameRead, float]:
        candidates = []
        coarse = []
        for box in boxes:
            x1, y1, x2, y2 = box.bbox
            w, h = x2 - x1, y2 - y1
            if h < 6 or w < h * 0.8 or w > image.shape[1] * 0.6:
                continue
            coarse.append(box)
        coarse.sort(key=lambda b: -b.score)
        for box in coarse[:self.max_candidates]:
            refined = self._refine(image, box) if self.refine else []
            for cand in refined or [box]:
                candidates.append((cand, crop_box(image, cand.corners)))
        none = FrameRead(plate=None, confidence=0.0, bbox=None)
        if not candidates:
            return none, -2.0
        # Small plate text gets too few CTC time steps at its natural width: read each line
        # at several horizontal stretches and let the variants vote.
        crops = [cv2.resize(crop, (max(2, int(crop.shape[1] * k)), crop.shape[0]),
                            interpolation=cv2.INTER_CUBIC)
                 for _, crop in candidates for k in self.stretches]
        reads = self.recognizer.recognize(crops)
        n = len(self.stretches)
        best, best_score = none, -2.0
        for i, (box, crop) in enumerate(candidates):
            totals: dict[str, float] = {}
            raws: dict[str, str] = {}
            for text in reads[i * n:(i + 1) * n]:
                kept = [(c, p) for c, p in zip(text.text, text.char_conf, strict=True)
                        if p >= self.min_char_conf]
                raw = "".join(c for c, _ in kept)
                plate = normalize(raw, self.regions)
                conf = float(np.mean([p for _, p in kept])) if kept else 0.0
                key = plate or ""
                totals[key] = totals.get(key, 0.0) + conf
                raws.setdefault(key, raw)
            key = max(totals, key=lambda k: (totals[k], k != ""))
            conf = totals[key] / n
            plate = key or None
            score = conf * box.score + (plate_prior(plate) if plate else -1.0)
            if score > best_score:
                best_score = score
                best = FrameRead(plate=plate, confidence=conf if plate else 0.0,
                                 bbox=box.bbox, raw=raws[key], crop=crop)
        return best, best_score


def plate_prior(plate: str) -> float:
    """How plate-like a valid read looks: 5-8 characters mixing letters and digits score best.

    Words on signs and bumper stickers (EXIT, PRIVATE) are letters only; burnt-in timestamps
    are long digit runs starting with a year.
    """
    score = 0.0
    if 5 <= len(plate) <= 8:
        score += 0.5
    has_digit = any(c.isdigit() for c in plate)
    has_letter = any(c.isalpha() for c in plate)
    if has_digit and has_letter:
        score += 0.5
    elif has_digit and len(plate) >= 6 and plate[:2] in ("19", "20"):
        score -= 0.5
    elif has_digit:
        score += 0.25
    return score

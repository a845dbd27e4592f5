"""One image in, one plate read out: detect text lines, read them, keep the best plate-like one."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lpr.engine import (
    DEFAULT_DET,
    DEFAULT_DICT,
    DEFAULT_DICT2,
    DEFAULT_PLATE_DET,
    DEFAULT_REC,
    DEFAULT_REC2,
    PlateBox,
    PlateDetector,
    TextBox,
    TextDetector,
    TextRecognizer,
    crop_box,
    release_free_memory,
)
from lpr.regions import US, RegionFormat, normalize

# the regions whose plates the shipped first recogniser (plate_rec.onnx) was fine-tuned on
_FIRST_REC_TUNED_ON = frozenset({"us"})
FAINT_READS = 3  # faint plate boxes read before the last resort (`_last_look`), best first


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameRead:
    """The best plate in one frame (plate None = nothing plate-like), with its box and crop."""

    plate: str | None
    confidence: float
    bbox: tuple[int, int, int, int] | None
    raw: str = ""
    crop: np.ndarray | None = None
    ms: float = 0.0
    # where the plate was found, for a look at the same place in the next frame of a burst:
    # the plate detector's box (when it found the plate) and the text line read
    plate_box: PlateBox | None = None
    line: TextBox | None = None


class _RunGate:
    """Lane threads' reads side by side, except a read's last resort (the whole-frame text
    search, or the plate detector's largest look), which runs alone.

    The last resort is the dearest run in memory (the text search at 896 px ~43 MB, the plate
    detector at 800 px ~31 MB; a smaller look 10-25 MB): with two reader threads, running it
    beside another lane's read adds their peaks up (full load, 240-s runs: RSS peak 278.0 and
    278.9 MiB with this gate, 282.4 without). A thread asking to search waits until the reads
    under way end (its own read's share counts as ended while it waits), and reads asked for
    meanwhile wait for the search.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0  # threads in a read (a thread counted once)
        self._alone = False  # a search is running
        self._waiting = 0  # threads waiting to search
        self._mine = threading.local()

    @contextlib.contextmanager
    def shared(self):
        """A read: runs beside other reads, never beside a search."""
        depth = getattr(self._mine, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._alone or self._waiting:
                    self._cond.wait()
                self._shared += 1
        self._mine.depth = depth + 1
        try:
            yield
        finally:
            self._mine.depth = depth
            if depth == 0:
                with self._cond:
                    self._shared -= 1
                    self._cond.notify_all()

    @contextlib.contextmanager
    def alone(self):
        """A search: runs with no read or other search under way."""
        mine = 1 if getattr(self._mine, "depth", 0) else 0
        with self._cond:
            self._shared -= mine  # this thread runs nothing else while it waits
            self._waiting += 1
            self._cond.notify_all()
            while self._alone or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._shared += mine
                self._cond.notify_all()


class PlateReader:
    """Plate reads from BGR frames with the ONNX text detector and recogniser.

    Args:
        det_model, rec_model, rec_dict: model files (defaults: the shipped PP-OCRv4 text
            detector and the plate recogniser, PP-OCRv6 small fine-tuned on plate lines).
        second_rec_model, second_rec_dict: a second recogniser that reads every line too, the
            two voting (default: the shipped PP-OCRv6 small general recogniser; "none" = only
            the first).
        second_rec_below: the second recogniser reads a line only when the first's confidence
            is below this (a sure first read counts as agreed; > 1 = always, the default).
        second_rec_weight: the second recogniser's vote counts this much against the first's
            for plates of regions the shipped first recogniser was not fine-tuned on (all but
            `us`); within `us`, and with another first recogniser, votes count equally.
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
        detector: `yolo` = find plates with the plate detector (`plate_det_model`, AGPL-3.0)
            and read the text line inside each (the text detector in the plate's window), the
            whole-frame text search as the last resort (`plate_det_search_px`); `text` = the
            text-detector search only (Apache-2.0).
        plate_det_model: the plate detector ONNX file (default: the shipped YOLOv8 one).
        plate_det_px: plate detector input size (longer side, multiple of 32).
        plate_det_retry_px: the plate detector looks again at this size when the first look
            gives no plate read at least `plate_sure` confident (0 = never).
        plate_det_search_px: the last resort behind the plate detector, when its looks give
            no good read: 0 = the whole-frame text search; a size = a third look at that size
            instead (cheaper, fewer plates: see `_last_look`).
        plate_sure: a plate read this confident (0-1) ends the search after the plate detector.
        plate_line_px: plate windows are scaled so the plate box is about this tall before the
            text line inside it is detected.
        read_faint: behind the plate detector, read the boxes it scored below its threshold
            (see `PlateDetector.detect`) before the last resort (`_last_look`).
    """

    def __init__(self, *, det_model: Path | str | None = None, rec_model: Path | str | None = None,
                 rec_dict: Path | str | None = None, threads: int = 1, det_max_side_px: int = 640,
                 det_retry_max_side_px: int = 896, regions: tuple[RegionFormat, ...] = (US,),
                 min_char_conf: float = 0.3, unclip_ratio: float = 1.6,
                 pad_along: float = 0.25, stretches: tuple[float, ...] = (1.5,),
                 good_score: float = 1.4, refine: bool = True, refine_line_px: int = 40,
                 max_candidates: int = 2, detector: str = "yolo",
                 plate_det_model: Path | str | None = None, plate_det_px: int = 416,
                 plate_det_retry_px: int = 640, plate_sure: float = 0.0,
                 plate_line_px: int = 128, second_rec_model: Path | str | None = None,
                 second_rec_dict: Path | str | None = None, second_rec_below: float = 2.0,
                 second_rec_weight: float = 1.3, read_faint: bool = True,
                 plate_det_search_px: int = 0):
        if detector not in ("yolo", "text"):
            raise ValueError(f"detector: must be 'yolo' or 'text', not {detector!r}")
        self.plate_detector = (PlateDetector(Path(plate_det_model or DEFAULT_PLATE_DET),
                                             threads=threads, input_px=plate_det_px)
                               if detector == "yolo" else None)
        self.plate_line_px = plate_line_px
        self.plate_det_retry_px = plate_det_retry_px
        self.plate_det_search_px = plate_det_search_px
        self.plate_sure = plate_sure
        self.lines_per_plate = 1
        self.plate_full_width = False
        self.plate_margin = 0.0
        self.plate_pad_along = 0.0
        self.detector = TextDetector(Path(det_model or DEFAULT_DET), threads=threads,
                                     max_side_px=det_max_side_px, box_thresh=0.4,
                                     unclip_ratio=unclip_ratio, pad_along=pad_along)
        self.retry_side_px = det_retry_max_side_px
        rec_path = Path(rec_model or DEFAULT_REC)
        self.first_rec_is_shipped = rec_path.resolve() == DEFAULT_REC.resolve()
        dict_path = Path(rec_dict) if rec_dict else (DEFAULT_DICT if not rec_model else None)
        self.recognizer = TextRecognizer(rec_path, dict_path, threads=threads)
        self.recognizers = [self.recognizer]
        self.second_rec_below = second_rec_below
        self.second_rec_weight = second_rec_weight
        if str(second_rec_model or "").lower() != "none":
            rec2 = Path(second_rec_model or DEFAULT_REC2)
            dict2 = (Path(second_rec_dict) if second_rec_dict
                     else (DEFAULT_DICT2 if not second_rec_model else None))
            self.recognizers.append(TextRecognizer(rec2, dict2, threads=threads))
        self.regions = regions
        self.min_char_conf = min_char_conf
        self.stretches = stretches
        self.good_score = good_score
        self.refine = refine
        self.refine_line_px = refine_line_px
        self.max_candidates = max_candidates
        self.read_faint = read_faint
        self._runs = _RunGate()  # lane threads share this reader (see `_RunGate`)

    @classmethod
    def from_config(cls, lpr_cfg) -> PlateReader:
        """A reader built from the `[lpr]` config section."""
        return cls(det_model=lpr_cfg.det_model or None, rec_model=lpr_cfg.rec_model or None,
                   rec_dict=lpr_cfg.rec_dict or None, threads=lpr_cfg.threads,
                   det_max_side_px=lpr_cfg.det_max_side_px,
                   det_retry_max_side_px=lpr_cfg.det_retry_max_side_px, regions=lpr_cfg.regions,
                   detector=lpr_cfg.detector, plate_det_model=lpr_cfg.plate_det_model or None,
                   plate_det_px=lpr_cfg.plate_det_px,
                   plate_det_retry_px=lpr_cfg.plate_det_retry_px,
                   plate_det_search_px=lpr_cfg.plate_det_search_px, plate_sure=lpr_cfg.plate_sure,
                   plate_line_px=lpr_cfg.plate_line_px,
                   second_rec_model=lpr_cfg.second_rec_model or None,
                   second_rec_dict=lpr_cfg.second_rec_dict or None,
                   second_rec_below=lpr_cfg.second_rec_below,
                   second_rec_weight=lpr_cfg.second_rec_weight)

    def read(self, image: np.ndarray, *, search_frame: bool = True,
             near: FrameRead | None = None) -> FrameRead:
        """The most plate-like text in the frame.

        search_frame: False is a quick look for a burst's later frames, once a first frame's
            full search found nothing in the same scene: the plate detector at its first size
            only (no larger looks behind it).
        near: a read of an earlier frame of the same scene (a burst's car standing on the
            loop): look first where it found its plate (its plate box, or a window around its
            text line); only when that finds no plate is the frame searched as above.
        """
        started = time.perf_counter()  # a wait for another lane's search counts in `ms`
        with self._runs.shared():
            return self._read(image, search_frame=search_frame, near=near, started=started)

    def _read(self, image: np.ndarray, *, search_frame: bool, near: FrameRead | None,
              started: float) -> FrameRead:
        if image is None or image.ndim != 3 or image.shape[0] < 8 or image.shape[1] < 8:
            return FrameRead(plate=None, confidence=0.0, bbox=None, ms=0.0)
        if near is not None and near.plate is not None:
            again = self._look_again(image, near)
            if again.plate is not None:
                release_free_memory()
                return dataclasses.replace(again, ms=(time.perf_counter() - started) * 1000)
        best, score = FrameRead(plate=None, confidence=0.0, bbox=None), -2.0
        if self.plate_detector is not None:
            faint: list[PlateBox] | None = [] if search_frame and self.read_faint else None
            best, score = self._best_in_plates(image, self.plate_detector.detect(image,
                                                                                 faint=faint))
            if search_frame and (best.plate is None or best.confidence < self.plate_sure) and (
                    self.plate_det_retry_px > self.plate_detector.input_px):
                # unsure: a second, larger look finds the small and the far plates
                again, again_score = self._best_in_plates(
                    image, self.plate_detector.detect(image, input_px=self.plate_det_retry_px,
                                                      faint=faint))
                if again_score > score:
                    best, score = again, again_score
            if best.plate is not None and best.confidence >= self.plate_sure:
                release_free_memory()
                return dataclasses.replace(best, ms=(time.perf_counter() - started) * 1000)
            if faint and score < self.good_score:
                # No plate in the boxes the detector is sure of: the ones it half saw (below
                # its threshold) cost a window each, the last resort below a frame; a
                # faint box read as well as a good one ends the search.
                again, again_score = self._best_in_plates(image, _distinct(faint)[:FAINT_READS])
                if again_score > score:
                    best, score = again, again_score
                if best.plate is not None and score >= self.good_score:
                    release_free_memory()
                    return dataclasses.replace(best, ms=(time.perf_counter() - started) * 1000)
            if search_frame and score < self.good_score:
                # Behind the plate detector the last resort for a frame it found no valid plate
                # in: far and small plates, which a larger look finds (see `_last_look`)
                last, last_score = self._last_look(image)
                if last_score > score:
                    best, score = last, last_score
        else:
            best, score = self._best(image, self.detector.detect(image))
            if score < self.good_score and self.retry_side_px > self.detector.max_side_px:
                # the size goes with the call: lane threads share this detector
                found = self._search(image, self.retry_side_px)
                retry, retry_score = self._best(image, found)
                if retry_score > score:
                    best = retry
        release_free_memory()
        ms = (time.perf_counter() - started) * 1000
        return dataclasses.replace(best, ms=ms)

    def _last_look(self, image: np.ndarray) -> tuple[FrameRead, float]:
        """Behind the plate detector, a frame whose looks gave no good read: the whole-frame
        text search at the larger text size (one size: the smaller read no plate the larger did
        not, on every dev and held-out half); with `plate_det_search_px` set, the plate
        detector once more at that size instead. Either runs alone (see `_RunGate`).

        Both find far and small plates the smaller looks miss (a plate 57 px wide in a 720p
        frame), and on every dev half (US, EU, BR) they read the same plates. The look at
        800 px costs half the CPU of the text search and less memory at its peak (one thread,
        a 720p frame: 86 against 188 ms, +31 against +43 MB; a portrait photo is one run
        instead of three strips), but it read 3 fewer of the 111 US held-out plates (98
        against 101): the text search stays the default (`make bench`, docs/lpr.md)."""
        if self.plate_det_search_px:
            with self._alone_on_a_trimmed_heap():
                boxes = self.plate_detector.detect(image, input_px=self.plate_det_search_px)
            return self._best_in_plates(image, boxes)
        return self._best(image, self._search(image, max(self.retry_side_px,
                                                         self.detector.max_side_px)))

    @contextlib.contextmanager
    def _alone_on_a_trimmed_heap(self):
        """A last resort's run: alone (see `_RunGate`), the dearest run in memory, with no
        other beside it, and on a trimmed heap: the plate detector's looks before it, and the
        reads of their boxes, free their buffers into the heap, which keeps them resident until
        a trim, and the run's peak came on top of them (a 720p frame with no plate: ~29 MB;
        under full load 7-22 MB at each text search's start)."""
        with self._runs.alone():
            release_free_memory()
            yield

    def _search(self, image: np.ndarray, side_px: int) -> list[TextBox]:
        """The whole-frame text search at `side_px` (the size goes with the call: lane threads
        share this detector), alone on a trimmed heap."""
        with self._alone_on_a_trimmed_heap():
            return self.detector.detect(image, max_side_px=side_px)

    def _look_again(self, image: np.ndarray, near: FrameRead) -> FrameRead:
        """Read the plate where an earlier frame of the scene had it (no read if none there)."""
        if near.plate_box is not None:  # the plate detector's box: its line, read again
            return self._best_in_plates(image, [near.plate_box])[0]
        if near.line is None:
            return FrameRead(plate=None, confidence=0.0, bbox=None)
        # a line the whole-frame search found: re-detected in a window around it
        lines = self._refine(image, near.line) or [near.line]
        return self._rank([(line, crop_box(image, line.corners)) for line in lines])[0]

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

    def _plate_lines(self, image: np.ndarray, plate: PlateBox) -> list[TextBox]:
        """The main text line(s) inside a detected plate, tallest first."""
        x1, y1, x2, y2 = plate.bbox
        w, h = x2 - x1, y2 - y1
        rx1, ry1 = max(0, int(x1 - 0.08 * w)), max(0, int(y1 - 0.15 * h))
        rx2, ry2 = min(image.shape[1], int(x2 + 0.08 * w)), min(image.shape[0], int(y2 + 0.15 * h))
        roi = image[ry1:ry2, rx1:rx2]
        if roi.shape[0] < 8 or roi.shape[1] < 8:
            return []
        side = int(max(roi.shape[:2]) * self.plate_line_px / max(1, h))
        side = int(min(max(side, 96), 640))
        found = self.detector.detect(roi, max_side_px=side, upscale=True)
        lines = []
        for b in found:
            bx1, by1, bx2, by2 = b.bbox
            cx, cy = (bx1 + bx2) / 2 + rx1, (by1 + by2) / 2 + ry1
            if not (x1 <= cx <= x2 and y1 <= cy <= y2):
                continue
            if by2 - by1 < 0.2 * h or bx2 - bx1 < 0.8 * (by2 - by1):
                continue
            corners = b.corners + np.array([rx1, ry1], dtype=np.float32)
            if self.plate_pad_along:
                # grow the line along x (edge characters get cut), but not past the plate
                grow = self.plate_pad_along * (by2 - by1)
                corners[[0, 3], 0] = np.maximum(corners[[0, 3], 0] - grow, min(x1, corners[0, 0]))
                corners[[1, 2], 0] = np.minimum(corners[[1, 2], 0] + grow, max(x2, corners[1, 0]))
            lines.append(TextBox(corners=corners, score=b.score))
            if self.plate_full_width:
                # The line detector often cuts off edge characters: also read the line at the
                # plate's full width.
                ly1, ly2 = corners[:, 1].min(), corners[:, 1].max()
                m = self.plate_margin * w
                wide = np.array([[x1 + m, ly1], [x2 - m, ly1], [x2 - m, ly2], [x1 + m, ly2]],
                                dtype=np.float32)
                lines.append(TextBox(corners=wide, score=b.score))
        lines.sort(key=lambda b: -(b.bbox[3] - b.bbox[1]))
        return lines[:self.lines_per_plate * (2 if self.plate_full_width else 1)]

    def _best_in_plates(self, image: np.ndarray,
                        plates: list[PlateBox]) -> tuple[FrameRead, float]:
        """The best read in the detected plates, best box first; a sure read ends the search."""
        best, best_score = FrameRead(plate=None, confidence=0.0, bbox=None), -2.0
        for plate in plates:
            candidates = [(line, crop_box(image, line.corners))
                          for line in self._plate_lines(image, plate)]
            read, score = self._rank(candidates)
            if score > best_score:
                best, best_score = dataclasses.replace(read, plate_box=plate), score
            if best.plate is not None and best.confidence >= max(self.plate_sure, 0.5):
                break
        return best, best_score

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
        return self._rank(candidates)

    def _second_weight(self) -> float:
        """The second recogniser's vote weight (1 where the first was tuned, or is not ours)."""
        # plate_rec.onnx was fine-tuned on US plates only: elsewhere the general recogniser
        # is the surer of two disagreeing reads (O/D, Q/O on Brazilian plates)
        if not self.first_rec_is_shipped or any(r.name in _FIRST_REC_TUNED_ON
                                                for r in self.regions):
            return 1.0
        return self.second_rec_weight

    def _plate_of(self, text) -> tuple[str | None, str, float]:
        """(plate as the regions format it or None, the kept raw text, its mean confidence)."""
        kept = [(c, p) for c, p in zip(text.text, text.char_conf, strict=True)
                if p >= self.min_char_conf]
        raw = "".join(c for c, _ in kept)
        plate = normalize(raw, self.regions, tuple(p for _, p in kept))
        return plate, raw, float(np.mean([p for _, p in kept])) if kept else 0.0

    def _rank(self, candidates: list[tuple[TextBox, np.ndarray]]) -> tuple[FrameRead, float]:
        """Read every candidate line (at each stretch, voting) and keep the most plate-like."""
        none = FrameRead(plate=None, confidence=0.0, bbox=None)
        if not candidates:
            return none, -2.0
        # Small plate text gets too few CTC time steps at its natural width: read each line
        # at several horizontal stretches, with each recogniser, and let the variants vote
        # (two recognisers trained differently make different glyph mistakes).
        reads = []
        for _, crop in candidates:
            for k in self.stretches:
                stretched = cv2.resize(crop, (max(2, int(crop.shape[1] * k)), crop.shape[0]),
                                       interpolation=cv2.INTER_CUBIC)
                first = self.recognizers[0].recognize([stretched])[0]
                reads.append(first)
                # A line the first recogniser is sure of, read as a plate of the region, counts
                # as agreed: no second pass.
                sure = (first.confidence >= self.second_rec_below
                        and self._plate_of(first)[0] is not None)
                reads += [first if sure else rec.recognize([stretched])[0]
                          for rec in self.recognizers[1:]]
        n = len(self.stretches) * len(self.recognizers)
        weights = [1.0] + [self._second_weight()] * (len(self.recognizers) - 1)
        weights = weights * len(self.stretches)
        best, best_score = none, -2.0
        for i, (box, crop) in enumerate(candidates):
            totals: dict[str, float] = {}
            raws: dict[str, str] = {}
            for text, weight in zip(reads[i * n:(i + 1) * n], weights, strict=True):
                plate, raw, conf = self._plate_of(text)
                key = plate or ""
                totals[key] = totals.get(key, 0.0) + conf * weight
                raws.setdefault(key, raw)
            key = max(totals, key=lambda k: (totals[k], k != ""))
            conf = totals[key] / sum(weights)
            plate = key or None
            score = conf * box.score + (plate_prior(plate) if plate else -1.0)
            if score > best_score:
                best_score = score
                best = FrameRead(plate=plate, confidence=conf if plate else 0.0,
                                 bbox=box.bbox, raw=raws[key], crop=crop, line=box)
        return best, best_score


def _distinct(boxes: list[PlateBox], overlap: float = 0.5) -> list[PlateBox]:
    """Boxes best first, without those overlapping a better one (two looks see one plate)."""
    kept: list[PlateBox] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        x1, y1, x2, y2 = box.bbox
        area = (x2 - x1) * (y2 - y1)
        for k in kept:
            kx1, ky1, kx2, ky2 = k.bbox
            inter = max(0, min(x2, kx2) - max(x1, kx1)) * max(0, min(y2, ky2) - max(y1, ky1))
            if inter > overlap * (area + (kx2 - kx1) * (ky2 - ky1) - inter):
                break
        else:
            kept.append(box)
    return kept


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

"""ONNX plate engine: text detection (DB) and recognition (CTC) with lotedge's own pre/post-processing."""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.errors import LotedgeError

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_DET = MODELS_DIR / "ppocrv4_det.onnx"
# the plate recogniser: PP-OCRv6 small fine-tuned on plate lines (lpr/training/finetune_rec.py)
DEFAULT_REC = MODELS_DIR / "plate_rec.onnx"
DEFAULT_DICT = MODELS_DIR / "plate_rec_dict.txt"
DEFAULT_REC2 = MODELS_DIR / "ppocrv6_small_rec.onnx"  # the second recogniser; the two vote
DEFAULT_DICT2 = MODELS_DIR / "ppocrv6_rec_dict.txt"
DEFAULT_PLATE_DET = MODELS_DIR / "yolov8_plate_det.onnx"
PLATE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class ModelError(LotedgeError, RuntimeError):
    """A plate model file is missing or cannot be loaded."""


@functools.cache
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


STRIP_PIXELS = 896 * 320  # the text detector's largest input run at once (see _probability)
STRIP_OVERLAP_PX = 128

_M_ARENA_MAX = -8  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def share_one_heap() -> None:
    """Have threads that start allocating from now on share the main heap (glibc's
    M_ARENA_MAX = 1, as MALLOC_ARENA_MAX=1 would), and blocks of 4 MiB and more always mapped
    on their own (M_MMAP_THRESHOLD, fixed); a no-op elsewhere.

    glibc gives each allocating thread its own arena (up to eight per core), and each arena
    keeps the freed peaks of its thread's frames and inference buffers: with four busy camera
    lanes (capture and reader threads) the process held 290-350 MiB, with one heap 245-255 MiB,
    and a read costs the same CPU (US dev half, one reader thread: 61 against 62 ms median).
    glibc also raises its mmap threshold to the largest block freed (up to 32 MiB), after
    which frame-sized tensors land in the heap and fragment it; fixed at 4 MiB they go back
    to the system when freed (full load, steady: ~225 against ~235 MiB, no CPU cost per
    read measured; at 256 kB a read took twice the CPU).
    """
    libc = _libc()
    if libc is not None:
        try:
            libc.mallopt(_M_ARENA_MAX, 1)
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        except AttributeError:
            pass


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc's malloc_trim; a no-op elsewhere).

    Every frame and crop has its own shape, so inference buffers come and go; without this
    glibc keeps the freed peak resident (about 180 MB instead of 90 MB after a few frames).
    """
    libc = _libc()
    if libc is not None:
        try:
            libc.malloc_trim(0)
        except AttributeError:
            pass


def _session(path: Path, threads: int, *, plan_memory: bool = False):
    """An onnxruntime CPU session of the model at `path`.

    plan_memory: have onnxruntime plan each input shape's intermediate tensors into one block
        (its memory pattern) instead of allocating them one by one. For a model whose tensors
        outgrow glibc's mmap threshold (`share_one_heap`: 4 MiB), each of them was a mapping
        of its own, zeroed page by page on first touch and unmapped after: the text
        detector's whole-frame search at 896 x 320 took 204 ms and peaked at +64 MB on one
        thread, planned 121 ms and +45 MB, with the same output; the plate detector at 640 x
        480, 80 -> 70 ms and +31 -> +20 MB. onnxruntime keeps a plan per input shape (225
        window shapes: +0.4 MB), so only for models whose input sizes come in steps (both
        detectors' multiples of 32), not for the recognisers' free widths.
    """
    import onnxruntime as ort


    if not Path(path).is_file():
        raise ModelError(f"model file not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # onnxruntime's pool threads spin between runs by default: beside other lanes' reads and
    # the service they burn the cores they wait on (threads = 2 read a photo in 188 ms of wall
    # time spinning, 98 ms not, against 116 ms with one thread)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    # Input shapes change with every frame and crop: a growing arena would hold the peak forever.
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = plan_memory
    try:
        return ort.InferenceSession(str(path), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load model {path}: {err}") from err


@dataclass(frozen=True, kw_only=True, slots=True)
class TextBox:
    """A detected text region: four corners (clockwise from top-left) and the detector's score."""

    corners: np.ndarray
    score: float

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """Axis-aligned [x1, y1, x2, y2]."""
        xs, ys = self.corners[:, 0], self.corners[:, 1]
        return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


class TextDetector:
    """DB text detector (PP-OCR det ONNX): image in, rotated text boxes out.

    Args:
        model_path: the ONNX file.
        threads: onnxruntime intra-op threads.
        max_side_px: the longer image side is scaled down to this before inference.
        thresh, box_thresh, unclip_ratio: DB post-processing parameters.
        pad_along: extra padding along the text line, as a fraction of its height.
        strip_pixels: an input larger than this many pixels is run in horizontal strips of at
            most this size, each overlapping the next by `strip_overlap_px` rows, and their maps
            joined (0: always one run).
        strip_overlap_px: rows two strips share (a multiple of 32).
    """

    def __init__(self, model_path: Path = DEFAULT_DET, *, threads: int = 1, max_side_px: int = 640,
                 thresh: float = 0.3, box_thresh: float = 0.5, unclip_ratio: float = 1.6,
                 pad_along: float = 0.0, strip_pixels: int = STRIP_PIXELS,
                 strip_overlap_px: int = STRIP_OVERLAP_PX):
        self.session = _session(model_path, threads, plan_memory=True)
        self.input_name = self.session.get_inputs()[0].name
        self.max_side_px = max_side_px
        self.strip_pixels = strip_pixels
        self.strip_overlap_px = strip_overlap_px
        self.thresh = thresh
        self.box_thresh = box_thresh
        self.unclip_ratio = unclip_ratio
        self.pad_along = pad_along

    def _prepare(self, image: np.ndarray, max_side_px: int,
                 upscale: bool) -> tuple[np.ndarray, float, float]:
        h, w = image.shape[:2]
        scale = max_side_px / max(h, w)
        if not upscale:
            scale = min(1.0, scale)
        nh = max(32, int(round(h * scale / 32)) * 32)
        nw = max(32, int(round(w * scale / 32)) * 32)
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if nw < w else cv2.INTER_CUBIC)
        return resized, w / nw, h / nh

    @staticmethod
    def _blob(rows: np.ndarray) -> np.ndarray:
        """The network's (1, 3, H, W) input of image rows (BGR, scaled to [-1, 1]).

        Made in place in one array: each step of `(rows / 127.5 - 1)` as an expression of its
        own is a temporary of the input's size (3.4 MB per 896 x 320 strip), which the heap
        keeps resident after it is freed until the next trim, under the network's run."""
        blob = np.empty((1, 3, *rows.shape[:2]), dtype=np.float32)
        blob[0] = rows.transpose(2, 0, 1)
        np.divide(blob, 127.5, out=blob)
        np.subtract(blob, 1.0, out=blob)
        return blob

    def detect(self, image: np.ndarray, *, max_side_px: int | None = None,
               upscale: bool = False) -> list[TextBox]:
        """Text boxes in a BGR image, in image coordinates (scaled to `max_side_px` for inference)."""
        resized, sx, sy = self._prepare(image, max_side_px or self.max_side_px, upscale)
        prob = self._probability(resized)
        mask = (prob > self.thresh).astype(np.uint8)
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[TextBox] = []
        for contour in contours[:1000]:
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
            if min(rw, rh) < 2:
                continue
            x, y, bw, bh = cv2.boundingRect(contour)
            region = mask[y:y + bh, x:x + bw]
            score = float(prob[y:y + bh, x:x + bw][region > 0].mean()) if region.any() else 0.0
            if score < self.box_thresh:
                continue
            # unclip: grow the shrunk DB kernel back to the text's extent (offset = A*r/L)
            offset = rw * rh * self.unclip_ratio / (2 * (rw + rh))
            rw, rh = rw + 2 * offset, rh + 2 * offset
            # Plate text lines lose edge characters more often than height: pad along the line.
            if rw >= rh:
                rw += 2 * self.pad_along * rh
            else:
                rh += 2 * self.pad_along * rw
            rect = ((cx, cy), (rw, rh), angle)
            corners = _order(cv2.boxPoints(rect))
            corners[:, 0] = np.clip(corners[:, 0] * sx, 0, image.shape[1] - 1)
            corners[:, 1] = np.clip(corners[:, 1] * sy, 0, image.shape[0] - 1)
            boxes.append(TextBox(corners=corners.astype(np.float32), score=score))
        return boxes

    def _probability(self, image: np.ndarray) -> np.ndarray:
        """The text probability map of an H x W image (prepared), H x W; a large one in strips,
        each made into the network's input only when it runs.

        The network's memory grows with its input: the whole-frame search at 896 x 512 held
        ~84 MB at its peak in one run, ~63 MB in two strips of 320 rows (~53 MB since its
        tensors are planned, see `_session`, and each strip made into floats only as it runs).
        Each row of the joined map comes from the strip in which it lies farther from a cut
        (half the overlap of context on each side). With 128 rows of overlap the two-strip
        search read the same plates as one run on every development half (US, EU, BR);
        thinner strips or less overlap changed plates there.
        """
        h, w = image.shape[:2]
        strips = self.strips(h, w)
        if len(strips) == 1:
            return self.session.run(None, {self.input_name: self._blob(image)})[0][0, 0]
        prob = np.empty((h, w), dtype=np.float32)
        top = 0  # the first row of the joined map not yet written
        for start, end in strips:
            part = self.session.run(None, {self.input_name: self._blob(image[start:end])})[0][0, 0]
            keep_to = end if end == h else end - self.strip_overlap_px // 2
            prob[top:keep_to] = part[top - start:keep_to - start]
            top = keep_to
            del part
            release_free_memory()  # this strip's freed buffers, before the next one's
        return prob

    def strips(self, h: int, w: int) -> list[tuple[int, int]]:
        """The (first, end) rows of each run for a prepared H x W input: one run when it fits
        `strip_pixels`, else strips overlapping by at least `strip_overlap_px` rows, all of one
        height (the last one ends at H and shares more with the one before it).

        One height gives every frame of a width one input shape, which onnxruntime plans
        once (`_session`): a shape's first run is not planned and peaked higher (a 4:3 frame
        at 896 px, its last strip 288 rows: +56.5 MB against +48.2 planned), and photos of
        many sizes made many first runs. The same plates on every dev half, both readers."""
        if not self.strip_pixels or h * w <= self.strip_pixels:
            return [(0, h)]
        ov = self.strip_overlap_px
        step = max(32, (self.strip_pixels // w - ov) // 32 * 32)
        out = []
        for start in range(0, h, step):
            if start + step + ov >= h:  # the last strip: as tall as the others, ending at h
                out.append((max(0, h - step - ov), h))
                break
            out.append((start, start + step + ov))
        return out


def _order(points: np.ndarray) -> np.ndarray:
    pts = points[np.argsort(points[:, 0])]
    left = pts[:2][np.argsort(pts[:2, 1])]
    right = pts[2:][np.argsort(pts[2:, 1])]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def crop_box(image: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Perspective-rectified crop of a four-corner region (upright, wider than tall)."""
    w = int(max(np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[3] - corners[2])))
    h = int(max(np.linalg.norm(corners[0] - corners[3]), np.linalg.norm(corners[1] - corners[2])))
    w, h = max(w, 2), max(h, 2)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), dst)
    crop = cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if h > 1.5 * w:
        crop = np.rot90(crop)
    return crop


@dataclass(frozen=True, kw_only=True, slots=True)
class TextRead:
    """A recognised string with per-character confidences."""

    text: str
    char_conf: tuple[float, ...]

    @property
    def confidence(self) -> float:
        """Mean character confidence (0 for an empty read)."""
        return float(np.mean(self.char_conf)) if self.char_conf else 0.0


class TextRecognizer:
    """CTC text recogniser (PP-OCR rec ONNX) restricted to a plate alphabet.

    Args:
        model_path: the ONNX file.
        dict_path: one character per line (class i+1; class 0 is the CTC blank).
        threads: onnxruntime intra-op threads.
        alphabet: characters the decoder may emit (others are masked out).
        height_px: the model's input height.
        max_width_px: wider lines are squeezed to this width (cost grows with width).
    """

    def __init__(self, model_path: Path = DEFAULT_REC, dict_path: Path | None = DEFAULT_DICT, *,
                 threads: int = 1, alphabet: frozenset[str] = PLATE_ALPHABET, height_px: int = 48,
                 max_width_px: int = 320):
        self.session = _session(model_path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.height_px = height_px
        self.max_width_px = max_width_px
        if dict_path is not None and Path(dict_path).is_file():
            chars = Path(dict_path).read_text(encoding="utf-8").rstrip("\n").split("\n")
        else:
            meta = self.session.get_modelmeta().custom_metadata_map
            if "character" not in meta:
                raise ModelError(f"no character dictionary for {model_path}")
            chars = meta["character"].rstrip("\n").split("\n")
        self.classes = ["", *chars, " "]
        keep = [0] + [i for i, c in enumerate(self.classes) if c in alphabet]
        self._keep = np.array(sorted(set(keep)), dtype=np.int64)

    def _blob(self, crop: np.ndarray) -> np.ndarray:
        width = int(np.ceil(self.height_px * crop.shape[1] / max(1, crop.shape[0])))
        width = int(min(max(width, 16), self.max_width_px))
        resized = cv2.resize(crop, (width, self.height_px), interpolation=cv2.INTER_LINEAR)
        return (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]

    def recognize(self, crops: list[np.ndarray]) -> list[TextRead]:
        """Read each BGR crop (one text line each)."""
        if not crops:
            return []
        reads = []
        for crop in crops:
            # one crop per run: padding a batch to its widest crop costs more than it saves
            seq = self.session.run(None, {self.input_name: self._blob(crop)})[0][0][:, self._keep]
            idx = seq.argmax(axis=1)
            conf = seq.max(axis=1)
            text, confs, prev = [], [], 0
            for k, p in zip(idx, conf, strict=True):
                if k != 0 and k != prev:
                    text.append(self.classes[self._keep[k]])
                    confs.append(float(p))
                prev = k
            reads.append(TextRead(text="".join(text), char_conf=tuple(confs)))
        return reads


@dataclass(frozen=True, kw_only=True, slots=True)
class PlateBox:
    """A detected plate: axis-aligned [x1, y1, x2, y2] in image pixels and the detector's score."""

    bbox: tuple[int, int, int, int]
    score: float


class PlateDetector:
    """YOLOv8-style single-class plate detector (ONNX): image in, plate boxes out.

    lotedge's own pre/post-processing: letterbox to a multiple of 32 (grey 114 padding, RGB,
    [0, 1]), decode `[1, 4 + classes, N]` (cx, cy, w, h, scores), confidence filter and NMS.

    Args:
        model_path: the ONNX file.
        threads: onnxruntime intra-op threads.
        input_px: the longer image side is scaled to this (a multiple of 32).
        conf_thresh: boxes scoring less are dropped.
        faint_thresh: boxes between this and conf_thresh are the faint ones (see `detect`).
        iou_thresh: NMS overlap threshold.
        max_boxes: at most this many boxes, best first.
    """

    def __init__(self, model_path: Path, *, threads: int = 1, input_px: int = 416,
                 conf_thresh: float = 0.2, iou_thresh: float = 0.5, max_boxes: int = 3,
                 faint_thresh: float = 0.03):
        self.session = _session(model_path, threads, plan_memory=True)  # sizes step by 32
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        fixed = inp.shape[2:] if all(isinstance(d, int) for d in inp.shape[2:]) else None
        self.fixed_hw = tuple(fixed) if fixed else None
        self.input_px = input_px
        self.conf_thresh = conf_thresh
        self.faint_thresh = faint_thresh
        self.iou_thresh = iou_thresh
        self.max_boxes = max_boxes

    def _letterbox(self, image: np.ndarray,
                   input_px: int | None = None) -> tuple[np.ndarray, float, int, int]:
        h, w = image.shape[:2]
        if self.fixed_hw:
            th, tw = self.fixed_hw
        else:
            side = max(32, int(round((input_px or self.input_px) / 32)) * 32)
            th = tw = side
        scale = min(tw / w, th / h)
        nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        if not self.fixed_hw:  # dynamic input: pad only to the next multiple of 32
            th, tw = int(np.ceil(nh / 32) * 32), int(np.ceil(nw / 32) * 32)
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1
                             else cv2.INTER_LINEAR)
        top, left = (th - nh) // 2, (tw - nw) // 2
        canvas = np.full((th, tw, 3), 114, np.uint8)
        canvas[top:top + nh, left:left + nw] = resized
        # RGB, scaled to [0, 1], in place in one array (see `TextDetector._blob`)
        blob = np.empty((1, 3, th, tw), dtype=np.float32)
        blob[0] = canvas[:, :, ::-1].transpose(2, 0, 1)
        np.divide(blob, 255.0, out=blob)
        return blob, scale, left, top

    def detect(self, image: np.ndarray, *, input_px: int | None = None,
               faint: list[PlateBox] | None = None) -> list[PlateBox]:
        """Plate boxes in a BGR image, best first (`input_px`: this look's input size).

        faint: when given, the boxes scoring below `conf_thresh` but at least `faint_thresh`
            (at most `max_boxes`, best first) are appended to it: places the detector half
            saw, worth a read before a dearer search of the whole frame.
        """
        blob, scale, left, top = self._letterbox(image, input_px)
        out = self.session.run(None, {self.input_name: blob})[0][0]
        if out.shape[0] > out.shape[1]:  # [N, 5] layout
            out = out.T
        scores = out[4:].max(axis=0)
        floor = self.conf_thresh if faint is None else min(self.faint_thresh, self.conf_thresh)
        keep = scores >= floor
        if not keep.any():
            return []
        cx, cy, bw, bh = (out[i][keep] for i in range(4))
        scores = scores[keep]
        x1 = (cx - bw / 2 - left) / scale
        y1 = (cy - bh / 2 - top) / scale
        ww, hh = bw / scale, bh / scale
        rects = [[float(a), float(b), float(c), float(d)] for a, b, c, d in zip(x1, y1, ww, hh,
                                                                                 strict=True)]
        # greedy NMS by score: the boxes at or above conf_thresh come out the same whatever
        # fainter ones are in the pool
        idx = cv2.dnn.NMSBoxes(rects, scores.astype(float).tolist(), floor, self.iou_thresh)
        img_h, img_w = image.shape[:2]
        boxes, below = [], []
        for i in sorted(np.array(idx).reshape(-1).tolist(), key=lambda k: -scores[k]):
            x, y, w, h = rects[i]
            bx1, by1 = int(max(0, x)), int(max(0, y))
            bx2, by2 = int(min(img_w, x + w)), int(min(img_h, y + h))
            if bx2 - bx1 >= 4 and by2 - by1 >= 4:
                box = PlateBox(bbox=(bx1, by1, bx2, by2), score=float(scores[i]))
                (boxes if box.score >= self.conf_thresh else below).append(box)
        if faint is not None:
            faint.extend(below[:self.max_boxes])
        return boxes[:self.max_boxes]

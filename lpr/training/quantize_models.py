"""Static int8 quantisation of a plate model (onnxruntime.quantization), calibrated on dev photos.

The plate detector and the recognisers spend most of a read's time in convolutions and matrix
products; int8 weights and activations (QDQ, per-channel weights) run them 2-3x faster on CPUs
with VNNI. Calibration inputs are made exactly as lotedge makes them at run time, from the `dev`
half (even files, sorted by name) of each labelled folder only.

Run with a training environment (onnx and onnxruntime; not lotedge dependencies):

    PYTHONPATH=. /tmp/train/bin/python -m lpr.training.quantize_models --what plate_det \\
        --dev ../shared/plates/us --dev ../shared/plates/eu --dev ../shared/plates/br \\
        --out lpr/models/yolov8_plate_det.int8.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np


def dev_images(folders: list[Path], limit: int) -> list[np.ndarray]:
    """The `dev` half's photos (even files by name) of each folder, at most `limit` per folder."""
    from lpr.bench import load_labels, split_items

    out = []
    for folder in folders:
        for item in split_items(load_labels(folder), "dev")[:limit]:
            out.append(cv2.imread(str(item.image)))
    return out


def plate_det_inputs(images: list[np.ndarray], sizes: tuple[int, ...]) -> list[dict]:
    """Letterboxed detector inputs at each run-time input size."""
    from lpr.engine import DEFAULT_PLATE_DET, PlateDetector

    det = PlateDetector(DEFAULT_PLATE_DET)
    return [{det.input_name: det._letterbox(img, px)[0]} for img in images for px in sizes]


def text_det_inputs(images: list[np.ndarray], side_px: int) -> list[dict]:
    """The text detector's whole-frame search inputs: each photo at `side_px`, in the strips
    the engine runs (`TextDetector._probability`)."""
    from lpr.engine import DEFAULT_DET, TextDetector

    det = TextDetector(DEFAULT_DET)
    feeds = []
    for img in images:
        prepared = det._prepare(img, side_px, False)[0]
        feeds += [{det.input_name: det._blob(prepared[start:end])}
                  for start, end in det.strips(*prepared.shape[:2])]
    return feeds


def rec_inputs(images: list[np.ndarray], rec_model: Path) -> list[dict]:
    """Recogniser inputs: the text lines lotedge cuts from the plates in the photos."""
    from lpr.engine import TextRecognizer, crop_box
    from lpr.reader import PlateReader

    reader = PlateReader(detector="yolo", second_rec_model="none")
    rec = TextRecognizer(rec_model, None)
    out = []
    for img in images:
        for plate in reader.plate_detector.detect(img):
            for line in reader._plate_lines(img, plate):
                crop = crop_box(img, line.corners)
                stretched = cv2.resize(crop, (max(2, int(crop.shape[1] * 1.5)), crop.shape[0]))
                out.append({rec.input_name: rec._blob(stretched)})
    return out


def _float_tail(model: Path, what: str) -> list[str]:
    """Nodes kept in float: the output decoding, where one tensor mixes ranges int8 cannot hold.

    YOLOv8's head concatenates box distances (pixels) with class scores (0-1) and decodes them
    (DFL softmax, anchors, strides); quantised, every score rounds to 0. The recogniser's
    classifier and softmax are kept too (a CTC decision between close classes).
    """
    import onnx

    nodes = onnx.load(str(model)).graph.node
    if what == "text_det":
        return [n.name for n in nodes[-3:]]  # the probability map's last upsampling and sigmoid
    if what == "plate_det":
        branch = ("/model.22/cv2.", "/model.22/cv3.")
        return [n.name for n in nodes if "/model.22/" in n.name
                and not (n.name.startswith(branch) and n.op_type in ("Conv", "Sigmoid", "Mul"))]
    return [n.name for n in nodes[-3:]]


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict]):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def main(argv: list[str] | None = None) -> int:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from lpr.engine import DEFAULT_DET, DEFAULT_PLATE_DET, MODELS_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=("plate_det", "text_det", "rec"), required=True)
    parser.add_argument("--model", type=Path, help="model to quantise (default: the shipped one)")
    parser.add_argument("--dev", type=Path, action="append", required=True)
    parser.add_argument("--per-folder", type=int, default=40, help="dev photos per folder")
    parser.add_argument("--calibrate", choices=("minmax", "percentile", "entropy"),
                        default="minmax", help="how activation ranges are set")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    model = args.model or {"plate_det": DEFAULT_PLATE_DET, "text_det": DEFAULT_DET,
                           "rec": MODELS_DIR / "plate_rec.onnx"}[args.what]
    images = dev_images(args.dev, args.per_folder)
    feeds = {"plate_det": lambda: plate_det_inputs(images, (320, 416, 640)),
             "text_det": lambda: text_det_inputs(images, 896),
             "rec": lambda: rec_inputs(images, model)}[args.what]()
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[args.calibrate]
    prepared = args.out.with_suffix(".prep.onnx")
    quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(args.out), _Reader(feeds), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=calibrate,
                    nodes_to_exclude=_float_tail(prepared, args.what))
    prepared.unlink()
    print(json.dumps({"model": str(model), "out": str(args.out), "calibration_inputs": len(feeds),
                      "images": len(images)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

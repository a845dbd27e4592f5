"""Static int8 quantisation of a plate model (onnxruntime.quantization), calibrated on dev photos.

The plate detector and the recognisers spend most of a read's time in convolutions and matrix
products; int8 weights and activations (QDQ, per-channel weights) run them 2-3x faster on CPUs
with VNNI. Calibration inputs are made exactly as lotedge makes them at run time, from the `dev`
half (even files, sorted by name) of each labelled folder only.

Run with a training environment (onnx and onnxruntime; not lotedge dependencies):

    python -m venv /tmp/train && /tmp/train/bin/pip install onnx==1.23.2 onnxruntime==1.32.0 \\
        numpy==2.4.6 opencv-python-headless==5.0.0.93
    PYTHONPATH=. /tmp/train/bin/python -m lpr.training.quantize_models --what rec \\
        --dev ../shared/plates/us --dev ../shared/plates/eu --dev ../shared/plates/br \\
        --out /tmp/plate_rec.int8.onnx

quantises the plate recogniser (`--model` another one, such as the second recogniser);
`--what plate_det` and `--what text_det` the detectors. Each was measured and none is shipped
(lpr/models/README.md).
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
    from lpr.engine import DEFAULT_DICT, DEFAULT_REC, TextRecognizer, crop_box
    from lpr.reader import PlateReader

    reader = PlateReader(detector="yolo", second_rec_model="none")
    # both recognisers take the same input (48 px high, up to 320 wide): the shipped one's
    # session makes it, whichever model is calibrated (the second has its dictionary apart)
    rec = TextRecognizer(DEFAULT_REC, DEFAULT_DICT)
    rec.input_name = _input_name(rec_model)
    out = []
    for img in images:
        for plate in reader.plate_detector.detect(img):
            for line in reader._plate_lines(img, plate):
                crop = crop_box(img, line.corners)
                stretched = cv2.resize(crop, (max(2, int(crop.shape[1] * 1.5)), crop.shape[0]))
                out.append({rec.input_name: rec._blob(stretched)})
    return out


def _at_least_opset_13(model: Path, scratch: Path) -> Path:
    """The model itself, or a copy converted to opset 13 at `scratch`: per-channel int8 weights
    dequantise along an axis, which DequantizeLinear has from opset 13 on."""
    import onnx
    from onnx import version_converter

    loaded = onnx.load(str(model))
    opset = next((o.version for o in loaded.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset >= 13:
        return model
    onnx.save(version_converter.convert_version(loaded, 13), str(scratch))
    return scratch


def _input_name(model: Path) -> str:
    import onnx

    graph = onnx.load(str(model)).graph
    initializers = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


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
    # the recognisers: from the classifier's MatMul on (its bias, softmax)
    last = max(i for i, n in enumerate(nodes) if n.op_type == "MatMul")
    return [n.name for n in nodes[last:]]


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

    from lpr.engine import DEFAULT_DET, DEFAULT_PLATE_DET, DEFAULT_REC

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=("plate_det", "text_det", "rec"), required=True)
    parser.add_argument("--model", type=Path, help="model to quantise (default: the shipped one)")
    parser.add_argument("--dev", type=Path, action="append", required=True)
    parser.add_argument("--per-folder", type=int, default=40, help="dev photos per folder")
    parser.add_argument("--calibrate", choices=("minmax", "percentile", "entropy"),
                        default="minmax", help="how activation ranges are set")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.what == "rec" and args.calibrate != "minmax":
        # their histograms need inputs of one shape; text lines differ in width
        parser.error("--what rec: only --calibrate minmax works (the lines differ in width)")
    model = args.model or {"plate_det": DEFAULT_PLATE_DET, "text_det": DEFAULT_DET,
                           "rec": DEFAULT_REC}[args.what]
    images = dev_images(args.dev, args.per_folder)
    feeds = {"plate_det": lambda: plate_det_inputs(images, (320, 416, 640)),
             "text_det": lambda: text_det_inputs(images, 896),
             "rec": lambda: rec_inputs(images, model)}[args.what]()
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[args.calibrate]
    prepared = args.out.with_suffix(".prep.onnx")
    quant_pre_process(str(_at_least_opset_13(model, args.out.with_suffix(".op13.onnx"))),
                      str(prepared), skip_symbolic_shape=True)
    args.out.with_suffix(".op13.onnx").unlink(missing_ok=True)
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

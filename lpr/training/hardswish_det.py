"""Write the text detector's hard-swish activations as single HardSwish operators.

RapidOCR's conversion of PP-OCRv4's detector spells each of its 24 hard-swish activations out
as four operators, `x * Clip(x + 3, 0, 6) / 6` (opset 12 had no HardSwish), and onnxruntime runs
them as four tensors of the activation's size. In the whole-frame search those are the largest
tensors of the run (32 channels at half the input's resolution: 9 MB each in an 896 x 320
strip), and one HardSwish (opset 14) needs none of the intermediates. The model is converted
to opset 14 first (onnx's version converter; the other operators keep their meaning), each
pattern is replaced by one HardSwish of the same input and output, and the result is checked
against the original on rendered frames before it is written: the probability maps must agree
within `--tolerance` (the arithmetic differs in rounding only: x * clip(x/6 + 1/2, 0, 1)).

Run with a training environment (onnx and onnxruntime; not lotedge dependencies), on the file
RapidOCR ships (models README, "Provenance"):

    PYTHONPATH=. /tmp/train/bin/python -m lpr.training.hardswish_det \\
        --model ch_PP-OCRv4_det_infer.onnx --out lpr/models/ppocrv4_det.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _scalars(graph) -> dict[str, float]:
    """Single-value constants (Constant nodes and initializers) by output name."""
    from onnx import numpy_helper

    found = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            value = numpy_helper.to_array(node.attribute[0].t)
            if value.size == 1:
                found[node.output[0]] = float(value.reshape(-1)[0])
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        if value.size == 1:
            found[init.name] = float(value.reshape(-1)[0])
    return found


def fuse(model):
    """The model (opset 14) with every `x * Clip(x + 3, 0, 6) / 6` as one HardSwish; and how
    many were replaced."""
    from onnx import helper, version_converter

    model = version_converter.convert_version(model, 14)
    graph = model.graph
    scalars = _scalars(graph)
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1

    def is_const(name: str, value: float) -> bool:
        return scalars.get(name) == value

    replaced: dict[int, object] = {}
    dropped: set[int] = set()
    for div in graph.node:
        if div.op_type != "Div" or not is_const(div.input[1], 6.0):
            continue
        mul = producer.get(div.input[0])
        if mul is None or mul.op_type != "Mul" or readers.get(mul.output[0]) != 1:
            continue
        for x_at, clip_at in ((0, 1), (1, 0)):
            clip = producer.get(mul.input[clip_at])
            if (clip is None or clip.op_type != "Clip" or readers.get(clip.output[0]) != 1
                    or len(clip.input) != 3 or not is_const(clip.input[1], 0.0)
                    or not is_const(clip.input[2], 6.0)):
                continue
            add = producer.get(clip.input[0])
            x = mul.input[x_at]
            if add is None or add.op_type != "Add" or readers.get(add.output[0]) != 1:
                continue
            three = [name for name in add.input if name != x]
            if len(three) != 1 or len(add.input) != 2 or not is_const(three[0], 3.0):
                continue
            replaced[id(div)] = helper.make_node("HardSwish", [x], list(div.output),
                                                 name=f"{div.name or div.output[0]}_hardswish")
            dropped.update({id(mul), id(clip), id(add)})
            break
    nodes = [replaced.get(id(node), node) for node in graph.node if id(node) not in dropped]
    used = {name for node in nodes for name in node.input} | {out.name for out in graph.output}
    nodes = [node for node in nodes if node.op_type != "Constant" or node.output[0] in used]
    del graph.node[:]
    graph.node.extend(nodes)
    return model, len(replaced)


def largest_difference(original: bytes, fused: bytes) -> float:
    """The largest difference between the two models' probability maps on rendered frames (a
    720p and a 1080p scene, at the sizes lotedge runs: a plate window, 640 px, 896 px)."""
    import onnxruntime as ort

    from lpr.engine import TextDetector
    from lpr.synthetic import render_scene

    def session(blob: bytes):
        return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])

    det = TextDetector(threads=1)
    a, b = session(original), session(fused)
    worst = 0.0
    for width, height in ((1280, 720), (1920, 1080)):
        frame = render_scene("ABC1234", seed=5, width_px=width, height_px=height)
        for side in (320, 640, 896):
            blob = det._blob(det._prepare(frame, side, False)[0])
            maps = [s.run(None, {s.get_inputs()[0].name: blob})[0] for s in (a, b)]
            worst = max(worst, float(np.abs(maps[0] - maps[1]).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the detector as shipped "
                        "by RapidOCR (opset 12)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest difference allowed between the two maps (default 1e-4)")
    args = parser.parse_args(argv)
    import onnx

    if not args.model.is_file():
        parser.error(f"--model: no such file: {args.model}")
    original = onnx.load(str(args.model))
    fused, count = fuse(original)
    if not count:
        parser.error(f"--model: no x * Clip(x + 3, 0, 6) / 6 in {args.model} (already fused?)")
    onnx.checker.check_model(fused)
    difference = largest_difference(original.SerializeToString(), fused.SerializeToString())
    if difference > args.tolerance:
        print(f"error: the fused model's maps differ by {difference:.2e} (> {args.tolerance})",
              file=sys.stderr)
        return 1
    onnx.save(fused, str(args.out))
    print(f"{count} hard-swish activations fused; maps within {difference:.1e}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

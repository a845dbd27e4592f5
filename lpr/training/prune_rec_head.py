"""Cut a general CTC recogniser's classifier down to the classes plate lines use.

PP-OCRv6 small ends in a 120 x 18710 classifier (every Chinese, Latin and symbol class it
knows): 9 MB of weights, a tenth of the model's time per line, and memory in every process.
lotedge decodes only the CTC blank and 0-9, A-Z from it; the other classes matter only through
the softmax's normaliser. This keeps the blank, the plate alphabet, the space (the last class)
and the `--others` classes that take the most probability on the plate lines lotedge cuts from
the `dev` halves (even files, sorted by name) of each labelled folder, so the normaliser loses
almost nothing (on the dev halves: the same reads, character confidences within 0.005).

Run with a training environment (onnx and onnxruntime; not lotedge dependencies):

    PYTHONPATH=. /tmp/train/bin/python -m lpr.training.prune_rec_head \\
        --model ppocrv6_small_rec.onnx --dict ppocrv6_rec_dict.txt \\
        --dev ../shared/plates/us:us --dev ../shared/plates/eu:eu --dev ../shared/plates/br:br \\
        --out lpr/models/ppocrv6_small_rec.onnx --out-dict lpr/models/ppocrv6_rec_dict.txt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np


def line_probabilities(model: Path, dict_path: Path, dev: list[tuple[Path, str]]) -> np.ndarray:
    """Summed class probabilities of the model over the lines lotedge reads with it on dev."""
    from lpr.bench import load_labels, split_items
    from lpr.reader import PlateReader
    from lpr.regions import region_by_code

    total: np.ndarray | None = None
    for folder, region in dev:
        reader = PlateReader(regions=region_by_code(region), second_rec_model=model,
                             second_rec_dict=dict_path)
        session = reader.recognizers[1].session
        run = session.run

        def summing(outputs, feed, run=run):
            nonlocal total
            result = run(outputs, feed)
            mass = result[0][0].sum(axis=0)
            total = mass if total is None else total + mass
            return result

        session.run = summing
        for item in split_items(load_labels(folder), "dev"):
            reader.read(cv2.imread(str(item.image)))
    if total is None:
        raise SystemExit("no text lines were read on the dev halves")
    return total


def main(argv: list[str] | None = None) -> int:
    import onnx
    from onnx import numpy_helper

    from lpr.engine import PLATE_ALPHABET

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the full recogniser")
    parser.add_argument("--dict", type=Path, required=True, help="its character list")
    parser.add_argument("--dev", action="append", required=True,
                        help="FOLDER:REGION, a labelled folder and its region code")
    parser.add_argument("--others", type=int, default=256)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--out-dict", type=Path, required=True)
    args = parser.parse_args(argv)
    dev = [(Path(d.rsplit(":", 1)[0]), d.rsplit(":", 1)[1]) for d in args.dev]

    chars = args.dict.read_text(encoding="utf-8").rstrip("\n").split("\n")
    classes = ["", *chars, " "]
    mass = line_probabilities(args.model, args.dict, dev)
    if len(mass) != len(classes):
        raise SystemExit(f"the model has {len(mass)} classes, the dictionary {len(classes)}")
    kept = {0, len(classes) - 1} | {i for i, c in enumerate(classes) if c in PLATE_ALPHABET}
    others = [int(i) for i in np.argsort(-mass) if int(i) not in kept][:args.others]
    rows = sorted(kept | set(others))  # blank first, space (the last class) last

    model = onnx.load(str(args.model))
    graph = model.graph
    softmax = [n for n in graph.node if n.op_type == "Softmax"][-1]
    producers = {out: n for n in graph.node for out in n.output}
    node = producers[softmax.input[0]]
    while node.op_type == "Identity":
        node = producers[node.input[0]]
    inits = {i.name: i for i in graph.initializer}
    bias_name = next(x for x in node.input if x in inits)  # the Add of the classifier's bias
    matmul = producers[next(x for x in node.input if x not in inits)]
    weight_name = next(x for x in matmul.input if x in inits)
    for name in (weight_name, bias_name):
        array = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array[..., rows]), name))
    for out in graph.output:
        out.type.tensor_type.shape.dim[-1].dim_value = len(rows)
    onnx.checker.check_model(model)
    onnx.save(model, str(args.out))
    # the decoder appends the space class itself: the dictionary lists the classes in between
    args.out_dict.write_text("".join(classes[i] + "\n" for i in rows[1:-1]), encoding="utf-8")
    outside = float(mass.sum() - mass[rows].sum())
    print(json.dumps({"classes": len(rows), "of": len(classes),
                      "probability_outside_per_line_step": outside / float(mass.sum()),
                      "out": str(args.out), "out_dict": str(args.out_dict)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

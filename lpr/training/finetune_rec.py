"""Fine-tune the shipped PP-OCRv6 small recogniser on plate text lines; export a plate-only ONNX.

The general recogniser reads plates well but makes plate-specific mistakes (a state emblem read
as a letter, O/D/0, Z/2, 1/I on embossed fonts, a separator read as a character). This script
takes its ONNX file, converts it to PyTorch (onnx2torch), cuts its 18,710-class output layer
down to the plate alphabet (CTC blank, 0-9, A-Z, space: 38 classes), fine-tunes it with CTC on
plate text lines, and exports the result as ONNX for `[lpr] rec_model`.

Training lines are cut exactly as lotedge cuts them at run time (`PlateReader._plate_lines` on a
plate box: the labelled box and the YOLO detector's boxes that overlap it), from a labelled folder
in the development set's format (`<stem>.txt`: `file x y w h PLATE`), plus synthetic plates
rendered with OpenCV so that the model keeps reading glyphs it sees rarely on real plates.
It writes the ONNX file and its dictionary (`<name>_dict.txt`) and prints JSON lines: line
accuracy on the held-out images before and after, loss per epoch.

Only images in the chosen split train: `--split even` (every other image, sorted by name) leaves
the odd half unseen so that `lotedge lpr bench` on it measures what the model generalises.

Run with a training environment (not lotedge dependencies):

    python -m venv /tmp/train && /tmp/train/bin/pip install torch==2.13.0 onnx2torch==1.5.15 \\
        onnx onnxruntime opencv-python-headless numpy
    PYTHONPATH=. /tmp/train/bin/python -m lpr.training.finetune_rec \\
        --dev ../shared/plates/us --split even --out lpr/models/plate_rec.onnx
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MODELS = Path(__file__).resolve().parent.parent / "models"
BASE_MODEL = MODELS / "ppocrv6_small_rec.onnx"
BASE_DICT = MODELS / "ppocrv6_rec_dict.txt"
HEIGHT = 48
MAX_WIDTH = 320


def _stub_torchvision() -> None:
    """onnx2torch imports torchvision for its NMS/RoiAlign converters only; PyPI's torchvision
    does not load beside the CPU torch wheel here, and these models use neither op."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in ("torchvision", "torchvision.ops"):
            sys.modules.pop(name, None)
        tv = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")

        def _missing(*_a, **_k):
            raise NotImplementedError("torchvision stub")

        ops.nms = ops.batched_nms = ops.roi_align = _missing
        tv.ops = ops
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.ops"] = ops


def explicit_pads(model):
    """onnx2torch has no auto_pad=SAME_UPPER: write the pads out (stride-1 ops only)."""
    import onnx

    for node in model.graph.node:
        if node.op_type not in ("Conv", "MaxPool"):
            continue
        attrs = {a.name: a for a in node.attribute}
        if "auto_pad" not in attrs or attrs["auto_pad"].s != b"SAME_UPPER":
            continue
        kernel = onnx.helper.get_attribute_value(attrs["kernel_shape"])
        strides = onnx.helper.get_attribute_value(attrs["strides"]) if "strides" in attrs else [1]
        if any(s != 1 for s in strides):
            raise ValueError(f"{node.name}: SAME_UPPER with stride {strides} is not handled")
        pads = [(k - 1) // 2 for k in kernel] + [(k - 1) - (k - 1) // 2 for k in kernel]
        node.attribute.remove(attrs["auto_pad"])
        node.attribute.append(onnx.helper.make_attribute("pads", pads))
    return model


def build_model(base: Path = BASE_MODEL, base_dict: Path = BASE_DICT):
    """The base recogniser as a torch module whose output is plate-alphabet logits [N, T, 38]."""
    import onnx
    import torch
    from torch import nn

    _stub_torchvision()
    from onnx2torch import convert

    graph_module = convert(explicit_pads(onnx.load(str(base)))).eval()
    graph = graph_module.graph
    nodes = list(graph.nodes)
    softmax = [n for n in nodes if n.op == "call_module" and n.target.startswith("Softmax")][-1]
    add = softmax.args[0]
    while add.op == "call_module" and add.target.startswith("Identity"):
        add = add.args[0]
    matmul, bias_node = add.args
    if matmul.op == "get_attr":  # torch's own export writes Add(bias, MatMul)
        matmul, bias_node = bias_node, matmul
    features, weight_node = matmul.args
    weight = graph_module.get_buffer(weight_node.target).detach().clone()  # [C, 18710]
    bias = graph_module.get_buffer(bias_node.target).detach().clone()
    # the backbone ends where the classifier starts
    output = [n for n in nodes if n.op == "output"][0]
    output.args = (features,)
    graph.eliminate_dead_code()
    graph_module.recompile()
    # initializers (attention and MLP weights) are buffers after conversion: make them trainable
    for module in graph_module.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.dtype.is_floating_point and buf.ndim >= 1 and "running" not in name:
                delattr(module, name)
                module.register_parameter(name, nn.Parameter(buf.detach().clone()))
    chars = base_dict.read_text(encoding="utf-8").rstrip("\n").split("\n")
    classes = ["", *chars, " "]
    rows = [0] + [classes.index(c) for c in ALPHABET] + [len(classes) - 1]
    head = nn.Linear(weight.shape[0], len(rows))
    with torch.no_grad():
        head.weight.copy_(weight[:, rows].T)
        head.bias.copy_(bias[rows])

    class PlateRec(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = graph_module
            self.head = head

        def forward(self, x):
            return self.head(self.backbone(x))

    return PlateRec()


def freeze_norm_stats(model) -> None:
    """Keep batch-norm running statistics fixed (few, variable-width training lines)."""
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.eval()


# -- data ----------------------------------------------------------------------------------------

def dev_lines(dev: Path) -> list[tuple[int, str, np.ndarray, str]]:
    """(image index, source, line crop, plate) for each labelled image, cut as lotedge cuts them."""
    from lpr.engine import PlateBox, crop_box
    from lpr.reader import PlateReader

    reader = PlateReader(detector="yolo")
    out = []
    for i, label in enumerate(sorted(dev.glob("*.txt"))):
        name, x, y, w, h, plate = label.read_text().strip().split("\t")
        x, y, w, h = map(int, (x, y, w, h))
        image = cv2.imread(str(dev / name))
        boxes = [("truth", PlateBox(bbox=(x, y, x + w, y + h), score=1.0))]
        for k, pb in enumerate(reader.plate_detector.detect(image)):
            bx1, by1, bx2, by2 = pb.bbox
            iw = max(0, min(bx2, x + w) - max(bx1, x))
            ih = max(0, min(by2, y + h) - max(by1, y))
            union = (bx2 - bx1) * (by2 - by1) + w * h - iw * ih
            if union and iw * ih / union > 0.4:
                boxes.append((f"yolo{k}", pb))
        for tag, pb in boxes:
            for line in reader._plate_lines(image, pb):
                out.append((i, tag, crop_box(image, line.corners), plate))
    return out


def synthetic_line(rng: random.Random) -> tuple[np.ndarray, str]:
    """A plate-like text line rendered with OpenCV (random US-style text, colours, font)."""
    n = rng.randint(5, 8)
    text = "".join(rng.choice(ALPHABET) for _ in range(n))
    font = rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX,
                       cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX])
    thickness = rng.randint(2, 5)
    scale = 2.0
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad_x, pad_y = rng.randint(4, 20), rng.randint(6, 16)
    bg = rng.randint(150, 255)
    tint = np.array([bg - rng.randint(0, 40) for _ in range(3)], dtype=np.float64)
    img = (np.ones((th + base + 2 * pad_y, tw + 2 * pad_x, 3)) * tint).astype(np.uint8)
    ink = tuple(float(v) for v in ([rng.randint(0, 80)] * 3 if rng.random() < 0.7 else
                                   [rng.randint(0, 120), rng.randint(0, 80), rng.randint(60, 160)]))
    cv2.putText(img, text, (pad_x, pad_y + th), font, scale, ink, thickness, cv2.LINE_AA)
    return img, text


_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
          "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
          "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
          "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def region_text(rng: random.Random, region) -> tuple[str, str]:
    """A random plate of one built-in region: (text as printed, with separators; label)."""
    mask = rng.choice(region.masks)
    letters = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in region.never]
    chars = [rng.choice(letters) if k == "L" else rng.choice("0123456789") if k == "D"
             else rng.choice(letters + list("0123456789")) for k in mask]
    if region.prefix:
        chars[:len(region.prefix)] = list(region.prefix)
    label = "".join(chars)
    # separators where the kind of character changes (AB-123-CD, ABC 1234)
    printed, sep = chars[0], rng.choice([" ", "-", " ", ""])
    for prev, k, ch in zip(mask, mask[1:], chars[1:], strict=False):
        printed += (sep if k != prev and rng.random() < 0.8 else "") + ch
    return printed, label


def _ttf_line(text: str, font_path: str, size: int, ink, paper, rng: random.Random):
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, size)
    x0, y0, x1, y1 = font.getbbox(text)
    pad_x, pad_y = rng.randint(4, 16), rng.randint(5, 12)
    img = Image.new("RGB", (x1 - x0 + 2 * pad_x, y1 - y0 + 2 * pad_y), paper)
    ImageDraw.Draw(img).text((pad_x - x0, pad_y - y0), text, font=font, fill=ink)
    line = np.array(img)[:, :, ::-1].copy()
    # condensed plate typefaces: squeeze the line a little more
    squeeze = rng.uniform(0.75, 1.0)
    return cv2.resize(line, (max(8, int(line.shape[1] * squeeze)), line.shape[0]))


def region_line(rng: random.Random, regions) -> tuple[np.ndarray, str]:
    """A synthetic one-row plate of a random built-in region (EU band, BR Mercosur band)."""
    region = rng.choice(regions)
    printed, label = region_text(rng, region)
    paper = (rng.randint(200, 255),) * 3
    mercosur = region.name == "br" and label[4].isalpha()
    if region.name == "br" and not mercosur:
        paper = (rng.randint(150, 205),) * 3  # the grey plates
    elif region.name in ("nl", "lu") and rng.random() < 0.6:
        paper = (rng.randint(200, 255), rng.randint(170, 220), rng.randint(0, 60))  # yellow
    ink = (rng.randint(0, 60),) * 3
    try:
        line = _ttf_line(printed, rng.choice(_FONTS), rng.randint(40, 56), ink[::-1], paper[::-1],
                         rng)
    except (ImportError, OSError):
        line, _ = synthetic_line(rng)
        return line, _
    h = line.shape[0]
    if region.band and rng.random() < 0.6:
        # the blue EU band with the country letters, left of the text (not part of the plate)
        band = np.zeros((h, max(8, int(h * rng.uniform(0.35, 0.6))), 3), np.uint8)
        band[:] = (rng.randint(120, 190), rng.randint(30, 70), rng.randint(0, 40))
        scale = band.shape[1] / (18 * max(1, len(region.band)))
        cv2.putText(band, region.band, (2, h - 4), cv2.FONT_HERSHEY_SIMPLEX, max(0.2, scale),
                    (255, 255, 255), 1, cv2.LINE_AA)
        line = np.hstack([band, line])
    if region.name == "br" and rng.random() < 0.4:
        # the Mercosur band or the city line above the characters, cut into the top
        top = np.zeros((max(2, int(h * rng.uniform(0.05, 0.2))), line.shape[1], 3), np.uint8)
        top[:] = (rng.randint(120, 190), rng.randint(40, 90), 0) if mercosur else paper
        line = np.vstack([top, line])
    return line, label


def augment(crop: np.ndarray, rng: random.Random) -> np.ndarray:
    """Jitter a line crop the way frames differ: cut, stretch, tilt, blur, light, noise."""
    h, w = crop.shape[:2]
    # edges cut or grown by a little (the line detector's boxes vary)
    dx1, dx2 = (int(rng.uniform(-0.04, 0.04) * w) for _ in range(2))
    dy1, dy2 = (int(rng.uniform(-0.08, 0.08) * h) for _ in range(2))
    border = cv2.copyMakeBorder(crop, h // 4, h // 4, w // 8, w // 8, cv2.BORDER_REPLICATE)
    y1, x1 = h // 4 + dy1, w // 8 + dx1
    crop = border[max(0, y1):h // 4 + h + dy2, max(0, x1):w // 8 + w + dx2]
    if rng.random() < 0.5:
        angle = rng.uniform(-3, 3)
        m = cv2.getRotationMatrix2D((crop.shape[1] / 2, crop.shape[0] / 2), angle, 1.0)
        crop = cv2.warpAffine(crop, m, (crop.shape[1], crop.shape[0]),
                              borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.3:
        k = rng.choice([3, 5])
        crop = cv2.GaussianBlur(crop, (k, k), 0)
    if rng.random() < 0.3:  # resolution loss
        f = rng.uniform(0.4, 0.8)
        small = cv2.resize(crop, (max(4, int(crop.shape[1] * f)), max(4, int(crop.shape[0] * f))))
        crop = cv2.resize(small, (crop.shape[1], crop.shape[0]))
    out = crop.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)
    if rng.random() < 0.3:
        out += np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, 6, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def blob(crop: np.ndarray, stretch: float) -> np.ndarray:
    """As the engine feeds a line: stretched, 48 px tall, width <= 320, in [-1, 1], CHW."""
    crop = cv2.resize(crop, (max(2, int(crop.shape[1] * stretch)), crop.shape[0]),
                      interpolation=cv2.INTER_CUBIC)
    width = int(np.ceil(HEIGHT * crop.shape[1] / max(1, crop.shape[0])))
    width = int(min(max(width, 16), MAX_WIDTH))
    resized = cv2.resize(crop, (width, HEIGHT), interpolation=cv2.INTER_LINEAR)
    return (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)


def batch(blobs: list[np.ndarray]):
    import torch

    width = max(b.shape[2] for b in blobs)
    out = np.zeros((len(blobs), 3, HEIGHT, width), dtype=np.float32)
    for i, b in enumerate(blobs):
        out[i, :, :, :b.shape[2]] = b
    return torch.from_numpy(out)


def decode(logits) -> list[str]:
    idx = logits.argmax(-1).numpy()
    out = []
    for row in idx:
        text, prev = [], 0
        for k in row:
            if k != 0 and k != prev and k <= len(ALPHABET):
                text.append(ALPHABET[k - 1])
            prev = k
        out.append("".join(text))
    return out


def line_accuracy(model, lines, stretch: float = 1.5) -> float:
    import torch

    model.eval()
    ok = 0
    with torch.no_grad():
        for _, _, crop, plate in lines:
            ok += decode(model(batch([blob(crop, stretch)])))[0] == plate
    return ok / max(1, len(lines))


def _free_traced_steps(path: Path, steps: int) -> None:
    """Give back the dynamic sequence length that tracing wrote into attention reshapes.

    A model converted from a torch-exported ONNX file (`--base plate_rec.onnx`) computes its
    attention reshapes from constants, so the export traces the example's sequence length
    into them ([1, heads, steps, dim]); rewritten as -1 / 0 (copy the input's) they take any
    width again. Models converted from the original PP-OCR file are left unchanged.
    """
    import onnx
    from onnx import numpy_helper

    def fixed(values: list[int]) -> list[int] | None:
        if len(values) != 4 or values[0] != 1 or values[2] != steps:
            return None
        if values[3] == steps:
            return [0, 0, 0, 0]
        if values[3] == -1:
            return [1, values[1], 0, -1]
        return [1, values[1], -1, values[3]]

    model = onnx.load(str(path))
    tensors = [init for init in model.graph.initializer]
    tensors += [a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute
                if a.name == "value"]
    changed = 0
    for tensor in tensors:
        if tensor.data_type != onnx.TensorProto.INT64:
            continue
        new = fixed(numpy_helper.to_array(tensor).ravel().tolist())
        if new is not None:
            tensor.CopyFrom(numpy_helper.from_array(np.array(new, np.int64), tensor.name))
            changed += 1
    if changed:
        onnx.save(model, str(path))


def export(model, path: Path) -> None:
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.softmax(self.inner(x), dim=-1)

    wrapped = WithSoftmax(model).eval()
    example = batch([np.zeros((3, HEIGHT, 160), dtype=np.float32)])
    torch.onnx.export(wrapped, (example,), str(path), input_names=["x"], output_names=["softmax"],
                      dynamic_axes={"x": {0: "batch", 3: "width"}, "softmax": {0: "batch", 1: "steps"}},
                      opset_version=17, dynamo=False)
    _free_traced_steps(path, steps=example.shape[3] // 8)
    # the exported graph must agree with the torch model at any width (no traced-in shapes)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for width in (96, 208, 320):
        x = np.random.default_rng(width).uniform(-1, 1, (1, 3, HEIGHT, width)).astype(np.float32)
        with torch.no_grad():
            want = wrapped(torch.from_numpy(x)).numpy()
        got = session.run(None, {"x": x})[0]
        if got.shape != want.shape or float(np.abs(got - want).max()) > 1e-3:
            raise RuntimeError(f"exported model disagrees with torch at width {width}")


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, required=True, action="append",
                        help="labelled folder of car photos (repeat for several)")
    parser.add_argument("--base", type=Path, default=BASE_MODEL,
                        help="recogniser to start from (an ONNX CTC model, e.g. plate_rec.onnx)")
    parser.add_argument("--base-dict", type=Path, default=BASE_DICT)
    parser.add_argument("--region-synthetic", type=int, default=0,
                        help="synthetic one-row plates of the built-in regions (eu, br) to mix in")
    parser.add_argument("--split", choices=("even", "odd", "all"), default="even",
                        help="which images train (sorted by name); the rest are held out")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--synthetic", type=int, default=2000, help="synthetic lines to mix in")
    parser.add_argument("--repeat", type=int, default=4,
                        help="each real line this many times per epoch (augmented differently)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    np.random.seed(args.seed)

    keep = {"even": 0, "odd": 1}.get(args.split)
    train, held = [], []
    for dev in args.dev:
        lines = dev_lines(dev)
        train += [ln for ln in lines if keep is None or ln[0] % 2 == keep]
        held += [ln for ln in lines if keep is not None and ln[0] % 2 != keep]
    synth = [(-1, "synthetic", *synthetic_line(rng)) for _ in range(args.synthetic)]
    if args.region_synthetic:
        from lpr.regions import BR, REGION_GROUPS

        regions = [*REGION_GROUPS["eu"], BR, BR, BR]
        synth += [(-1, "region", *region_line(rng, regions))
                  for _ in range(args.region_synthetic)]
    model = build_model(args.base, args.base_dict)
    report = {"train_lines": len(train), "held_out_lines": len(held), "synthetic": len(synth),
              "held_out_line_acc_before": line_accuracy(model, held) if held else None}
    print(json.dumps(report), flush=True)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    steps_per_epoch = max(1, math.ceil((len(train) * args.repeat + len(synth) // 4) / args.batch))
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total,
                                                pct_start=0.1)
    started = time.monotonic()
    for epoch in range(args.epochs):
        # each real line `repeat` times per epoch (augmented differently), a quarter of the
        # synthetic ones
        pool = train * args.repeat + rng.sample(synth, len(synth) // 4)
        rng.shuffle(pool)
        model.train()
        freeze_norm_stats(model)
        losses = []
        for s in range(0, len(pool), args.batch):
            items = pool[s:s + args.batch]
            x = batch([blob(augment(c, rng), rng.uniform(1.2, 1.8)) for _, _, c, _ in items])
            logp = model(x).log_softmax(-1).permute(1, 0, 2)  # [T, N, C]
            targets = torch.tensor([ALPHABET.index(ch) + 1 for *_, p in items for ch in p])
            lengths = torch.tensor([len(p) for *_, p in items])
            steps = torch.full((len(items),), logp.shape[0], dtype=torch.long)
            loss = ctc(logp, targets, steps, lengths)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            losses.append(float(loss))
        msg = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
               "s": round(time.monotonic() - started)}
        print(json.dumps(msg), flush=True)
    model.eval()
    report["train_line_acc"] = line_accuracy(model, train)
    if held:
        report["held_out_line_acc_after"] = line_accuracy(model, held)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(model, args.out)
    # its dictionary beside it (`plate_rec.onnx` -> `plate_rec_dict.txt`): `[lpr] rec_dict`
    args.out.with_name(args.out.stem + "_dict.txt").write_text("\n".join(ALPHABET) + "\n")
    report.update(out=str(args.out), train_s=round(time.monotonic() - started), split=args.split,
                  epochs=args.epochs, seed=args.seed)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

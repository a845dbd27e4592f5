"""Export fastanpr's YOLOv8 plate detector (`best.pt`, AGPL-3.0) to ONNX, offline, once.

Export-time only: needs torch and ultralytics, which are NOT lotedge dependencies. Run it in a
throwaway virtualenv:

    python -m venv /tmp/export && /tmp/export/bin/pip install torch==2.13.0 ultralytics onnx onnxslim
    pip download --no-deps fastanpr==0.1.13 -d /tmp/dl && unzip -o /tmp/dl/fastanpr-*.whl -d /tmp/dl/fa
    /tmp/export/bin/python lpr/training/export_plate_detector.py /tmp/dl/fa/fastanpr/best.pt

It writes `lpr/models/yolov8_plate_det.onnx` (input `images` [1, 3, H, W] RGB in [0, 1] with H, W
dynamic multiples of 32; output [1, 5, N]: cx, cy, w, h in input pixels and the plate score).
lotedge runs it with its own letterbox and NMS (`lpr/engine.py: PlateDetector`).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "models" / "yolov8_plate_det.onnx"


def main(checkpoint: str) -> None:
    """Export `checkpoint` to OUT (opset 17, dynamic H/W, simplified, no NMS inside)."""
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(1)
    model = YOLO(checkpoint)
    exported = model.export(format="onnx", imgsz=640, dynamic=True, simplify=True, opset=17,
                            nms=False, half=False, device="cpu")
    shutil.copyfile(exported, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "best.pt")

"""Synthetic plate scenes rendered with OpenCV: test images that need nothing outside the repo."""

from __future__ import annotations

import cv2
import numpy as np


def render_scene(plate: str, *, width_px: int = 640, height_px: int = 360, seed: int = 0,
                 plate_width_px: int = 220, at: tuple[int, int] | None = None) -> np.ndarray:
    """A BGR scene: textured background, a car-like body and a white plate reading `plate`."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 140, size=3)
    ramp = np.linspace(0.7, 1.2, height_px)[:, None, None]
    scene = np.clip(ramp * base[None, None, :] + rng.normal(0, 6, (height_px, width_px, 3)),
                    0, 255).astype(np.uint8)
    body = tuple(int(v) for v in rng.integers(20, 200, size=3))
    cv2.rectangle(scene, (width_px // 8, height_px // 4), (width_px * 7 // 8, height_px * 7 // 8),
                  body, thickness=-1)
    pw = plate_width_px
    ph = pw // 2
    x, y = at if at is not None else ((width_px - pw) // 2, height_px // 2 - ph // 4)
    cv2.rectangle(scene, (x, y), (x + pw, y + ph), (235, 235, 235), thickness=-1)
    cv2.rectangle(scene, (x, y), (x + pw, y + ph), (40, 40, 40), thickness=2)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = 1.0
    thickness = max(2, pw // 80)
    (tw, th), _ = cv2.getTextSize(plate, font, scale, thickness)
    scale = scale * (pw * 0.82) / tw
    thickness = max(2, int(thickness * scale))
    (tw, th), _ = cv2.getTextSize(plate, font, scale, thickness)
    cv2.putText(scene, plate, (x + (pw - tw) // 2, y + (ph + th) // 2), font, scale, (20, 20, 20),
                thickness, cv2.LINE_AA)
    return scene

"""LPR fixtures: the shipped models loaded once, synthetic plate scenes written to disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from lpr.reader import PlateReader
from lpr.synthetic import render_scene

PLATES = ("ABC1234", "7XYZ123", "KM55FGH")


@pytest.fixture(scope="session")
def reader() -> PlateReader:
    """The real ONNX reader with the shipped models (one thread)."""
    return PlateReader(threads=1)


def write_scenes(folder: Path, plates=PLATES, *, repeat: int = 1) -> list[Path]:
    """Render each plate into a PNG scene under `folder`; return the paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, plate in enumerate(plates * repeat):
        path = folder / f"{i:03d}_{plate}.png"
        cv2.imwrite(str(path), render_scene(plate, seed=i))
        paths.append(path)
    return paths

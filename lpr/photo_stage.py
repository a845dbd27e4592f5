"""Real plate photos on the simulated lot's cameras.

A lane whose `camera` is `photos:/folder` (only with `--simulate`) shows, while a simulated car
is at its loop, a real photo from that folder, and the traffic generator gives the car the
photo's ground-truth plate: the real reader reads it, so plate errors flow end to end into
tickets, exits, passback and fees. The folder is in the development-set format: `<stem>.jpg`
beside `<stem>.txt` holding one TAB-separated line `<image file> x y width height PLATE`
(the plate is taken from the text, never from the file name).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.errors import ConfigError

PREFIX = "photos:"


@dataclass(frozen=True, slots=True)
class Photo:
    """One photo and the plate its ground truth names."""

    path: Path
    plate: str


def load_photos(folder: Path) -> list[Photo]:
    """Every annotated photo of a development-set folder, sorted by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"camera {PREFIX}{folder}: no such folder")
    photos = []
    for txt in sorted(folder.glob("*.txt")):
        fields = txt.read_text(encoding="utf-8", errors="replace").strip().split("\t")
        if len(fields) < 6 or not fields[-1].strip():
            continue
        image = folder / fields[0].strip()
        if image.is_file():
            photos.append(Photo(path=image, plate=fields[-1].strip().upper()))
    if not photos:
        raise ConfigError(f"camera {PREFIX}{folder}: no annotated photos (<stem>.jpg + <stem>.txt)")
    return photos


class StageFrames:
    """A frame backend (as `lpr.capture` opens) for one lane: the photo on show, else an empty
    grey scene, at `fps` (25, a lane camera's rate: a read waits up to one frame period for a
    frame taken after it was asked)."""

    def __init__(self, stage: PhotoStage, lane_id: str, *, fps: float = 25.0) -> None:
        self._stage = stage
        self._lane = lane_id
        self._interval_s = 1.0 / fps

    def read(self) -> np.ndarray:
        """The lane's current scene (paced like a camera)."""
        time.sleep(self._interval_s)
        return self._stage.scene(self._lane)

    def release(self) -> None:
        """Nothing to release."""


class PhotoStage:
    """What each `photos:` lane camera shows; the traffic generator puts cars in front of them.

    Args:
        cameras: lane id -> camera string; `photos:` lanes get a stage, their folders the photos.
    """

    _EMPTY = np.full((480, 640, 3), 96, dtype=np.uint8)

    def __init__(self, cameras: dict[str, str]) -> None:
        self.lanes = {lane: spec.strip()[len(PREFIX):] for lane, spec in cameras.items()
                      if spec.strip().startswith(PREFIX)}
        folders = sorted(set(self.lanes.values()))
        self.photos: list[Photo] = [p for f in folders for p in load_photos(Path(f))]
        # only the photos on show stay decoded (a 1080p photo is 6 MB: a cache of past cars
        # would count in the appliance's own memory, which no real camera adds)
        self._shown: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def show(self, lane_id: str, photo: Photo) -> None:
        """The car of this photo is now in front of the lane's camera."""
        image = cv2.imread(str(photo.path))
        if image is None:
            raise ConfigError(f"camera {PREFIX}: cannot read {photo.path}")
        with self._lock:
            self._shown[lane_id] = image

    def clear(self, lane_id: str) -> None:
        """Nobody is in front of the lane's camera."""
        with self._lock:
            self._shown.pop(lane_id, None)

    def resident(self) -> int:
        """How many decoded photos the stage holds (the ones on show)."""
        with self._lock:
            return len({id(image) for image in self._shown.values()})

    def scene(self, lane_id: str) -> np.ndarray:
        """What the lane's camera sees now."""
        with self._lock:
            return self._shown.get(lane_id, self._EMPTY)

    def opener(self, lane_id: str):
        """A `Camera` opener for this lane's frames."""
        return lambda _spec: StageFrames(self, lane_id)

"""Run the plate reader over a labelled folder: exact-plate and character accuracy, latency."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

from appliance.errors import InputError
from lpr.lists import edit_distance
from lpr.reader import PlateReader


@dataclass(frozen=True, kw_only=True, slots=True)
class Labelled:
    """One labelled image: its path, the true plate and, when given, the plate box."""

    image: Path
    plate: str


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchResult:
    """Accuracy and latency figures of one run."""

    images: int
    exact: int
    char_accuracy: float
    median_ms: float
    p95_ms: float
    misses: tuple[tuple[str, str, str | None], ...]
    exact_o0: int = 0  # exact when O and 0 count as one character (labels mix them up)
    cpu_median_ms: float = 0.0  # CPU time of the reading process: what waiting for a core adds
    cpu_p95_ms: float = 0.0     # to wall time on a busy host is left out

    @property
    def exact_accuracy(self) -> float:
        """Share of images whose plate was read exactly."""
        return self.exact / self.images if self.images else 0.0


def load_labels(folder: Path) -> list[Labelled]:
    """Labels from `<stem>.txt` files (`file x y w h PLATE`, TAB-separated) next to the images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    items = []
    for txt in sorted(folder.glob("*.txt")):
        parts = txt.read_text(encoding="utf-8").strip().split()
        if len(parts) < 2:
            raise InputError(f"{txt}: expected 'file x y w h PLATE'")
        image = folder / parts[0]
        if not image.is_file():
            raise InputError(f"{txt}: image {parts[0]} not found")
        items.append(Labelled(image=image, plate=parts[-1].upper()))
    if not items:
        raise InputError(f"no labels (*.txt) in {folder}")
    return items


PARTS = ("all", "dev", "held-out")


def split_items(items: list[Labelled], part: str) -> list[Labelled]:
    """One fixed half of a labelled set: sorted by image name, `dev` = even, `held-out` = odd.

    Models and settings are trained and tuned on the `dev` half only; figures on the
    `held-out` half are what the reader does on photos it never saw.
    """
    if part not in PARTS:
        raise InputError(f"part: one of {', '.join(PARTS)}, not {part!r}")
    ordered = sorted(items, key=lambda item: item.image.name)
    if part == "all":
        return ordered
    return [item for k, item in enumerate(ordered) if k % 2 == (0 if part == "dev" else 1)]


def char_accuracy(truth: str, read: str | None) -> float:
    """1 - edit distance / length of the truth (floored at 0)."""
    if not truth:
        return 0.0
    return max(0.0, 1.0 - edit_distance(truth, read or "") / len(truth))


def run_bench(reader: PlateReader, items: list[Labelled]) -> BenchResult:
    """Read every labelled image once and score it."""
    times, cpu, chars, misses, exact, exact_o0 = [], [], [], [], 0, 0
    for item in items:
        image = cv2.imread(str(item.image))
        started = time.process_time()
        read = reader.read(image)
        cpu.append((time.process_time() - started) * 1000)
        times.append(read.ms)
        chars.append(char_accuracy(item.plate, read.plate))
        if read.plate == item.plate:
            exact += 1
        else:
            misses.append((item.image.name, item.plate, read.plate))
        if read.plate and read.plate.replace("O", "0") == item.plate.replace("O", "0"):
            exact_o0 += 1
    times.sort()
    cpu.sort()
    return BenchResult(images=len(items), exact=exact, exact_o0=exact_o0,
                       char_accuracy=statistics.fmean(chars),
                       median_ms=statistics.median(times), p95_ms=_p95(times),
                       cpu_median_ms=statistics.median(cpu), cpu_p95_ms=_p95(cpu),
                       misses=tuple(misses))


@dataclass(frozen=True, kw_only=True, slots=True)
class LaneResult:
    """What a lane makes of each photo: its burst (the lane's own code, every frame the same
    still photo, as from a car standing on the loop) and the vote over it."""

    votes: tuple[tuple[bool | None, float], ...]  # per photo: right plate? (None: no plate), conf
    frames: float  # frames read per photo (mean): a sure or agreeing read ends the burst

    def at(self, min_confidence: float) -> tuple[int, int, int]:
        """(right, wrong, no read) with reads below `min_confidence` taken as no read."""
        kept = [right for right, conf in self.votes if right is not None and
                conf >= min_confidence]
        return sum(kept), len(kept) - sum(kept), len(self.votes) - len(kept)


def run_lane_bench(reader: PlateReader, items: list[Labelled], *,
                   burst_frames: int = 5) -> LaneResult:
    """Every labelled image through the lane's burst (`lpr.camera_source.read_burst`), voted."""
    from lpr.camera_source import read_burst
    from lpr.vote import vote

    votes, frames = [], 0
    for item in items:
        image = cv2.imread(str(item.image))
        reads, _ = read_burst(reader, lambda image=image: image, burst_frames)
        frames += len(reads)
        result = vote([(r.plate, r.confidence) for r, _ in reads], min_confidence=0.0)
        votes.append((None if result.plate is None else result.plate == item.plate,
                      result.confidence))
    return LaneResult(votes=tuple(votes), frames=frames / len(items) if items else 0.0)


def _p95(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]

"""Plate sources: what a lane asks for when a vehicle arrives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True, slots=True)
class PlateResult:
    """A plate read for a lane; plate None means no read."""

    plate: str | None
    confidence: float = 0.0
    vehicle_type: str | None = None
    is_ev: bool = False
    crop_path: str | None = None


class PlateSource(Protocol):
    """Anything that can read the plate of the vehicle at a lane."""

    async def read(self, lane_id: str) -> PlateResult: ...


class SimulatedPlates:
    """The simulator's camera: the traffic generator says which vehicle is at which lane."""

    def __init__(self) -> None:
        self._at: dict[str, PlateResult] = {}
        self.reads = 0

    def present(self, lane_id: str, result: PlateResult) -> None:
        """A vehicle is now in front of this lane's camera."""
        self._at[lane_id] = result

    def leave(self, lane_id: str) -> None:
        """The lane's camera sees no vehicle."""
        self._at.pop(lane_id, None)

    async def read(self, lane_id: str) -> PlateResult:
        """What the camera reads now."""
        self.reads += 1
        return self._at.get(lane_id, PlateResult(plate=None))

"""The physical lot: levels, spots and lanes as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.core.types import FailState, LaneDirection, SpotType

_FORBID = {"extra": "forbid"}


@dataclass(frozen=True, kw_only=True)
class LevelDef:
    """A level of the lot; `capacity` per spot type is used in counter mode."""

    __pydantic_config__ = _FORBID

    id: str
    name: str = ""
    capacity: dict[SpotType, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spot_type, n in self.capacity.items():
            if n < 0:
                raise ValueError(f"capacity.{spot_type}: must not be negative")


@dataclass(frozen=True, kw_only=True)
class SpotDef:
    """One marked spot; `sensor` is 'BUS:ADDRESS' or a serial port for a single sensor."""

    __pydantic_config__ = _FORBID

    id: str
    level: str
    type: SpotType
    distance_cm: int = 0
    sensor: str | None = None


@dataclass(frozen=True, kw_only=True)
class SpotRange:
    """A run of numbered spots of one type, expanded to SpotDefs at load time."""

    __pydantic_config__ = _FORBID

    level: str
    type: SpotType
    count: int
    prefix: str
    first_distance_cm: int = 0
    distance_step_cm: int = 0
    sensor_bus: str | None = None
    first_sensor_address: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count: must be at least 1")

    def expand(self) -> list[SpotDef]:
        """The spots this range stands for."""
        return [
            SpotDef(
                id=f"{self.prefix}{i + 1:03d}",
                level=self.level,
                type=self.type,
                distance_cm=self.first_distance_cm + i * self.distance_step_cm,
                sensor=(
                    f"{self.sensor_bus}:{self.first_sensor_address + i}"
                    if self.sensor_bus
                    else None
                ),
            )
            for i in range(self.count)
        ]


@dataclass(frozen=True, kw_only=True)
class LaneDef:
    """An entry or exit lane: its loops, barrier relay and camera."""

    __pydantic_config__ = _FORBID

    id: str
    direction: LaneDirection
    arming_loop_pin: int
    safety_loop_pin: int
    barrier_relay_pin: int
    gate_feedback_pin: int | None = None
    camera: str = "sim"
    fail_state: FailState = FailState.OPEN
    debounce_ms: int = 150
    auto_close_ms: int = 1000
    level: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.debounce_ms <= 5000:
            raise ValueError("debounce_ms: must be between 0 and 5000")

    @property
    def pins(self) -> list[int]:
        """Every GPIO pin this lane owns."""
        pins = [self.arming_loop_pin, self.safety_loop_pin, self.barrier_relay_pin]
        if self.gate_feedback_pin is not None:
            pins.append(self.gate_feedback_pin)
        return pins

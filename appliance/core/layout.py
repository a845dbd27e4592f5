"""The physical lot: levels, spots and lanes as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from appliance.core.types import FailState, LaneDirection, SpotType

_FORBID = {"extra": "forbid"}
MAX_RANGE_SPOTS = 10_000  # spots in one [[spot_ranges]] entry
MAX_LOT_SPOTS = 50_000  # spots in a lot (the largest car parks hold ~20,000)
MAX_BUS_ADDRESS = 247  # RS-485 sensor addresses are 1..247


def sensor_key(text: str) -> str:
    """A spot's `sensor` as the drivers name its device: 'bus1:05' -> 'bus1:5', a bare MaxBotix
    port 'port1' -> 'port1:1' (config may spell an address with leading zeros or leave it out)."""
    bus, _, addr = text.partition(":")
    try:
        return f"{bus}:{int(addr) if addr else 1}"
    except ValueError:
        return text


@dataclass(frozen=True, kw_only=True)
class LevelDef:
    """A level of the lot; `capacity` per spot type is used in counter mode."""

    __pydantic_config__ = _FORBID

    id: str
    """The level's id (spots, lanes and signs refer to it)."""
    name: str = ""
    """The level's name, shown in the attendant UI."""
    capacity: dict[SpotType, int] = field(default_factory=dict)
    """Counter mode: spaces per spot type (MOTORCYCLE, COMPACT, REGULAR, LARGE, EV, HANDICAP) = count.
    """

    def __post_init__(self) -> None:
        for spot_type, n in self.capacity.items():
            if n < 0:
                raise ValueError(f"capacity.{spot_type}: must not be negative")


@dataclass(frozen=True, kw_only=True)
class SpotDef:
    """One marked spot; `sensor` is 'BUS:ADDRESS' or a serial port for a single sensor."""

    __pydantic_config__ = _FORBID

    id: str
    """The spot's id (unique in the lot)."""
    level: str
    """The level it is on."""
    type: SpotType
    """Its type: MOTORCYCLE, COMPACT, REGULAR, LARGE, EV (EV vehicles only) or HANDICAP (handicap-
    permit holders only).
    """
    distance_cm: int = 0
    """Distance from the entrance in cm (nearest allocation picks the smallest)."""
    sensor: str | None = None
    """Its sensor: BUS:ADDRESS on a Modbus bus, or a MaxBotix bus id; none: no sensor."""


@dataclass(frozen=True, kw_only=True)
class SpotRange:
    """A run of numbered spots of one type, expanded to SpotDefs at load time."""

    __pydantic_config__ = _FORBID

    level: str
    """The level the spots are on."""
    type: SpotType
    """Their spot type."""
    count: int
    """How many spots (1-10,000; 50,000 in a lot); on an RS-485 bus their addresses must stay within
    1-247.
    """
    prefix: str
    """Spot ids are the prefix and a 3-digit number from 001."""
    first_distance_cm: int = 0
    """Distance from the entrance of the first spot, in cm."""
    distance_step_cm: int = 0
    """Added to the distance for each next spot, in cm."""
    sensor_bus: str | None = None
    """The [[sensor_buses]] id of their sensors; none: no sensors."""
    first_sensor_address: int = 1
    """Bus address of the first spot's sensor; the next spots count up from it."""

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_RANGE_SPOTS:
            raise ValueError(f"count: must be between 1 and {MAX_RANGE_SPOTS} "
                             "(split a bigger level into several ranges)")
        if not 1 <= self.first_sensor_address <= MAX_BUS_ADDRESS:
            raise ValueError(f"first_sensor_address: must be between 1 and {MAX_BUS_ADDRESS}")
        last = self.first_sensor_address + self.count - 1
        if self.sensor_bus and last > MAX_BUS_ADDRESS:
            raise ValueError(f"count: addresses {self.first_sensor_address}..{last} pass "
                             f"{MAX_BUS_ADDRESS}, the last on an RS-485 bus (split the range "
                             "over buses)")

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
    """The lane's id (events, the API and diag commands name it)."""
    direction: LaneDirection
    """entry or exit."""
    arming_loop_pin: int
    """BCM GPIO of the arming loop (in front of the barrier)."""
    safety_loop_pin: int
    """BCM GPIO of the safety loop (under the barrier)."""
    barrier_relay_pin: int
    """BCM GPIO of the barrier relay (output)."""
    gate_feedback_pin: int | None = None
    """BCM GPIO of the barrier's 'fully up' limit switch; none: no feedback."""
    camera: str = "sim"
    """The lane camera: sim (the simulator), a USB index (0), an rtsp:// or other URL OpenCV opens, a
    video file, dir:/path (a folder of images) or photos:/path (simulation with real photos).
    """
    fail_state: FailState = FailState.OPEN
    """What the barrier does on power loss or a crash: open (never traps a car) or secure (stays
    down).
    """
    debounce_ms: int = 150
    """Software debounce of the loop contacts (0-5000 ms)."""
    auto_close_ms: int = 1000
    """The barrier closes this long after the vehicle has cleared the safety loop."""
    level: str | None = None
    """The level the lane serves; none: the whole lot."""
    # Wiring (docs/hardware.md): the barrier relay and the loop detectors' output contacts.
    relay_energise: Literal["open", "close"] | None = None  # None: what fail_state needs
    """What energising the relay does: open or close the barrier; none: what fail_state needs (fail-
    open wiring energises to close).
    """
    loop_contact: Literal["no", "nc"] = "no"  # detector output: closes (no) / opens (nc) on a car
    """The detector's output contact: no (closes on a vehicle) or nc (opens on a vehicle)."""
    loop_closed_level: Literal["high", "low"] = "high"  # contact to 3V3 (pull-down) / to GND (pull-up)
    """How the contact is wired: high (to 3V3, pull-down) or low (to GND, pull-up)."""
    loop_fail_safe: bool = False  # require that a cut wire or dead detector reads "vehicle present"
    """Require the wiring where a cut wire or a dead detector reads 'vehicle present' (needs
    loop_contact = nc).
    """

    def __post_init__(self) -> None:
        if not 0 <= self.debounce_ms <= 5000:
            raise ValueError("debounce_ms: must be between 0 and 5000")
        needed = "close" if self.fail_state == FailState.OPEN else "open"
        if self.relay_energise is not None and self.relay_energise != needed:
            up_or_down = "up" if self.fail_state == FailState.OPEN else "down"
            raise ValueError(
                f"relay_energise: fail_state = \"{self.fail_state}\" needs the relay wired "
                f"energise-to-{needed} (de-energised = barrier {up_or_down} on power loss and "
                "crash); rewire it or change fail_state")
        if self.loop_fail_safe and self.loop_contact != "nc":
            raise ValueError("loop_fail_safe: a cut wire reads \"vehicle present\" only on the "
                             "detector's normally closed contact: set loop_contact = \"nc\"")

    @property
    def relay_energised_opens(self) -> bool:
        """True: energising the relay raises the barrier (fail-secure wiring)."""
        return (self.relay_energise or ("close" if self.fail_state == FailState.OPEN
                                        else "open")) == "open"

    @property
    def pins(self) -> list[int]:
        """Every GPIO pin this lane owns."""
        pins = [self.arming_loop_pin, self.safety_loop_pin, self.barrier_relay_pin]
        if self.gate_feedback_pin is not None:
            pins.append(self.gate_feedback_pin)
        return pins

"""Domain enumerations shared by the core and the shell."""

from __future__ import annotations

from enum import StrEnum


class SpotType(StrEnum):
    """Physical kind of a parking spot."""

    MOTORCYCLE = "MOTORCYCLE"
    COMPACT = "COMPACT"
    REGULAR = "REGULAR"
    LARGE = "LARGE"
    EV = "EV"
    HANDICAP = "HANDICAP"


class VehicleType(StrEnum):
    """Size class of a vehicle (EV-ness and permits are separate flags)."""

    MOTORCYCLE = "MOTORCYCLE"
    COMPACT = "COMPACT"
    REGULAR = "REGULAR"
    LARGE = "LARGE"


class LaneDirection(StrEnum):
    """Whether a lane lets vehicles in or out."""

    ENTRY = "entry"
    EXIT = "exit"


class LotMode(StrEnum):
    """How occupancy is known: per-spot sensors or entry/exit counting."""

    PER_SPOT = "per_spot"
    COUNTER = "counter"


class SpotState(StrEnum):
    """State of one spot in per-spot mode."""

    AVAILABLE = "AVAILABLE"
    OCCUPIED = "OCCUPIED"
    RESERVED = "RESERVED"
    MAINTENANCE = "MAINTENANCE"
    UNKNOWN = "UNKNOWN"


class TicketStatus(StrEnum):
    """Life cycle of a parking ticket."""

    OPEN = "OPEN"
    PAID = "PAID"
    CLOSED = "CLOSED"
    VOID = "VOID"
    VACATED = "VACATED"  # its spot's sensor saw the car leave; no exit matched it (yet)


class AllocationStrategy(StrEnum):
    """How a walk-in is given a spot."""

    NEAREST = "nearest"
    SPREAD = "spread"
    PRESERVE_LARGER = "preserve_larger"
    RESERVATION_AWARE = "reservation_aware"


class FailState(StrEnum):
    """What a barrier does on power-up or when the service dies."""

    OPEN = "open"
    SECURE = "secure"

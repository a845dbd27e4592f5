"""What the running service reports beyond the ledger, handed to the API as callables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from appliance.lot.availability import Availability
from lpr.source import PlateSource


@dataclass(frozen=True, kw_only=True)
class ServiceProbes:
    """Read-outs of the running service's parts, for `/health` and `/diag`.

    Args:
        simulate: the service runs the simulated lot.
        started_monotonic: `time.monotonic()` when the service was built (uptime).
        availability: the latest availability snapshot (None before the first).
        plates: the plate source the lanes read from.
        device_health: `{"devices": [...], "faults": n, ...}` of every device.
        sync_status: cloud sync state (`{"enabled": False, ...}` without a cloud).
        sync_push_now: wake the uplink; returns the sync state.
        serial_monitor: what the service decodes on a serial port it owns (InputError if none).
    """

    simulate: bool
    started_monotonic: float
    availability: Callable[[], Availability | None]
    plates: Callable[[], PlateSource]
    device_health: Callable[[], dict[str, Any]]
    sync_status: Callable[[], dict[str, Any]]
    sync_push_now: Callable[[], Awaitable[dict[str, Any]]]
    serial_monitor: Callable[[str], dict[str, Any]]

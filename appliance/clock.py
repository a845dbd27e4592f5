"""Clocks for the shell: the only place lotedge reads the time."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    """Wall time (aware UTC), monotonic time and sleeping, all on one time base."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def monotonic_ns(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...

    @property
    def epoch_id(self) -> str:
        """Identifies the monotonic clock's epoch: equal ids mean monotonic readings compare."""
        ...


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"process-{uuid.uuid4()}"


_BOOT_ID = _boot_id()


class SystemClock:
    """The real clocks."""

    @property
    def epoch_id(self) -> str:
        """The kernel boot id: CLOCK_MONOTONIC readings compare within one boot."""
        return _BOOT_ID

    def now(self) -> datetime:
        """Current wall time, aware, in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that NTP steps never move."""
        return time.monotonic()

    def monotonic_ns(self) -> int:
        """Monotonic nanoseconds."""
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        """Sleep for real seconds."""
        await asyncio.sleep(seconds)


class SimClock:
    """A clock running `speed` times faster than real time, for the simulated lot.

    Only lot time (wall time for tickets and fees, sleeps of the traffic generator) is scaled;
    device timing (debounce, passage) stays in real seconds and uses `real_sleep`.
    """

    def __init__(self, *, speed: float = 60.0, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.speed = speed
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._m0 = time.monotonic()
        self._epoch = f"sim-{uuid.uuid4()}"

    @property
    def epoch_id(self) -> str:
        """Simulated monotonic time compares only within this clock."""
        return self._epoch

    def now(self) -> datetime:
        """Simulated wall time in UTC."""
        return self._start + timedelta(seconds=(time.monotonic() - self._m0) * self.speed)

    def monotonic(self) -> float:
        """Simulated monotonic seconds."""
        return (time.monotonic() - self._m0) * self.speed

    def monotonic_ns(self) -> int:
        """Real monotonic nanoseconds (the ledger records the host's clock too)."""
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of simulated time."""
        await asyncio.sleep(seconds / self.speed)

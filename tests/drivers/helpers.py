"""Waiting helpers for driver tests that run real threads, ptys and asyncio callbacks."""

from __future__ import annotations

import asyncio
import time


async def settle(s: float = 0.0) -> None:
    """Sleep `s`, then let already-scheduled callbacks (edges handed over from pins) run."""
    await asyncio.sleep(s)
    await asyncio.sleep(0)


async def wait_until(predicate, timeout_s: float = 5.0) -> bool:
    """Poll `predicate` every 10 ms until it holds or `timeout_s` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


async def eventually(check, timeout_s: float = 5.0):
    """Await `check()` every 10 ms until it returns something truthy (returned) or time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(0.01)

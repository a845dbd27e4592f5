"""Test helpers: ledgers filled with events, and waiting for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.core.events import GENESIS_HASH, NewEvent, verify_chain
from appliance.ledger import Ledger

LOT = "sync-lot"
TZ = ZoneInfo("Europe/Berlin")


async def fill(ledger: Ledger, n: int, *, start: datetime | None = None,
               span: timedelta | None = None, per_tx: int = 500) -> None:
    """Append `n` entry-like events, timestamps spread over `span` from `start`."""
    for i in range(0, n, per_tx):
        async with ledger.transaction() as tx:
            for j in range(i, min(n, i + per_tx)):
                at = None
                if start is not None and span is not None:
                    at = start + span * (j / max(1, n - 1))
                await tx.append(NewEvent(type="plate.read", payload={
                    "lane": "in-1", "plate": f"B-AB{j % 10000:04d}", "confidence": "0.93",
                    "camera": "cam-in-1", "n": j}), at=at)


async def open_filled(path: Path, n: int, **kwargs) -> Ledger:
    """A ledger at `path` holding `n` events."""
    ledger = await Ledger.open(path, lot_id=LOT, tz=TZ)
    await fill(ledger, n, **kwargs)
    return ledger


async def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `predicate` until true; fail the test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def assert_exact_chain(rows: list[dict], n: int) -> None:
    """The cloud holds seq 1..n exactly once each and the hash chain verifies."""
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(1, n + 1)), (
        f"cloud holds {len(seqs)} events, first {seqs[:3]}, last {seqs[-3:]}")
    assert verify_chain(rows, start_prev_hash=GENESIS_HASH, start_seq=1) == []


async def retained(port: int, topic: str, timeout_s: float = 5.0) -> dict | None:
    """The retained message on `topic` (decoded JSON), or None if there is none."""
    import json

    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(timeout_s):
                async for message in client.messages:
                    return json.loads(message.payload)
        except TimeoutError:
            return None
    return None


@contextlib.asynccontextmanager
async def running(*coros):
    """Run coroutines as tasks for the block; cancel them after (bounded: a stuck teardown
    must not hang CI)."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(t, 10)

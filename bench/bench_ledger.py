"""Ledger appends per second, durable (WAL + synchronous=FULL, one commit each)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.core.events import NewEvent
from appliance.ledger import Ledger


async def _appends(n: int, per_tx: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = await Ledger.open(Path(tmp) / "b.sqlite3", lot_id="bench", tz=ZoneInfo("UTC"))
        started = time.perf_counter()
        for i in range(0, n, per_tx):
            async with ledger.transaction() as tx:
                for j in range(per_tx):
                    await tx.append(NewEvent(type="bench", payload={"i": i + j}))
        elapsed = time.perf_counter() - started
        await ledger.close()
    return n / elapsed


def run() -> list[dict]:
    """Durable single-event commits and 50-event transactions."""
    single = asyncio.run(_appends(2000, 1))
    batched = asyncio.run(_appends(20000, 50))
    return [
        {"name": "ledger appends (1 event/commit, fsync)", "value": single, "unit": "events/s"},
        {"name": "ledger appends (50 events/commit)", "value": batched, "unit": "events/s"},
    ]

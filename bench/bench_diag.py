"""Technician tools: online ledger backup speed, the longest ledger commit while a backup
runs (the service must not stall), and the `diag status` round trip over the API socket."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.cli.diag.db import backup_ledger
from appliance.core.events import NewEvent
from appliance.ledger import Ledger

EVENTS = 50_000


async def _fill(path: Path) -> Ledger:
    ledger = await Ledger.open(path, lot_id="bench", tz=ZoneInfo("UTC"))
    for i in range(0, EVENTS, 500):
        async with ledger.transaction() as tx:
            for j in range(500):
                await tx.append(NewEvent(type="bench", payload={"i": i + j, "plate": "ABC1234"}))
    return ledger


async def _backup_under_load(tmp: Path) -> dict:
    ledger = await _fill(tmp / "ledger.sqlite3")
    latencies: list[float] = []
    stop = asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await ledger.append(NewEvent(type="bench.live", payload={}))
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)
    baseline = len(latencies)
    result = await asyncio.to_thread(backup_ledger, ledger.path, tmp / "backup.sqlite3")
    stop.set()
    await task
    await ledger.close()
    during = latencies[baseline:] or [0.0]
    return {"result": result, "max_commit_ms": max(during),
            "median_commit_ms": statistics.median(during)}


async def _status_round_trip(tmp: Path) -> float:
    from appliance.client import SyncServiceClient
    from appliance.config import load_config
    from tests.conftest import RunningService, write_lot

    cfg = load_config(write_lot(tmp))
    async with RunningService(cfg) as running:

        def rounds() -> list[float]:
            client = SyncServiceClient(running.socket_path)
            out = []
            for _ in range(50):
                started = time.perf_counter()
                client.get("/health")
                client.get("/diag/status")
                out.append((time.perf_counter() - started) * 1000)
            client.close()
            return out

        return statistics.median(await asyncio.to_thread(rounds))


def run() -> list[dict]:
    """Backup throughput and writer stall; status latency."""
    with tempfile.TemporaryDirectory() as tmp:
        b = asyncio.run(_backup_under_load(Path(tmp)))
    with tempfile.TemporaryDirectory() as tmp:
        status_ms = asyncio.run(_status_round_trip(Path(tmp)))
    r = b["result"]
    return [
        {"name": f"online backup + verify ({r['events']} events, {r['bytes'] // 2**20} MiB)",
         "value": r["seconds"], "unit": "s", "goal": "< 60 s on a Pi 4 (nightly timer)"},
        {"name": "online backup throughput", "value": r["bytes"] / 2**20 / r["seconds"],
         "unit": "MiB/s"},
        {"name": "longest ledger commit during the backup", "value": b["max_commit_ms"],
         "unit": "ms", "goal": "< 250 ms (gates keep working)"},
        {"name": "median ledger commit during the backup", "value": b["median_commit_ms"],
         "unit": "ms"},
        {"name": "diag status round trip (/health + /diag/status)", "value": status_ms,
         "unit": "ms", "goal": "< 100 ms"},
    ]

"""Sync drain rate after an outage (events/s, acked end to end) and gate-path latency while draining.

The appliance side (uplink) runs in this process; the reference ingest (SQLite) runs as its own
process, like a cloud would; Mosquitto is a private broker on a free loopback port.
N defaults to 1,000,000 events (env LOTEDGE_BENCH_SYNC_EVENTS overrides).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from appliance.core.events import GENESIS_HASH, NewEvent, canonical_json, chain_hash, event_body
from appliance.ledger import Ledger
from sync.devbroker import Broker
from sync.mqtt import MqttSettings
from sync.uplink import Uplink

LOT = "bench-lot"


async def _fill(ledger: Ledger, n: int) -> None:
    """Write an outage backlog of `n` chained events (bulk insert: the hash chain is the same
    as Tx.append's; per-event appends would make the setup, not the drain, dominate)."""
    now = datetime.now(UTC)
    ts = now.isoformat()
    prev, seq = GENESIS_HASH, await ledger.last_seq()
    for i in range(0, n, 10_000):
        rows = []
        for j in range(i, min(n, i + 10_000)):
            seq += 1
            event_id = str(uuid.uuid4())
            payload = canonical_json({"lane": "in-1", "plate": f"B-AB{j % 10000:04d}",
                                      "confidence": "0.93", "camera": "cam-in-1", "n": j})
            body = event_body(seq=seq, event_id=event_id, lot_id=LOT, type="plate.read",
                              ts_utc=ts, ts_local=ts, mono_ns=j, payload_json=payload)
            digest = chain_hash(prev, body)
            rows.append((seq, event_id, LOT, "plate.read", ts, ts, j, payload, prev, digest))
            prev = digest
        async with ledger.transaction() as tx:
            await tx._conn.executemany(
                "INSERT INTO events(seq, event_id, lot_id, type, ts_utc, ts_local, mono_ns, "
                "payload, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)


async def _gate_latency(ledger: Ledger, samples: int, stop: asyncio.Event | None = None) -> list:
    """Latency (ms) of single-event durable appends, one every 20 ms, like gate decisions."""
    out = []
    for _ in range(samples):
        if stop is not None and stop.is_set():
            break
        started = time.perf_counter()
        await ledger.append(NewEvent(type="gate.open_commanded", payload={"lane": "in-1"}))
        out.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return out


def _cloud_nice() -> list[str]:
    """The broker and the reference ingest stand in for the cloud, which runs on other machines:
    on these shared 2 cores they run at a lower priority (LOTEDGE_BENCH_CLOUD_NICE, default 10; 0 = same
    priority as the appliance)."""
    nice = int(os.environ.get("LOTEDGE_BENCH_CLOUD_NICE", "10"))
    return ["nice", "-n", str(nice)] if nice else []


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 2 else float("nan")


async def _bench(n: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        ledger = await Ledger.open(tmpdir / "ledger.sqlite3", lot_id=LOT, tz=ZoneInfo("UTC"))
        fill_started = time.perf_counter()
        await _fill(ledger, n)
        fill_s = time.perf_counter() - fill_started
        idle = await _gate_latency(ledger, 100)
        broker = Broker(tmpdir / "broker")
        broker.start()
        if _cloud_nice():  # the broker is the cloud's too
            os.setpriority(os.PRIO_PROCESS, broker.proc.pid, int(_cloud_nice()[2]))
        ingest = subprocess.Popen(
            [*_cloud_nice(), sys.executable, "-m", "appliance.cli", "cloud", "ingest", "--mqtt",
             broker.url, "--db", f"sqlite:///{tmpdir / 'cloud.sqlite3'}", "--client-id", "bench-ingest"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(1.5)  # let the ingest subscribe
            uplink = Uplink(ledger, MqttSettings.from_url(broker.url), batch_max_events=500,
                            max_inflight_batches=8, ack_timeout_s=60)
            started = time.perf_counter()
            task = asyncio.create_task(uplink.run())
            done = asyncio.Event()
            latency_task = asyncio.create_task(_gate_latency(ledger, 10**9, done))
            while uplink.acked_through < n:
                await asyncio.sleep(0.05)
                if time.perf_counter() - started > 1800:
                    raise RuntimeError(f"drain too slow: {uplink.acked_through}/{n} in 30 min")
            drain_s = time.perf_counter() - started
            done.set()
            busy = await latency_task
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            ingest.terminate()
            try:
                ingest.wait(timeout=30)
            except subprocess.TimeoutExpired:  # seen once under heavy load: never hang the bench
                print("bench: the ingest did not stop within 30 s of SIGTERM; killed",
                      file=sys.stderr)
                ingest.kill()
                ingest.wait()
            broker.stop()
            db_bytes = (tmpdir / "ledger.sqlite3").stat().st_size
            await ledger.close()
    return [
        {"name": f"sync drain after outage ({n:,} events, acked end to end)",
         "value": n / drain_s, "unit": "events/s", "goal": ">= 5,000"},
        {"name": "sync drain wall time", "value": drain_s, "unit": "s"},
        {"name": "gate append latency p50 idle", "value": _pct(idle, 50), "unit": "ms"},
        {"name": "gate append latency p99 idle", "value": _pct(idle, 99), "unit": "ms"},
        {"name": "gate append latency p50 while draining", "value": _pct(busy, 50), "unit": "ms",
         "goal": "~ idle"},
        {"name": "gate append latency p99 while draining", "value": _pct(busy, 99), "unit": "ms",
         "goal": "~ idle"},
        {"name": "ledger bytes per event (bench payload)", "value": db_bytes / n, "unit": "B"},
        {"name": "outage backlog write rate (fill)", "value": n / fill_s, "unit": "events/s"},
    ]


def run() -> list[dict]:
    """Drain rate and gate latency; N from LOTEDGE_BENCH_SYNC_EVENTS (default 1,000,000)."""
    n = int(os.environ.get("LOTEDGE_BENCH_SYNC_EVENTS", "1000000"))
    return asyncio.run(_bench(n))

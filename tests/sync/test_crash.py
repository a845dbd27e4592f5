"""Crash/outage: the appliance process SIGKILLed mid-batch and the broker killed mid-stream.

The cloud must end with exactly seq 1..N, once each, and a verifying hash chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.ledger import Ledger
from sync.cloud_store import open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings, health_topic
from tests.sync.helpers import (
    LOT,
    TZ,
    assert_exact_chain,
    fill,
    open_filled,
    retained,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def start_uplink(db: Path, broker_url: str, batch: int) -> subprocess.Popen:
    """The appliance side as a real process (`lotedge cloud uplink`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "cloud", "uplink", "--db", str(db),
         "--lot-id", LOT, "--mqtt", broker_url, "--batch-max-events", str(batch),
         "--ack-timeout-s", "3"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def crash_and_outage_round(tmp_path: Path, broker, *, prewritten: int, appended: int,
                                 batch: int, timeout_s: float) -> None:
    total = prewritten + appended
    db = tmp_path / "ledger.sqlite3"
    ledger = await open_filled(db, prewritten)
    await ledger.close()
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ingest = Ingest(store, MqttSettings.from_url(broker.url), client_id="ingest-crash",
                    backoff_max_s=1.0)
    ingest_task = asyncio.create_task(ingest.run())
    acked = lambda: ingest.acked.get(LOT, 0)  # noqa: E731
    proc = start_uplink(db, broker.url, batch)
    try:
        await wait_for(lambda: acked() >= total // 5, timeout_s, "first fifth acked")
        proc.send_signal(signal.SIGKILL)  # mid-stream: batches in flight, ack maybe unpersisted
        proc.wait()
        killed_at = acked()
        assert killed_at < prewritten, "the kill came too late to be mid-stream"
        # The broker publishes the last will: the appliance shows as offline.
        for _ in range(50):
            health = await retained(broker.port, health_topic(LOT))
            if health and health["online"] is False:
                break
            await asyncio.sleep(0.1)
        assert health["online"] is False and health["lot_id"] == LOT
        assert set(health) == {"online", "lot_id", "online_since_utc"}  # the will: a time too
        # Events keep being written while the uplink is down (a second writer process).
        writer = await Ledger.open(db, lot_id=LOT, tz=TZ)
        await fill(writer, appended)
        await writer.close()
        proc = start_uplink(db, broker.url, batch)
        await wait_for(lambda: acked() >= killed_at + total // 5, timeout_s, "progress after restart")
        broker.restart(kill=True, down_s=0.3)  # broker crash mid-stream
        await wait_for(lambda: acked() >= total, timeout_s, f"all {total} acked")
        # the cloud's last ack may still be on its way to the appliance: wait until it is stored
        await wait_for(lambda: _persisted_ack(db) >= total, timeout_s, "last ack persisted")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out.decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            out, _ = proc.communicate()
            print(out.decode()[-5000:])
        ingest_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest_task
    assert_exact_chain(store.events(LOT), total)
    assert store.acked_through(LOT) == total
    ledger = await Ledger.open(db, lot_id=LOT, tz=TZ)
    try:
        assert await ledger.get_meta("acked_through") == str(total)
        assert (await ledger.verify()).ok
    finally:
        await ledger.close()  # an open connection's thread would keep pytest from exiting
        store.close()


def _persisted_ack(db) -> int:
    """The appliance's stored acked_through, read without taking any lock."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'acked_through'").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


async def test_sigkilled_appliance_and_killed_broker_lose_and_duplicate_nothing(tmp_path, broker):
    await crash_and_outage_round(tmp_path, broker, prewritten=8_000, appended=2_000, batch=100,
                                 timeout_s=60)


@pytest.mark.slow
@pytest.mark.timeout(7200)  # long by design; the 300 s default is for the CI subset
async def test_crash_round_100k(tmp_path, broker):
    await crash_and_outage_round(tmp_path, broker, prewritten=90_000, appended=10_000, batch=500,
                                 timeout_s=300)

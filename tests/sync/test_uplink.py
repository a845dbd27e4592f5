"""Uplink + reference ingest against a real Mosquitto: exact, ordered, chain-verified delivery."""

from __future__ import annotations

import asyncio
import contextlib

from sync.cloud_store import open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings
from sync.uplink import Uplink, read_acked_through
from tests.sync.helpers import LOT, assert_exact_chain, open_filled, wait_for


@contextlib.asynccontextmanager
async def running(*coros):
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def test_events_sync_once_each_and_ack_is_persisted(tmp_path, broker):
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 2_000)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    settings = MqttSettings.from_url(broker.url)
    uplink = Uplink(ledger, settings, batch_max_events=300, ack_timeout_s=5)
    ingest = Ingest(store, settings, client_id="ingest-1")
    async with running(ingest.run(), uplink.run()):
        await wait_for(lambda: uplink.acked_through == 2_000, 30, "acked_through 2000")
        # Events written while connected follow without waiting for a poll.
        from tests.sync.helpers import fill
        await fill(ledger, 10)
        await wait_for(lambda: uplink.acked_through == 2_010, 10, "acked_through 2010")
        await asyncio.sleep(0.5)
    assert await read_acked_through(ledger) == 2_010
    assert_exact_chain(store.events(LOT), 2_010)
    assert store.acked_through(LOT) == 2_010
    await ledger.close()
    store.close()

"""The cloud store on both backends: idempotent, out-of-order safe, chain verified."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid

import pytest

from sync.cloud_store import PostgresCloudStore, open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings
from sync.uplink import Uplink, encode_event
from tests.sync.helpers import LOT, assert_exact_chain, open_filled, wait_for


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The store on each backend (PostgreSQL: the session's private server)."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
        yield s
        s.close()
    else:
        pg = request.getfixturevalue("pg_server")
        s = open_store(pg.url, schema=f"lotedge_test_{uuid.uuid4().hex[:12]}")
        assert isinstance(s, PostgresCloudStore)
        try:
            yield s
        finally:
            s.drop_schema()
            s.close()


async def ledger_events(tmp_path, n: int) -> list[dict]:
    ledger = await open_filled(tmp_path / "l.sqlite3", n)
    rows = await ledger.fetchall("SELECT seq, event_id, lot_id, type, ts_utc, ts_local, mono_ns, "
                                 "payload, prev_hash, hash FROM events ORDER BY seq")
    await ledger.close()
    return [json.loads(encode_event(tuple(r))) for r in rows]


async def test_duplicates_and_out_of_order_batches_are_harmless(tmp_path, store):
    events = await ledger_events(tmp_path, 1_000)
    batches = [events[i:i + 100] for i in range(0, 1_000, 100)]
    deliveries = batches + batches[3:7] + batches[:2]  # resends
    random.Random(4).shuffle(deliveries)
    acks = [store.store_batch(LOT, b).acked_through for b in deliveries]
    assert acks == sorted(acks)  # the frontier only moves forward
    assert acks[-1] == 1_000
    assert_exact_chain(store.events(LOT), 1_000)


async def test_a_gap_holds_the_ack_until_filled(tmp_path, store):
    events = await ledger_events(tmp_path, 300)
    assert store.store_batch(LOT, events[:100]).acked_through == 100
    assert store.store_batch(LOT, events[200:]).acked_through == 100
    assert store.store_batch(LOT, events[100:200]).acked_through == 300


async def test_edited_or_unlinked_events_are_refused(tmp_path, store):
    events = await ledger_events(tmp_path, 20)
    edited = [dict(e) for e in events[:10]]
    edited[4] = {**edited[4], "payload": {**edited[4]["payload"], "plate": "FORGED"}}
    result = store.store_batch(LOT, edited)
    assert result.acked_through == 4 and len(result.rejected) == 1
    assert "hash does not match" in result.rejected[0]
    # A self-consistent event that does not link to its predecessor (another chain) is dropped.
    other = await ledger_events(tmp_path / "other", 20)
    assert store.store_batch(LOT, [other[4]]).acked_through == 4
    assert store.store_batch(LOT, events).acked_through == 20
    assert_exact_chain(store.events(LOT), 20)
    assert store.store_batch("another-lot", events).rejected  # lot_id must match the topic


async def test_ingest_workers_share_the_load_into_postgresql(tmp_path, broker, pg_server):
    schema = f"lotedge_test_{uuid.uuid4().hex[:12]}"
    stores = [open_store(pg_server.url, schema=schema) for _ in range(2)]
    settings = MqttSettings.from_url(broker.url)
    workers = [Ingest(s, settings, client_id=f"pg-ingest-{i}") for i, s in enumerate(stores)]
    ledger = await open_filled(tmp_path / "l.sqlite3", 5_000)
    uplink = Uplink(ledger, settings, batch_max_events=100, ack_timeout_s=5)
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await wait_for(lambda: all(w.connected.is_set() for w in workers), 10, "workers")
        tasks.append(asyncio.create_task(uplink.run()))
        await wait_for(lambda: uplink.acked_through == 5_000, 60, "5000 acked via PostgreSQL")
        assert all(w.batches > 0 for w in workers), [w.batches for w in workers]
        assert_exact_chain(stores[0].events(LOT), 5_000)
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(t, 10)  # bounded: a stuck teardown must not hang CI
        await ledger.close()
        stores[0].drop_schema()
        for s in stores:
            s.close()


async def test_a_postgresql_restart_mid_stream_is_survived_by_the_store_and_the_ingest(
        tmp_path, broker, pg_server):
    schema = f"lotedge_test_{uuid.uuid4().hex[:12]}"
    events = await ledger_events(tmp_path / "a", 300)
    store = open_store(pg_server.url, schema=schema)
    try:
        assert store.store_batch(LOT, events[:100]).acked_through == 100
        await asyncio.to_thread(pg_server.stop, "immediate")  # the cloud database crashes
        with pytest.raises(Exception):  # noqa: B017 (down: an error, so no ack is sent)
            store.store_batch(LOT, events[100:200])
        await asyncio.to_thread(pg_server.start)
        await asyncio.to_thread(pg_server.wait_ready)
        # back: the same store object reconnects by itself and the resend lands
        assert store.store_batch(LOT, events[100:200]).acked_through == 200
        assert store.store_batch(LOT, events[200:]).acked_through == 300
        assert store.reconnects >= 1
        assert_exact_chain(store.events(LOT), 300)

        # and end to end: an ingest on PostgreSQL keeps running across a restart
        store.drop_schema()
        store.close()
        store = open_store(pg_server.url, schema=schema)
        settings = MqttSettings.from_url(broker.url)
        ingest = Ingest(store, settings, client_id="pg-restart-ingest")
        ledger = await open_filled(tmp_path / "l.sqlite3", 3_000)
        uplink = Uplink(ledger, settings, batch_max_events=100, max_inflight_batches=2,
                        ack_timeout_s=1.0)
        tasks = [asyncio.create_task(ingest.run()), asyncio.create_task(uplink.run())]
        try:
            await wait_for(lambda: uplink.acked_through >= 500, 30, "first acks")
            await asyncio.to_thread(pg_server.stop, "immediate")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(pg_server.start)
            await wait_for(lambda: uplink.acked_through == 3_000, 60, "all acked after restart")
        finally:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(t, 10)
            await ledger.close()
        assert_exact_chain(store.events(LOT), 3_000)
    finally:
        with contextlib.suppress(Exception):
            store.drop_schema()
        store.close()


async def test_a_store_failure_sends_no_ack_and_the_resend_lands(tmp_path, broker):
    class FlakyStore:
        """A real SQLite store whose first two commits fail (a database restarting)."""

        def __init__(self, inner):
            self.inner, self.failures = inner, 2

        def store_batch(self, lot_id, events):
            if self.failures:
                self.failures -= 1
                raise OSError("database is restarting")
            return self.inner.store_batch(lot_id, events)

    inner = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    settings = MqttSettings.from_url(broker.url)
    ingest = Ingest(FlakyStore(inner), settings, client_id="flaky-ingest")
    ledger = await open_filled(tmp_path / "l.sqlite3", 400)
    uplink = Uplink(ledger, settings, batch_max_events=100, ack_timeout_s=1.0)
    tasks = [asyncio.create_task(ingest.run())]
    try:
        await wait_for(lambda: ingest.connected.is_set(), 10, "ingest connected")
        tasks.append(asyncio.create_task(uplink.run()))
        await wait_for(lambda: uplink.acked_through == 400, 30, "all acked despite failures")
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(t, 10)  # bounded: a stuck teardown must not hang CI
    assert ingest.store_errors == 2 and uplink.resends >= 1
    assert_exact_chain(inner.events(LOT), 400)
    await ledger.close()
    inner.close()

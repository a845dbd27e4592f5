"""Uplink + reference ingest against a real Mosquitto: exact, ordered, chain-verified delivery."""

from __future__ import annotations

import asyncio
import json

import aiomqtt

from sync.cloud_store import open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings, ack_topic, events_topic
from sync.uplink import Uplink, read_acked_through
from tests.sync.helpers import LOT, assert_exact_chain, fill, open_filled, running, wait_for


async def test_events_sync_once_each_and_ack_is_persisted(tmp_path, broker):
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 2_000)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    settings = MqttSettings.from_url(broker.url)
    uplink = Uplink(ledger, settings, batch_max_events=300, ack_timeout_s=5)
    ingest = Ingest(store, settings, client_id="ingest-1")
    async with running(ingest.run(), uplink.run()):
        await wait_for(lambda: uplink.acked_through == 2_000, 30, "acked_through 2000")
        # Events written while connected follow without waiting for a poll.
        await fill(ledger, 10)
        await wait_for(lambda: uplink.acked_through == 2_010, 10, "acked_through 2010")
        await asyncio.sleep(0.5)
    assert await read_acked_through(ledger) == 2_010
    assert_exact_chain(store.events(LOT), 2_010)
    assert store.acked_through(LOT) == 2_010
    await ledger.close()
    store.close()


async def test_batches_respect_the_byte_limit_and_seq_order(tmp_path):
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 200)
    uplink = Uplink(ledger, MqttSettings.from_url("mqtt://127.0.0.1:1"), batch_max_events=500,
                    batch_max_bytes=8192)
    after, sizes = 0, []
    while (batch := await uplink.read_batch(after)) is not None:
        last, message = batch
        data = json.loads(message)
        assert [e["seq"] for e in data["events"]] == list(range(after + 1, last + 1))
        assert data["first_seq"] == after + 1 and data["last_seq"] == last
        assert len(message.encode()) <= 8192
        sizes.append(data["count"])
        after = last
    assert after == 200 and len(sizes) > 1
    await uplink._reader.close()
    await ledger.close()


async def test_a_batch_read_in_chunks_is_whole_and_waits_for_a_gate_write(tmp_path):
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 350)
    uplink = Uplink(ledger, MqttSettings.from_url("mqtt://127.0.0.1:1"), batch_max_events=500)
    last, message = await uplink.read_batch(0)  # 4 chunks of at most 100 rows
    assert last == 350
    assert [e["seq"] for e in json.loads(message)["events"]] == list(range(1, 351))
    assert uplink.writer_waits == 0  # nothing else was writing
    # While a write transaction (a gate decision) is in flight, the drain pauses (boundedly:
    # a write held far longer does not stop it).
    held = asyncio.Event()
    release = asyncio.Event()

    async def gate_decision():
        async with ledger.transaction():
            held.set()
            await release.wait()

    writer = asyncio.create_task(gate_decision())
    await held.wait()
    last, _ = await asyncio.wait_for(uplink.read_batch(100), 5)
    assert last == 350
    assert uplink.writer_waits >= 10
    release.set()
    await writer
    waits = uplink.writer_waits
    assert (await uplink.read_batch(200))[0] == 350
    assert uplink.writer_waits == waits
    await uplink._reader.close()
    await ledger.close()


async def test_unacked_batches_are_resent_after_the_timeout(tmp_path, broker):
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 500)
    settings = MqttSettings.from_url(broker.url)
    uplink = Uplink(ledger, settings, batch_max_events=100, ack_timeout_s=0.5)
    received: list[int] = []

    async def silent_cloud():  # receives but never acks, like an ingest that lost its database
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe(events_topic(LOT), qos=1)
            async for message in client.messages:
                received.append(json.loads(message.payload)["first_seq"])

    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    async with running(silent_cloud()):
        await asyncio.sleep(0.3)
        async with running(uplink.run()):
            await wait_for(lambda: uplink.resends >= 2, 10, "two resends")
            assert uplink.acked_through == 0
            # the first batch went out again after each timeout (a resend counted at sending
            # reaches the subscriber a moment later: on a busy host that moment is visible)
            await wait_for(lambda: received.count(1) >= 3, 10, "the first batch three times")
            assert uplink.acked_through == 0
            async with running(Ingest(store, settings, client_id="late-ingest").run()):
                await wait_for(lambda: uplink.acked_through == 500, 15, "all acked")
    assert_exact_chain(store.events(LOT), 500)
    await ledger.close()
    store.close()


async def test_an_ack_beyond_the_ledger_is_ignored(tmp_path, broker):
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 50)
    async with aiomqtt.Client("127.0.0.1", broker.port) as cloud:
        await cloud.publish(ack_topic(LOT), json.dumps({"acked_through": 10_000}), qos=1,
                            retain=True)
    uplink = Uplink(ledger, MqttSettings.from_url(broker.url))
    async with running(uplink.run()):
        await wait_for(lambda: uplink.bogus_acks >= 1, 10, "the retained ack")
        await fill(ledger, 3)
        await asyncio.sleep(0.5)
    # Nothing of this ledger counts as synced, so retention may prune none of it.
    assert uplink.acked_through == 0
    assert await read_acked_through(ledger) == 0
    await ledger.close()


async def test_an_older_ledgers_pin_hash_never_reaches_the_cloud(tmp_path, broker):
    from appliance.core.events import NewEvent
    from appliance.lot.attendants import hash_pin

    ledger = await open_filled(tmp_path / "ledger.sqlite3", 5)
    legacy = hash_pin("135791")
    await ledger.append(NewEvent(type="attendant.added", payload={  # as older versions wrote
        "attendant_id": "old", "name": "Old", "role": "supervisor", "pin_hash": legacy,
        "by": "admin (local socket)"}))
    await fill(ledger, 5)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    settings = MqttSettings.from_url(broker.url)
    uplink = Uplink(ledger, settings, ack_timeout_s=5)
    ingest = Ingest(store, settings, client_id="ingest-redact")
    async with running(ingest.run(), uplink.run()):
        await wait_for(lambda: uplink.acked_through == 11, 30, "acked_through 11")
    rows = store.events(LOT)
    assert [r["seq"] for r in rows] == list(range(1, 12))  # the chain goes on past it
    added = next(r for r in rows if r["type"] == "attendant.added")
    assert json.dumps(added).count("[redacted]") == 1 and legacy not in json.dumps(rows)
    await ledger.close()
    store.close()


async def test_a_stop_that_lands_with_the_brokers_answer_still_stops_the_task(monkeypatch):
    """aiomqtt awaits each broker answer with asyncio.wait_for, which on Python 3.11 returns
    the answer when a cancellation arrives with it: an uplink stopped just as a PUBACK came
    went on publishing, and the service stop (or a test's teardown) waited for it forever.
    The client that MqttSettings makes keeps such a cancellation."""
    answered = asyncio.get_running_loop().create_future()

    async def answer(self, *args, **kwargs):  # how aiomqtt waits for a PUBACK
        return await asyncio.wait_for(answered, 10)

    monkeypatch.setattr(aiomqtt.Client, "publish", answer)
    client = MqttSettings.from_url("mqtt://127.0.0.1:1").client(identifier="stop-test")
    went_on = []

    async def uplink_like():
        await client.publish("t", b"batch", qos=1)
        went_on.append(True)
        await asyncio.sleep(3600)  # the next batch's wait

    task = asyncio.create_task(uplink_like())
    await asyncio.sleep(0.01)  # now waiting for the answer
    answered.set_result(None)
    task.cancel()  # the stop, in the same turn of the loop as the answer
    async with asyncio.timeout(5):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and went_on == []

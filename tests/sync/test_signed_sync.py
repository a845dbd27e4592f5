"""Nobody can forge the event log on its way to the cloud (issue 21).

An attacker who can publish to the broker (a real MQTT client here, against a real Mosquitto)
tries to (a) make the appliance believe unsent events are synced, so that retention deletes
them, and (b) get a forged batch stored in place of the real one. Batches are signed by the
lot's key and acks by the cloud's key, so both fail; the real events still sync.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from appliance.core.events import canonical_json
from sync.bundle import generate_keypair
from sync.cloud_store import open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings, ack_topic, events_topic
from sync.retention import enforce
from sync.signing import LotKeys, private_key, public_key, seal
from sync.uplink import Uplink, read_acked_through
from tests.sync.helpers import LOT, assert_exact_chain, open_filled, running, wait_for


class Keys:
    """A lot key pair and a cloud ack key pair, as files in a temporary directory."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self.lot_private, self.lot_public = generate_keypair()
        self.cloud_private, self.cloud_public = generate_keypair()
        self.lot_keys_dir = directory / "lot-keys"
        self.lot_keys_dir.mkdir(exist_ok=True)
        (self.lot_keys_dir / f"{LOT}.pub").write_text(self.lot_public + "\n")

    def uplink(self, ledger, settings, **kwargs) -> Uplink:
        return Uplink(ledger, settings, signing_key=private_key(self.lot_private, what="lot"),
                      ack_key=public_key(self.cloud_public, what="cloud"), **kwargs)

    def ingest(self, store, settings, **kwargs) -> Ingest:
        return Ingest(store, settings, lot_keys=LotKeys(self.lot_keys_dir),
                      ack_key=private_key(self.cloud_private, what="cloud"), **kwargs)




async def publish(port: int, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
    """Publish as an outsider would: its own client id, QoS 1."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="attacker") as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def forged_batch(tmp_path: Path, n: int) -> str:
    """A self-consistent batch of `n` events for LOT that the lot never wrote (another ledger)."""
    other = await open_filled(tmp_path / "forger.sqlite3", n)
    uplink = Uplink(other, MqttSettings.from_url("mqtt://127.0.0.1:1"))
    _, message = await uplink.read_batch(0)
    await uplink._reader.close()
    await other.close()
    return message


async def test_a_forged_ack_never_advances_acked_through_so_retention_keeps_everything(
        tmp_path, broker):
    keys = Keys(tmp_path / "keys")
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 100)
    head = await ledger.fetchone("SELECT hash FROM events WHERE seq = 100")
    uplink = keys.uplink(ledger, MqttSettings.from_url(broker.url), ack_timeout_s=30)
    attacker_private, _ = generate_keypair()
    forgeries = [
        # the old unsigned form
        json.dumps({"acked_through": 100}).encode(),
        # the right shape, signed by someone else's key
        seal("ack", canonical_json({"lot_id": LOT, "acked_through": 100, "hash": head["hash"],
                                    "epoch": 0}).encode(),
             private_key(attacker_private, what="x")),
        # signed by the cloud, but for another lot (replayed from its ack topic)
        seal("ack", canonical_json({"lot_id": "other-lot", "acked_through": 100,
                                    "hash": head["hash"], "epoch": 0}).encode(),
             private_key(keys.cloud_private, what="x")),
        # signed by the cloud for this lot, but for another chain (a restored ledger's old ack)
        seal("ack", canonical_json({"lot_id": LOT, "acked_through": 100, "hash": "ab" * 32,
                                    "epoch": 0}).encode(),
             private_key(keys.cloud_private, what="x")),
    ]
    async with running(uplink.run()):
        await wait_for(lambda: uplink.connected.is_set(), 10, "uplink connected")
        for forged in forgeries:
            await publish(broker.port, ack_topic(LOT), forged, retain=True)
        await wait_for(lambda: uplink.refused_acks >= len(forgeries), 10, "the forged acks")
        await asyncio.sleep(0.5)  # give a wrongly accepted ack time to be persisted
    assert uplink.acked_through == 0
    assert await read_acked_through(ledger) == 0
    # Retention with everything old and a tiny budget: nothing unsynced may go.
    now = (await ledger.fetchone("SELECT ts_utc FROM events WHERE seq = 100"))["ts_utc"]
    report = await enforce(ledger, now=datetime.fromisoformat(now) + timedelta(days=400),
                           max_bytes=1024**2, max_age_days=1)
    assert report.pruned_events == 0
    assert await ledger.last_seq() == 100
    assert (await ledger.fetchone("SELECT COUNT(*) AS n FROM events"))["n"] == 100
    await ledger.close()


async def test_a_forged_batch_is_refused_and_the_real_events_sync(tmp_path, broker):
    keys = Keys(tmp_path / "keys")
    settings = MqttSettings.from_url(broker.url)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ingest = keys.ingest(store, settings, client_id="signed-ingest")
    forged = await forged_batch(tmp_path, 20)
    attacker_private, _ = generate_keypair()
    async with running(ingest.run()):
        await wait_for(lambda: ingest.connected.is_set(), 10, "ingest connected")
        # unsigned, then signed with a key that is not the lot's
        await publish(broker.port, events_topic(LOT), forged)
        await publish(broker.port, events_topic(LOT), seal(
            "batch", forged.encode(), private_key(attacker_private, what="x")))
        # a batch of an unregistered lot, signed by the lot's own key (a key is per lot)
        await publish(broker.port, events_topic("lot-without-key"), seal(
            "batch", forged.encode(), private_key(keys.lot_private, what="x")))
        await wait_for(lambda: ingest.refused >= 3, 10, "the forged batches refused")
        assert store.events(LOT) == [] and store.acked_through(LOT) == 0
        assert store.events("lot-without-key") == []
        # The real lot then syncs its own events, which the forgery would have wedged.
        ledger = await open_filled(tmp_path / "ledger.sqlite3", 20)
        uplink = keys.uplink(ledger, settings, ack_timeout_s=5)
        async with running(uplink.run()):
            await wait_for(lambda: uplink.acked_through == 20, 20, "the real events acked")
    real = await ledger.fetchall("SELECT event_id FROM events ORDER BY seq")
    rows = store.events(LOT)
    assert_exact_chain(rows, 20)
    assert [r["event_id"] for r in rows] == [r["event_id"] for r in real]
    assert uplink.refused_acks == 0 and ingest.refused == 3
    await ledger.close()
    store.close()


async def test_an_ack_from_before_a_resync_no_longer_counts(tmp_path, broker):
    from sync.resync import resync_from

    keys = Keys(tmp_path / "keys")
    settings = MqttSettings.from_url(broker.url)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 50)
    uplink = keys.uplink(ledger, settings, ack_timeout_s=5)
    ingest = keys.ingest(store, settings, client_id="epoch-ingest")
    captured: list[bytes] = []

    async def recorder():  # an eavesdropper keeping the cloud's genuine acks for later
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="eavesdropper") as c:
            await c.subscribe(ack_topic(LOT), qos=1)
            async for message in c.messages:
                captured.append(bytes(message.payload))

    async with running(recorder(), ingest.run(), uplink.run()):
        await wait_for(lambda: uplink.acked_through == 50, 20, "50 acked")
        await wait_for(lambda: any(b'"acked_through":50' in p for p in captured), 5, "ack seen")
    # The cloud loses everything (restored an empty backup); the lot resends from seq 1.
    store.close()
    (tmp_path / "cloud.sqlite3").unlink()
    result = await resync_from(ledger, 1, by="test", reason="cloud restored")
    assert (result.acked_before, result.acked_after, result.epoch) == (50, 0, 1)
    assert await read_acked_through(ledger) == 0
    uplink = keys.uplink(ledger, settings, ack_timeout_s=30)
    async with running(uplink.run()):
        await wait_for(lambda: uplink.connected.is_set(), 10, "uplink connected")
        old_ack = next(p for p in captured if b'"acked_through":50' in p)
        await publish(broker.port, ack_topic(LOT), old_ack, retain=True)  # the replay
        await wait_for(lambda: uplink.stale_acks >= 1, 10, "the replayed ack seen")
        await asyncio.sleep(0.3)
    assert uplink.acked_through == 0 and await read_acked_through(ledger) == 0
    resync = await ledger.fetchall("SELECT payload FROM events WHERE type = 'sync.resync'")
    assert [json.loads(r["payload"])["acked_before"] for r in resync] == [50]
    await ledger.close()


async def test_a_running_uplink_resends_everything_after_a_resync(tmp_path, broker):
    from sync.resync import resync_from

    keys = Keys(tmp_path / "keys")
    settings = MqttSettings.from_url(broker.url)
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 30)
    uplink = keys.uplink(ledger, settings, ack_timeout_s=30)
    first = open_store(f"sqlite:///{tmp_path / 'cloud-a.sqlite3'}")
    restored = open_store(f"sqlite:///{tmp_path / 'cloud-b.sqlite3'}")  # an empty restore
    async with running(uplink.run()):
        async with running(keys.ingest(first, settings, client_id="ingest-a", group=None).run()):
            await wait_for(lambda: uplink.acked_through == 30, 20, "30 acked")
        async with running(keys.ingest(restored, settings, client_id="ingest-b", group=None).run()):
            await resync_from(ledger, 1, by="test", reason="cloud restored an empty backup")
            await wait_for(lambda: uplink.acked_through == 31, 20, "31 acked after resync")
    assert_exact_chain(restored.events(LOT), 31)
    assert await read_acked_through(ledger) == 31
    await ledger.close()
    first.close()
    restored.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_second_version_of_a_stored_seq_is_quarantined_never_stored(
        tmp_path, backend, request):
    import uuid

    from sync.uplink import encode_event

    if backend == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    else:
        pg = request.getfixturevalue("pg_server")
        store = open_store(pg.url, schema=f"lotedge_test_{uuid.uuid4().hex[:12]}")

    async def events_of(path: Path, n: int) -> list[dict]:
        led = await open_filled(path, n)
        rows = await led.fetchall("SELECT seq, event_id, lot_id, type, ts_utc, ts_local, "
                                  "mono_ns, payload, prev_hash, hash FROM events ORDER BY seq")
        await led.close()
        return [json.loads(encode_event(tuple(r))) for r in rows]

    try:
        real = await events_of(tmp_path / "real.sqlite3", 30)
        other = await events_of(tmp_path / "other.sqlite3", 30)  # same lot id, another chain
        assert store.store_batch(LOT, real[:20]).acked_through == 20
        before = store.events(LOT)
        result = store.store_batch(LOT, other[:25])  # seq 1-20 clash, 21-25 do not link
        assert result.quarantined == 20
        assert result.acked_through == 20  # keeps acking what it has
        assert store.events(LOT)[:20] == before  # never overwritten
        quarantine = store.quarantine(LOT)
        clashes = [q for q in quarantine if q["second_event"] is not None]
        assert [q["seq"] for q in clashes] == list(range(1, 21))
        assert clashes[0]["first_hash"] == real[0]["hash"]
        assert clashes[0]["second_hash"] == other[0]["hash"]
        assert clashes[0]["second_event"]["event_id"] == other[0]["event_id"]
        # The real continuation still lands (seq 21 of the other chain was set aside, kept).
        assert store.store_batch(LOT, real[20:]).acked_through == 30
        assert_exact_chain(store.events(LOT), 30)
        assert any(q["seq"] == 21 and q["second_event"] is None for q in store.quarantine(LOT))
    finally:
        if backend == "postgresql":
            store.drop_schema()
        store.close()


async def test_a_lot_restored_with_a_different_chain_gets_its_batch_quarantined(
        tmp_path, broker):
    keys = Keys(tmp_path / "keys")
    settings = MqttSettings.from_url(broker.url)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ingest = keys.ingest(store, settings, client_id="q-ingest")
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 10)
    twin = await open_filled(tmp_path / "twin.sqlite3", 10)  # same lot id and key, other chain
    async with running(ingest.run()):
        await wait_for(lambda: ingest.connected.is_set(), 10, "ingest connected")
        async with running(keys.uplink(ledger, settings, ack_timeout_s=5).run()):
            await wait_for(lambda: store.acked_through(LOT) == 10, 20, "10 stored")
        twin_uplink = keys.uplink(twin, settings, ack_timeout_s=30)
        async with running(twin_uplink.run()):
            await wait_for(lambda: ingest.quarantined >= 10, 20, "the twin's batch quarantined")
            await asyncio.sleep(0.3)
        # The twin is told what the cloud has, bound to the other chain: it ignores it.
        assert twin_uplink.acked_through == 0 and twin_uplink.bogus_acks >= 1
    rows = store.events(LOT)
    real = await ledger.fetchall("SELECT event_id FROM events ORDER BY seq")
    assert [r["event_id"] for r in rows] == [r["event_id"] for r in real]
    await ledger.close()
    await twin.close()
    store.close()

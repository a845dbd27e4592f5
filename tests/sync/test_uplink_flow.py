"""The real uplink's flow control against a real Mosquitto: a timeout resends only the oldest
unacknowledged batch, the cloud's pace hint holds resends off, acks that keep coming (however
slowly) mean no resend."""

from __future__ import annotations

import asyncio
import json

import aiomqtt

from sync.mqtt import (
    MqttSettings,
    ack_topic,
    events_topic,
    lot_pace_topic,
    pace_topic,
)
from sync.uplink import Uplink
from tests.sync.helpers import LOT, open_filled, running, wait_for


async def _silent_cloud(port: int, received: list[tuple[int, int]]) -> None:
    """Receives batches and never acks (an ingest stuck behind a backlog)."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="silent-cloud") as client:
        await client.subscribe(events_topic(LOT), qos=1)
        async for message in client.messages:
            batch = json.loads(message.payload)
            received.append((batch["first_seq"], batch["last_seq"]))


async def test_a_timeout_resends_only_the_oldest_unacknowledged_batch(tmp_path, broker):
    ledger = await open_filled(tmp_path / "l.sqlite3", 400)
    uplink = Uplink(ledger, MqttSettings.from_url(broker.url), batch_max_events=100,
                    ack_timeout_s=0.5)
    received: list[tuple[int, int]] = []
    async with running(_silent_cloud(broker.port, received)):
        await asyncio.sleep(0.3)
        async with running(uplink.run()):
            await wait_for(lambda: uplink.resends >= 3, 15, "three resends")
    firsts = [f for f, _ in received]
    assert firsts[:4] == [1, 101, 201, 301]  # the window, once
    assert firsts[4:] and set(firsts[4:]) == {1}  # then only the oldest batch, again
    assert uplink.resent_events == 100 * uplink.resends
    await ledger.close()


async def test_a_pace_hint_holds_resends_off_and_narrows_the_window(tmp_path, broker):
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="pacer") as cloud:
        await cloud.publish(pace_topic("ingest-a"), json.dumps(
            {"wait_s": 2, "max_inflight_batches": 2}), qos=1, retain=True)
    ledger = await open_filled(tmp_path / "l.sqlite3", 400)
    uplink = Uplink(ledger, MqttSettings.from_url(broker.url), batch_max_events=100,
                    ack_timeout_s=0.5)
    received: list[tuple[int, int]] = []
    async with running(_silent_cloud(broker.port, received)):
        await asyncio.sleep(0.3)
        async with running(uplink.run()):
            await wait_for(lambda: uplink.pace.wait_s == 2, 5, "the retained hint")
            await asyncio.sleep(3.0)  # six initial timeouts: the hint adds 2 x 2 s
            assert uplink.resends == 0
            assert [f for f, _ in received] == [1, 101]  # a window of 2, not 8
            # A per-lot hint that is stricter wins; once both are cleared the timer runs out
            # at the wait promised under them (0.5 + 2 x 2 s after the first batch).
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="op") as op:
                await op.publish(lot_pace_topic(LOT), json.dumps(
                    {"wait_s": 1, "max_inflight_batches": 1}), qos=1, retain=True)
                await wait_for(lambda: uplink.pace.max_inflight_batches == 1, 5, "lot hint")
                await op.publish(pace_topic("ingest-a"), b"", qos=1, retain=True)
                await op.publish(lot_pace_topic(LOT), b"", qos=1, retain=True)
            await wait_for(lambda: uplink.resends >= 1, 10, "a resend once the hint is gone")
    await ledger.close()


async def test_acks_that_keep_coming_slowly_mean_no_resend(tmp_path, broker):
    ledger = await open_filled(tmp_path / "l.sqlite3", 1_500)
    uplink = Uplink(ledger, MqttSettings.from_url(broker.url), batch_max_events=100,
                    ack_timeout_s=0.5)

    async def slow_cloud():
        """Acks one batch every 0.3 s, oldest first, however many wait (a busy ingest)."""
        pending: list[int] = []
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="slow-cloud") as c:
            await c.subscribe(events_topic(LOT), qos=1)

            async def acker():
                while True:
                    await asyncio.sleep(0.3)
                    if pending:
                        await c.publish(ack_topic(LOT), json.dumps(
                            {"acked_through": pending.pop(0)}), qos=1, retain=True)

            task = asyncio.create_task(acker())
            try:
                async for message in c.messages:
                    pending.append(json.loads(message.payload)["last_seq"])
            finally:
                task.cancel()

    async with running(slow_cloud()):
        await asyncio.sleep(0.3)
        async with running(uplink.run()):
            await wait_for(lambda: uplink.acked_through == 1_500, 30, "all acked, slowly")
    assert uplink.resends == 0 and uplink.resent_events == 0
    assert uplink.window.rto.samples > 5  # the timeout came from the measured round trips
    await ledger.close()


async def test_a_gone_workers_stale_hint_is_ignored_and_a_restarted_worker_clears_its_own(
        tmp_path, broker):
    from sync.cloud_store import open_store
    from sync.ingest import Ingest
    from sync.mqtt import ingest_presence_topic
    from tests.sync.helpers import retained

    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="past") as past:
        # a worker that died for good: its will said offline, its hint stayed retained
        await past.publish(ingest_presence_topic("dead"), json.dumps(
            {"online": False, "client_id": "dead"}), qos=1, retain=True)
        await past.publish(pace_topic("dead"), json.dumps({"wait_s": 600}), qos=1, retain=True)
        # a worker that crashed and is about to come back under the same client id
        await past.publish(pace_topic("back"), json.dumps({"wait_s": 50}), qos=1, retain=True)
    ledger = await open_filled(tmp_path / "l.sqlite3", 300)
    uplink = Uplink(ledger, MqttSettings.from_url(broker.url), batch_max_events=100)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    async with running(uplink.run()):
        await wait_for(lambda: uplink.pace.wait_s == 50, 10, "the live worker's hint only")
        await asyncio.sleep(0.5)
        assert uplink.pace.wait_s == 50  # the dead worker's 600 s never counted
        async with running(Ingest(store, MqttSettings.from_url(broker.url),
                                  client_id="back").run()):
            await wait_for(lambda: uplink.pace.wait_s == 0, 10, "the restart clearing it")
            await wait_for(lambda: uplink.acked_through == 300, 10, "all acked")
    assert await retained(broker.port, pace_topic("back"), timeout_s=1.0) is None
    store.close()
    await ledger.close()

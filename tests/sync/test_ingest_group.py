"""The ingest stores the batches waiting in its queue in one transaction (group commit) and acks
each lot once per group; its pace hint follows its queue and measured rate."""

from __future__ import annotations

import time

from sync.cloud_store import open_store
from sync.flow import PaceHint
from sync.ingest import Ingest
from sync.mqtt import MqttSettings
from sync.uplink import Uplink
from tests.sync.helpers import LOT, assert_exact_chain, open_filled, running, wait_for


class SlowStore:
    """A real SQLite store whose transactions take 0.3 s (a busy database)."""

    def __init__(self, inner):
        self.inner, self.groups = inner, []

    def store_batches(self, items):
        time.sleep(0.3)
        self.groups.append(len(items))
        return self.inner.store_batches(items)

    def store_batch(self, lot_id, events):
        return self.store_batches([(lot_id, events)])[0]


async def test_batches_waiting_in_the_queue_share_one_transaction(tmp_path, broker):
    inner = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    store = SlowStore(inner)
    settings = MqttSettings.from_url(broker.url)
    ingest = Ingest(store, settings, client_id="group-ingest")
    ledger = await open_filled(tmp_path / "l.sqlite3", 3_000)
    uplink = Uplink(ledger, settings, batch_max_events=100, max_inflight_batches=16,
                    ack_timeout_s=30)
    async with running(ingest.run()):
        await wait_for(ingest.connected.is_set, 10, "ingest connected")
        async with running(uplink.run()):
            await wait_for(lambda: uplink.acked_through == 3_000, 60, "all acked")
    assert ingest.batches == 30 and max(store.groups) > 1
    assert ingest.transactions == len(store.groups) < 30
    assert uplink.resends == 0
    assert ingest.rate_events_s > 0
    assert_exact_chain(inner.events(LOT), 3_000)
    await ledger.close()
    inner.close()


def test_the_pace_hint_follows_the_queue_and_the_measured_rate():
    ingest = Ingest(None, MqttSettings.from_url("mqtt://127.0.0.1:1"))  # no store needed
    assert ingest.current_pace(100, 0.0) == PaceHint()  # nothing measured yet: no hint
    ingest.rate_events_s, ingest._batch_events = 20_000.0, 500.0
    for i in range(100):
        ingest._lots_seen[f"lot-{i}"] = 0.0
    hint = ingest.current_pace(1_000, 1.0)  # 500,000 events queued at 20,000/s
    assert hint.wait_s == 25.0
    assert hint.max_inflight_batches == 4  # 100 lots x 4 x 500 = 10 s of work
    # Little in the queue yet, but 100 lots x 8 batches may be on their way: that counts.
    assert ingest.current_pace(10, 1.0).wait_s == 100 * 8 * 500 / 20_000
    ingest.pace = hint  # once the lots were told a window of 4, that is what they can send
    assert ingest.current_pace(10, 1.0).wait_s == 100 * 4 * 500 / 20_000

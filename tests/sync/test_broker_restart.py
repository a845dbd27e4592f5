"""After a broker restart, the backlog is acknowledged in seconds, not after the ack timeout.

Mosquitto drops QoS 1 messages for a shared-subscription group while its only member (the
ingest's persistent session) is offline, so batches the uplink publishes right after the
restart, before the ingest is back, are lost. The ingest announces itself when it (re)connects
and the uplink resends its unacknowledged batches at once (and, should no announcement come,
retries quickly after its own reconnect).
"""

from __future__ import annotations

import asyncio
import time

from sync.cloud_store import open_store
from sync.mqtt import MqttSettings
from tests.sync.helpers import LOT, assert_exact_chain, fill, open_filled, wait_for
from tests.sync.test_signed_sync import Keys, running

BOUND_S = 10.0  # generous: the ack timeout it replaces is 30 s
INGEST_LATE_S = 1.0  # the ingest reconnects this long after the lot published its backlog


async def test_backlog_is_acked_within_seconds_after_a_broker_restart(tmp_path, broker):
    keys = Keys(tmp_path / "keys")
    settings = MqttSettings.from_url(broker.url)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ledger = await open_filled(tmp_path / "l.sqlite3", 200)
    uplink = keys.uplink(ledger, settings, batch_max_events=100, ack_timeout_s=30.0,
                         backoff_max_s=2.0)
    ingest = keys.ingest(store, settings, client_id="restart-ingest", backoff_max_s=2.0)
    figures = []
    ingest_task = asyncio.create_task(ingest.run())
    try:
        async with running(uplink.run()):
            await wait_for(lambda: uplink.acked_through == 200, 20, "200 acked")
            for round_ in range(3):
                ingest_task.cancel()  # the cloud side goes with the broker ...
                await asyncio.gather(ingest_task, return_exceptions=True)
                await asyncio.to_thread(broker.stop)
                await fill(ledger, 300)  # the lot keeps working while the broker is down
                target = await ledger.last_seq()
                await asyncio.to_thread(broker.start)
                started = time.monotonic()
                # ... and comes back after the lot has reconnected and published its backlog
                await wait_for(lambda t=target: uplink.sent_through == t, 10, "backlog published")
                await asyncio.sleep(INGEST_LATE_S)
                ingest_task = asyncio.create_task(ingest.run())
                await wait_for(lambda t=target: uplink.acked_through == t, 60,
                               f"backlog acked after restart {round_ + 1}")
                figures.append(time.monotonic() - started)
    finally:
        ingest_task.cancel()
        await asyncio.gather(ingest_task, return_exceptions=True)
    print(f"\nbacklog acked {', '.join(f'{s:.2f} s' for s in figures)} after the broker "
          f"restarts (bound {BOUND_S:.0f} s; ack timeout 30 s; resends {uplink.resends}, ingest "
          f"announcements {uplink.ingest_announcements})")
    assert max(figures) < BOUND_S, figures
    assert_exact_chain(store.events(LOT), 1_100)
    await ledger.close()
    store.close()

"""Days offline, then reconnect: the backlog drains completely, in order, once each."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from sync.cloud_store import open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings
from sync.uplink import Uplink
from tests.sync.helpers import LOT, assert_exact_chain, fill, open_filled, wait_for

# A busy lot: ~4,000 visits a day, ~8 events per visit (reads, ticket, gates, payment).
BUSY_EVENTS_PER_DAY = 32_000


async def week_offline(tmp_path, broker, *, events_per_day: int, timeout_s: float) -> None:
    total = 7 * events_per_day
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ledger = await open_filled(tmp_path / "l.sqlite3", events_per_day, start=start,
                               span=timedelta(days=1))
    settings = MqttSettings.from_url(broker.url)
    broker.stop()  # the link is down for the whole week
    uplink = Uplink(ledger, settings, backoff_max_s=2.0)
    uplink_task = asyncio.create_task(uplink.run())
    # The lot keeps working for six more days while the uplink retries in the background.
    for day in range(1, 7):
        await fill(ledger, events_per_day, start=start + timedelta(days=day),
                   span=timedelta(days=1) - timedelta(seconds=1))
    assert uplink.acked_through == 0 and not uplink.connected.is_set()
    broker.start()
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ingest = Ingest(store, settings, client_id="week-ingest")
    ingest_task = asyncio.create_task(ingest.run())
    try:
        await wait_for(lambda: uplink.acked_through == total, timeout_s, "the week to drain")
    finally:
        for task in (uplink_task, ingest_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    rows = store.events(LOT)
    assert_exact_chain(rows, total)
    assert rows[0]["ts_utc"].startswith("2026-11-01") and rows[-1]["ts_utc"].startswith(
        "2026-11-07")
    assert await ledger.get_meta("acked_through") == str(total)
    await ledger.close()
    store.close()


async def test_week_offline_scaled_down_catches_up(tmp_path, broker):
    await week_offline(tmp_path, broker, events_per_day=BUSY_EVENTS_PER_DAY // 20, timeout_s=60)


@pytest.mark.slow
@pytest.mark.timeout(7200)  # long by design; the 300 s default is for the CI subset
async def test_week_offline_busy_lot_full_volume(tmp_path, broker):
    await week_offline(tmp_path, broker, events_per_day=BUSY_EVENTS_PER_DAY, timeout_s=600)

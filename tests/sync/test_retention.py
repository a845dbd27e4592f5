"""Retention: only acknowledged events are pruned; the chain still verifies; alarms on pressure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sync.retention import enforce, ledger_bytes, prune_through
from sync.uplink import write_acked_through
from tests.sync.helpers import fill, open_filled

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def test_old_synced_events_are_pruned_and_unsynced_ones_kept(tmp_path):
    ledger = await open_filled(tmp_path / "l.sqlite3", 1_000, start=NOW - timedelta(days=100),
                               span=timedelta(days=100))
    await write_acked_through(ledger, 600)
    report = await enforce(ledger, now=NOW, max_bytes=1024**3, max_age_days=30)
    # Events older than 30 days are seq 1..700; only 1..600 are synced.
    assert report.pruned_events == 600
    first = await ledger.fetchone("SELECT MIN(seq) AS s FROM events")
    assert first["s"] == 601
    assert not report.alarm
    verify = await ledger.verify()
    assert verify.ok, verify.problems
    # New events chain on after pruning.
    await fill(ledger, 5)
    assert (await ledger.verify()).ok and await ledger.last_seq() == 1_005
    await ledger.close()


async def test_unsynced_events_cannot_be_deleted(tmp_path):
    ledger = await open_filled(tmp_path / "l.sqlite3", 100)
    await write_acked_through(ledger, 10)
    with pytest.raises(Exception, match="only events acknowledged"):
        await prune_through(ledger, 50)
    assert (await ledger.fetchone("SELECT COUNT(*) AS n FROM events"))["n"] == 100
    await ledger.close()


async def test_budget_pressure_prunes_synced_then_images_then_alarms(tmp_path):
    ledger = await open_filled(tmp_path / "l.sqlite3", 20_000)
    used = await ledger_bytes(ledger)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        (images / f"{i}.jpg").write_bytes(b"x" * 200_000)
    await write_acked_through(ledger, 15_000)
    budget = int(used * 0.6 / 0.9) + 1_000_000  # room for ~60% of the log + images
    report = await enforce(ledger, now=NOW, max_bytes=budget, max_age_days=365,
                           images_dir=images)
    assert report.pruned_events > 0
    first = (await ledger.fetchone("SELECT MIN(seq) AS s FROM events"))["s"]
    assert first <= 15_001  # never past the ack
    assert (await ledger.verify()).ok
    # A budget smaller than the unsynced backlog: all synced events and images go, then alarm.
    report = await enforce(ledger, now=NOW, max_bytes=1024**2, max_age_days=365,
                           images_dir=images)
    assert report.alarm and report.unsynced_events == 5_000
    assert list(images.iterdir()) == []
    first = (await ledger.fetchone("SELECT MIN(seq) AS s FROM events"))["s"]
    assert first == 15_001
    raised = await ledger.fetchall("SELECT payload FROM events WHERE type = 'alarm.raised'")
    assert len(raised) == 1
    alarm = json.loads(raised[0]["payload"])
    assert (alarm["code"], alarm["source"], alarm["severity"]) == (
        "storage.budget", "sync", "critical")
    assert "5000 events not yet synced" in alarm["detail"]
    # Still under pressure: no second alarm; a fresh ack and a budget that fits clear it.
    await enforce(ledger, now=NOW, max_bytes=1024**2, max_age_days=365, images_dir=images)
    assert len(await ledger.fetchall("SELECT 1 FROM events WHERE type = 'alarm.raised'")) == 1
    await write_acked_through(ledger, await ledger.last_seq())
    report = await enforce(ledger, now=NOW, max_bytes=1024**3, max_age_days=365)
    assert not report.alarm
    active = await ledger.fetchall("SELECT 1 FROM alarms WHERE cleared_utc IS NULL")
    assert active == []
    assert len(await ledger.fetchall("SELECT 1 FROM events WHERE type = 'alarm.cleared'")) == 1
    await ledger.close()


async def test_acked_through_never_goes_backwards(tmp_path):
    ledger = await open_filled(tmp_path / "l.sqlite3", 10)
    await write_acked_through(ledger, 8)
    await write_acked_through(ledger, 3)
    assert await ledger.get_meta("acked_through") == "8"
    await ledger.close()


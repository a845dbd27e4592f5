"""Crash safety: SIGKILL the running appliance at random moments; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from zoneinfo import ZoneInfo

import pytest

from appliance.config import load_config
from appliance.core.events import NewEvent
from appliance.ledger import Ledger
from tests.conftest import write_lot
from tests.integration.crash_harness import Acknowledged, CrashHarness, check_ledger


def _harness(tmp_path, mode: str, seed: int) -> CrashHarness:
    cfg_path = write_lot(tmp_path, mode=mode)
    cfg = load_config(cfg_path)
    # kills from 0.3 s (mid start-up) to 3.5 s (serving: start-up takes ~1-1.5 s on 2 busy cores)
    return CrashHarness(cfg_path, db_path=cfg.db_path(), socket_path=cfg.data_path(cfg.api.socket),
                        seed=seed, min_s=0.3, max_s=3.5)


def _assert_rounds(harness: CrashHarness, rounds: int) -> None:
    results = harness.run(rounds)
    bad = [r for r in results if r.problems]
    assert not bad, f"round {bad[0].round}: {bad[0].problems[:10]}"
    assert len(results) == rounds
    # many kills landed while the lot was busy, and the acknowledgements being checked are real
    assert sum(r.reached_ready for r in results) >= rounds // 3
    assert len(harness.acked.events) > 100
    assert harness.acked.reservations
    with sqlite3.connect(harness.db_path) as db:
        issued = db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
        closed = db.execute("SELECT COUNT(*) FROM tickets WHERE status = 'CLOSED'").fetchone()[0]
    assert issued > 10 and closed > 0


# CI runs the counter lot; the per-spot lot runs with the slow suites (and `make torture`)
@pytest.mark.parametrize(("mode", "seed"), [
    ("counter", 11), pytest.param("per_spot", 12, marks=pytest.mark.slow)])
def test_sigkill_25_rounds_each_mode_loses_nothing_acknowledged(tmp_path, mode, seed):
    _assert_rounds(_harness(tmp_path, mode, seed), 25)


@pytest.mark.slow
@pytest.mark.timeout(7200)  # long by design; the 300 s default is for the CI subset
def test_torture_1000_rounds(tmp_path):
    rounds = int(os.environ.get("LOTEDGE_TORTURE_ROUNDS", "1000"))
    _assert_rounds(_harness(tmp_path, "per_spot", 99), rounds)


async def _ledger_with_events(path, n: int) -> None:
    ledger = await Ledger.open(path, lot_id="t", tz=ZoneInfo("UTC"))
    for i in range(n):
        await ledger.append(NewEvent(type="test", payload={"i": i}))
    await ledger.close()


def test_checker_catches_a_lost_acknowledged_event_and_a_broken_chain(tmp_path):
    db_path = tmp_path / "l.sqlite3"
    asyncio.run(_ledger_with_events(db_path, 5))
    with sqlite3.connect(db_path) as db:
        hashes = dict(db.execute("SELECT seq, hash FROM events"))
    acked = Acknowledged(events=hashes, last_seq=5, reservations={"R-1"})
    problems = check_ledger(db_path, acked)
    assert problems == ["acknowledged reservation R-1 lost"]
    acked.reservations.clear()
    assert check_ledger(db_path, acked) == []
    db = sqlite3.connect(db_path)
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_delete_only_synced")
    db.execute("UPDATE events SET payload = '{\"i\": 9}' WHERE seq = 3")
    db.execute("DELETE FROM events WHERE seq = 5")
    db.commit()
    db.close()
    problems = check_ledger(db_path, acked)
    assert any("seq 3" in p for p in problems)
    assert "acknowledged event seq 5 lost" in problems
    assert "last seq 4 < acknowledged 5" in problems


def test_checker_catches_counts_that_disagree_with_open_tickets(tmp_path):
    harness = _harness(tmp_path, "counter", 3)
    for _ in range(10):  # on busy cores a kill can land before the first start made the ledger
        harness.run_round()
        if harness.results[-1].reached_ready and len(harness.results) >= 2:
            break
    assert harness.results[-1].reached_ready
    assert not any(r.problems for r in harness.results)
    db = sqlite3.connect(harness.db_path)
    db.execute("UPDATE capacity SET occupied = occupied + 1 WHERE level_id = 'L1' "
               "AND spot_type = 'REGULAR'")
    db.execute("INSERT INTO tickets(id, vehicle_type, level_id, spot_type, entry_utc, status, "
               "entry_seq) VALUES ('T-bad', 'REGULAR', 'L2', 'REGULAR', '2026-01-01', 'LOST', 1)")
    db.commit()
    db.close()
    problems = check_ledger(harness.db_path, Acknowledged())
    assert any(p.startswith("capacity L1/REGULAR: occupied") for p in problems)
    assert "ticket T-bad: impossible status 'LOST'" in problems


async def test_reads_never_see_another_tasks_uncommitted_events(tmp_path):
    """Regression: the API read events of an open transaction; a crash then lost them."""
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id="t", tz=ZoneInfo("UTC"))
    await ledger.append(NewEvent(type="test", payload={"i": 0}))
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer():
        async with ledger.transaction() as tx:
            await tx.append(NewEvent(type="test", payload={"i": 1}))
            assert await ledger.last_seq() == 2  # the writer reads its own writes
            inside.set()
            await release.wait()
            raise RuntimeError("rolled back")

    task = asyncio.create_task(writer())
    await inside.wait()
    reader = asyncio.create_task(ledger.last_seq())
    await asyncio.sleep(0.05)
    assert not reader.done()  # waits for the transaction instead of reading it half-done
    release.set()
    with pytest.raises(RuntimeError):
        await task
    assert await reader == 1
    await ledger.close()


def test_checker_accepts_a_kill_before_the_first_migration_only_if_nothing_was_acknowledged(
        tmp_path):
    db_path = tmp_path / "l.sqlite3"
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode = WAL")  # what the appliance does before migrating
    db.close()
    assert check_ledger(db_path, Acknowledged()) == []
    assert check_ledger(db_path, Acknowledged(last_seq=3)) == [
        "events table missing after acknowledgements"]

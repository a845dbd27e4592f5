"""The ledger: WAL + synchronous=FULL, contiguous seq, hash chain, atomic event+effect."""

from __future__ import annotations

import asyncio
import sqlite3
from zoneinfo import ZoneInfo

import pytest

from appliance.core.events import NewEvent
from appliance.errors import LedgerError
from appliance.ledger import Ledger

TZ = ZoneInfo("America/New_York")


@pytest.fixture
async def ledger(tmp_path):
    led = await Ledger.open(tmp_path / "l.sqlite3", lot_id="lot-a", tz=TZ)
    yield led
    await led.close()


async def test_pragmas_and_schema(ledger):
    mode = (await ledger.fetchone("PRAGMA journal_mode"))[0]
    sync = (await ledger.fetchone("PRAGMA synchronous"))[0]
    assert mode == "wal"
    assert sync == 2  # FULL
    assert await ledger.schema_version() >= 1


async def test_seq_is_contiguous_and_chain_verifies(ledger):
    for i in range(50):
        await ledger.append(NewEvent(type="test.thing", payload={"i": i}))
    assert await ledger.last_seq() == 50
    report = await ledger.verify()
    assert report.ok, report.problems
    assert (report.first_seq, report.last_seq, report.events) == (1, 50, 50)


async def test_local_and_utc_timestamps(ledger):
    ev = await ledger.append(NewEvent(type="t", payload={}))
    assert ev.ts_utc.utcoffset().total_seconds() == 0
    assert ev.ts_local.tzinfo is not None and ev.ts_local == ev.ts_utc


async def test_failed_transaction_leaves_nothing(ledger):
    await ledger.append(NewEvent(type="t", payload={}))
    with pytest.raises(RuntimeError):
        async with ledger.transaction() as tx:
            await tx.append(NewEvent(type="t", payload={"lost": True}))
            raise RuntimeError("boom")
    assert await ledger.last_seq() == 1
    async with ledger.transaction() as tx:
        ev = await tx.append(NewEvent(type="t", payload={}))
    assert ev.seq == 2
    assert (await ledger.verify()).ok


async def test_events_are_append_only(ledger):
    await ledger.append(NewEvent(type="t", payload={}))
    with pytest.raises(sqlite3.IntegrityError):
        await ledger.conn.execute("UPDATE events SET type = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError):
        await ledger.conn.execute("DELETE FROM events WHERE seq = 1")


async def test_hand_edit_is_detected(tmp_path):
    path = tmp_path / "l.sqlite3"
    led = await Ledger.open(path, lot_id="lot-a", tz=TZ)
    for i in range(5):
        await led.append(NewEvent(type="payment", payload={"amount_cents": 100 * i}))
    await led.close()
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("UPDATE events SET payload = '{\"amount_cents\":1}' WHERE seq = 3")
    raw.commit()
    raw.close()
    led = await Ledger.open(path, lot_id="lot-a", tz=TZ)
    report = await led.verify()
    await led.close()
    assert not report.ok
    assert any("seq 3" in p for p in report.problems)


async def test_reopen_continues_the_chain(tmp_path):
    path = tmp_path / "l.sqlite3"
    led = await Ledger.open(path, lot_id="lot-a", tz=TZ)
    await led.append(NewEvent(type="t", payload={}))
    await led.close()
    led = await Ledger.open(path, lot_id="lot-a", tz=TZ)
    ev = await led.append(NewEvent(type="t", payload={}))
    assert ev.seq == 2
    assert (await led.verify()).ok
    await led.close()


@pytest.mark.parametrize("spins", [0, 1, 2, 3, 5, 8])
async def test_a_writer_cancelled_at_any_step_leaves_the_ledger_writable(ledger, spins):
    """Regression: a cancel while BEGIN ran left the connection inside that transaction, and
    every later write failed with "cannot start a transaction within a transaction"."""
    import asyncio
    import contextlib

    async def two_events():
        async with ledger.transaction() as tx:
            await tx.append(NewEvent(type="test", payload={"i": 1}))
            await tx.append(NewEvent(type="test", payload={"i": 2}))

    task = asyncio.create_task(two_events())
    for _ in range(spins):  # cancel at a different point of the transaction each time
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    before = await ledger.last_seq()
    assert before in (0, 2)  # all or nothing
    await ledger.append(NewEvent(type="test", payload={"i": 3}))
    assert await ledger.last_seq() == before + 1
    assert (await ledger.verify()).ok


async def test_run_commits_a_whole_body_in_one_trip_and_tells_listeners(ledger):
    heard: list[list[int]] = []
    ledger.subscribe(lambda events: heard.append([e.seq for e in events]))

    async def body(tx):
        await tx.append(NewEvent(type="test", payload={"i": 1}))
        row = await tx.fetchone("SELECT COUNT(*) AS n FROM events")  # reads its own writes
        await tx.append(NewEvent(type="test", payload={"n": row["n"]}))
        return "done"

    assert await ledger.run(body) == "done"
    assert heard == [[1, 2]]
    rows = await ledger.fetchall("SELECT payload FROM events ORDER BY seq")
    assert [r["payload"] for r in rows] == ['{"i":1}', '{"n":1}']


async def test_run_rolls_back_a_failing_body_and_refuses_one_that_awaits_the_event_loop(ledger):
    import asyncio

    from appliance.errors import LedgerError

    async def fails(tx):
        await tx.append(NewEvent(type="test", payload={}))
        raise ValueError("no")

    async def sleeps(tx):
        await tx.append(NewEvent(type="test", payload={}))
        await asyncio.sleep(0)  # would run on the database thread: refused, rolled back

    with pytest.raises(ValueError):
        await ledger.run(fails)
    with pytest.raises(LedgerError, match="awaited something other"):
        await ledger.run(sleeps)
    assert await ledger.last_seq() == 0
    await ledger.append(NewEvent(type="test", payload={}))
    assert await ledger.last_seq() == 1 and (await ledger.verify()).ok


async def test_a_cancelled_run_still_commits_whole_and_tells_listeners(ledger):
    import asyncio

    heard: list[int] = []
    ledger.subscribe(lambda events: heard.extend(e.seq for e in events))

    async def body(tx):
        for i in range(50):
            await tx.append(NewEvent(type="test", payload={"i": i}))

    task = asyncio.create_task(ledger.run(body))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ledger.append(NewEvent(type="test", payload={"after": True}))
    assert await ledger.last_seq() == 51  # the cancelled caller's 50 events, then this one
    assert heard == list(range(1, 52))


async def test_concurrent_runs_share_a_commit_and_a_failing_one_rolls_back_alone(ledger):
    import asyncio

    async def one(i: int):
        async def body(tx):
            await tx.append(NewEvent(type="test", payload={"lane": i}))
            if i == 7:
                raise ValueError("lane 7's decision failed")
            return i
        return await ledger.run(body)

    results = await asyncio.gather(*(one(i) for i in range(20)), return_exceptions=True)
    assert [r for r in results if isinstance(r, Exception)][0].args == ("lane 7's decision failed",)
    assert sorted(r for r in results if not isinstance(r, Exception)) == [
        i for i in range(20) if i != 7]
    rows = await ledger.fetchall("SELECT seq, payload FROM events ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, 20))  # contiguous: 7's event never existed
    assert '{"lane":7}' not in [r["payload"] for r in rows]
    assert (await ledger.verify()).ok
    assert ledger.grouped_bodies == 20 and ledger.group_commits <= 2  # one fsync for many


async def test_bodies_queued_behind_a_failed_commit_still_get_their_answer(ledger, monkeypatch):
    """A group whose COMMIT fails (disk full) fails its callers; bodies that queued meanwhile
    must still run, not wait for some later run() call."""
    import asyncio

    import appliance.ledger.store as store
    from appliance.errors import LedgerError

    real = store._run_group
    calls = []

    def flaky(conn, group, txs):
        calls.append(len(group))
        if len(calls) == 1:
            raise LedgerError("commit failed: database or disk is full")
        return real(conn, group, txs)

    monkeypatch.setattr(store, "_run_group", flaky)

    async def body(tx):
        await tx.append(NewEvent(type="test", payload={}))
        return "ok"

    first = asyncio.create_task(ledger.run(body))
    await asyncio.sleep(0)  # the first group is in flight on the database thread
    await asyncio.sleep(0)
    later = asyncio.create_task(ledger.run(body))  # queued behind it
    with pytest.raises(LedgerError):
        await first
    assert await asyncio.wait_for(later, 5) == "ok"
    assert await ledger.last_seq() == 1


@pytest.mark.parametrize("damage", ["random", "truncated"])
async def test_a_ledger_that_fails_to_open_leaves_no_thread_behind(tmp_path, damage):
    import os
    import threading

    path = tmp_path / "ledger.sqlite3"
    if damage == "random":
        path.write_bytes(os.urandom(64 * 1024))
    else:
        path.write_bytes(b"SQLite format 3\x00" + b"\x10\x00" + b"\x00" * 30)
    before = {t for t in threading.enumerate() if not t.daemon}
    with pytest.raises(LedgerError):
        await Ledger.open(path, lot_id="lot-1", tz=ZoneInfo("UTC"))
    for _ in range(100):  # aiosqlite's thread ends once its connection is closed
        left = {t for t in threading.enumerate() if not t.daemon and t.is_alive()} - before
        if not left:
            break
        await asyncio.sleep(0.02)
    assert not left, left

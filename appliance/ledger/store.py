"""The ledger: an aiosqlite database in WAL mode with synchronous=FULL.

Every change is an event appended with the next `seq` and linked into a SHA-256 hash chain;
the event and its effect on the tables (its projection) commit in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiosqlite

from appliance.clock import Clock, SystemClock
from appliance.core.events import (
    GENESIS_HASH,
    Event,
    NewEvent,
    canonical_json,
    chain_hash,
    event_body,
    verify_chain,
)
from appliance.errors import LedgerError
from appliance.ledger.projections import PROJECTIONS
from appliance.ledger.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")


def _row_to_event(row: sqlite3.Row | dict[str, Any]) -> Event:
    import json

    return Event(
        seq=row["seq"],
        event_id=row["event_id"],
        lot_id=row["lot_id"],
        type=row["type"],
        ts_utc=datetime.fromisoformat(row["ts_utc"]),
        ts_local=datetime.fromisoformat(row["ts_local"]),
        mono_ns=row["mono_ns"],
        payload=json.loads(row["payload"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class Tx:
    """One open write transaction: read, decide, append events."""

    def __init__(self, ledger: Ledger, conn: aiosqlite.Connection) -> None:
        self._ledger = ledger
        self._conn = conn
        self.appended: list[Event] = []
        self._head: tuple[int, str] | None = None

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Run one statement inside the transaction."""
        await self._conn.execute(sql, tuple(params))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a query, read inside the transaction."""
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """First row of a query or None."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def append(self, new: NewEvent, *, at: datetime | None = None) -> Event:
        """Append an event with the next seq and hash, and apply its projection."""
        if self._head is None:
            row = await self.fetchone("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            if row is None:
                base = await self.fetchone("SELECT value FROM meta WHERE key = 'chain_base'")
                if base is not None:
                    seq_text, hash_text = base["value"].split(":", 1)
                    self._head = (int(seq_text), hash_text)
                else:
                    self._head = (0, GENESIS_HASH)
            else:
                self._head = (row["seq"], row["hash"])
        prev_seq, prev_hash = self._head
        ledger = self._ledger
        ts_utc = (at or ledger.clock.now()).astimezone(ledger.tz_utc)
        ts_local = ts_utc.astimezone(ledger.tz)
        seq = prev_seq + 1
        event_id = str(uuid.uuid4())
        mono_ns = ledger.clock.monotonic_ns()
        payload_json = canonical_json(new.payload)
        body = event_body(
            seq=seq, event_id=event_id, lot_id=ledger.lot_id, type=new.type,
            ts_utc=ts_utc.isoformat(), ts_local=ts_local.isoformat(), mono_ns=mono_ns,
            payload_json=payload_json,
        )
        digest = chain_hash(prev_hash, body)
        await self.execute(
            "INSERT INTO events(seq, event_id, lot_id, type, ts_utc, ts_local, mono_ns, payload, "
            "prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (seq, event_id, ledger.lot_id, new.type, ts_utc.isoformat(), ts_local.isoformat(),
             mono_ns, payload_json, prev_hash, digest),
        )
        event = Event(
            seq=seq, event_id=event_id, lot_id=ledger.lot_id, type=new.type, ts_utc=ts_utc,
            ts_local=ts_local, mono_ns=mono_ns, payload=dict(new.payload), prev_hash=prev_hash,
            hash=digest,
        )
        projection = PROJECTIONS.get(new.type)
        if projection is not None:
            await projection(self, event)
        self._head = (seq, digest)
        self.appended.append(event)
        return event


class _ThreadTx(Tx):
    """A Tx whose statements run directly on the sqlite3 connection: only ever used inside
    aiosqlite's own thread, by `Ledger.run`, so a whole transaction costs one thread hop."""

    def __init__(self, ledger: Ledger, conn: aiosqlite.Connection) -> None:
        super().__init__(ledger, conn)
        self._raw: sqlite3.Connection | None = None

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Run one statement (synchronously: this coroutine never suspends)."""
        assert self._raw is not None
        self._raw.execute(sql, tuple(params))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a query (synchronously: this coroutine never suspends)."""
        assert self._raw is not None
        return self._raw.execute(sql, tuple(params)).fetchall()


def _run_group(conn: aiosqlite.Connection, group: list, txs: list[_ThreadTx]) -> list:
    """On the database thread: one transaction, each body under its own savepoint."""
    raw = conn._conn
    outcomes: list[tuple[bool, Any]] = []
    raw.execute("BEGIN IMMEDIATE")
    try:
        for (body, _), tx in zip(group, txs, strict=True):
            tx._raw = raw
            raw.execute("SAVEPOINT body")
            try:
                value = _drive(body(tx))
            except Exception as err:
                raw.execute("ROLLBACK TO body")
                raw.execute("RELEASE body")
                tx.appended.clear()
                outcomes.append((False, err))
                continue
            raw.execute("RELEASE body")
            outcomes.append((True, value))
        raw.execute("COMMIT")
    except BaseException as err:
        with contextlib.suppress(sqlite3.OperationalError):
            raw.execute("ROLLBACK")
        for tx in txs:
            tx.appended.clear()
        if isinstance(err, sqlite3.Error):
            raise LedgerError(f"commit failed: {err}") from err
        raise
    return outcomes


def _drive(coro: Any) -> Any:
    """Run a coroutine that never suspends to completion, synchronously."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise LedgerError("a Ledger.run() body awaited something other than its transaction")


@dataclass
class VerifyReport:
    """Result of `lotedge db verify`."""

    integrity: str = "ok"
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the database, the sequence and the chain all verify."""
        return self.integrity == "ok" and not self.problems


class Ledger:
    """The appliance's durable source of truth.

    Args:
        path: the SQLite file.
        lot_id: stamped on every event.
        tz: the lot's time zone, for lot-local timestamps.
        clock: where event timestamps come from.
    """

    def __init__(self, path: Path, *, lot_id: str, tz: ZoneInfo, clock: Clock | None = None):
        self.path = Path(path)
        self.lot_id = lot_id
        self.tz = tz
        self.tz_utc = ZoneInfo("UTC")
        self.clock: Clock = clock or SystemClock()
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._writer: asyncio.Task | None = None  # the task inside transaction(), if any
        self._listeners: list[Callable[[list[Event]], None]] = []
        self._group: list[tuple[Callable[[Tx], Awaitable[Any]], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None  # runs queued Ledger.run bodies
        self.group_commits = 0  # transactions Ledger.run committed ...
        self.grouped_bodies = 0  # ... for this many bodies

    @classmethod
    async def open(cls, path: Path, *, lot_id: str, tz: ZoneInfo,
                   clock: Clock | None = None) -> Ledger:
        """Open (creating if needed) and migrate the ledger at `path`."""
        ledger = cls(path, lot_id=lot_id, tz=tz, clock=clock)
        await ledger._connect()
        return ledger

    async def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = None
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = FULL")
            await conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as err:
            if conn is not None:  # its thread would keep the process alive after the error
                with contextlib.suppress(Exception):
                    await conn.close()
            raise LedgerError(f"cannot open ledger {self.path}: {err}") from err
        self._conn = conn
        try:
            await self._migrate()
        except BaseException:  # a damaged file can fail the migration's reads as well
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    @property
    def conn(self) -> aiosqlite.Connection:
        """The open connection (for read-only queries)."""
        if self._conn is None:
            raise LedgerError("ledger is closed")
        return self._conn

    async def _migrate(self) -> None:
        conn = self.conn
        async with self._lock:
            try:
                await conn.execute("BEGIN IMMEDIATE")
                version = (await (await conn.execute("PRAGMA user_version")).fetchone())[0]
                if version > len(MIGRATIONS):
                    raise LedgerError(
                        f"ledger schema v{version} is newer than this lotedge (v{len(MIGRATIONS)})"
                    )
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in _split_sql(script):
                        await conn.execute(statement)
                    await conn.execute(f"PRAGMA user_version = {number}")
                await conn.execute("COMMIT")
            except BaseException:
                await _rollback(conn)
                raise

    async def schema_version(self) -> int:
        """Current schema version."""
        return (await (await self.conn.execute("PRAGMA user_version")).fetchone())[0]

    @property
    def writing(self) -> bool:
        """True while a write transaction is queued or in flight (a gate may be deciding)."""
        return self._writer is not None or bool(self._group)

    def subscribe(self, listener: Callable[[list[Event]], None]) -> None:
        """Call `listener` with the events of every committed transaction."""
        self._listeners.append(listener)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction (BEGIN IMMEDIATE); committed durably on exit, else rolled back."""
        conn = self.conn
        async with self._lock:
            self._writer = asyncio.current_task()
            try:
                try:
                    # Inside the try: a caller cancelled while BEGIN runs (the statement still
                    # runs in aiosqlite's thread) must roll back, or the connection would stay
                    # in that transaction and refuse every later one (found by a sync test).
                    await conn.execute("BEGIN IMMEDIATE")
                    tx = Tx(self, conn)
                    yield tx
                except BaseException:
                    await _rollback(conn)
                    raise
                try:
                    # Shielded: a shutdown that cancels the caller still finishes an in-flight
                    # commit.
                    await asyncio.shield(conn.execute("COMMIT"))
                except sqlite3.Error as err:
                    await _rollback(conn)
                    raise LedgerError(f"commit failed: {err}") from err
            finally:
                self._writer = None
        self._notify(tx)

    async def run(self, body: Callable[[Tx], Awaitable[T]]) -> T:
        """Run a transaction whose body only touches the ledger, on the database thread, in
        one trip: BEGIN IMMEDIATE, the body, COMMIT (fsync) — or ROLLBACK if the body raises.

        The gate's path uses this: a decision of ~15 statements costs one thread hop instead of
        fifteen. `body(tx)` may await only `tx` (and pure code): it runs inside aiosqlite's
        thread, where it must not touch the event loop.

        Group commit: bodies that arrive while a commit is in flight (other lanes deciding at
        the same moment) run together in the next transaction, each under its own SAVEPOINT
        (a failing body rolls back alone), and share its fsync. Every caller still gets its
        answer only after its events are durable. Cancelling a caller does not cut its
        transaction short: it commits or rolls back whole, and listeners still hear of it.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        # a cancelled caller never reads its outcome: mark it retrieved
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._group.append((body, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_groups(), name="ledger-group-commit")
        return await asyncio.shield(done)

    async def _flush_groups(self) -> None:
        conn = self.conn
        async with self._lock:
            self._writer = asyncio.current_task()
            try:
                while self._group:
                    group, self._group = self._group, []
                    self.group_commits += 1
                    self.grouped_bodies += len(group)
                    txs = [_ThreadTx(self, conn) for _ in group]
                    job = asyncio.ensure_future(conn._execute(_run_group, conn, group, txs))
                    job.add_done_callback(lambda f, g=group, t=txs: self._settle(f, g, t))
                    # a failed group (BEGIN/COMMIT: disk full) is answered by _settle; keep
                    # going, or bodies queued meanwhile would wait for the next run() call
                    with contextlib.suppress(Exception):
                        await asyncio.shield(job)
            finally:
                self._writer = None

    def _settle(self, job: asyncio.Future, group: list, txs: list[_ThreadTx]) -> None:
        """Answer every caller of a finished group (and tell listeners what committed)."""
        if job.cancelled() or job.exception() is not None:
            err = LedgerError("ledger transaction failed") if job.cancelled() else job.exception()
            for _, fut in group:
                if not fut.done():
                    fut.set_exception(err)
            return
        for (_, fut), tx, (ok, value) in zip(group, txs, job.result(), strict=True):
            if ok:
                self._notify(tx)
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _notify(self, tx: Tx) -> None:
        if tx.appended:
            for listener in list(self._listeners):
                listener(tx.appended)

    async def append(self, new: NewEvent, *, at: datetime | None = None) -> Event:
        """Append one event in its own transaction."""
        async def body(tx: Tx) -> Event:
            return await tx.append(new, at=at)

        return await self.run(body)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Read-only query of committed data (waits for an open transaction of another task)."""
        # The connection is shared: reading while another task's transaction is open would
        # show its uncommitted events, which a crash then loses (found by the crash harness).
        if self._writer is not None and self._writer is asyncio.current_task():
            return list(await self.conn.execute_fetchall(sql, tuple(params)))
        async with self._lock:
            return list(await self.conn.execute_fetchall(sql, tuple(params)))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """First row of a read-only query, or None."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def last_seq(self) -> int:
        """The highest seq written (0 for an empty ledger)."""
        row = await self.fetchone("SELECT MAX(seq) AS s FROM events")
        return (row["s"] or 0) if row else 0

    async def events_after(self, seq: int, limit: int = 500) -> list[Event]:
        """Events with seq greater than `seq`, in order."""
        rows = await self.fetchall(
            "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [_row_to_event(r) for r in rows]

    async def get_meta(self, key: str) -> str | None:
        """A value from the meta table."""
        row = await self.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def verify(self) -> VerifyReport:
        """PRAGMA integrity_check, seq contiguity and the hash chain."""
        report = VerifyReport()
        rows = await self.fetchall("PRAGMA integrity_check")
        report.integrity = "; ".join(r[0] for r in rows)
        base = await self.get_meta("chain_base")
        start_seq, start_hash = 1, GENESIS_HASH
        if base:
            seq_text, start_hash = base.split(":", 1)
            start_seq = int(seq_text) + 1
        cursor = await self.conn.execute("SELECT * FROM events ORDER BY seq")
        batch: list[dict[str, Any]] = []
        prev_hash, next_seq = start_hash, start_seq
        while True:
            chunk = await cursor.fetchmany(5000)
            if not chunk:
                break
            batch = [dict(r) for r in chunk]
            if report.first_seq is None:
                report.first_seq = batch[0]["seq"]
            report.problems.extend(
                verify_chain(batch, start_prev_hash=prev_hash, start_seq=next_seq)
            )
            prev_hash = batch[-1]["hash"]
            next_seq = batch[-1]["seq"] + 1
            report.events += len(batch)
            report.last_seq = batch[-1]["seq"]
        await cursor.close()
        return report

    async def close(self) -> None:
        """Close the connection (every committed transaction is already durable)."""
        if self._flusher is not None and not self._flusher.done():
            with contextlib.suppress(Exception):
                await self._flusher  # let queued decisions commit first
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()


async def _rollback(conn: aiosqlite.Connection) -> None:
    """Roll back whatever is open, even if this task is being cancelled.

    aiosqlite runs statements in order on its thread, so this ROLLBACK runs after any BEGIN or
    statement still in flight; shielded, a second cancellation cannot skip it. "No transaction
    is active" (BEGIN itself failed) is fine.
    """
    async def rollback() -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            await conn.execute("ROLLBACK")

    await asyncio.shield(asyncio.ensure_future(rollback()))


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (trigger bodies kept whole)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements

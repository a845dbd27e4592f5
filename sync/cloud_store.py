"""The reference cloud's event store: idempotent by (lot_id, seq), chain verified per lot.

Two backends with one behaviour: SQLite (the embedded default, `sqlite:///path`) and PostgreSQL
through psycopg 3 (`postgresql://...`). Each batch is stored in one transaction (several batches
may share one: `store_batches`, the ingest's group commit): insert the events that are new
(duplicates are ignored), then advance the lot's acknowledged frontier over the contiguous,
chain-linked run of stored events. Events past a gap wait (out-of-order delivery is harmless).

On PostgreSQL `cloud_events` is partitioned by lot (LIST on lot_id), and each lot's partition by
seq in chunks of `seq_chunk` events (RANGE), created as the lot's events arrive: retention
drops whole chunks (`drop_chunks`) or a whole lot (`drop_lot`) instead of deleting rows. A
store opened on an older, unpartitioned `cloud_events` migrates it in one transaction.

One seq never has two contents: an event whose seq is already stored with another hash is
quarantined (both versions kept in `cloud_quarantine`, a `cloud_problems` row, an error log
line, `StoreResult.quarantined`), never stored over the first and never silently dropped; the
frontier keeps advancing over what is stored. A stored event past the frontier whose prev_hash
does not link to its predecessor is moved to the quarantine too, so a resend can take its place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.core.events import (
    GENESIS_HASH,
    canonical_json,
    chain_hash,
    event_body,
    is_redacted,
)
from sync.errors import SyncError

try:
    import orjson as _orjson
except ImportError:  # optional speed-up: the standard json module gives the same results
    _orjson = None

log = logging.getLogger(__name__)

_COLUMNS = ("lot_id", "seq", "event_id", "type", "ts_utc", "ts_local", "mono_ns", "payload",
            "prev_hash", "hash")


@dataclass(frozen=True, kw_only=True)
class StoreResult:
    """What one batch did to the store."""

    acked_through: int
    inserted: int
    rejected: tuple[str, ...] = ()
    head_hash: str = GENESIS_HASH  # hash of the event at acked_through (genesis when 0)
    quarantined: int = 0


def _fast_canonical(value: Any) -> str | None:
    """canonical_json through orjson (sorted keys, compact, UTF-8): the same text for what the
    appliance writes, several times faster; None when orjson is missing or refuses the value.
    Only ever trusted through a hash match (see check_event)."""
    if _orjson is None:
        return None
    try:
        return _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS).decode("utf-8")
    except (TypeError, ValueError):
        return None


def _hash_of(event: dict[str, Any], payload_json: str) -> str:
    body = event_body(seq=event["seq"], event_id=event["event_id"], lot_id=event["lot_id"],
                      type=event["type"], ts_utc=event["ts_utc"], ts_local=event["ts_local"],
                      mono_ns=event["mono_ns"], payload_json=payload_json)
    return chain_hash(event["prev_hash"], body)


def _fast_hash(event: dict[str, Any], payload_json: str) -> str | None:
    head = _fast_canonical({k: event[k] for k in ("seq", "event_id", "lot_id", "type", "ts_utc",
                                                  "ts_local", "mono_ns")})
    if head is None:
        return None
    return hashlib.sha256((event["prev_hash"] + head + "|" + payload_json).encode()).hexdigest()


def check_event(lot_id: str, event: dict[str, Any]) -> tuple[Any, ...] | str:
    """The row to store for one synced event, or the reason it is refused.

    The hash is first checked on orjson's canonical text; only a match is taken from it (the
    lot hashed exactly that text), anything else is checked again with the reference
    `canonical_json`, so the fast path can never accept or store what the slow one would not.
    """
    try:
        seq = event["seq"]
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1 and isinstance(
                event["prev_hash"], str) and isinstance(event["hash"], str):
            fast = _fast_canonical(event["payload"])
            if fast is not None and event["lot_id"] == lot_id and _fast_hash(
                    event, fast) == event["hash"]:
                return (lot_id, seq, event["event_id"], event["type"], event["ts_utc"],
                        event["ts_local"], event["mono_ns"], fast, event["prev_hash"],
                        event["hash"])
        payload_json = canonical_json(event["payload"])
        if not isinstance(seq, int) or seq < 1:
            return f"bad seq {seq!r}"
        if event["lot_id"] != lot_id:
            return f"seq {seq}: lot_id {event['lot_id']!r} does not match topic lot {lot_id!r}"
        if _hash_of(event, payload_json) != event["hash"] and not is_redacted(
                event["type"], event["payload"]):  # a redacted secret: taken on its hash
            return f"seq {seq}: hash does not match its content"
    except (KeyError, TypeError) as err:
        return f"malformed event ({err!r})"
    return (lot_id, seq, event["event_id"], event["type"], event["ts_utc"], event["ts_local"],
            event["mono_ns"], payload_json, event["prev_hash"], event["hash"])


_QCOLUMNS = ("seq", "reason", "first_hash", "first_event", "second_hash", "second_event")


def _quarantine_row(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_QCOLUMNS, row, strict=True))
    for key in ("first_event", "second_event"):
        out[key] = json.loads(out[key]) if out[key] else None
    return out


class CloudStore:
    """Abstract store; use `open_store(url)`."""

    placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def store_batch(self, lot_id: str, events: list[dict[str, Any]]) -> StoreResult:
        """Store a batch idempotently and return the lot's acknowledged frontier."""
        return self.store_batches([(lot_id, events)])[0]

    def store_batches(self, batches: list[tuple[str, list[dict[str, Any]]]]) -> list[StoreResult]:
        """Store several batches (of one lot or several) in one transaction; one result per
        batch, in order, each with its lot's frontier after that batch."""
        prepared: list[tuple[str, list[tuple[Any, ...]], list[str]]] = []
        for lot_id, events in batches:
            rows: list[tuple[Any, ...]] = []
            rejected: list[str] = []
            for event in events:
                row = check_event(lot_id, event)
                if isinstance(row, str):
                    rejected.append(row)
                else:
                    rows.append(row)
            prepared.append((lot_id, rows, rejected))
        with self._lock:
            return self._store_many(prepared)

    def _store_many(self, prepared: list[tuple[str, list[tuple[Any, ...]], list[str]]]
                    ) -> list[StoreResult]:
        raise NotImplementedError

    def _write(self, cur: Any, lot_id: str, rows: list[tuple[Any, ...]], rejected: list[str],
               acked: int, head: str) -> StoreResult:
        """Inside the lot's locked transaction: insert the new events, quarantine second
        versions of stored ones, record refusals, advance the frontier."""
        p = self.placeholder
        stored: dict[int, str] = {}
        if rows:
            seqs = [r[1] for r in rows]
            cur.execute(f"SELECT seq, hash FROM cloud_events WHERE lot_id = {p} AND seq >= {p} "
                        f"AND seq <= {p}", (lot_id, min(seqs), max(seqs)))
            stored = {seq: digest for seq, digest in cur.fetchall()}
        fresh: list[tuple[Any, ...]] = []
        quarantined = 0
        for row in rows:
            seq, digest = row[1], row[9]
            have = stored.get(seq)
            if have is None:
                fresh.append(row)
                stored[seq] = digest
            elif have != digest:
                self._quarantine(cur, lot_id, seq, row,
                                 "a second, different event for a stored seq")
                quarantined += 1
        if fresh:
            self._insert(cur, fresh)
        for reason in rejected:
            cur.execute(f"INSERT INTO cloud_problems(lot_id, seq, problem) VALUES ({p},{p},{p})",
                        (lot_id, None, reason))
        # The usual case: the batch continues the frontier. Walk it over the rows in hand, so
        # the database is only asked about rows stored before, past a gap.
        by_seq = {r[1]: r for r in fresh}
        while (row := by_seq.get(acked + 1)) is not None and row[8] == head:
            acked, head = row[1], row[9]
        new_acked, new_head = self._advance(cur, lot_id, acked, head)
        return StoreResult(acked_through=new_acked, inserted=len(fresh), rejected=tuple(rejected),
                           head_hash=new_head, quarantined=quarantined)

    def _insert(self, cur: Any, fresh: list[tuple[Any, ...]]) -> None:
        """Insert events known not to be stored (the caller holds the lot's lock)."""
        p = self.placeholder
        cur.executemany(f"INSERT INTO cloud_events({', '.join(_COLUMNS)}) VALUES "
                        f"({', '.join([p] * len(_COLUMNS))}) ON CONFLICT DO NOTHING", fresh)

    def _quarantine(self, cur: Any, lot_id: str, seq: int, offered: tuple[Any, ...] | None,
                    reason: str) -> None:
        """Record the stored version of `seq` (first) and the other one (second, if any) side
        by side, with the reason."""
        p = self.placeholder
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM cloud_events WHERE lot_id = {p} AND "
                    f"seq = {p}", (lot_id, seq))
        kept = cur.fetchone()
        kept_json = json.dumps(dict(zip(_COLUMNS, kept, strict=True))) if kept else None
        offered_json = (json.dumps(dict(zip(_COLUMNS, offered, strict=True)))
                        if offered is not None else None)
        cur.execute(f"INSERT INTO cloud_quarantine(lot_id, seq, reason, first_hash, first_event, "
                    f"second_hash, second_event) VALUES ({p},{p},{p},{p},{p},{p},{p})",
                    (lot_id, seq, reason, kept[9] if kept else None, kept_json,
                     offered[9] if offered is not None else None, offered_json))
        cur.execute(f"INSERT INTO cloud_problems(lot_id, seq, problem) VALUES ({p},{p},{p})",
                    (lot_id, seq, f"quarantined: {reason}"))
        log.error("cloud store: lot %s seq %d quarantined: %s (first %s, second %s)", lot_id, seq,
                  reason, kept[9][:12] if kept else "-",
                  offered[9][:12] if offered is not None else "-")

    def _advance(self, cur: Any, lot_id: str, acked: int, head: str) -> tuple[int, str]:
        p = self.placeholder
        while True:
            cur.execute(f"SELECT seq, prev_hash, hash FROM cloud_events WHERE lot_id = {p} "
                        f"AND seq > {p} ORDER BY seq LIMIT 5000", (lot_id, acked))
            chunk = cur.fetchall()
            if not chunk:
                return acked, head
            for seq, prev_hash, digest in chunk:
                if seq != acked + 1:
                    return acked, head
                if prev_hash != head:
                    self._set_aside_run(cur, lot_id, seq, acked)
                    return acked, head
                acked, head = seq, digest

    def _set_aside_run(self, cur: Any, lot_id: str, seq: int, acked: int) -> None:
        """Move the stored event `seq` (which does not link to the frontier) and the events
        chained after it into the quarantine, so the lot's resend can take their place."""
        p = self.placeholder
        cur.execute(f"SELECT seq, prev_hash, hash FROM cloud_events WHERE lot_id = {p} "
                    f"AND seq >= {p} ORDER BY seq LIMIT 100000", (lot_id, seq))
        run: list[int] = []
        expect_seq, expect_prev = seq, None
        for s, prev_hash, digest in cur.fetchall():
            if s != expect_seq or (expect_prev is not None and prev_hash != expect_prev):
                break
            run.append(s)
            expect_seq, expect_prev = s + 1, digest
        log.error("lot %s seq %d-%d do not link to seq %d: quarantined, awaiting resend",
                  lot_id, run[0], run[-1], acked)
        for s in run:
            self._quarantine(cur, lot_id, s, None, "does not link to the acknowledged chain; "
                             "removed from the store, awaiting resend")
        cur.execute(f"DELETE FROM cloud_events WHERE lot_id = {p} AND seq >= {p} AND seq <= {p}",
                    (lot_id, run[0], run[-1]))

    def events(self, lot_id: str) -> list[dict[str, Any]]:
        """Every stored event of a lot, in seq order (for tests and audits)."""
        raise NotImplementedError

    def acked_through(self, lot_id: str) -> int:
        """The lot's acknowledged frontier."""
        raise NotImplementedError

    def quarantine(self, lot_id: str) -> list[dict[str, Any]]:
        """The lot's quarantined events: seq, reason, and both versions (for audits)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the database connection."""


class SqliteCloudStore(CloudStore):
    """The embedded default backend."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.executescript("""
            CREATE TABLE IF NOT EXISTS cloud_events (
                lot_id TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,
                type TEXT NOT NULL, ts_utc TEXT NOT NULL, ts_local TEXT NOT NULL,
                mono_ns INTEGER NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL, PRIMARY KEY (lot_id, seq)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS cloud_lots (
                lot_id TEXT PRIMARY KEY, acked_through INTEGER NOT NULL, head_hash TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS cloud_problems (
                lot_id TEXT NOT NULL, seq INTEGER, problem TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS cloud_quarantine (
                lot_id TEXT NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL,
                first_hash TEXT, first_event TEXT, second_hash TEXT, second_event TEXT,
                received_utc TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
        """)

    def _store_many(self, prepared: list[tuple[str, list[tuple[Any, ...]], list[str]]]
                    ) -> list[StoreResult]:
        conn = self._conn
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        results = []
        try:
            for lot_id, rows, rejected in prepared:
                row = cur.execute("SELECT acked_through, head_hash FROM cloud_lots WHERE "
                                  "lot_id = ?", (lot_id,)).fetchone()
                acked, head = row if row else (0, GENESIS_HASH)
                result = self._write(cur, lot_id, rows, rejected, acked, head)
                cur.execute("INSERT INTO cloud_lots(lot_id, acked_through, head_hash) VALUES "
                            "(?,?,?) ON CONFLICT(lot_id) DO UPDATE SET acked_through = "
                            "excluded.acked_through, head_hash = excluded.head_hash",
                            (lot_id, result.acked_through, result.head_hash))
                results.append(result)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return results

    def events(self, lot_id: str) -> list[dict[str, Any]]:
        """Every stored event of a lot, in seq order."""
        cur = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM cloud_events "
                                 "WHERE lot_id = ? ORDER BY seq", (lot_id,))
        return [dict(zip(_COLUMNS, r, strict=True)) for r in cur.fetchall()]

    def acked_through(self, lot_id: str) -> int:
        """The lot's acknowledged frontier."""
        row = self._conn.execute("SELECT acked_through FROM cloud_lots WHERE lot_id = ?",
                                 (lot_id,)).fetchone()
        return row[0] if row else 0

    def quarantine(self, lot_id: str) -> list[dict[str, Any]]:
        """The lot's quarantined events (both versions), oldest first."""
        cur = self._conn.execute(f"SELECT {', '.join(_QCOLUMNS)} FROM cloud_quarantine "
                                 "WHERE lot_id = ? ORDER BY rowid", (lot_id,))
        return [_quarantine_row(r) for r in cur.fetchall()]

    def close(self) -> None:
        """Close the database."""
        self._conn.close()


class PostgresCloudStore(CloudStore):
    """PostgreSQL backend (psycopg 3); tables live in `schema` (created if missing).

    Args:
        url: the libpq connection URL.
        schema: the schema holding the tables.
        seq_chunk: events per seq-range partition of a lot (the unit retention drops).
    """

    placeholder = "%s"

    def __init__(self, url: str, *, schema: str = "lotedge", seq_chunk: int = 1_000_000) -> None:
        super().__init__()
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise SyncError(f"schema: invalid PostgreSQL schema name {schema!r}")
        if seq_chunk < 1:
            raise SyncError("seq_chunk: must be at least 1")
        self._url = url
        self.schema = schema
        self.seq_chunk = seq_chunk
        self.reconnects = 0
        self.migrated_rows: int | None = None  # rows moved from an unpartitioned table
        self._chunks: set[tuple[str, int]] = set()  # (lot, chunk) partitions known to exist
        self._conn = self._connect()
        with self._conn.transaction():
            # One worker sets up (or migrates) at a time: even CREATE ... IF NOT EXISTS fails
            # when two sessions race on it.
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                               (f"lotedge-setup:{schema}",))
            self._conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._conn.execute(f"SET search_path TO {schema}")
            self._conn.execute("""
                CREATE TABLE IF NOT EXISTS cloud_lots (
                    lot_id TEXT PRIMARY KEY, acked_through BIGINT NOT NULL,
                    head_hash TEXT NOT NULL)""")
            self._conn.execute("ALTER TABLE cloud_lots ADD COLUMN IF NOT EXISTS pruned_through "
                               "BIGINT NOT NULL DEFAULT 0")
            self._conn.execute("""
                CREATE TABLE IF NOT EXISTS cloud_problems (
                    lot_id TEXT NOT NULL, seq BIGINT, problem TEXT NOT NULL)""")
            self._conn.execute("""
                CREATE TABLE IF NOT EXISTS cloud_quarantine (
                    id BIGSERIAL PRIMARY KEY, lot_id TEXT NOT NULL, seq BIGINT NOT NULL,
                    reason TEXT NOT NULL, first_hash TEXT, first_event TEXT, second_hash TEXT,
                    second_event TEXT, received_utc TIMESTAMPTZ NOT NULL DEFAULT now())""")
            self._conn.execute("""
                CREATE TABLE IF NOT EXISTS cloud_partitions (
                    lot_id TEXT NOT NULL, chunk BIGINT NOT NULL, relname TEXT NOT NULL,
                    PRIMARY KEY (lot_id, chunk))""")
            kind = self._conn.execute(
                "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = 'cloud_events'", (schema,)).fetchone()
            if kind is None:
                self._create_events_table()
            elif kind[0] == "r":
                self._migrate_unpartitioned()
        self._conn.commit()

    def _create_events_table(self) -> None:
        self._conn.execute("""
            CREATE TABLE cloud_events (
                lot_id TEXT NOT NULL, seq BIGINT NOT NULL, event_id TEXT NOT NULL,
                type TEXT NOT NULL, ts_utc TEXT NOT NULL, ts_local TEXT NOT NULL,
                mono_ns BIGINT NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL, PRIMARY KEY (lot_id, seq)) PARTITION BY LIST (lot_id)""")

    def _migrate_unpartitioned(self) -> None:
        """Move an older plain `cloud_events` into the partitioned layout (one transaction,
        under the setup lock: other workers wait, then find it done)."""
        conn = self._conn
        log.warning("cloud store: migrating %s.cloud_events to partitions by lot", self.schema)
        conn.execute("ALTER TABLE cloud_events RENAME TO cloud_events_unpartitioned")
        conn.execute("ALTER TABLE cloud_events_unpartitioned RENAME CONSTRAINT "
                     "cloud_events_pkey TO cloud_events_unpartitioned_pkey")
        self._create_events_table()
        spans = conn.execute("SELECT lot_id, MIN(seq), MAX(seq) FROM cloud_events_unpartitioned "
                             "GROUP BY lot_id").fetchall()
        with conn.cursor() as cur:
            for lot_id, low, high in spans:
                self._create_chunks(cur, lot_id, range(self._chunk_of(low),
                                                       self._chunk_of(high) + 1))
        cols = ", ".join(_COLUMNS)
        moved = conn.execute(f"INSERT INTO cloud_events({cols}) SELECT {cols} FROM "
                             "cloud_events_unpartitioned").rowcount
        conn.execute("DROP TABLE cloud_events_unpartitioned")
        self.migrated_rows = moved
        log.warning("cloud store: %d events of %d lots moved to partitions", moved, len(spans))

    def _chunk_of(self, seq: int) -> int:
        return (seq - 1) // self.seq_chunk

    @staticmethod
    def _lot_relname(lot_id: str) -> str:
        return "cloud_events_" + hashlib.sha256(lot_id.encode("utf-8")).hexdigest()[:24]

    def _create_chunks(self, cur: Any, lot_id: str, chunks: Any) -> None:
        """Create the lot's partition and the chunk partitions not yet there (caller holds the
        lot's lock or the setup lock)."""
        from psycopg import sql

        lot_rel = self._lot_relname(lot_id)
        cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF cloud_events FOR VALUES "
                            "IN ({}) PARTITION BY RANGE (seq)").format(
                                sql.Identifier(lot_rel), sql.Literal(lot_id)))
        cur.execute("SELECT chunk FROM cloud_partitions WHERE lot_id = %s", (lot_id,))
        have = {r[0] for r in cur.fetchall()}
        for chunk in chunks:
            if chunk in have:
                continue
            rel = f"{lot_rel}_{chunk}"
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM "
                                "({}) TO ({})").format(
                                    sql.Identifier(rel), sql.Identifier(lot_rel),
                                    sql.Literal(chunk * self.seq_chunk + 1),
                                    sql.Literal((chunk + 1) * self.seq_chunk + 1)))
            cur.execute("INSERT INTO cloud_partitions(lot_id, chunk, relname) VALUES (%s,%s,%s) "
                        "ON CONFLICT DO NOTHING", (lot_id, chunk, rel))

    def _ensure_partitions(self, prepared: list[tuple[str, list[tuple[Any, ...]], list[str]]]
                           ) -> None:
        """Create missing partitions in their own short transaction, before the batches'
        (creating a partition locks the parent table: never while holding row locks)."""
        wanted: dict[str, set[int]] = {}
        for lot_id, rows, _ in prepared:
            for row in rows:
                key = (lot_id, self._chunk_of(row[1]))
                if key not in self._chunks:
                    wanted.setdefault(lot_id, set()).add(key[1])
        if not wanted:
            return
        conn = self._conn
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            for lot_id in sorted(wanted):
                cur.execute("SELECT pruned_through FROM cloud_lots WHERE lot_id = %s", (lot_id,))
                found = cur.fetchone()
                pruned = found[0] if found else 0
                chunks = {c for c in wanted[lot_id] if (c + 1) * self.seq_chunk > pruned}
                cur.execute("SELECT chunk FROM cloud_partitions WHERE lot_id = %s", (lot_id,))
                have = {r[0] for r in cur.fetchall()}
                if chunks - have:
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                (f"lotedge-part:{self.schema}:{lot_id}",))
                    self._create_chunks(cur, lot_id, sorted(chunks - have))
                have |= chunks
                self._chunks.update((lot_id, c) for c in have)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self._url, autocommit=False, connect_timeout=10)
        except psycopg.Error as err:
            raise SyncError(f"cannot connect to PostgreSQL: {err}".splitlines()[0]) from err

    def _store_many(self, prepared: list[tuple[str, list[tuple[Any, ...]], list[str]]]
                    ) -> list[StoreResult]:
        """Store, reconnecting once if the server went away (restart, failover, idle cut).

        A group whose transaction died with the connection was not committed, so trying it
        again on a new connection is safe (and idempotent anyway); if that fails too the error
        goes up, no ack is sent and the appliance resends later.
        """
        import psycopg

        if self._conn.closed or self._conn.broken:
            self._reconnect()
        try:
            self._ensure_partitions(prepared)
            return self._store_once(prepared)
        except psycopg.OperationalError as err:
            if not (self._conn.closed or self._conn.broken):
                raise
            log.warning("cloud store: PostgreSQL connection lost (%s); reconnecting",
                        str(err).splitlines()[0] if str(err) else type(err).__name__)
            self._reconnect()
            self._ensure_partitions(prepared)
            return self._store_once(prepared)

    def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = self._connect()
        self._chunks.clear()
        self.reconnects += 1

    def _store_once(self, prepared: list[tuple[str, list[tuple[Any, ...]], list[str]]]
                    ) -> list[StoreResult]:
        conn = self._conn
        lots = sorted({lot_id for lot_id, _, _ in prepared})
        results: list[StoreResult] = []
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            cur.executemany("INSERT INTO cloud_lots(lot_id, acked_through, head_hash) "
                            "VALUES (%s, 0, %s) ON CONFLICT DO NOTHING",
                            [(lot, GENESIS_HASH) for lot in lots])
            # Row locks, always in lot order: several workers may hold batches of the same
            # lots, and a fixed order means they wait for each other instead of deadlocking.
            cur.execute("SELECT lot_id, acked_through, head_hash, pruned_through FROM "
                        "cloud_lots WHERE lot_id = ANY(%s) ORDER BY lot_id FOR UPDATE", (lots,))
            state = {lot: (acked, head, pruned) for lot, acked, head, pruned in cur.fetchall()}
            for lot_id, rows, rejected in prepared:
                acked, head, pruned = state[lot_id]
                if pruned:  # dropped by retention: a resend of them is not new
                    rows = [r for r in rows if r[1] > pruned]
                result = self._write(cur, lot_id, rows, rejected, acked, head)
                state[lot_id] = (result.acked_through, result.head_hash, pruned)
                results.append(result)
            cur.executemany("UPDATE cloud_lots SET acked_through = %s, head_hash = %s "
                            "WHERE lot_id = %s",
                            [(acked, head, lot) for lot, (acked, head, _) in state.items()])
        return results

    def _insert(self, cur: Any, fresh: list[tuple[Any, ...]]) -> None:
        """COPY, several times cheaper than INSERT: the rows are known to be new, as every
        writer of the lot holds its cloud_lots row lock and looked first."""
        with cur.copy(f"COPY cloud_events ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in fresh:
                copy.write_row(row)

    def drop_chunks(self, lot_id: str, *, before_seq: int) -> int:
        """Retention: drop the lot's seq chunks that lie wholly below `before_seq` and below
        its acknowledged frontier (whole partitions, no row deletes); the number dropped. A
        later resend of those events is ignored, never stored again."""
        from psycopg import sql

        conn = self._conn
        dropped = 0
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            cur.execute("SELECT acked_through FROM cloud_lots WHERE lot_id = %s FOR UPDATE",
                        (lot_id,))
            found = cur.fetchone()
            if found is None:
                return 0
            limit = min(before_seq, found[0] + 1)
            cur.execute("SELECT chunk, relname FROM cloud_partitions WHERE lot_id = %s AND "
                        "(chunk + 1) * %s + 1 <= %s ORDER BY chunk",
                        (lot_id, self.seq_chunk, limit))
            gone = cur.fetchall()
            for chunk, rel in gone:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(rel)))
                cur.execute("DELETE FROM cloud_partitions WHERE lot_id = %s AND chunk = %s",
                            (lot_id, chunk))
                self._chunks.discard((lot_id, chunk))
                dropped += 1
            if gone:
                cur.execute("UPDATE cloud_lots SET pruned_through = GREATEST(pruned_through, %s) "
                            "WHERE lot_id = %s", ((gone[-1][0] + 1) * self.seq_chunk, lot_id))
        return dropped

    def drop_lot(self, lot_id: str) -> None:
        """Retention for a lot that left the fleet: drop its partition, frontier and problems."""
        from psycopg import sql

        conn = self._conn
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(self._lot_relname(lot_id))))
            for table in ("cloud_partitions", "cloud_lots", "cloud_problems", "cloud_quarantine"):
                cur.execute(f"DELETE FROM {table} WHERE lot_id = %s", (lot_id,))
        self._chunks = {k for k in self._chunks if k[0] != lot_id}

    def partitions(self, lot_id: str) -> list[str]:
        """The names of the lot's seq-chunk partitions, in seq order (for tests and audits)."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = "
                        "i.inhrelid JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n "
                        "ON n.oid = p.relnamespace WHERE n.nspname = %s AND p.relname = %s "
                        "ORDER BY c.relname", (self.schema, self._lot_relname(lot_id)))
            names = [r[0] for r in cur.fetchall()]
        return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]))

    def events(self, lot_id: str) -> list[dict[str, Any]]:
        """Every stored event of a lot, in seq order."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM cloud_events WHERE lot_id = %s "
                        "ORDER BY seq", (lot_id,))
            return [dict(zip(_COLUMNS, r, strict=True)) for r in cur.fetchall()]

    def acked_through(self, lot_id: str) -> int:
        """The lot's acknowledged frontier."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            cur.execute("SELECT acked_through FROM cloud_lots WHERE lot_id = %s", (lot_id,))
            row = cur.fetchone()
            return row[0] if row else 0

    def quarantine(self, lot_id: str) -> list[dict[str, Any]]:
        """The lot's quarantined events (both versions), oldest first."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(f"SET LOCAL search_path TO {self.schema}")
            cur.execute(f"SELECT {', '.join(_QCOLUMNS)} FROM cloud_quarantine WHERE lot_id = %s "
                        "ORDER BY id", (lot_id,))
            return [_quarantine_row(r) for r in cur.fetchall()]

    def drop_schema(self) -> None:
        """Remove the schema and everything in it (test clean-up)."""
        with self._conn.transaction():
            self._conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def open_store(url: str, *, schema: str = "lotedge", seq_chunk: int = 1_000_000) -> CloudStore:
    """A store for `sqlite:///path` (default backend) or `postgresql://...`."""
    if url.startswith("sqlite:///"):
        return SqliteCloudStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresCloudStore(url, schema=schema, seq_chunk=seq_chunk)
    raise SyncError(f"--db: unsupported database URL {url!r} (sqlite:///PATH or postgresql://...)")

"""The PostgreSQL store partitioned by lot (and by seq chunk within a lot): partitions appear as
events arrive, retention drops whole partitions, an older unpartitioned table is migrated, and
several batches share one transaction (group commit) on both backends."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from sync.cloud_store import PostgresCloudStore, open_store
from tests.sync.helpers import LOT, assert_exact_chain
from tests.sync.test_cloud_store import ledger_events, store  # noqa: F401 (fixture)


@pytest.fixture
def pg_store(pg_server):
    s = open_store(pg_server.url, schema=f"lotedge_test_{uuid.uuid4().hex[:12]}", seq_chunk=100)
    assert isinstance(s, PostgresCloudStore)
    try:
        yield s
    finally:
        s.drop_schema()
        s.close()


def relkind(url: str, schema: str, table: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
                           "c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                           (schema, table)).fetchone()
    return row[0] if row else None


async def test_events_land_in_per_lot_seq_chunk_partitions(tmp_path, pg_store, pg_server):
    events = await ledger_events(tmp_path, 250)
    assert pg_store.store_batch(LOT, events).acked_through == 250
    assert relkind(pg_server.url, pg_store.schema, "cloud_events") == "p"  # partitioned
    names = pg_store.partitions(LOT)
    assert len(names) == 3  # seq 1-100, 101-200, 201-300
    with psycopg.connect(pg_server.url) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {pg_store.schema}.{n}").fetchone()[0]
                  for n in names]
    assert counts == [100, 100, 50]
    assert pg_store.partitions("another-lot") == []


async def test_retention_drops_partitions_and_a_late_resend_is_not_stored_again(
        tmp_path, pg_store):
    events = await ledger_events(tmp_path, 250)
    pg_store.store_batch(LOT, events[:150])
    assert pg_store.drop_chunks(LOT, before_seq=201) == 1  # 101-200 is not all acked yet
    assert len(pg_store.partitions(LOT)) == 1
    assert pg_store.store_batch(LOT, events[150:]).acked_through == 250
    assert pg_store.drop_chunks(LOT, before_seq=10_000) == 1  # 201-300 is not full yet
    assert [r["seq"] for r in pg_store.events(LOT)] == list(range(201, 251))
    # a lot resending old events after retention: ignored, the frontier stays
    result = pg_store.store_batch(LOT, events[:120])
    assert result.acked_through == 250 and result.inserted == 0
    assert [r["seq"] for r in pg_store.events(LOT)] == list(range(201, 251))
    pg_store.drop_lot(LOT)
    assert pg_store.events(LOT) == [] and pg_store.acked_through(LOT) == 0


async def test_an_unpartitioned_table_is_migrated_on_open(tmp_path, pg_server):
    schema = f"lotedge_test_{uuid.uuid4().hex[:12]}"
    events = await ledger_events(tmp_path, 120)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:  # the old layout, filled
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"""CREATE TABLE {schema}.cloud_events (
            lot_id TEXT NOT NULL, seq BIGINT NOT NULL, event_id TEXT NOT NULL,
            type TEXT NOT NULL, ts_utc TEXT NOT NULL, ts_local TEXT NOT NULL,
            mono_ns BIGINT NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL, PRIMARY KEY (lot_id, seq))""")
        conn.execute(f"""CREATE TABLE {schema}.cloud_lots (lot_id TEXT PRIMARY KEY,
            acked_through BIGINT NOT NULL, head_hash TEXT NOT NULL)""")
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {schema}.cloud_events VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                [(LOT, e["seq"], e["event_id"], e["type"], e["ts_utc"], e["ts_local"],
                  e["mono_ns"], __import__("json").dumps(e["payload"], sort_keys=True,
                                                        separators=(",", ":")),
                  e["prev_hash"], e["hash"]) for e in events[:80]])
        conn.execute(f"INSERT INTO {schema}.cloud_lots VALUES (%s, 80, %s)",
                     (LOT, events[79]["hash"]))
    assert relkind(pg_server.url, schema, "cloud_events") == "r"
    s = open_store(pg_server.url, schema=schema, seq_chunk=50)
    try:
        assert isinstance(s, PostgresCloudStore) and s.migrated_rows == 80
        assert relkind(pg_server.url, schema, "cloud_events") == "p"
        assert relkind(pg_server.url, schema, "cloud_events_unpartitioned") is None
        assert len(s.partitions(LOT)) == 2
        assert s.acked_through(LOT) == 80
        assert s.store_batch(LOT, events).acked_through == 120  # and it goes on from there
        assert_exact_chain(s.events(LOT), 120)
        again = open_store(pg_server.url, schema=schema, seq_chunk=50)  # a second worker
        assert again.migrated_rows is None
        again.close()
    finally:
        s.drop_schema()
        s.close()


async def test_several_batches_of_several_lots_in_one_transaction(tmp_path, store):  # noqa: F811
    events = await ledger_events(tmp_path, 300)
    other = [{**e, "lot_id": "lot-b"} for e in events]  # hashes no longer match: refused
    results = store.store_batches([(LOT, events[:100]), (LOT, events[200:]),
                                   ("lot-b", other[:10]), (LOT, events[100:200])])
    assert [r.acked_through for r in results] == [100, 100, 0, 300]
    assert len(results[2].rejected) == 10
    assert_exact_chain(store.events(LOT), 300)


def test_workers_starting_together_set_the_schema_up_once(pg_server):
    """Several ingest processes start at once on an empty database (the fleet bench does)."""
    import concurrent.futures

    schema = f"lotedge_test_{uuid.uuid4().hex[:12]}"
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        stores = list(pool.map(lambda _: open_store(pg_server.url, schema=schema), range(6)))
    assert relkind(pg_server.url, schema, "cloud_events") == "p"
    stores[0].drop_schema()
    for s in stores:
        s.close()

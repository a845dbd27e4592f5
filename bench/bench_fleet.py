"""A fleet back online at once: N lots with a backlog each against a real Mosquitto, real
PostgreSQL and 1, 2 and 4 reference ingest processes (`lotedge cloud ingest`, signed protocol).

The lots are light uplinks, several per process: each holds its backlog as sealed batches made
before the clock starts (real events, real hash chain, signed with the lot's key), speaks the
protocol the appliance speaks (QoS 1 batches, signed acks verified against the lot's own
hashes) and paces itself with the appliance's own flow control (`sync.flow.AckWindow`, pace
hints included); it skips only the ledger reads. Reported per worker count: catch-up time,
events/s, resent events, and lost / duplicated events counted in PostgreSQL; then the catch-up
of 1,000 lots x 20,000 events projected from the measured rate, and the simulated 1,000-lot
fleet (`sync.flow_model`) under the old and the new uplink policy at that rate.

Defaults keep `make bench` short; bigger runs:
`python -m bench.bench_fleet --lots 100 --events 20000 --workers 1,2,4`
(or the environment: LOTEDGE_BENCH_FLEET_LOTS, _EVENTS, _WORKERS, _LOTS_PER_PROCESS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOAL_EVENTS_S = 40_000
PROJECT_LOTS, PROJECT_EVENTS = 1_000, 20_000


# ---------------------------------------------------------------- the lots (child processes)


def make_batches(lot_id: str, n: int, batch_events: int, key) -> tuple[list, list[str]]:
    """(batches as (first, last, sealed payload), hash of each seq with [0] = genesis)."""
    from appliance import __version__
    from appliance.core.events import GENESIS_HASH, canonical_json, chain_hash, event_body
    from sync.signing import seal
    from sync.uplink import encode_event

    ts = datetime.now(UTC).isoformat()
    prev, hashes, encoded = GENESIS_HASH, [GENESIS_HASH], []
    for seq in range(1, n + 1):
        event_id = str(uuid.uuid4())
        payload = canonical_json({"lane": "in-1", "plate": f"B-AB{seq % 10000:04d}",
                                  "confidence": "0.93", "camera": "cam-in-1", "n": seq})
        body = event_body(seq=seq, event_id=event_id, lot_id=lot_id, type="plate.read",
                          ts_utc=ts, ts_local=ts, mono_ns=seq, payload_json=payload)
        digest = chain_hash(prev, body)
        encoded.append(encode_event((seq, event_id, lot_id, "plate.read", ts, ts, seq, payload,
                                     prev, digest)))
        hashes.append(digest)
        prev = digest
    batches = []
    for first in range(1, n + 1, batch_events):
        last = min(n, first + batch_events - 1)
        message = (f'{{"lot_id":{json.dumps(lot_id)},"epoch":0,'
                   f'"lotedge_version":{json.dumps(__version__)},"first_seq":{first},'
                   f'"last_seq":{last},"count":{last - first + 1},"events":['
                   + ",".join(encoded[first - 1:last]) + "]}")
        batches.append((first, last, seal("batch", message.encode(), key)))
    return batches, hashes


class LightLot:
    """One lot's light uplink: pre-sealed batches, the real flow control, verified acks."""

    def __init__(self, lot_id: str, batches: list, hashes: list[str], settings, ack_key, *,
                 max_inflight: int, ack_timeout_s: float) -> None:
        from sync.flow import AckWindow, Backoff, RtoEstimator

        self.lot_id, self.batches, self.hashes = lot_id, batches, hashes
        self.by_first = {b[0]: b for b in batches}
        self.n = batches[-1][1]
        self.settings, self.ack_key = settings, ack_key
        self.window = AckWindow(max_inflight=max_inflight,
                                rto=RtoEstimator(initial_s=ack_timeout_s),
                                backoff=Backoff(), rng=random.random)
        self.sent_events = self.resent_events = self.refused_acks = 0
        self.done_at: float | None = None
        self.max_pace_wait_s = 0.0
        self.resend_log: list[tuple] = []  # (s after go, pace wait, rto, attempt, age of batch)
        self.go_at = 0.0
        self._pace: dict = {}
        self._wake = asyncio.Event()

    async def run(self, ready: asyncio.Event, go: asyncio.Event) -> None:
        from sync.mqtt import PACE_FILTER, ack_topic, lot_pace_topic

        client = self.settings.client(identifier=f"lotedge-{self.lot_id}-uplink")
        async with client:
            await client.subscribe(ack_topic(self.lot_id), qos=1)
            await client.subscribe(PACE_FILTER, qos=1)
            await client.subscribe(lot_pace_topic(self.lot_id), qos=1)
            receiver = asyncio.create_task(self._receive(client))
            ready.set()
            await go.wait()
            self.go_at = time.monotonic()
            try:
                await self._send(client)
            finally:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receiver

    async def _send(self, client) -> None:
        from sync.mqtt import events_topic

        w, topic = self.window, events_topic(self.lot_id)
        while w.acked_through < self.n:
            self._wake.clear()
            now = time.monotonic()
            sent_s = w.batches[0].sent_s if w.batches else now
            late = w.due(now)
            if late is not None:
                self.resend_log.append((round(now - self.go_at, 1), w.pace.wait_s,
                                        round(w.rto.rto_s, 1), w.attempt, round(now - sent_s, 1),
                                        w.rto.samples))
                _, last, payload = self.by_first[late.first_seq]
                await client.publish(topic, payload, qos=1, timeout=30)
                self.sent_events += last - late.first_seq + 1
                self.resent_events += last - late.first_seq + 1
                continue
            if w.can_send() and w.sent_through < self.n:
                first, last, payload = self.by_first[w.sent_through + 1]
                await client.publish(topic, payload, qos=1, timeout=30)
                w.on_sent(first, last, time.monotonic())
                self.sent_events += last - first + 1
                continue
            left = w.seconds_until_due(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0 if left is None else left + 0.001)
        self.done_at = time.time()

    async def _receive(self, client) -> None:
        from sync.flow import PaceHint
        from sync.mqtt import PACE_FILTER
        from sync.signing import SignatureRefused, unseal

        async for message in client.messages:
            topic = str(message.topic)
            if message.topic.matches(PACE_FILTER) or topic.endswith("/pace"):
                hint = PaceHint.parse(bytes(message.payload))
                if hint is None:
                    self._pace.pop(topic, None)
                else:
                    self._pace[topic] = hint
                self.window.set_pace(PaceHint.combine(list(self._pace.values())),
                                     time.monotonic())
                self.max_pace_wait_s = max(self.max_pace_wait_s, self.window.pace.wait_s)
                self._wake.set()
                continue
            try:
                body = json.loads(unseal("ack", bytes(message.payload), self.ack_key))
                value = body["acked_through"]
                if (body["lot_id"] != self.lot_id or body["epoch"] != 0 or value > self.n
                        or body["hash"] != self.hashes[value]):
                    raise ValueError("not this lot's chain")
            except (SignatureRefused, ValueError, KeyError, TypeError):
                self.refused_acks += 1
                continue
            if self.window.on_ack(value, time.monotonic()):
                self._wake.set()


async def _lots_main(args: argparse.Namespace) -> None:
    from sync.mqtt import MqttSettings
    from sync.signing import load_private_key, load_public_key

    keys = Path(args.keys)
    ack_key = load_public_key(str(keys / "cloud.pub"), key="ack key")
    settings = MqttSettings.from_url(args.mqtt)
    lots = []
    for lot_id in args.lot_ids.split(","):
        key = load_private_key(keys / f"{lot_id}.key", key="lot key")
        batches, hashes = make_batches(lot_id, args.events, args.batch_events, key)
        lots.append(LightLot(lot_id, batches, hashes, settings, ack_key,
                             max_inflight=args.max_inflight, ack_timeout_s=args.ack_timeout_s))
    readies = [asyncio.Event() for _ in lots]
    go = asyncio.Event()
    tasks = [asyncio.create_task(lot.run(r, go)) for lot, r in zip(lots, readies, strict=True)]
    await asyncio.gather(*(r.wait() for r in readies))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    before = resource.getrusage(resource.RUSAGE_SELF)  # the backlog was made before the clock
    go.set()
    await asyncio.gather(*tasks)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": after.ru_utime + after.ru_stime - before.ru_utime
                      - before.ru_stime,
                      "lots": [{"lot_id": lot.lot_id, "sent": lot.sent_events,
                                "resent": lot.resent_events, "done_at": lot.done_at,
                                "refused_acks": lot.refused_acks,
                                "max_pace_wait_s": lot.max_pace_wait_s,
                                "resend_log": lot.resend_log[:20],
                                "resends": lot.window.resent_batches} for lot in lots]}),
          flush=True)


# ------------------------------------------------------------------- the orchestrator


def _keys(directory: Path, lot_ids: list[str]) -> None:
    from sync.bundle import generate_keypair

    (directory / "pub").mkdir(parents=True)
    private, public = generate_keypair()
    (directory / "cloud.key").write_text(private + "\n")
    (directory / "cloud.pub").write_text(public + "\n")
    os.chmod(directory / "cloud.key", 0o600)
    for lot_id in lot_ids:
        private, public = generate_keypair()
        (directory / f"{lot_id}.key").write_text(private + "\n")
        os.chmod(directory / f"{lot_id}.key", 0o600)
        (directory / "pub" / f"{lot_id}.pub").write_text(public + "\n")


def _check_postgres(url: str, schema: str, lot_ids: list[str], n: int) -> tuple[int, int]:
    """(lost, duplicated) events over all lots, counted in PostgreSQL: every lot must hold seq
    1..n exactly once and have its frontier at n."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT lot_id, count(*), count(DISTINCT seq) FILTER (WHERE seq "
                            f"BETWEEN 1 AND %s) FROM {schema}.cloud_events GROUP BY lot_id",
                            (n,)).fetchall()
        acked = dict(conn.execute(f"SELECT lot_id, acked_through FROM {schema}.cloud_lots")
                     .fetchall())
    found = {lot: (count, distinct) for lot, count, distinct in rows}
    lost = dup = 0
    for lot_id in lot_ids:
        count, distinct = found.get(lot_id, (0, 0))
        dup += count - distinct
        lost += max(n - distinct, n - (acked.get(lot_id) or 0))
    return lost, dup


def _run_one(tmp: Path, pg_url: str, *, workers: int, lots: int, events: int,
             lots_per_process: int, batch_events: int, max_inflight: int,
             timeout_s: float, ack_timeout_s: float = 30.0) -> dict:
    from sync.devbroker import Broker

    run_id = uuid.uuid4().hex[:6]
    lot_ids = [f"fleet-{run_id}-{i:04d}" for i in range(lots)]
    keys = tmp / f"keys-{run_id}"
    _keys(keys, lot_ids)
    schema = f"fleet_{run_id}"
    broker = Broker(tmp / f"broker-{run_id}")
    broker.start()
    procs: list[subprocess.Popen] = []
    ingests: list[subprocess.Popen] = []
    try:
        for i in range(workers):
            ingests.append(subprocess.Popen(
                [sys.executable, "-m", "appliance.cli", "cloud", "ingest", "--mqtt", broker.url,
                 "--db", pg_url, "--schema", schema, "--client-id", f"fleet-ingest-{i}",
                 "--lot-keys", str(keys / "pub"), "--ack-key-file", str(keys / "cloud.key")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            asyncio.run(_wait_presence(broker.port, workers))
        except TimeoutError:
            raise RuntimeError(f"{workers} ingest worker(s) did not subscribe within 60 s; "
                               f"exit codes {[p.poll() for p in ingests]}") from None
        for i in range(0, lots, lots_per_process):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.bench_fleet", "_lots", "--mqtt", broker.url,
                 "--keys", str(keys), "--lot-ids", ",".join(lot_ids[i:i + lots_per_process]),
                 "--events", str(events), "--batch-events", str(batch_events),
                 "--max-inflight", str(max_inflight), "--ack-timeout-s", str(ack_timeout_s)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                cwd=HERE.parent))
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a lot process did not start ({line.strip()!r})")
        started = time.time()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        cpu = {"ingest": -sum(_cpu_s(p.pid) for p in ingests), "broker": -_cpu_s(broker.proc.pid),
               "lots": 0.0, "postgres": -_postgres_cpu_s()}
        for p in procs:
            remaining = max(1.0, timeout_s - (time.time() - started))
            try:
                out, _ = p.communicate(timeout=remaining)
            except subprocess.TimeoutExpired as err:
                raise RuntimeError(f"the fleet did not catch up within {timeout_s:.0f} s") from err
            report = json.loads(out.strip().splitlines()[-1])
            results.extend(report["lots"])
            cpu["lots"] += report["cpu_s"]
        cpu["ingest"] += sum(_cpu_s(p.pid) for p in ingests)
        cpu["broker"] += _cpu_s(broker.proc.pid)
        cpu["postgres"] += _postgres_cpu_s()
        catch_up = max(r["done_at"] for r in results) - started
        lost, dup = _check_postgres(pg_url, schema, lot_ids, events)
        if os.environ.get("LOTEDGE_BENCH_FLEET_DEBUG"):
            log = sorted(e for r in results for e in r["resend_log"])
            print(f"resends (s after go, pace wait, rto, attempt, batch age, rtt samples): "
                  f"{len(log)}; first {log[:15]}; last {log[-5:]}", file=sys.stderr)
        sent = sum(r["sent"] for r in results)
        resent = sum(r["resent"] for r in results)
        return {"workers": workers, "lots": lots, "events": events, "catch_up_s": catch_up,
                "events_s": lots * events / catch_up, "sent": sent, "resent": resent,
                "lost": lost, "duplicated": dup, "cpu_s": cpu,
                "max_pace_wait_s": max(r["max_pace_wait_s"] for r in results),
                "refused_acks": sum(r["refused_acks"] for r in results)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for p in ingests:
            p.terminate()
        for p in ingests:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        broker.stop()
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s() -> float:
    """CPU seconds of every live `postgres` process (the bench's private cluster's backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu_s(int(entry.name))
    return total


async def _wait_presence(port: int, workers: int, timeout_s: float = 60.0) -> None:
    """Until every ingest worker has announced itself (it has subscribed)."""
    import aiomqtt

    seen: set[str] = set()
    async with aiomqtt.Client("127.0.0.1", port, identifier="fleet-bench-watch") as client:
        await client.subscribe("lotedge-cloud/ingest/+", qos=1)
        async with asyncio.timeout(timeout_s):
            async for message in client.messages:
                if json.loads(message.payload).get("online") is True:
                    seen.add(str(message.topic))
                if len(seen) >= workers:
                    return


def measure(*, lots: int, events: int, workers: list[int], lots_per_process: int,
            batch_events: int = 500, max_inflight: int = 8, timeout_s: float = 600.0,
            model: bool = True, ack_timeout_s: float = 30.0) -> list[dict]:
    """Run the fleet for each worker count; the figures as bench rows."""
    from sync.flow_model import simulate
    from tests.sync.pgserver import PgServer, pg_bin

    if pg_bin("initdb") is None:
        raise RuntimeError("PostgreSQL server programs are not installed (make setup)")
    rows: list[dict] = []
    server = PgServer()
    server.init()
    server.start()
    try:
        server.wait_ready()
        with tempfile.TemporaryDirectory() as tmp:
            runs = [_run_one(Path(tmp), server.url, workers=w, lots=lots, events=events,
                             lots_per_process=lots_per_process, batch_events=batch_events,
                             max_inflight=max_inflight, timeout_s=timeout_s,
                             ack_timeout_s=ack_timeout_s) for w in workers]
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        server.remove()
    for r in runs:
        tag = f"{r['lots']} lots x {r['events']:,}, {r['workers']} worker(s)"
        rows += [
            {"name": f"fleet catch-up ({tag})", "value": r["catch_up_s"], "unit": "s"},
            {"name": f"fleet events/s ({tag})", "value": r["events_s"], "unit": "events/s",
             "goal": f">= {GOAL_EVENTS_S:,} with 2 workers" if r["workers"] == 2 else ""},
            {"name": f"fleet resent events ({tag})", "value": r["resent"], "unit": "events",
             "goal": f"<= 1 % of {r['sent']:,} sent"},
            {"name": f"fleet lost / duplicated in PostgreSQL ({tag})",
             "value": f"{r['lost']} / {r['duplicated']}", "unit": "events", "goal": "0 / 0"},
            {"name": f"fleet: longest pace hint wait the lots saw ({tag})",
             "value": r["max_pace_wait_s"], "unit": "s"},
            {"name": f"fleet CPU per event, ingest / PostgreSQL / broker / lots ({tag})",
             "value": " / ".join(f"{1e6 * r['cpu_s'][k] / (r['lots'] * r['events']):.0f}"
                                 for k in ("ingest", "postgres", "broker", "lots")),
             "unit": "us"},
        ]
    best = max(runs, key=lambda r: r["events_s"])
    two = next((r for r in runs if r["workers"] == 2), best)
    projected = PROJECT_LOTS * PROJECT_EVENTS / two["events_s"]
    rows.append({"name": f"projected catch-up of {PROJECT_LOTS:,} lots x {PROJECT_EVENTS:,} "
                         f"events at the {two['workers']}-worker rate",
                 "value": projected, "unit": "s", "goal": "< 600"})
    if model:
        for policy in ("old", "new"):
            sim = simulate(policy=policy, lots=PROJECT_LOTS, events_per_lot=PROJECT_EVENTS,
                           capacity_events_s=two["events_s"], limit_s=600.0)
            rows += [
                {"name": f"model, {policy} uplink policy: new events/s over the first 10 min",
                 "value": sim.new_events_s, "unit": "events/s"},
                {"name": f"model, {policy} uplink policy: resent share",
                 "value": 100 * sim.resent_share, "unit": "%",
                 "goal": "<= 1" if policy == "new" else ""},
                {"name": f"model, {policy} uplink policy: catch-up",
                 "value": sim.catch_up_s if sim.catch_up_s is not None else "not in 12,000 s",
                 "unit": "s"},
            ]
    return rows


def run() -> list[dict]:
    """`python -m bench fleet`: a short default run (~1 minute)."""
    env = os.environ.get
    return measure(lots=int(env("LOTEDGE_BENCH_FLEET_LOTS", "20")),
                   events=int(env("LOTEDGE_BENCH_FLEET_EVENTS", "4000")),
                   workers=[int(w) for w in env("LOTEDGE_BENCH_FLEET_WORKERS", "1,2,4")
                            .split(",")],
                   lots_per_process=int(env("LOTEDGE_BENCH_FLEET_LOTS_PER_PROCESS", "10")))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    lots = sub.add_parser("_lots", help=argparse.SUPPRESS)
    lots.add_argument("--mqtt", required=True)
    lots.add_argument("--keys", required=True)
    lots.add_argument("--lot-ids", required=True)
    lots.add_argument("--events", type=int, required=True)
    lots.add_argument("--batch-events", type=int, default=500)
    lots.add_argument("--max-inflight", type=int, default=8)
    lots.add_argument("--ack-timeout-s", type=float, default=30.0)
    parser.add_argument("--lots", type=int, default=20)
    parser.add_argument("--events", type=int, default=4000, help="backlog per lot")
    parser.add_argument("--workers", default="1,2,4", help="ingest worker counts to try")
    parser.add_argument("--lots-per-process", type=int, default=10)
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--ack-timeout-s", type=float, default=30.0,
                        help="the lots' ack timeout before round trips are measured")
    parser.add_argument("--no-model", action="store_true", help="skip the simulated fleet")
    args = parser.parse_args(argv)
    if args.cmd == "_lots":
        asyncio.run(_lots_main(args))
        return 0
    try:
        rows = measure(lots=args.lots, events=args.events,
                       workers=[int(w) for w in args.workers.split(",")],
                       lots_per_process=args.lots_per_process, timeout_s=args.timeout_s,
                       model=not args.no_model, ack_timeout_s=args.ack_timeout_s)
    except (RuntimeError, OSError) as err:
        print(f"bench fleet: {err}", file=sys.stderr)
        return 1
    for r in rows:
        value = r["value"]
        text = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(
            value, int) else str(value)
        print(f"{r['name']:<80} {text:>14} {r['unit']:<9} {r.get('goal', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

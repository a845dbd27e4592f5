"""Crash harness: run the simulated appliance as a real process, SIGKILL it at random moments,
restart it, and check after every kill that nothing acknowledged was lost and nothing is torn.

Used by tests/integration/test_crash.py (a CI subset) and `make torture` (>= 1,000 rounds):

    python -m tests.integration.crash_harness --rounds 1000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from appliance.client import ApiError, ServiceUnavailable, SyncServiceClient
from appliance.core.events import GENESIS_HASH, verify_chain

VALID_STATUSES = {"OPEN", "PAID", "CLOSED", "VOID", "VACATED"}


@dataclass
class Acknowledged:
    """What the outside world was told before a kill: it must survive every crash."""

    events: dict[int, str] = field(default_factory=dict)  # seq -> hash, seen via GET /events
    reservations: set[str] = field(default_factory=set)  # ids an import response answered
    last_seq: int = 0  # the highest seq /health or /events returned


@dataclass
class RoundResult:
    """One kill-and-check round."""

    round: int
    killed_after_s: float
    reached_ready: bool
    events: int
    problems: list[str]


def check_ledger(db_path: Path, acked: Acknowledged) -> list[str]:
    """Every invariant that must hold after a crash, checked with plain sqlite3 on the file."""
    problems: list[str] = []
    if not db_path.exists():
        return [] if not acked.events and not acked.reservations else ["ledger file missing"]
    db = sqlite3.connect(db_path)
    db.row_factory = sqlite3.Row
    try:
        integrity = "; ".join(r[0] for r in db.execute("PRAGMA integrity_check"))
        if integrity != "ok":
            problems.append(f"integrity_check: {integrity}")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "events" not in tables:  # killed before the first migration committed
            if acked.events or acked.reservations or acked.last_seq:
                problems.append("events table missing after acknowledgements")
            return problems
        rows = [dict(r) for r in db.execute("SELECT * FROM events ORDER BY seq")]
        seqs = [r["seq"] for r in rows]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"seq not contiguous 1..{len(seqs)}")
        problems.extend(verify_chain(rows, start_prev_hash=GENESIS_HASH, start_seq=1))
        by_seq = {r["seq"]: r for r in rows}
        for seq, digest in acked.events.items():
            row = by_seq.get(seq)
            if row is None:
                problems.append(f"acknowledged event seq {seq} lost")
            elif row["hash"] != digest:
                problems.append(f"acknowledged event seq {seq} changed")
        if seqs and seqs[-1] < acked.last_seq or not seqs and acked.last_seq:
            problems.append(f"last seq {seqs[-1] if seqs else 0} < acknowledged {acked.last_seq}")
        recorded = {json.loads(r["payload"]).get("reservation_id") for r in rows
                    if r["type"] in ("reservation.created", "reservation.rejected")}
        for rid in sorted(acked.reservations - recorded):
            problems.append(f"acknowledged reservation {rid} lost")
        problems.extend(_check_tickets(db, by_seq))
    except sqlite3.DatabaseError as err:
        problems.append(f"database error: {err}")
    finally:
        db.close()
    return problems


def _check_tickets(db: sqlite3.Connection, by_seq: dict[int, dict]) -> list[str]:
    problems: list[str] = []
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "tickets" not in tables:
        return problems
    for t in db.execute("SELECT * FROM tickets"):
        tid, status = t["id"], t["status"]
        if status not in VALID_STATUSES:
            problems.append(f"ticket {tid}: impossible status {status!r}")
            continue
        entry = by_seq.get(t["entry_seq"])
        if entry is None or entry["type"] != "ticket.issued":
            problems.append(f"ticket {tid}: entry_seq {t['entry_seq']} is not its ticket.issued")
        if status in ("OPEN", "PAID") and t["exit_seq"] is not None:
            problems.append(f"ticket {tid}: {status} but has exit_seq {t['exit_seq']}")
        if status in ("CLOSED", "VOID", "VACATED"):
            ended = by_seq.get(t["exit_seq"]) if t["exit_seq"] is not None else None
            want = {"CLOSED": "ticket.closed", "VOID": "ticket.voided",
                    "VACATED": "ticket.vacated"}[status]
            if ended is None or ended["type"] != want:
                problems.append(f"ticket {tid}: {status} but exit_seq {t['exit_seq']} is not {want}")
        if status == "CLOSED" and t["exit_utc"] is None:
            problems.append(f"ticket {tid}: CLOSED without exit time")
    held = {(r[0], r[1]): r[2] for r in db.execute(
        "SELECT level_id, spot_type, COUNT(*) FROM tickets WHERE status IN ('OPEN', 'PAID') "
        "GROUP BY level_id, spot_type")}
    # strict: the harness never resets counts (a counts.reset would legitimately break this)
    for level, spot_type, occupied in db.execute(
            "SELECT level_id, spot_type, occupied FROM capacity"):
        n = held.pop((level, spot_type), 0)
        if occupied != n:
            problems.append(f"capacity {level}/{spot_type}: occupied {occupied} != {n} open tickets")
    for (level, spot_type), n in held.items():
        problems.append(f"{n} open tickets on {level}/{spot_type}, which has no capacity row")
    for spot in db.execute("SELECT s.id, s.ticket_id, t.status FROM spots s "
                           "LEFT JOIN tickets t ON t.id = s.ticket_id WHERE s.ticket_id IS NOT NULL"):
        if spot["status"] not in ("OPEN", "PAID"):
            problems.append(f"spot {spot['id']} held by ticket {spot['ticket_id']} "
                            f"in state {spot['status']}")
    return problems


class CrashHarness:
    """Start, observe, SIGKILL and check the appliance, round after round.

    Args:
        config: the lot configuration (a fast simulated lot).
        db_path: its ledger file.
        socket_path: its API socket.
        seed: for the kill moments.
        min_s, max_s: a kill happens this long after the process started.
    """

    def __init__(self, config: Path, *, db_path: Path, socket_path: Path, seed: int = 1,
                 min_s: float = 0.3, max_s: float = 2.0):
        self.config = config
        self.db_path = db_path
        self.socket_path = socket_path
        self.rng = random.Random(seed)
        self.min_s, self.max_s = min_s, max_s
        self.acked = Acknowledged()
        self.results: list[RoundResult] = []
        self._reservation_n = 0

    def _observe(self, client: SyncServiceClient) -> None:
        health = client.get("/health")
        self.acked.last_seq = max(self.acked.last_seq, health.get("last_seq") or 0)
        after = max(self.acked.events, default=0)
        for event in client.get("/events", after=after, limit=200):
            self.acked.events[event["seq"]] = event["hash"]
            self.acked.last_seq = max(self.acked.last_seq, event["seq"])
        if self.rng.random() < 0.3:
            self._reservation_n += 1
            rid = f"CRASH-{self._reservation_n}"
            start = datetime.now(UTC) + timedelta(days=30)
            answer = client.post("/reservations/import", [{  # type: ignore[arg-type]
                "id": rid, "spot_type": "REGULAR", "plate": f"CR{self._reservation_n:05d}",
                "start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}])
            if answer.get("accepted", 0) + answer.get("rejected", 0) >= 1:
                self.acked.reservations.add(rid)

    def run_round(self) -> RoundResult:
        """Start the appliance, watch it until a random moment, SIGKILL it, check the ledger."""
        kill_after_s = self.rng.uniform(self.min_s, self.max_s)
        self.socket_path.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "run", "--config", str(self.config),
             "--simulate", "--no-display"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        started = time.monotonic()
        ready = False
        client: SyncServiceClient | None = None
        try:
            while time.monotonic() - started < kill_after_s:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace")[-1500:] if proc.stderr else ""
                    raise AssertionError(f"appliance exited by itself ({proc.returncode}): {err}")
                if client is None and self.socket_path.exists():
                    client = SyncServiceClient(self.socket_path, timeout_s=1.0, local_admin=True)
                if client is not None:
                    try:
                        self._observe(client)
                        ready = True
                    except (ServiceUnavailable, ApiError):
                        pass  # not answering yet (or the socket is half up)
                time.sleep(self.rng.uniform(0.0, 0.05))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
            if client is not None:
                client.close()
        problems = check_ledger(self.db_path, self.acked)
        events = 0
        if self.db_path.exists():
            db = sqlite3.connect(self.db_path)
            try:
                events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            except sqlite3.OperationalError:
                events = 0  # no schema yet: killed before the first migration committed
            finally:
                db.close()
        result = RoundResult(round=len(self.results) + 1, killed_after_s=kill_after_s,
                             reached_ready=ready, events=events, problems=problems)
        self.results.append(result)
        return result

    def run(self, rounds: int, *, stop_on_problem: bool = True) -> list[RoundResult]:
        """Run `rounds` kill-and-check rounds."""
        for _ in range(rounds):
            result = self.run_round()
            if result.problems and stop_on_problem:
                break
        return self.results


def main(argv: list[str] | None = None) -> int:
    """`make torture`: many rounds on a fresh fast lot; exit 1 on the first broken invariant."""
    import tempfile

    from appliance.config import load_config
    from tests.conftest import write_lot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=["counter", "per_spot"], default="per_spot")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = write_lot(Path(tmp), mode=args.mode)
        cfg = load_config(cfg_path)
        harness = CrashHarness(cfg_path, db_path=cfg.db_path(),
                               socket_path=cfg.data_path(cfg.api.socket), seed=args.seed)
        started = time.monotonic()
        for i in range(args.rounds):
            r = harness.run_round()
            if r.problems or (i + 1) % 50 == 0:
                print(f"round {r.round}: killed after {r.killed_after_s:.2f} s, "
                      f"{r.events} events, ready={r.reached_ready}, "
                      f"problems={r.problems[:5]}", flush=True)
            if r.problems:
                return 1
        ready = sum(r.reached_ready for r in harness.results)
        print(f"torture: {args.rounds} rounds in {time.monotonic() - started:.0f} s, "
              f"{ready} killed while serving, {harness.results[-1].events} events, "
              f"{len(harness.acked.events)} acknowledged events and "
              f"{len(harness.acked.reservations)} acknowledged reservations all present; "
              "integrity, seq, chain, tickets and counts OK after every kill")
    return 0


if __name__ == "__main__":
    sys.exit(main())

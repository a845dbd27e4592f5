"""The full-load benchmark's scoring of entries: each entered car against its own ticket."""

from __future__ import annotations

import json
import os
import sys

import pytest

from bench.bench_fullload import CGROUP, _account, _limited


def _ticket(lane: str, ticket_id: str, plate: str | None) -> tuple[str, dict]:
    return "ticket.issued", {"lane": lane, "ticket_id": ticket_id, "plate": plate}


def test_a_car_that_backs_out_leaves_its_voided_ticket_out_of_the_score():
    events = [
        _ticket("en-1", "T1", "AAA111"),
        _ticket("en-1", "T2", "BBB222"),  # this driver backs out: the ticket is voided
        ("ticket.voided", {"ticket_id": "T2", "reason": "vehicle backed out at entry"}),
        _ticket("en-2", "T3", None),  # no plate read: a ticket without one
        _ticket("en-1", "T4", "CCC333"),
        _ticket("en-2", "T5", "AAA111"),  # another car's plate
        _ticket("en-2", "T6", "XXX999"),  # nobody's plate
    ]
    entered = [("en-1", "AAA111"), ("en-2", "DDD444"), ("en-1", "CCC333"), ("en-2", "EEE555"),
               ("en-2", "FFF666")]
    _, _, scored = _account(events, entered)
    assert scored == {"exact": 2, "unread": 1, "wrong_car": 1, "misread": 1}


def test_reads_and_decision_times_come_from_the_events():
    events = [
        ("lane.plate_read", {"read_ms": 120.5}),
        ("lane.transition", {"lane": "en-1", "from": "IDENTIFYING", "to": "DECIDING",
                             "fact_mono_ns": 1_000_000_000}),
        ("lane.transition", {"lane": "en-2", "from": "IDENTIFYING", "to": "DECIDING",
                             "fact_mono_ns": 1_001_000_000}),
        ("lane.transition", {"lane": "en-1", "from": "DECIDING", "to": "OPENING",
                             "fact_mono_ns": 1_004_000_000}),
        ("lane.plate_read", {"read_ms": 80.0}),
        ("lane.transition", {"lane": "en-2", "from": "DECIDING", "to": "OPENING",
                             "fact_mono_ns": 1_003_500_000}),
    ]
    reads, decisions, _ = _account(events, [])
    assert reads == [120.5, 80.0] and decisions == [4.0, 2.5]


OFF_THE_BOARD = """
import json, os, subprocess, sys, threading
sys.path.insert(0, os.getcwd())
from bench.bench_fullload import _off_the_board

def where(path):
    with open(path) as f:
        return next(l.split(":", 2)[2].strip() for l in f if l.split(":")[1] == "cpu")

stop = threading.Event()
sim = threading.Thread(target=stop.wait, name="sim:modbus")
driver = threading.Thread(target=stop.wait, name="port:bus0")
sim.start(); driver.start()
cloud = subprocess.Popen(["sleep", "30"])
_off_the_board([cloud.pid])
print(json.dumps({"sim": where(f"/proc/self/task/{sim.native_id}/cgroup"),
                  "driver": where(f"/proc/self/task/{driver.native_id}/cgroup"),
                  "loop": where("/proc/thread-self/cgroup"),
                  "cloud": where(f"/proc/{cloud.pid}/cgroup")}))
stop.set(); cloud.kill()
"""


@pytest.mark.skipif(not (CGROUP / "cgroup.procs").exists() or not os.access(CGROUP, os.W_OK),
                    reason="needs a writable cgroup v1 cpu controller (root)")
def test_the_half_core_limit_holds_the_board_and_not_the_simulated_devices_or_the_cloud(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(OFF_THE_BOARD)
    proc = _limited([sys.executable, str(script)], 50_000)
    assert proc.returncode == 0, proc.stderr
    placed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert placed["sim"] == "/" and placed["cloud"] == "/"
    assert placed["driver"].startswith("/lotedge-bench-") and placed["loop"] == placed["driver"]

"""The full-load benchmark's scoring of entries: each entered car against its own ticket."""

from __future__ import annotations

from bench.bench_fullload import _account


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

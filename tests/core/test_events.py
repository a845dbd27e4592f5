"""The hash chain detects edits, reordering and truncation."""

from __future__ import annotations

import copy

from appliance.core.events import GENESIS_HASH, canonical_json, chain_hash, event_body, verify_chain


def _chain(n: int) -> list[dict]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        row = {"seq": seq, "event_id": f"id-{seq}", "lot_id": "lot", "type": "t",
               "ts_utc": "2026-01-01T00:00:00+00:00", "ts_local": "2026-01-01T00:00:00+00:00",
               "mono_ns": seq, "payload": canonical_json({"n": seq, "b": "é"}), "prev_hash": prev}
        body = event_body(**{k: row[k] for k in ("seq", "event_id", "lot_id", "type", "ts_utc",
                                                    "ts_local", "mono_ns")},
                          payload_json=row["payload"])
        row["hash"] = chain_hash(prev, body)
        prev = row["hash"]
        rows.append(row)
    return rows


def test_intact_chain_verifies():
    assert verify_chain(_chain(20)) == []


def test_edited_payload_is_detected():
    rows = _chain(10)
    rows[4] = copy.copy(rows[4])
    rows[4]["payload"] = canonical_json({"n": 999, "b": "é"})
    problems = verify_chain(rows)
    assert any("seq 5" in p for p in problems)


def test_deleted_event_is_detected():
    rows = _chain(10)
    del rows[3]
    problems = verify_chain(rows)
    assert any("seq gap" in p for p in problems)


def test_canonical_json_is_key_order_independent():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})

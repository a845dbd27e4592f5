"""Ledger events as values, and the SHA-256 hash chain that links them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """Serialise a JSON value deterministically (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class NewEvent:
    """A fact the core wants recorded; the ledger gives it a seq, an id and a hash."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """A recorded ledger event with its place in the hash chain."""

    seq: int
    event_id: str
    lot_id: str
    type: str
    ts_utc: datetime
    ts_local: datetime
    mono_ns: int
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The event as plain JSON types, as synced to the cloud."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "lot_id": self.lot_id,
            "type": self.type,
            "ts_utc": self.ts_utc.isoformat(),
            "ts_local": self.ts_local.isoformat(),
            "mono_ns": self.mono_ns,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def event_body(
    *,
    seq: int,
    event_id: str,
    lot_id: str,
    type: str,
    ts_utc: str,
    ts_local: str,
    mono_ns: int,
    payload_json: str,
) -> str:
    """The canonical text of an event that its hash covers (payload already canonical)."""
    head = canonical_json(
        {
            "seq": seq,
            "event_id": event_id,
            "lot_id": lot_id,
            "type": type,
            "ts_utc": ts_utc,
            "ts_local": ts_local,
            "mono_ns": mono_ns,
        }
    )
    return head + "|" + payload_json


def chain_hash(prev_hash: str, body: str) -> str:
    """hash = SHA-256(prev_hash || canonical event), hex encoded."""
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


# Secrets are not facts: the fields that events written by older versions carried and that
# every reader (API, sync, backup) replaces with REDACTED. A redacted event cannot be hashed
# again; it is accepted on its stored hash and its place in the chain, and only these types
# may be redacted (any other event must match its hash).
SECRET_FIELDS: dict[str, tuple[str, ...]] = {"attendant.added": ("pin_hash",)}
REDACTED = "[redacted]"


def redact_payload(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` with its secret fields (if any) replaced by REDACTED."""
    fields = [f for f in SECRET_FIELDS.get(event_type, ()) if f in payload]
    if not fields:
        return payload
    return {**payload, **{f: REDACTED for f in fields}}


def is_redacted(event_type: str, payload: dict[str, Any]) -> bool:
    """Whether an event of a type that may carry secrets had them redacted."""
    return any(payload.get(f) == REDACTED for f in SECRET_FIELDS.get(event_type, ()))


def fact_time(at_utc: datetime, at_mono_ns: int, tz: Any) -> dict[str, Any]:
    """When a fact happened, as payload fields: wall time (UTC and lot-local) and the host's
    monotonic clock (`time.monotonic_ns`). An event without them happened when it was written
    (its `ts_utc`/`mono_ns`); batched facts (lane transitions, plate reads, device facts) carry
    them, since they are written later than they happen."""
    return {"fact_utc": at_utc.isoformat(), "fact_local": at_utc.astimezone(tz).isoformat(),
            "fact_mono_ns": at_mono_ns}


def verify_chain(rows: list[dict[str, Any]], *, start_prev_hash: str = GENESIS_HASH,
                 start_seq: int = 1) -> list[str]:
    """Check seq contiguity and the hash chain of stored rows; return a list of problems
    (a redacted event is taken on its stored hash, its link still checked)."""
    problems: list[str] = []
    prev = start_prev_hash
    expected_seq = start_seq
    for row in rows:
        seq = row["seq"]
        if seq != expected_seq:
            problems.append(f"seq gap: expected {expected_seq}, found {seq}")
            expected_seq = seq
        if row["prev_hash"] != prev:
            problems.append(f"seq {seq}: prev_hash does not match the previous event's hash")
        body = event_body(
            seq=seq,
            event_id=row["event_id"],
            lot_id=row["lot_id"],
            type=row["type"],
            ts_utc=row["ts_utc"],
            ts_local=row["ts_local"],
            mono_ns=row["mono_ns"],
            payload_json=row["payload"],
        )
        if chain_hash(row["prev_hash"], body) != row["hash"] and not (
                row["type"] in SECRET_FIELDS
                and is_redacted(row["type"], json.loads(row["payload"]))):
            problems.append(f"seq {seq}: hash does not match its content (edited row?)")
        prev = row["hash"]
        expected_seq += 1
    return problems

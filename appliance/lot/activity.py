"""The booth's activity feed: the latest events that matter at the booth, one line each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from appliance.core.money import cents_text
from appliance.ledger import Ledger


def _who(p: dict[str, Any]) -> str:
    return f" by {p['attendant']}" if p.get("attendant") else ""


def _plate(p: dict[str, Any]) -> str:
    return p.get("plate") or "no plate"


# event type -> its line (from the payload: only fields fit to show at the booth)
LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "ticket.issued": lambda p: f"IN   {p.get('lane')}: {_plate(p)} ticket {p.get('ticket_id')} "
                               f"{p.get('level')} {p.get('spot_type')}",
    "entry.refused": lambda p: f"REFUSED {p.get('lane')}: {_plate(p)} ({p.get('reason')})",
    "ticket.closed": lambda p: f"OUT  {p.get('lane')}: ticket {p.get('ticket_id')} "
                               f"paid {cents_text(p.get('paid_cents') or 0)}",
    "exit.unmatched": lambda p: f"OUT  {p.get('lane')}: {_plate(p)} no ticket, lost-ticket "
                                f"fee {cents_text(p.get('fee_cents') or 0)}",
    "payment.recorded": lambda p: f"PAY  {p.get('method')} {cents_text(p.get('amount_cents') or 0)}"
                                  f" {p.get('status')} ticket {p.get('ticket_id')}{_who(p)}",
    "ticket.validation_applied": lambda p: f"VALIDATION {p.get('code')} on {p.get('ticket_id')}"
                                           f"{_who(p)}",
    "ticket.fee_overridden": lambda p: (
        f"{'LOST TICKET' if p.get('lost') else 'OVERRIDE'} {p.get('ticket_id')} fee "
        f"{cents_text(p.get('fee_cents') or 0)}{_who(p)} ({p.get('reason')})"),
    "ticket.voided": lambda p: f"VOID {p.get('ticket_id')}{_who(p)} ({p.get('reason')})",
    "gate.manual_open": lambda p: f"GATE OPEN {p.get('lane')}{_who(p)} ({p.get('reason')})",
    "gate.manual_close": lambda p: f"GATE CLOSE {p.get('lane')}{_who(p)}",
    "gate.close_refused": lambda p: f"CLOSE REFUSED {p.get('lane')} ({p.get('reason')})",
    "gate.hold_open": lambda p: (f"{'HOLD' if p.get('hold') else 'RELEASE'} {p.get('lane')}"
                                 f"{_who(p)} ({p.get('reason')})"),
    "alarm.raised": lambda p: f"ALARM {p.get('severity', '').upper()} {p.get('code')} "
                              f"{p.get('source')}: {p.get('detail')}",
    "alarm.acknowledged": lambda p: f"ALARM ACK {p.get('alarm_id')}{_who(p)}",
    "attendant.signed_in": lambda p: f"SIGN IN {p.get('attendant')} ({p.get('role')})",
    "attendant.signed_out": lambda p: f"SIGN OUT {p.get('attendant')}",
    "shift.closed": lambda p: (f"SHIFT CLOSED {p.get('shift_id')} of {p.get('attendant')} by "
                               f"{p.get('closed_by')}, difference "
                               f"{cents_text(p.get('difference_cents') or 0)}"),
}


def line(event_type: str, payload: dict[str, Any]) -> str:
    """One human line for an event of the feed."""
    return LINES[event_type](payload)


async def recent(ledger: Ledger, *, limit: int = 50) -> list[dict[str, Any]]:
    """The latest `limit` events of the feed, newest first: seq, time (UTC), type, text."""
    marks = ",".join("?" * len(LINES))
    rows = await ledger.fetchall(
        f"SELECT seq, ts_utc, type, payload FROM events WHERE type IN ({marks}) "
        "ORDER BY seq DESC LIMIT ?", (*LINES, limit))
    return [{"seq": r["seq"], "ts_utc": r["ts_utc"], "type": r["type"],
             "text": line(r["type"], json.loads(r["payload"]))} for r in rows]

"""Attendant and technician commands: the same service operations the lanes use, each an
audited ledger event carrying the attendant's identity and reason.

The API, the attendant UI and the diagnostics CLI call these; none of them touch the ledger
or the devices directly.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from appliance.core.booth import change_cents, lost_ticket_fee_cents
from appliance.core.events import NewEvent
from appliance.core.fees import compute_fee
from appliance.core.lane import HoldReleased, ManualClose, ManualOpen
from appliance.core.plates import edit_distance, normalise_plate
from appliance.core.types import SpotType
from appliance.core.validations import resolve_validations
from appliance.errors import InputError, LotedgeError
from appliance.lot.runtime import LotRuntime
from appliance.lot.tickets import ticket_tariff
from drivers.gate import GateInterlockError


class NotFoundError(InputError):
    """The named lane, ticket or alarm does not exist."""


class ConflictError(LotedgeError, RuntimeError):
    """The command is refused in the current state (e.g. closing over a vehicle)."""


def _need(text: str | None, what: str) -> str:
    if text is None or not str(text).strip():
        raise InputError(f"{what} is required")
    return str(text).strip()


def _lane(lot: LotRuntime, lane_id: str):
    try:
        return lot.lanes[lane_id]
    except KeyError:
        raise NotFoundError(f"no lane {lane_id!r}") from None


async def open_gate(lot: LotRuntime, lane_id: str, *, attendant: str, reason: str) -> dict:
    """Open a lane's barrier by hand (reason required); the lane closes it after the vehicle."""
    controller = _lane(lot, lane_id)
    attendant, reason = _need(attendant, "attendant"), _need(reason, "reason")
    await lot.ledger.append(NewEvent(type="gate.manual_open", payload={
        "lane": lane_id, "attendant": attendant, "reason": reason}))
    controller.feed(ManualOpen(reason))
    return {"lane": lane_id, "opened": True}


async def close_gate(lot: LotRuntime, lane_id: str, *, attendant: str) -> dict:
    """Close a lane's barrier by hand; refused while the safety loop reports a vehicle."""
    controller = _lane(lot, lane_id)
    attendant = _need(attendant, "attendant")
    if controller.gate.vehicle_under:  # the raw contact too: a car arriving is not debounced yet
        await lot.ledger.append(NewEvent(type="gate.close_refused", payload={
            "lane": lane_id, "attendant": attendant, "reason": "safety loop occupied"}))
        raise ConflictError("refused: a vehicle is on the safety loop under the barrier")
    await lot.ledger.append(NewEvent(type="gate.manual_close", payload={
        "lane": lane_id, "attendant": attendant}))
    if controller.gate.held_open:
        controller.gate.hold_open(False, "closed by hand")
    try:
        controller.gate.close()
    except GateInterlockError as err:
        raise ConflictError(str(err)) from err
    controller.feed(ManualClose())
    return {"lane": lane_id, "closed": True}


async def hold_open(lot: LotRuntime, lane_id: str, *, hold: bool, attendant: str,
                    reason: str) -> dict:
    """Hold a barrier open (events, emergencies) or release the hold."""
    controller = _lane(lot, lane_id)
    attendant, reason = _need(attendant, "attendant"), _need(reason, "reason")
    await lot.ledger.append(NewEvent(type="gate.hold_open", payload={
        "lane": lane_id, "hold": hold, "attendant": attendant, "reason": reason}))
    was_held = controller.gate.held_open
    controller.gate.hold_open(hold, reason)
    if was_held and not hold:
        controller.feed(HoldReleased())  # the lane closes it, at once or once the loop clears
    return {"lane": lane_id, "held_open": hold}


async def search_tickets(lot: LotRuntime, *, query: str, limit: int = 50) -> list[dict]:
    """Tickets of cars inside: open (or paid) ones by ticket id, or by plate: partial match,
    then within one edit; after them VACATED ones (released when the spot's sensor saw the car
    go, no exit matched) by exact id or plate only, as the exit lane finds them."""
    q = normalise_plate(query)
    if not q:
        raise InputError("search needs a plate or ticket id")
    rows = await lot.ledger.fetchall(
        "SELECT * FROM tickets WHERE status IN ('OPEN', 'PAID') ORDER BY entry_utc DESC")
    exact = [r for r in rows if r["id"] == q or (r["plate"] or "") == q]
    partial = [r for r in rows if r not in exact and q in (r["plate"] or "")]
    fuzzy = [r for r in rows if r not in exact and r not in partial and r["plate"]
             and len(q) >= 4 and edit_distance(q, r["plate"], 1) <= 1]
    # two indexed lookups (vacated tickets pile up over the years: never scan them)
    by_id = await lot.ledger.fetchall(
        "SELECT * FROM tickets WHERE id = ? AND status = 'VACATED'", (q,))
    by_plate = await lot.ledger.fetchall(
        "SELECT * FROM tickets WHERE plate = ? AND status = 'VACATED' ORDER BY entry_utc DESC "
        "LIMIT ?", (q, limit))
    vacated = [*by_id, *by_plate]
    return [dict(r) for r in (exact + partial + fuzzy + vacated)[:limit]]


async def ticket_with_fee(lot: LotRuntime, ticket_id: str, *, at: datetime | None = None) -> dict:
    """A ticket and its fee right now, with the breakdown."""
    row = await lot.ledger.fetchone("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
    if row is None:
        raise NotFoundError(f"no ticket {ticket_id!r}")
    ticket = dict(row)
    ticket["validations"] = json.loads(row["validations"])
    now = at or lot.clock.now()
    entry = datetime.fromisoformat(row["entry_utc"])
    fee = compute_fee(ticket_tariff(lot.cfg, row, lot.tariffs), entry=entry,
                      exit=max(now, entry), spot_type=SpotType(row["spot_type"]), tz=lot.cfg.lot.tz,
                      rate_multiplier=Decimal(row["rate_multiplier"]),
                      validations=tuple(ticket["validations"]))
    due = fee.total_cents if row["override_cents"] is None else row["override_cents"]
    tariff = ticket_tariff(lot.cfg, row, lot.tariffs)
    ticket["validation_codes"] = [{"code": v.code, "label": v.label} for v in tariff.validations]
    ticket["lost_fee_cents"] = lost_ticket_fee_cents(
        fee_now_cents=fee.total_cents, lost_fee_cents=tariff.lost_ticket_fee_cents)
    ticket["fee"] = {
        "total_cents": fee.total_cents, "due_cents": max(0, due - row["paid_cents"]),
        "override_cents": row["override_cents"], "duration_minutes": fee.duration_minutes,
        "currency": lot.cfg.lot.currency,
        "breakdown": [{"label": b.label, "amount_cents": b.amount_cents} for b in fee.breakdown],
    }
    return ticket


async def _open_ticket(tx, ticket_id: str, *, vacated_ok: bool = True) -> Any:
    """The ticket of a car still to leave: OPEN, PAID or (unless `vacated_ok` is False)
    VACATED, which an exit still closes and charges, so it can be paid or validated first."""
    row = await tx.fetchone("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
    if row is None:
        raise NotFoundError(f"no ticket {ticket_id!r}")
    if row["status"] not in (("OPEN", "PAID", "VACATED") if vacated_ok else ("OPEN", "PAID")):
        raise ConflictError(f"ticket {ticket_id} is {row['status']}")
    return row


async def override_fee(lot: LotRuntime, ticket_id: str, *, fee_cents: int, attendant: str,
                       reason: str) -> dict:
    """Set the fee of a ticket by hand (audited)."""
    attendant, reason = _need(attendant, "attendant"), _need(reason, "reason")
    if not isinstance(fee_cents, int) or isinstance(fee_cents, bool) or fee_cents < 0:
        raise InputError("fee_cents must be a non-negative integer")
    async with lot.ledger.transaction() as tx:
        await _open_ticket(tx, ticket_id)
        await tx.append(NewEvent(type="ticket.fee_overridden", payload={
            "ticket_id": ticket_id, "fee_cents": fee_cents, "attendant": attendant,
            "reason": reason}))
    return await ticket_with_fee(lot, ticket_id)


async def apply_validation(lot: LotRuntime, ticket_id: str, *, code: str, attendant: str) -> dict:
    """Apply a merchant validation code once per ticket."""
    attendant, code = _need(attendant, "attendant"), _need(code, "validation code")
    async with lot.ledger.transaction() as tx:
        row = await _open_ticket(tx, ticket_id)
        if code in json.loads(row["validations"]):
            raise ConflictError(f"validation {code} is already applied to {ticket_id}")
        # an unknown code must not reach exit (codes of the tariff the ticket locked)
        resolve_validations(ticket_tariff(lot.cfg, row, lot.tariffs), [code])
        await tx.append(NewEvent(type="ticket.validation_applied", payload={
            "ticket_id": ticket_id, "code": code, "attendant": attendant}))
    return await ticket_with_fee(lot, ticket_id)


async def pay_cash(lot: LotRuntime, ticket_id: str, *, amount_cents: int, attendant: str,
                   tendered_cents: int | None = None) -> dict:
    """Record a cash payment of the fee due (for shift reconciliation), with the cash tendered
    and the change handed back; refused when the cash tendered does not cover the fee."""
    attendant = _need(attendant, "attendant")
    ticket = await ticket_with_fee(lot, ticket_id)
    due = ticket["fee"]["due_cents"]
    if amount_cents != due:
        raise InputError(f"amount {amount_cents} does not match the {due} cents due")
    tendered = amount_cents if tendered_cents is None else tendered_cents
    change = change_cents(due_cents=due, tendered_cents=tendered)
    async with lot.ledger.transaction() as tx:
        await _open_ticket(tx, ticket_id)
        key = f"cash:{ticket_id}:{amount_cents}"
        await tx.append(NewEvent(type="payment.recorded", payload={
            "payment_id": "P" + uuid.uuid4().hex[:12].upper(), "ticket_id": ticket_id,
            "idempotency_key": key, "amount_cents": amount_cents, "method": "cash",
            "status": "captured", "attendant": attendant, "tendered_cents": tendered,
            "change_cents": change}))
        await tx.append(NewEvent(type="ticket.paid", payload={
            "ticket_id": ticket_id, "amount_cents": amount_cents,
            "fee_cents": ticket["fee"]["total_cents"] if ticket["override_cents"] is None
            else ticket["override_cents"], "method": "cash", "attendant": attendant}))
    paid = await ticket_with_fee(lot, ticket_id)
    paid["cash"] = {"amount_cents": amount_cents, "tendered_cents": tendered,
                    "change_cents": change}
    return paid


async def lost_ticket(lot: LotRuntime, ticket_id: str, *, attendant: str) -> dict:
    """The driver lost the paper of this ticket: its fee becomes the tariff's lost-ticket fee
    (or the recorded stay's fee if higher), recorded as an override with reason "lost ticket"
    so the cash or card payment that follows is for that amount."""
    attendant = _need(attendant, "attendant")
    ticket = await ticket_with_fee(lot, ticket_id)
    fee = ticket["lost_fee_cents"]
    async with lot.ledger.transaction() as tx:
        await _open_ticket(tx, ticket_id)
        await tx.append(NewEvent(type="ticket.fee_overridden", payload={
            "ticket_id": ticket_id, "fee_cents": fee, "attendant": attendant,
            "reason": "lost ticket", "lost": True}))
    return await ticket_with_fee(lot, ticket_id)


async def tickets_without_plate(lot: LotRuntime, *, lane: str | None, after: datetime,
                                before: datetime, limit: int = 50) -> list[dict]:
    """Cars inside with no plate read (ticket printed at entry), entered within [after,
    before) at `lane` (any lane when None), newest first: how the booth finds the ticket of a
    car whose driver lost the paper."""
    if before <= after:
        raise InputError("the entry time window is empty (from must be before to)")
    rows = await lot.ledger.fetchall(
        "SELECT * FROM tickets WHERE status IN ('OPEN', 'PAID') AND plate IS NULL "
        "AND entry_utc >= ? AND entry_utc < ? ORDER BY entry_utc DESC",
        (after.astimezone(UTC).isoformat(), before.astimezone(UTC).isoformat()))
    return [dict(r) for r in rows if lane is None or r["entry_lane"] == lane][:limit]


async def void_ticket(lot: LotRuntime, ticket_id: str, *, attendant: str, reason: str) -> dict:
    """Void a ticket (frees its space; audited)."""
    attendant, reason = _need(attendant, "attendant"), _need(reason, "reason")
    async with lot.ledger.transaction() as tx:
        await _open_ticket(tx, ticket_id, vacated_ok=False)  # its space is free already
        await tx.append(NewEvent(type="ticket.voided", payload={
            "ticket_id": ticket_id, "attendant": attendant, "reason": reason}))
    return {"ticket_id": ticket_id, "status": "VOID"}

"""Offline card payments: reconciled when the processor is reachable again, and reported."""

from __future__ import annotations

import uuid
from typing import Any

from appliance.core.events import NewEvent
from appliance.ledger import Ledger
from appliance.lot.runtime import LotRuntime


async def reconcile_offline(lot: LotRuntime) -> dict[str, int]:
    """Settle offline approvals with the terminal; an uncollectable one becomes an invoice."""
    results = lot.terminal.settle_offline()
    settled = failed = 0
    for key, collected in results.items():
        async with lot.ledger.transaction() as tx:
            row = await tx.fetchone(
                "SELECT p.ticket_id, p.amount_cents, t.plate FROM payments p "
                "LEFT JOIN tickets t ON t.id = p.ticket_id "
                "WHERE p.idempotency_key = ? AND p.offline = 1 AND p.reconciled = 0", (key,))
            if row is None:
                continue
            await tx.append(NewEvent(type="payment.settled", payload={
                "idempotency_key": key, "ticket_id": row["ticket_id"],
                "amount_cents": row["amount_cents"],
                "status": "settled" if collected else "uncollectable"}))
            if collected:
                settled += 1
                continue
            failed += 1
            await tx.append(NewEvent(type="invoice.created", payload={
                "invoice_id": "I" + uuid.uuid4().hex[:12].upper(),
                "ticket_id": row["ticket_id"], "plate": row["plate"],
                "amount_cents": row["amount_cents"],
                "reason": "offline card payment could not be collected"}))
    return {"settled": settled, "uncollectable": failed}


async def offline_report(ledger: Ledger) -> list[dict[str, Any]]:
    """Every offline-approved payment: pending, settled, or 'offline, unable to collect'."""
    rows = await ledger.fetchall(
        "SELECT p.ticket_id, p.amount_cents, p.status, p.reconciled, p.ts_utc, t.plate "
        "FROM payments p LEFT JOIN tickets t ON t.id = p.ticket_id WHERE p.offline = 1 "
        "ORDER BY p.seq")
    out = []
    for r in rows:
        state = ("pending" if not r["reconciled"] else
                 "offline, unable to collect" if r["status"] == "uncollectable" else "settled")
        out.append({"ticket_id": r["ticket_id"], "plate": r["plate"],
                    "amount_cents": r["amount_cents"], "when_utc": r["ts_utc"], "state": state})
    return out

"""Entry and exit decisions: each one ledger transaction (read, decide with the core, append)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from appliance.availability import POOLS_SQL, pools_from_rows
from appliance.config import LotConfig
from appliance.core.allocation import FreeSpot, choose_pool, choose_spot
from appliance.core.events import NewEvent
from appliance.core.fees import compute_fee
from appliance.core.pricing import entry_rate_multiplier
from appliance.core.types import LotMode, SpotType, VehicleType
from appliance.ledger import Ledger
from drivers.payment import PaymentResult, PaymentTerminal

PAYMENT_TIMEOUT_S = 20.0


def new_ticket_id() -> str:
    """A short, unique, printable ticket id (goes into the QR code)."""
    return "T" + uuid.uuid4().hex[:12].upper()


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """A lane decision: open or not, and why."""

    allow: bool
    reason: str
    ticket_id: str | None = None
    spot_id: str | None = None
    level: str | None = None
    fee_cents: int = 0
    print_ticket: bool = False


async def admit(ledger: Ledger, cfg: LotConfig, *, lane: str, plate: str | None,
                confidence: float, vehicle_type: VehicleType = VehicleType.REGULAR,
                is_ev: bool = False, at: datetime) -> Outcome:
    """Decide an entry: allocate, issue the ticket and command the gate, in one transaction."""
    async with ledger.transaction() as tx:
        if plate:
            inside = await tx.fetchone(
                "SELECT id FROM tickets WHERE plate = ? AND status = 'OPEN'", (plate,))
            if inside is not None:
                await tx.append(NewEvent(type="entry.refused", payload={
                    "lane": lane, "plate": plate, "reason": "passback",
                    "open_ticket": inside["id"]}), at=at)
                return Outcome(allow=False, reason="already inside (anti-passback)")
        pools = pools_from_rows(await tx.fetchall(POOLS_SQL))
        strategy = cfg.lot.allocation
        spot_id = None
        if cfg.lot.mode == LotMode.PER_SPOT:
            rows = await tx.fetchall(
                "SELECT s.id, s.level_id, s.type, s.distance_cm, l.position FROM spots s "
                "JOIN levels l ON l.id = s.level_id WHERE s.state = 'AVAILABLE'")
            free = [FreeSpot(id=r[0], level=r[1], spot_type=SpotType(r[2]), distance_cm=r[3],
                             level_position=r[4]) for r in rows]
            spot = choose_spot(free, vehicle_type, strategy=strategy, is_ev=is_ev, pools=pools)
            level, spot_type = (spot.level, spot.spot_type) if spot else (None, None)
            spot_id = spot.id if spot else None
        else:
            pool = choose_pool(pools, vehicle_type, strategy=strategy, is_ev=is_ev)
            level, spot_type = (pool.level, pool.spot_type) if pool else (None, None)
        if level is None or spot_type is None:
            await tx.append(NewEvent(type="entry.refused", payload={
                "lane": lane, "plate": plate, "reason": "full",
                "vehicle_type": str(vehicle_type)}), at=at)
            return Outcome(allow=False, reason="FULL")
        ticket_id = new_ticket_id()
        # Dynamic pricing: the multiplier in force now is locked on the ticket for its exit.
        capacity = sum(p.capacity for p in pools)
        occupancy = (Fraction(min(sum(p.occupied for p in pools), capacity), capacity)
                     if capacity else None)
        rate = entry_rate_multiplier(cfg.tariff, occupancy=occupancy, at=at)
        await tx.append(NewEvent(type="ticket.issued", payload={
            "ticket_id": ticket_id, "plate": plate, "plate_confidence": round(confidence, 3),
            "vehicle_type": str(vehicle_type), "is_ev": is_ev, "level": level,
            "spot_type": str(spot_type), "spot_id": spot_id, "lane": lane,
            "entry_utc": at.isoformat(), "rate_multiplier": str(rate),
            "printed": plate is None}), at=at)
        await tx.append(NewEvent(type="gate.open_commanded", payload={
            "lane": lane, "reason": "entry", "ticket_id": ticket_id}), at=at)
    return Outcome(allow=True, reason="entry", ticket_id=ticket_id, spot_id=spot_id, level=level,
                   print_ticket=plate is None)


def idempotency_key(ticket_id: str, amount_cents: int) -> str:
    """Payment idempotency key derived from ticket and amount: a retry never charges twice."""
    return hashlib.sha256(f"{ticket_id}:{amount_cents}".encode()).hexdigest()[:32]


async def release(ledger: Ledger, cfg: LotConfig, *, lane: str, plate: str | None,
                  scanned_ticket: str | None, terminal: PaymentTerminal,
                  at: datetime) -> Outcome:
    """Decide an exit: match the ticket, charge, record, open. Never traps a car."""
    row = None
    if scanned_ticket:
        row = await ledger.fetchone(
            "SELECT * FROM tickets WHERE id = ? AND status = 'OPEN'", (scanned_ticket,))
    if row is None and plate:
        row = await ledger.fetchone(
            "SELECT * FROM tickets WHERE plate = ? AND status = 'OPEN' ORDER BY entry_utc DESC",
            (plate,))
    if row is None:
        return await _release_unmatched(ledger, cfg, lane=lane, plate=plate, terminal=terminal,
                                        at=at)
    ticket_id = row["id"]
    fee = compute_fee(
        cfg.tariff, entry=datetime.fromisoformat(row["entry_utc"]), exit=at,
        spot_type=SpotType(row["spot_type"]), tz=cfg.lot.tz,
        rate_multiplier=Decimal(row["rate_multiplier"]),
    )
    result = await _charge(terminal, ticket_id, fee.total_cents)
    async with ledger.transaction() as tx:
        paid = await _record_payment(tx, ticket_id=ticket_id, plate=row["plate"], lane=lane,
                                     amount_cents=fee.total_cents, result=result, at=at)
        await tx.append(NewEvent(type="ticket.closed", payload={
            "ticket_id": ticket_id, "lane": lane, "exit_utc": at.isoformat(),
            "fee_cents": fee.total_cents, "paid_cents": paid,
            "duration_minutes": fee.duration_minutes,
            "breakdown": [{"label": b.label, "amount_cents": b.amount_cents}
                          for b in fee.breakdown]}), at=at)
        await tx.append(NewEvent(type="gate.open_commanded", payload={
            "lane": lane, "reason": "exit", "ticket_id": ticket_id}), at=at)
    return Outcome(allow=True, reason="exit paid" if paid == fee.total_cents else "exit invoiced",
                   ticket_id=ticket_id, fee_cents=fee.total_cents)


async def _release_unmatched(ledger: Ledger, cfg: LotConfig, *, lane: str, plate: str | None,
                             terminal: PaymentTerminal, at: datetime) -> Outcome:
    amount = cfg.tariff.lost_ticket_fee_cents
    ref = "LOST-" + uuid.uuid4().hex[:10].upper()
    result = await _charge(terminal, ref, amount)
    async with ledger.transaction() as tx:
        await tx.append(NewEvent(type="exit.unmatched", payload={
            "lane": lane, "plate": plate, "reference": ref, "fee_cents": amount}), at=at)
        await _record_payment(tx, ticket_id=ref, plate=plate, lane=lane, amount_cents=amount,
                              result=result, at=at)
        await tx.append(NewEvent(type="gate.open_commanded", payload={
            "lane": lane, "reason": "exit lost ticket", "ticket_id": None}), at=at)
    return Outcome(allow=True, reason="exit lost ticket", fee_cents=amount)


async def _charge(terminal: PaymentTerminal, ref: str, amount_cents: int) -> PaymentResult | None:
    if amount_cents <= 0:
        return None
    try:
        return await asyncio.wait_for(
            terminal.charge(idempotency_key=idempotency_key(ref, amount_cents),
                            amount_cents=amount_cents),
            PAYMENT_TIMEOUT_S,
        )
    except (TimeoutError, OSError) as err:
        return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                             reason=f"terminal unavailable: {type(err).__name__}")


async def _record_payment(tx, *, ticket_id: str, plate: str | None, lane: str,
                          amount_cents: int, result: PaymentResult | None, at: datetime) -> int:
    """Record the payment attempt; on failure raise an invoice (the gate opens anyway)."""
    if result is None:
        return 0
    await tx.append(NewEvent(type="payment.recorded", payload={
        "payment_id": "P" + uuid.uuid4().hex[:12].upper(), "ticket_id": ticket_id,
        "idempotency_key": idempotency_key(ticket_id, amount_cents),
        "amount_cents": amount_cents, "method": "card", "status": result.status,
        "processor_token": result.processor_token, "last4": result.last4,
        "brand": result.brand, "offline": result.offline, "lane": lane}), at=at)
    if result.approved:
        return amount_cents
    await tx.append(NewEvent(type="invoice.created", payload={
        "invoice_id": "I" + uuid.uuid4().hex[:12].upper(), "ticket_id": ticket_id,
        "plate": plate, "amount_cents": amount_cents,
        "reason": result.reason or result.status, "lane": lane}), at=at)
    return 0

"""Entry and exit decisions: read, decide with the pure core, then one ledger transaction that
appends the decision's events (ticket, payment, invoice, gate command) before the gate moves.

Never trap a car: at exit every path ends with the gate open; what could not be collected
becomes an invoice and a flag on the plate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from appliance.config import LotConfig
from appliance.core.allocation import FreeSpot, Pool, choose_pool, choose_spot, preference
from appliance.core.entry_policy import EntryFacts, EntryKind, classify_entry
from appliance.core.events import NewEvent
from appliance.core.fees import compute_fee
from appliance.core.money import format_cents, round_cents
from appliance.core.plates import best_match
from appliance.core.pricing import entry_rate_multiplier
from appliance.core.reservations import Reservation, holdback, match_reservation, walk_in_pools
from appliance.core.tariff import Tariff
from appliance.core.types import AllocationStrategy, LotMode, SpotType, VehicleType
from appliance.errors import DeviceError
from appliance.ledger import Ledger, Tx
from appliance.lot.alarms import raise_alarm_in
from appliance.lot.availability import POOLS_SQL, pools_from_rows
from appliance.lot.tariffs import TariffBook
from drivers.payment import PaymentResult, PaymentTerminal

PAYMENT_TIMEOUT_S = 20.0


def new_ticket_id() -> str:
    """A short, unique, printable ticket id (goes into the QR code)."""
    return "T" + uuid.uuid4().hex[:12].upper()


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:12].upper()


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """A lane decision: open or not, and why."""

    allow: bool
    reason: str
    ticket_id: str | None = None
    spot_id: str | None = None
    level: str | None = None
    fee_cents: int = 0
    paid_cents: int = 0
    print_ticket: bool = False
    kind: str = ""
    message: str = ""


# --- entry -----------------------------------------------------------------------------------
async def _lists_for(reader, plate: str | None, max_distance: int) -> frozenset[str]:
    if not plate:
        return frozenset()
    rows = await reader.fetchall("SELECT list FROM plate_lists WHERE plate = ?", (plate,))
    if rows or max_distance == 0:
        return frozenset(r[0] for r in rows)
    plates = [r[0] for r in await reader.fetchall("SELECT DISTINCT plate FROM plate_lists")]
    match = best_match(plate, plates, max_distance=max_distance)
    if match is None:
        return frozenset()
    rows = await reader.fetchall("SELECT list FROM plate_lists WHERE plate = ?", (match,))
    return frozenset(r[0] for r in rows)


def _reservation(row) -> Reservation:
    return Reservation(id=row["id"], spot_type=SpotType(row["spot_type"]),
                       start=datetime.fromisoformat(row["start_utc"]),
                       end=datetime.fromisoformat(row["end_utc"]), status=row["status"],
                       plate=row["plate"], code=row["code"], level=row["level_id"],
                       spot_id=row["spot_id"])


async def confirmed_reservations(reader, *, now: datetime, horizon: timedelta) -> list[Reservation]:
    """Confirmed reservations that start before now + horizon and have not ended."""
    rows = await reader.fetchall(
        "SELECT * FROM reservations WHERE status = 'CONFIRMED' AND start_utc < ? AND end_utc > ?",
        ((now + horizon).isoformat(), (now - horizon).isoformat()))
    return [_reservation(r) for r in rows]


# A ticket's spot reads empty: the spot is allocated to the ticket, its sensor reads AVAILABLE
# (`s` spots joined to `t` tickets on the spot's ticket).
_SPOT_READS_EMPTY = ("s.state = 'OCCUPIED' AND s.sensor_state = 'AVAILABLE' "
                     "AND t.status IN ('OPEN', 'PAID')")
# ... and its car has left it: the sensor saw a car there after the ticket's entry. Otherwise
# the car never reached its spot (it parked elsewhere, or left before a sensor poll).
_SEEN_SINCE_ENTRY = "s.sensor_occupied_utc > t.entry_utc"
LEFT_ITS_SPOT = f"{_SPOT_READS_EMPTY} AND {_SEEN_SINCE_ENTRY}"


async def vacate(tx: Tx, *, ticket_id: str, at: datetime, reason: str,
                 vacant_before: datetime | None = None,
                 unparked_before: datetime | None = None) -> bool:
    """Release a ticket whose car left its spot unseen by any exit (`ticket.vacated`); False
    when it is no longer open or its spot does not say the car left (before `vacant_before`).

    With `unparked_before`, a ticket entered before then whose spot never sensed its car is
    released too (`never_parked`): only the entry lane passes it, when the ticket's plate is
    back at an entry, which says the car is outside now whatever spot it used.
    """
    row = await tx.fetchone(
        "SELECT t.id, t.plate, t.entry_utc, s.id AS spot_id, s.sensor_seen_utc, "
        f"COALESCE({_SEEN_SINCE_ENTRY}, 0) AS left_it FROM tickets t "
        f"JOIN spots s ON s.ticket_id = t.id WHERE t.id = ? AND {_SPOT_READS_EMPTY}",
        (ticket_id,))
    if row is None:
        return False
    if row["left_it"]:
        if vacant_before is not None and row["sensor_seen_utc"] >= vacant_before.isoformat():
            return False
    elif unparked_before is None or row["entry_utc"] >= unparked_before.isoformat():
        return False
    await tx.append(NewEvent(type="ticket.vacated", payload={
        "ticket_id": row["id"], "plate": row["plate"], "spot_id": row["spot_id"],
        "vacant_since_utc": row["sensor_seen_utc"] if row["left_it"] else row["entry_utc"],
        "never_parked": not row["left_it"], "reason": reason}), at=at)
    if not row["left_it"]:  # most likely a missed exit, but the attendant should look
        await raise_alarm_in(tx, code="never_parked", source=row["id"], detail=(
            f"plate {row['plate'] or '?'} (ticket {row['id']}) was never sensed at spot "
            f"{row['spot_id']}: a missed exit, or the plate in use on two cars"))
    return True


async def _entry_facts(reader, cfg: LotConfig, *, plate: str | None, code: str | None,
                       at: datetime) -> EntryFacts:
    policy = cfg.policy
    inside = None
    if plate:
        row = await reader.fetchone(
            "SELECT id FROM tickets WHERE plate = ? AND status IN ('OPEN', 'PAID')", (plate,))
        inside = row["id"] if row else None
    horizon = timedelta(minutes=max(policy.reservation_early_minutes,
                                    policy.reservation_grace_minutes))
    reservations = await confirmed_reservations(reader, now=at, horizon=horizon)
    reservation = match_reservation(
        reservations, plate=plate, code=code, now=at,
        early=timedelta(minutes=policy.reservation_early_minutes),
        grace=timedelta(minutes=policy.reservation_grace_minutes))
    return EntryFacts(plate=plate, lists=await _lists_for(reader, plate,
                                                          policy.plate_match_distance),
                      reservation=reservation, inside_ticket=inside, passback=policy.passback)


async def admit(ledger: Ledger, cfg: LotConfig, *, lane: str, plate: str | None,
                confidence: float, vehicle_type: VehicleType = VehicleType.REGULAR,
                is_ev: bool = False, at: datetime, code: str | None = None,
                terminal: PaymentTerminal | None = None, monotonic_s: float | None = None,
                clock_epoch: str | None = None, tariffs: TariffBook | None = None) -> Outcome:
    """Decide an entry: policy, allocation, ticket and gate command, in one transaction.

    A prepay-required plate is first seen inside the transaction; the card is then authorised
    outside it (a terminal may take seconds) and the decision is taken again under the lock.
    The ticket locks the tariff in force (`tariffs`; the config's tariff when None).
    """
    book = tariffs or TariffBook(cfg.tariff)
    authorization: PaymentResult | None = None
    while True:
        outcome = await _admit_once(ledger, cfg, lane=lane, plate=plate, confidence=confidence,
                                    vehicle_type=vehicle_type, is_ev=is_ev, at=at, code=code,
                                    authorization=authorization,
                                    can_authorize=authorization is None and terminal is not None,
                                    monotonic_s=monotonic_s, clock_epoch=clock_epoch,
                                    book=book)
        if outcome is not None:
            return outcome
        amount = cfg.policy.prepay_authorization_cents or book.in_force.tariff.daily_max_cents
        authorization = await _call_terminal(
            terminal, "authorize", f"prepay:{plate}:{at.date().isoformat()}", amount)


async def _admit_once(ledger: Ledger, cfg: LotConfig, *, lane: str, plate: str | None,
                      confidence: float, vehicle_type: VehicleType, is_ev: bool, at: datetime,
                      code: str | None, authorization: PaymentResult | None,
                      can_authorize: bool, book: TariffBook, monotonic_s: float | None = None,
                      clock_epoch: str | None = None) -> Outcome | None:
    """One decision under the write lock; None when a prepay authorisation must come first."""
    async def decide(tx: Tx) -> Outcome | None:  # runs in the database thread (Ledger.run)
        locked = book.in_force
        facts = await _entry_facts(tx, cfg, plate=plate, code=code, at=at)
        release_min = cfg.policy.vacated_release_minutes
        if facts.inside_ticket is not None and cfg.lot.mode == LotMode.PER_SPOT and await vacate(
                tx, ticket_id=facts.inside_ticket, at=at,
                unparked_before=at - timedelta(minutes=release_min) if release_min else None,
                reason=f"plate {plate} back at {lane}; its spot sensed empty, no exit matched"):
            # not a passback: the car left its spot (or never reached it, and has been gone
            # longer than the release window) unseen by the exits, and is back
            facts = dataclasses.replace(facts, inside_ticket=None)
        verdict = classify_entry(facts)
        if verdict.needs_prepay_authorization and authorization is None and can_authorize:
            return None
        if verdict.needs_prepay_authorization and not (authorization and authorization.approved):
            verdict_reason = "prepay required: card not authorised"
            await tx.append(NewEvent(type="entry.refused", payload={
                "lane": lane, "plate": plate, "reason": "prepay_unauthorised",
                "detail": authorization.reason if authorization else "no terminal"}), at=at)
            return Outcome(allow=False, reason=verdict_reason, kind=str(verdict.kind))
        if not verdict.allow:
            await tx.append(NewEvent(type="entry.refused", payload={
                "lane": lane, "plate": plate, "reason": str(verdict.kind),
                "open_ticket": facts.inside_ticket}), at=at)
            if verdict.alarm:
                await raise_alarm_in(tx, code=verdict.alarm, source=f"{lane}:{plate}",
                                     detail=verdict.reason, severity="critical"
                                     if verdict.kind == EntryKind.BLOCKED else "warning")
            return Outcome(allow=False, reason=verdict.reason, kind=str(verdict.kind))
        if facts.inside_ticket is not None:  # soft anti-passback: allow and log
            await tx.append(NewEvent(type="entry.passback_allowed", payload={
                "lane": lane, "plate": plate, "open_ticket": facts.inside_ticket}), at=at)
        placed = await _allocate(tx, cfg, vehicle_type=vehicle_type, is_ev=is_ev,
                                 has_permit="handicap" in facts.lists, verdict_kind=verdict.kind,
                                 reservation=facts.reservation, ignore_full=verdict.ignore_full,
                                 at=at)
        if placed is None:
            await tx.append(NewEvent(type="entry.refused", payload={
                "lane": lane, "plate": plate, "reason": "full",
                "vehicle_type": str(vehicle_type)}), at=at)
            return Outcome(allow=False, reason="FULL", kind="full", message="LOT FULL - SORRY")
        level, spot_type, spot_id, pools = placed
        ticket_id = new_ticket_id()
        multiplier = _rate_multiplier(locked.tariff, pools, at)
        await tx.append(NewEvent(type="ticket.issued", payload={
            "ticket_id": ticket_id, "plate": plate, "plate_confidence": round(confidence, 3),
            "vehicle_type": str(vehicle_type), "is_ev": is_ev, "level": level,
            "spot_type": str(spot_type), "spot_id": spot_id, "lane": lane,
            "entry_utc": at.isoformat(),
            "rate_multiplier": str(multiplier), "tariff_id": locked.id,
            "kind": str(verdict.kind),
            "reservation_id": facts.reservation.id if facts.reservation else None,
            "printed": plate is None,
            "entry_mono_s": monotonic_s, "clock_epoch": clock_epoch,
            "prepay_token": authorization.processor_token if authorization else None}), at=at)
        if facts.reservation is not None:
            await tx.append(NewEvent(type="reservation.arrived", payload={
                "reservation_id": facts.reservation.id, "ticket_id": ticket_id}), at=at)
        await tx.append(NewEvent(type="gate.open_commanded", payload={
            "lane": lane, "reason": str(verdict.kind), "ticket_id": ticket_id}), at=at)
        rate = round_cents(Decimal(locked.tariff.hourly_cents) * multiplier)
        where = f"{level} {spot_id}" if spot_id else str(level)
        return Outcome(allow=True, reason=verdict.reason, ticket_id=ticket_id, spot_id=spot_id,
                       level=level, print_ticket=plate is None, kind=str(verdict.kind),
                       message=f"WELCOME - {where} - {format_cents(rate, cfg.lot.currency)}/h")

    return await ledger.run(decide)


def _rate_multiplier(tariff: Tariff, pools: list[Pool], at: datetime) -> Decimal:
    """The multiplier locked on the ticket at entry (occupancy before this car x events)."""
    capacity = sum(p.capacity for p in pools)
    occupancy = (Fraction(min(sum(p.occupied for p in pools), capacity), capacity)
                 if capacity else None)
    return entry_rate_multiplier(tariff, occupancy=occupancy, at=at)


_NEAREST_FREE_IN_POOL = (
    "SELECT * FROM (SELECT s.id, s.level_id, s.type, s.distance_cm, l.position FROM spots s "
    "JOIN levels l ON l.id = s.level_id WHERE s.state = 'AVAILABLE' AND s.level_id = ? "
    "AND s.type = ? AND s.sensor_state != 'OCCUPIED' ORDER BY s.distance_cm, s.id LIMIT 1)"
)


async def nearest_free_per_pool(tx: Tx, pools: list[Pool]) -> list:
    """The nearest free spot of each (level, type) pool, in one indexed query."""
    if not pools:
        return []
    sql = " UNION ALL ".join([_NEAREST_FREE_IN_POOL] * len(pools))
    params = [v for p in pools for v in (p.level, str(p.spot_type))]
    return await tx.fetchall(sql, params)


async def _allocate(tx: Tx, cfg: LotConfig, *, vehicle_type: VehicleType, is_ev: bool,
                    has_permit: bool, verdict_kind: EntryKind, reservation: Reservation | None,
                    ignore_full: bool, at: datetime):
    pools = list(pools_from_rows(await tx.fetchall(POOLS_SQL)))
    strategy = cfg.lot.allocation
    seen = pools
    if verdict_kind == EntryKind.WALK_IN and strategy == AllocationStrategy.RESERVATION_AWARE:
        upcoming = await confirmed_reservations(
            tx, now=at, horizon=timedelta(minutes=cfg.policy.walk_in_expected_stay_minutes))
        held = holdback(upcoming, now=at, expected_stay=timedelta(
            minutes=cfg.policy.walk_in_expected_stay_minutes))
        seen = walk_in_pools(pools, held)
    base = AllocationStrategy.NEAREST if strategy == AllocationStrategy.RESERVATION_AWARE \
        else strategy
    if reservation is not None:
        vehicle_ok = [reservation.spot_type]
    else:
        vehicle_ok = preference(vehicle_type, is_ev=is_ev, has_permit=has_permit)
    if cfg.lot.mode == LotMode.PER_SPOT:
        if reservation is not None and reservation.spot_id:
            row = await tx.fetchone(
                "SELECT id, level_id, type FROM spots WHERE id = ? AND state = 'AVAILABLE' "
                "AND sensor_state != 'OCCUPIED'", (reservation.spot_id,))
            if row is not None:
                return row["level_id"], SpotType(row["type"]), row["id"], pools
        # Every strategy picks the nearest free spot of the (level, type) pool it chooses, so
        # the nearest free spot per pool is all the core needs to see (not every free spot).
        rows = await nearest_free_per_pool(
            tx, [p for p in seen if p.spot_type in vehicle_ok and p.free > 0])
        free = [FreeSpot(id=r[0], level=r[1], spot_type=SpotType(r[2]), distance_cm=r[3],
                         level_position=r[4]) for r in rows]
        free_by_pool = {(p.level, p.spot_type): p.free for p in seen}
        usable = [s for s in free if s.spot_type in vehicle_ok
                  and free_by_pool.get((s.level, s.spot_type), 0) > 0]
        spot = choose_spot(usable, vehicle_type, strategy=base, is_ev=is_ev,
                           has_permit=has_permit, pools=pools) if reservation is None else (
            min(usable, key=lambda s: (s.distance_cm, s.id)) if usable else None)
        if spot is not None:
            return spot.level, spot.spot_type, spot.id, pools
    else:
        candidates = [p for p in seen if p.spot_type in vehicle_ok]
        pool = choose_pool(candidates, vehicle_type, strategy=base, is_ev=is_ev,
                           has_permit=has_permit) if reservation is None else next(
            (p for p in candidates if p.free > 0), None)
        if pool is not None:
            return pool.level, pool.spot_type, None, pools
    if ignore_full:
        fallback = [p for p in pools if p.spot_type in vehicle_ok] or pools
        if fallback:
            best = min(fallback, key=lambda p: (-p.free, p.level_position))
            return best.level, best.spot_type, None, pools
    return None


# --- exit ------------------------------------------------------------------------------------
def idempotency_key(ticket_id: str, amount_cents: int) -> str:
    """Payment idempotency key derived from ticket and amount: a retry never charges twice."""
    return hashlib.sha256(f"{ticket_id}:{amount_cents}".encode()).hexdigest()[:32]


async def find_ticket(reader, cfg: LotConfig, *, plate: str | None, scanned: str | None):
    """The ticket for a vehicle at an exit: an open (or paid) one by scanned id, exact plate,
    then tolerant plate; else a VACATED one (released when its spot's sensor saw the car go and
    no exit matched it) by scanned id or exact plate: the car was here after all, so it pays
    its own stay rather than a lost-ticket fee."""
    # literal conditions, the same as the partial indexes' (a bound status would not use them)
    for where, tolerant in (("status IN ('OPEN', 'PAID')", True), ("status = 'VACATED'", False)):
        if scanned:
            row = await reader.fetchone(f"SELECT * FROM tickets WHERE id = ? AND {where}",
                                        (scanned,))
            if row is not None:
                return row, "scanned"
        if not plate:
            continue
        row = await reader.fetchone(
            f"SELECT * FROM tickets WHERE plate = ? AND {where} ORDER BY entry_utc DESC LIMIT 1",
            (plate,))
        if row is not None:
            return row, "plate"
        if tolerant and cfg.policy.plate_match_distance:
            plates = [r[0] for r in await reader.fetchall(
                f"SELECT plate FROM tickets WHERE {where} AND plate IS NOT NULL")]
            match = best_match(plate, plates, max_distance=cfg.policy.plate_match_distance)
            if match is not None:
                row = await reader.fetchone(
                    f"SELECT * FROM tickets WHERE plate = ? AND {where}", (match,))
                return row, "plate~"
    return None, "none"


def ticket_tariff(cfg: LotConfig, row, tariffs: TariffBook | None) -> Tariff:
    """The tariff a ticket row is priced with: the one it locked at entry."""
    return tariffs.get(row["tariff_id"]) if tariffs is not None else cfg.tariff


def fee_due(cfg: LotConfig, row, at: datetime, *, monotonic_s: float | None = None,
            clock_epoch: str | None = None,
            tariffs: TariffBook | None = None) -> tuple[int, int, list[dict], int]:
    """(fee, due, breakdown, duration_minutes) for a ticket row at time `at`, priced with the
    tariff the ticket locked at entry (looked up in `tariffs`; the config's when None).

    When the entry's monotonic reading is from the same clock epoch (same boot), the stay is
    measured on the monotonic clock, so an NTP step of the wall clock neither adds nor removes
    parked time; otherwise (a reboot in between) the wall clocks are compared."""
    entry = datetime.fromisoformat(row["entry_utc"])
    if (monotonic_s is not None and clock_epoch is not None and row["clock_epoch"] == clock_epoch
            and row["entry_mono_s"] is not None):
        at = entry + timedelta(seconds=max(0.0, monotonic_s - row["entry_mono_s"]))
    # A wall clock stepped back behind the entry (NTP) counts as no time parked, not a failure.
    fee = compute_fee(ticket_tariff(cfg, row, tariffs), entry=entry, exit=max(at, entry),
                      spot_type=SpotType(row["spot_type"]), tz=cfg.lot.tz,
                      rate_multiplier=Decimal(row["rate_multiplier"]),
                      validations=tuple(json.loads(row["validations"])))
    total = fee.total_cents if row["override_cents"] is None else row["override_cents"]
    breakdown = [{"label": b.label, "amount_cents": b.amount_cents} for b in fee.breakdown]
    if row["override_cents"] is not None:
        breakdown.append({"label": "attendant override", "amount_cents": total - fee.total_cents})
    due = max(0, total - row["paid_cents"])
    if row["status"] in ("PAID", "VACATED") and row["paid_utc"]:
        paid_at = datetime.fromisoformat(row["paid_utc"])
        if at - paid_at <= timedelta(minutes=cfg.policy.prepaid_exit_grace_minutes):
            due = 0
    return total, due, breakdown, fee.duration_minutes


async def release(ledger: Ledger, cfg: LotConfig, *, lane: str, plate: str | None,
                  scanned_ticket: str | None, terminal: PaymentTerminal | None,
                  at: datetime, monotonic_s: float | None = None,
                  clock_epoch: str | None = None, tariffs: TariffBook | None = None) -> Outcome:
    """Decide an exit: match the ticket, charge, record, open. Never traps a car."""
    row, how = await find_ticket(ledger, cfg, plate=plate, scanned=scanned_ticket)
    if row is None:
        tariff = tariffs.in_force.tariff if tariffs is not None else cfg.tariff
        return await _release_unmatched(ledger, cfg, lane=lane, plate=plate, terminal=terminal,
                                        at=at, lost_fee_cents=tariff.lost_ticket_fee_cents)
    ticket_id = row["id"]
    total, due, breakdown, minutes = fee_due(cfg, row, at, monotonic_s=monotonic_s,
                                             clock_epoch=clock_epoch, tariffs=tariffs)
    # Key on ticket + amount already paid + amount due: a retry of this exit reuses it.
    result = await _charge(terminal, f"{ticket_id}:{row['paid_cents']}", due)

    async def close(tx: Tx) -> int:  # runs in the database thread (Ledger.run)
        current = await tx.fetchone("SELECT status FROM tickets WHERE id = ?", (ticket_id,))
        paid = 0
        if current is not None and current["status"] in ("OPEN", "PAID", "VACATED"):
            paid = await _record_payment(tx, cfg, ticket_id=ticket_id,
                                         key_ref=f"{ticket_id}:{row['paid_cents']}",
                                         plate=row["plate"] or plate, lane=lane,
                                         amount_cents=due, result=result, at=at)
            await tx.append(NewEvent(type="ticket.closed", payload={
                "ticket_id": ticket_id, "lane": lane, "exit_utc": at.isoformat(),
                "fee_cents": total, "paid_cents": paid, "due_cents": due,
                "duration_minutes": minutes, "matched_by": how, "exit_plate": plate,
                "breakdown": breakdown}), at=at)
        await tx.append(NewEvent(type="gate.open_commanded", payload={
            "lane": lane, "reason": "exit", "ticket_id": ticket_id}), at=at)
        return paid

    paid = await ledger.run(close)
    reason = "exit paid" if paid == due else "exit invoiced"
    return Outcome(allow=True, reason=reason, ticket_id=ticket_id, fee_cents=due,
                   paid_cents=paid, kind="exit")


async def _release_unmatched(ledger: Ledger, cfg: LotConfig, *, lane: str, plate: str | None,
                             terminal: PaymentTerminal | None, at: datetime,
                             lost_fee_cents: int) -> Outcome:
    amount = lost_fee_cents
    ref = "LOST-" + uuid.uuid4().hex[:10].upper()
    result = await _charge(terminal, ref, amount)

    async def record(tx: Tx) -> int:  # runs in the database thread (Ledger.run)
        await tx.append(NewEvent(type="exit.unmatched", payload={
            "lane": lane, "plate": plate, "reference": ref, "fee_cents": amount}), at=at)
        paid = await _record_payment(tx, cfg, ticket_id=ref, key_ref=ref, plate=plate, lane=lane,
                                     amount_cents=amount, result=result, at=at)
        await tx.append(NewEvent(type="gate.open_commanded", payload={
            "lane": lane, "reason": "exit lost ticket", "ticket_id": None}), at=at)
        return paid

    paid = await ledger.run(record)
    return Outcome(allow=True, reason="exit lost ticket", fee_cents=amount, paid_cents=paid,
                   kind="lost")


async def _call_terminal(terminal: PaymentTerminal | None, op: str, ref: str,
                         amount_cents: int) -> PaymentResult:
    if terminal is None:
        return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                             reason="no payment terminal")
    try:
        async with asyncio.timeout(PAYMENT_TIMEOUT_S):  # not wait_for: see lanes.py
            return await getattr(terminal, op)(
                idempotency_key=idempotency_key(ref, amount_cents), amount_cents=amount_cents)
    except TimeoutError:
        return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                             reason="terminal timeout")
    except (DeviceError, OSError) as err:
        return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                             reason=f"terminal unavailable: {err}")


async def _charge(terminal: PaymentTerminal | None, ref: str,
                  amount_cents: int) -> PaymentResult | None:
    """Authorise then capture; None when nothing is due."""
    if amount_cents <= 0:
        return None
    auth = await _call_terminal(terminal, "authorize", ref, amount_cents)
    if not auth.approved:
        return auth
    return await _call_terminal(terminal, "capture", ref, amount_cents)


async def _record_payment(tx: Tx, cfg: LotConfig, *, ticket_id: str, key_ref: str,
                          plate: str | None, lane: str, amount_cents: int,
                          result: PaymentResult | None, at: datetime) -> int:
    """Record the payment attempt; on failure an invoice and a flag on the plate."""
    if result is None:
        return 0
    await tx.append(NewEvent(type="payment.recorded", payload={
        "payment_id": _new_id("P"), "ticket_id": ticket_id,
        "idempotency_key": idempotency_key(key_ref, amount_cents),
        "amount_cents": amount_cents, "method": "card", "status": result.status,
        "processor_token": result.processor_token, "last4": result.last4,
        "brand": result.brand, "offline": result.offline, "reason": result.reason,
        "lane": lane}), at=at)
    if result.approved and result.status == "captured":
        return amount_cents
    await tx.append(NewEvent(type="invoice.created", payload={
        "invoice_id": _new_id("I"), "ticket_id": ticket_id, "plate": plate,
        "amount_cents": amount_cents, "reason": result.reason or result.status,
        "lane": lane}), at=at)
    if plate:
        flagged = await tx.fetchone(
            "SELECT 1 FROM plate_lists WHERE plate = ? AND list = 'flagged'", (plate,))
        if flagged is None:
            await tx.append(NewEvent(type="plate.listed", payload={
                "plate": plate, "list": "flagged", "source": "invoices",
                "note": "unpaid invoice"}), at=at)
        unpaid = await tx.fetchone(
            "SELECT COUNT(*) AS n FROM invoices WHERE plate = ? AND status = 'UNPAID'", (plate,))
        listed = await tx.fetchone(
            "SELECT 1 FROM plate_lists WHERE plate = ? AND list = 'prepay'", (plate,))
        if unpaid["n"] >= cfg.policy.unpaid_invoices_for_prepay and listed is None:
            await tx.append(NewEvent(type="plate.listed", payload={
                "plate": plate, "list": "prepay", "source": "invoices",
                "note": f"{unpaid['n']} unpaid invoices"}), at=at)
    return 0

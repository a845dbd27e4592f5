"""How each event type changes the ledger's tables (applied in the event's own transaction).

Event types without an entry here are pure facts (gate commands, plate reads, ...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from appliance.core.events import REDACTED, Event, canonical_json


class Tx(Protocol):
    """What a projection may do inside the event's transaction (`store.Tx` provides it)."""

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Run one statement."""

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Rows of a query."""

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """First row of a query or None."""


Projection = Callable[[Tx, Event], Awaitable[None]]
PROJECTIONS: dict[str, Projection] = {}


def projects(event_type: str) -> Callable[[Projection], Projection]:
    """Register the projection of one event type."""

    def register(fn: Projection) -> Projection:
        PROJECTIONS[event_type] = fn
        return fn

    return register


@projects("lot.configured")
async def _lot_configured(tx: Tx, ev: Event) -> None:
    p: dict[str, Any] = ev.payload
    lot = p["lot"]
    await tx.execute(
        "INSERT INTO lots(id, name, timezone, currency, mode) VALUES (?,?,?,?,?) "
        "ON CONFLICT(id) DO UPDATE SET name=excluded.name, timezone=excluded.timezone, "
        "currency=excluded.currency, mode=excluded.mode",
        (lot["id"], lot["name"], lot["timezone"], lot["currency"], lot["mode"]),
    )
    for pos, level in enumerate(p["levels"]):
        await tx.execute(
            "INSERT INTO levels(id, name, position) VALUES (?,?,?) ON CONFLICT(id) DO UPDATE "
            "SET name=excluded.name, position=excluded.position",
            (level["id"], level["name"], pos),
        )
    await tx.execute("UPDATE capacity SET capacity = 0")
    for row in p["capacity"]:
        await tx.execute(
            "INSERT INTO capacity(level_id, spot_type, capacity) VALUES (?,?,?) "
            "ON CONFLICT(level_id, spot_type) DO UPDATE SET capacity=excluded.capacity",
            (row["level"], row["spot_type"], row["capacity"]),
        )
    for spot in p["spots"]:
        await tx.execute(
            "INSERT INTO spots(id, level_id, type, distance_cm, sensor) VALUES (?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET level_id=excluded.level_id, type=excluded.type, "
            "distance_cm=excluded.distance_cm, sensor=excluded.sensor",
            (spot["id"], spot["level"], spot["type"], spot["distance_cm"], spot["sensor"]),
        )


@projects("tariff.adopted")
async def _tariff_adopted(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute("INSERT INTO tariffs(id, source, adopted_seq, body) VALUES (?,?,?,?) "
                     "ON CONFLICT(id) DO NOTHING",
                     (p["tariff_id"], p["source"], ev.seq, canonical_json(p["tariff"])))


@projects("ticket.issued")
async def _ticket_issued(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "INSERT INTO tickets(id, plate, vehicle_type, is_ev, level_id, spot_type, spot_id, "
        "entry_lane, entry_utc, status, rate_multiplier, entry_seq, kind, reservation_id) "
        "VALUES (?,?,?,?,?,?,?,?,?,'OPEN',?,?,?,?)",
        (
            p["ticket_id"], p["plate"], p["vehicle_type"], int(p.get("is_ev", False)),
            p["level"], p["spot_type"], p.get("spot_id"), p.get("lane"), p["entry_utc"],
            p.get("rate_multiplier", "1"), ev.seq, p.get("kind", "walk_in"),
            p.get("reservation_id"),
        ),
    )
    await tx.execute(
        "UPDATE capacity SET occupied = occupied + 1 WHERE level_id = ? AND spot_type = ?",
        (p["level"], p["spot_type"]),
    )
    if p.get("entry_mono_s") is not None or p.get("tariff_id") is not None:
        await tx.execute("UPDATE tickets SET entry_mono_s = ?, clock_epoch = ?, tariff_id = ? "
                         "WHERE id = ?", (p.get("entry_mono_s"), p.get("clock_epoch"),
                                          p.get("tariff_id"), p["ticket_id"]))
    if p.get("spot_id"):
        await tx.execute(
            "UPDATE spots SET state = 'OCCUPIED', ticket_id = ? WHERE id = ?",
            (p["ticket_id"], p["spot_id"]),
        )
    if p.get("plate"):
        await tx.execute(
            "INSERT INTO vehicles(plate, vehicle_type, is_ev, first_seen_utc, last_seen_utc) "
            "VALUES (?,?,?,?,?) ON CONFLICT(plate) DO UPDATE SET last_seen_utc=excluded.last_seen_utc",
            (p["plate"], p["vehicle_type"], int(p.get("is_ev", False)), p["entry_utc"],
             p["entry_utc"]),
        )


@projects("ticket.closed")
async def _ticket_closed(tx: Tx, ev: Event) -> None:
    p = ev.payload
    row = await tx.fetchone(
        "SELECT level_id, spot_type, spot_id, status FROM tickets WHERE id = ?", (p["ticket_id"],)
    )
    if row is None or row["status"] not in ("OPEN", "PAID", "VACATED"):
        raise ValueError(f"ticket {p['ticket_id']} is not open")
    await tx.execute(
        "UPDATE tickets SET status = 'CLOSED', exit_lane = ?, exit_utc = ?, fee_cents = ?, "
        "paid_cents = paid_cents + ?, exit_seq = ? WHERE id = ?",
        (p.get("lane"), p["exit_utc"], p["fee_cents"], p.get("paid_cents", 0), ev.seq,
         p["ticket_id"]),
    )
    await tx.execute("UPDATE reservations SET status = 'COMPLETED' WHERE ticket_id = ?",
                     (p["ticket_id"],))
    if row["status"] == "VACATED":
        return  # its count and spot were released when its spot's sensor saw the car leave
    await _release_place(tx, row)


async def _release_place(tx: Tx, row) -> None:
    """A ticket no longer holds its level's count or its spot."""
    await tx.execute(
        "UPDATE capacity SET occupied = occupied - 1 WHERE level_id = ? AND spot_type = ? "
        "AND occupied > 0",
        (row["level_id"], row["spot_type"]),
    )
    if row["spot_id"]:
        await tx.execute(
            "UPDATE spots SET state = 'AVAILABLE', ticket_id = NULL WHERE id = ?", (row["spot_id"],)
        )


@projects("payment.recorded")
async def _payment_recorded(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "INSERT INTO payments(id, ticket_id, idempotency_key, amount_cents, method, status, "
        "processor_token, last4, brand, offline, ts_utc, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            p["payment_id"], p["ticket_id"], p["idempotency_key"], p["amount_cents"], p["method"],
            p["status"], p.get("processor_token"), p.get("last4"), p.get("brand"),
            int(p.get("offline", False)), ev.ts_utc.isoformat(), ev.seq,
        ),
    )


@projects("invoice.created")
async def _invoice_created(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "INSERT INTO invoices(id, ticket_id, plate, amount_cents, reason, status, ts_utc, seq) "
        "VALUES (?,?,?,?,?,'UNPAID',?,?)",
        (p["invoice_id"], p.get("ticket_id"), p.get("plate"), p["amount_cents"], p["reason"],
         ev.ts_utc.isoformat(), ev.seq),
    )
    if p.get("plate"):
        await tx.execute(
            "UPDATE vehicles SET unpaid_invoices = unpaid_invoices + 1 WHERE plate = ?",
            (p["plate"],),
        )


@projects("spot.state_changed")
async def _spot_state_changed(tx: Tx, ev: Event) -> None:
    # A sensor's view of a spot (OCCUPIED / AVAILABLE / UNKNOWN).
    p = ev.payload
    if p["state"] not in ("OCCUPIED", "AVAILABLE", "UNKNOWN"):
        raise ValueError(f"spot.state_changed: state {p['state']!r} is not a sensor state")
    # The sensor's view is kept apart from the allocation (state/ticket_id): a car parked in
    # the wrong spot must not free the spot its ticket was given.
    await tx.execute(
        "UPDATE spots SET sensor_state = ?, sensor_seen_utc = ? WHERE id = ?",
        (p["state"], ev.ts_utc.isoformat(), p["spot_id"]),
    )
    if p["state"] == "OCCUPIED":
        await tx.execute("UPDATE spots SET sensor_occupied_utc = ? WHERE id = ?",
                         (ev.ts_utc.isoformat(), p["spot_id"]))


@projects("alarm.raised")
async def _alarm_raised(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "INSERT INTO alarms(id, code, source, severity, detail, raised_utc, raised_seq) "
        "VALUES (?,?,?,?,?,?,?)",
        (p["alarm_id"], p["code"], p["source"], p.get("severity", "warning"), p.get("detail", ""),
         ev.ts_utc.isoformat(), ev.seq),
    )


@projects("alarm.cleared")
async def _alarm_cleared(tx: Tx, ev: Event) -> None:
    await tx.execute("UPDATE alarms SET cleared_utc = ? WHERE id = ?",
                     (ev.ts_utc.isoformat(), ev.payload["alarm_id"]))


@projects("alarm.acknowledged")
async def _alarm_acknowledged(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute("UPDATE alarms SET acked_by = ?, acked_note = ?, acked_utc = ? WHERE id = ?",
                     (p["attendant"], p.get("note", ""), ev.ts_utc.isoformat(), p["alarm_id"]))


@projects("ticket.fee_overridden")
async def _fee_overridden(tx: Tx, ev: Event) -> None:
    await tx.execute("UPDATE tickets SET override_cents = ? WHERE id = ?",
                     (ev.payload["fee_cents"], ev.payload["ticket_id"]))


@projects("ticket.validation_applied")
async def _validation_applied(tx: Tx, ev: Event) -> None:
    import json

    row = await tx.fetchone("SELECT validations FROM tickets WHERE id = ?",
                            (ev.payload["ticket_id"],))
    codes = json.loads(row["validations"]) if row else []
    codes.append(ev.payload["code"])
    await tx.execute("UPDATE tickets SET validations = ? WHERE id = ?",
                     (json.dumps(codes), ev.payload["ticket_id"]))


@projects("ticket.paid")
async def _ticket_paid(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        # a VACATED ticket paid at the pay station stays VACATED: its place is free already
        "UPDATE tickets SET status = CASE status WHEN 'VACATED' THEN 'VACATED' ELSE 'PAID' END, "
        "paid_cents = paid_cents + ?, fee_cents = ?, "
        "paid_utc = ? WHERE id = ? AND status IN ('OPEN', 'PAID', 'VACATED')",
        (p["amount_cents"], p["fee_cents"], ev.ts_utc.isoformat(), p["ticket_id"]),
    )


@projects("ticket.voided")
async def _ticket_voided(tx: Tx, ev: Event) -> None:
    await _end_unexited(tx, ev, "VOID")


@projects("ticket.vacated")
async def _ticket_vacated(tx: Tx, ev: Event) -> None:
    # The spot's sensor saw the car leave and no exit matched the ticket (an exit camera that
    # missed the plate): the ticket stops holding a count and a spot, but an exit that reads
    # its plate later still closes (and charges) it.
    await _end_unexited(tx, ev, "VACATED")
    await tx.execute("UPDATE reservations SET status = 'COMPLETED' WHERE ticket_id = ?",
                     (ev.payload["ticket_id"],))


async def _end_unexited(tx: Tx, ev: Event, status: str) -> None:
    """An open ticket ends without an exit (voided, vacated): status, note, its place freed."""
    p = ev.payload
    row = await tx.fetchone(
        "SELECT level_id, spot_type, spot_id, status FROM tickets WHERE id = ?", (p["ticket_id"],))
    if row is None or row["status"] not in ("OPEN", "PAID"):
        raise ValueError(f"{ev.type}: ticket {p['ticket_id']} is not open")
    await tx.execute("UPDATE tickets SET status = ?, note = ?, exit_seq = ? WHERE id = ?",
                     (status, p.get("reason", ""), ev.seq, p["ticket_id"]))
    await _release_place(tx, row)


@projects("plate.listed")
async def _plate_listed(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "INSERT INTO plate_lists(plate, list, source, note, valid_from_utc, valid_to_utc) "
        "VALUES (?,?,?,?,?,?) ON CONFLICT(plate, list) DO UPDATE SET source=excluded.source, "
        "note=excluded.note, valid_from_utc=excluded.valid_from_utc, "
        "valid_to_utc=excluded.valid_to_utc",
        (p["plate"], p["list"], p.get("source", "local"), p.get("note", ""),
         p.get("valid_from_utc"), p.get("valid_to_utc")),
    )


@projects("plate.unlisted")
async def _plate_unlisted(tx: Tx, ev: Event) -> None:
    await tx.execute("DELETE FROM plate_lists WHERE plate = ? AND list = ?",
                     (ev.payload["plate"], ev.payload["list"]))


@projects("reservation.created")
async def _reservation_created(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "INSERT INTO reservations(id, plate, code, spot_type, level_id, spot_id, start_utc, "
        "end_utc, status, created_utc) VALUES (?,?,?,?,?,?,?,?,'CONFIRMED',?) "
        "ON CONFLICT(id) DO UPDATE SET plate=excluded.plate, code=excluded.code, "
        "spot_type=excluded.spot_type, level_id=excluded.level_id, spot_id=excluded.spot_id, "
        "start_utc=excluded.start_utc, end_utc=excluded.end_utc",
        (p["reservation_id"], p.get("plate"), p.get("code"), p["spot_type"], p.get("level"),
         p.get("spot_id"), p["start_utc"], p["end_utc"], ev.ts_utc.isoformat()),
    )


async def _reservation_status(tx: Tx, ev: Event, status: str) -> None:
    await tx.execute("UPDATE reservations SET status = ?, ticket_id = COALESCE(?, ticket_id) "
                     "WHERE id = ?", (status, ev.payload.get("ticket_id"),
                                      ev.payload["reservation_id"]))


@projects("reservation.arrived")
async def _reservation_arrived(tx: Tx, ev: Event) -> None:
    await _reservation_status(tx, ev, "ARRIVED")


@projects("reservation.no_show")
async def _reservation_no_show(tx: Tx, ev: Event) -> None:
    await _reservation_status(tx, ev, "NO_SHOW")


@projects("reservation.cancelled")
async def _reservation_cancelled(tx: Tx, ev: Event) -> None:
    await _reservation_status(tx, ev, "CANCELLED")


@projects("counts.reset")
async def _counts_reset(tx: Tx, ev: Event) -> None:
    p = ev.payload
    for row in p["counts"]:
        await tx.execute("UPDATE capacity SET occupied = ? WHERE level_id = ? AND spot_type = ?",
                         (row["occupied"], p["level"], row["spot_type"]))


@projects("payment.settled")
async def _payment_settled(tx: Tx, ev: Event) -> None:
    await tx.execute("UPDATE payments SET reconciled = 1, status = ? WHERE idempotency_key = ?",
                     (ev.payload["status"], ev.payload["idempotency_key"]))


@projects("attendant.added")
async def _attendant_added(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "INSERT INTO attendants(id, name, role, added_utc, added_seq) VALUES (?,?,?,?,?)",
        (p["attendant_id"], p["name"], p["role"], ev.ts_utc.isoformat(), ev.seq))
    legacy = p.get("pin_hash")  # events written before secrets left the log carried the hash
    if legacy and legacy != REDACTED:
        await tx.execute(
            "INSERT INTO credentials(attendant_id, secret_hash, updated_utc) VALUES (?,?,?) "
            "ON CONFLICT(attendant_id) DO NOTHING", (p["attendant_id"], legacy,
                                                     ev.ts_utc.isoformat()))


@projects("shift.opened")
async def _shift_opened(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "INSERT INTO shifts(id, attendant_id, opened_utc, opened_seq) VALUES (?,?,?,?)",
        (p["shift_id"], p["attendant"], ev.ts_utc.isoformat(), ev.seq))


@projects("shift.closed")
async def _shift_closed(tx: Tx, ev: Event) -> None:
    p = ev.payload
    await tx.execute(
        "UPDATE shifts SET closed_utc = ?, closed_seq = ?, closed_by = ?, expected_cents = ?, "
        "counted_cents = ?, difference_cents = ? WHERE id = ? AND closed_utc IS NULL",
        (ev.ts_utc.isoformat(), ev.seq, p.get("closed_by"), p["expected_cents"],
         p["counted_cents"], p["difference_cents"], p["shift_id"]))

"""A car whose exit missed its plate: the spot's sensor saw it leave, so housekeeping releases
its ticket's spot and count (`ticket.vacated`); an exit that reads the plate later still charges
it. Real ledger, real projections, per-spot lot."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from appliance.config import load_config
from appliance.core.events import NewEvent
from appliance.lot import housekeeping
from appliance.lot.tickets import admit, release
from tests.conftest import write_lot

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


async def _enter(service, plate: str, at: datetime) -> tuple[str, str, str, str]:
    out = await admit(service.ledger, service.cfg, lane="in-1", plate=plate, confidence=1.0,
                      at=at, vehicle_type="REGULAR")
    assert out.allow
    row = await service.ledger.fetchone(
        "SELECT id, spot_id, level_id, spot_type FROM tickets WHERE plate = ?", (plate,))
    return tuple(row)


async def _sensor(service, spot_id: str, state: str, at: datetime) -> None:
    await service.ledger.append(NewEvent(type="spot.state_changed", payload={
        "spot_id": spot_id, "state": state}), at=at)


async def _occupied(service, level: str, spot_type: str) -> int:
    return (await service.ledger.fetchone(
        "SELECT occupied FROM capacity WHERE level_id = ? AND spot_type = ?",
        (level, spot_type)))[0]


async def test_left_unseen_releases_spot_and_count_then_a_late_exit_still_charges(spot_lot_service):
    svc = spot_lot_service
    ticket, spot, level, spot_type = await _enter(svc, "GONE123", T0)
    other, other_spot, other_level, other_type = await _enter(svc, "STAY456", T0)
    assert (level, spot_type) == (other_level, other_type)
    assert await _occupied(svc, level, spot_type) == 2
    await _sensor(svc, spot, "OCCUPIED", T0 + timedelta(minutes=2))
    await _sensor(svc, other_spot, "OCCUPIED", T0 + timedelta(minutes=2))
    await _sensor(svc, spot, "AVAILABLE", T0 + timedelta(minutes=40))  # the car drives off

    minutes = svc.cfg.policy.vacated_release_minutes
    just_before = T0 + timedelta(minutes=40 + minutes - 1)
    assert await housekeeping.release_vacated(svc.runtime, now=just_before) == 0
    after = T0 + timedelta(minutes=40 + minutes + 1)
    assert await housekeeping.release_vacated(svc.runtime, now=after) == 1
    assert await housekeeping.release_vacated(svc.runtime, now=after) == 0  # once

    t = await svc.ledger.fetchone("SELECT status FROM tickets WHERE id = ?", (ticket,))
    assert t[0] == "VACATED"
    s = await svc.ledger.fetchone("SELECT state, ticket_id FROM spots WHERE id = ?", (spot,))
    assert tuple(s) == ("AVAILABLE", None)
    assert await _occupied(svc, level, spot_type) == 1  # the other car still holds its count
    assert (await svc.ledger.fetchone(
        "SELECT status FROM tickets WHERE id = ?", (other,)))[0] == "OPEN"
    ev = await svc.ledger.fetchone(
        "SELECT json_extract(payload, '$.spot_id') FROM events WHERE type = 'ticket.vacated'")
    assert ev[0] == spot

    # the car was still in the lot after all (it moved): its exit charges its own stay
    out = await release(svc.ledger, svc.cfg, lane="out-1", plate="GONE123", scanned_ticket=None,
                        terminal=svc.terminal, at=T0 + timedelta(hours=3))
    assert out.ticket_id == ticket and out.kind == "exit" and out.fee_cents > 0
    t = await svc.ledger.fetchone("SELECT status, fee_cents FROM tickets WHERE id = ?", (ticket,))
    assert t[0] == "CLOSED" and t[1] == out.fee_cents
    assert await _occupied(svc, level, spot_type) == 1  # not released twice
    assert (await svc.ledger.verify()).ok


async def test_spot_never_seen_occupied_or_occupied_again_is_left_alone(spot_lot_service):
    svc = spot_lot_service
    late = T0 + timedelta(hours=2)
    # sensor read AVAILABLE before the car came and never saw it: it parked elsewhere
    ticket_a, spot_a, _, _ = await _enter(svc, "ELSE111", T0)
    await _sensor(svc, spot_a, "OCCUPIED", T0 - timedelta(hours=1))
    await _sensor(svc, spot_a, "AVAILABLE", T0 - timedelta(minutes=30))
    # this car's sensor sees it, loses it, sees it again (a car reversing in)
    ticket_b, spot_b, _, _ = await _enter(svc, "BACK222", T0)
    await _sensor(svc, spot_b, "OCCUPIED", T0 + timedelta(minutes=1))
    await _sensor(svc, spot_b, "AVAILABLE", T0 + timedelta(minutes=2))
    await _sensor(svc, spot_b, "OCCUPIED", T0 + timedelta(minutes=3))
    # a silent sensor (UNKNOWN) is no sign of a car leaving
    ticket_c, spot_c, _, _ = await _enter(svc, "DARK333", T0)
    await _sensor(svc, spot_c, "OCCUPIED", T0 + timedelta(minutes=1))
    await _sensor(svc, spot_c, "UNKNOWN", T0 + timedelta(minutes=5))
    assert await housekeeping.release_vacated(svc.runtime, now=late) == 0
    rows = await svc.ledger.fetchall(
        "SELECT status FROM tickets WHERE id IN (?, ?, ?)", (ticket_a, ticket_b, ticket_c))
    assert [r[0] for r in rows] == ["OPEN"] * 3


async def test_zero_minutes_turns_it_off(spot_lot_service):
    svc = spot_lot_service
    _, spot, _, _ = await _enter(svc, "OFF4444", T0)
    await _sensor(svc, spot, "OCCUPIED", T0 + timedelta(minutes=1))
    await _sensor(svc, spot, "AVAILABLE", T0 + timedelta(minutes=2))
    off = dataclasses.replace(svc.runtime, cfg=dataclasses.replace(svc.cfg, policy=dataclasses.replace(
        svc.cfg.policy, vacated_release_minutes=0)))
    assert await housekeeping.release_vacated(off, now=T0 + timedelta(days=1)) == 0


def test_negative_minutes_is_a_named_config_error(tmp_path):
    from appliance.errors import ConfigError

    path = write_lot(tmp_path, mode="per_spot", per_level=20)
    path.write_text(path.read_text() + "\n[policy]\nvacated_release_minutes = -5\n")
    with pytest.raises(ConfigError, match="vacated_release_minutes"):
        load_config(path)


async def test_plate_back_at_the_entry_after_leaving_its_spot_unseen_is_no_passback(spot_lot_service):
    svc = spot_lot_service
    assert svc.cfg.policy.passback == "hard"
    ticket, spot, level, spot_type = await _enter(svc, "PERM777", T0)
    # still parked: the same plate at an entry is a passback, refused
    await _sensor(svc, spot, "OCCUPIED", T0 + timedelta(minutes=1))
    again = await admit(svc.ledger, svc.cfg, lane="in-1", plate="PERM777", confidence=1.0,
                        at=T0 + timedelta(minutes=5), vehicle_type="REGULAR")
    assert not again.allow
    # it drove off (the exit camera missed it) and is back 3 minutes later, before housekeeping
    # would release the ticket: the old ticket is vacated and the car gets a new one
    await _sensor(svc, spot, "AVAILABLE", T0 + timedelta(minutes=30))
    back = await admit(svc.ledger, svc.cfg, lane="in-1", plate="PERM777", confidence=1.0,
                       at=T0 + timedelta(minutes=33), vehicle_type="REGULAR")
    assert back.allow
    rows = await svc.ledger.fetchall(
        "SELECT id, status FROM tickets WHERE plate = 'PERM777' ORDER BY entry_seq")
    assert [(r[0] == ticket, r[1]) for r in rows] == [(True, "VACATED"), (False, "OPEN")]
    assert await _occupied(svc, level, spot_type) == 1  # one car, one count
    reason = await svc.ledger.fetchone(
        "SELECT json_extract(payload, '$.reason') FROM events WHERE type = 'ticket.vacated'")
    assert "back at in-1" in reason[0]
    assert (await svc.ledger.verify()).ok


async def test_a_vacated_ticket_is_found_and_paid_at_the_pay_station(spot_lot_service):
    from appliance.lot import commands
    from appliance.lot.commands import ConflictError

    svc = spot_lot_service
    ticket, spot, level, spot_type = await _enter(svc, "MOVED12", T0)
    await _sensor(svc, spot, "OCCUPIED", T0 + timedelta(minutes=2))
    await _sensor(svc, spot, "AVAILABLE", T0 + timedelta(minutes=30))  # the car moved spots
    later = T0 + timedelta(minutes=30 + svc.cfg.policy.vacated_release_minutes + 1)
    assert await housekeeping.release_vacated(svc.runtime, now=later) == 1
    assert await _occupied(svc, level, spot_type) == 0

    # the driver at the pay station: by ticket and by plate; partial plates do not reach it
    assert [t["id"] for t in await commands.search_tickets(svc.runtime, query=ticket)] == [ticket]
    found = await commands.search_tickets(svc.runtime, query="moved12")
    assert [(t["id"], t["status"]) for t in found] == [(ticket, "VACATED")]
    assert await commands.search_tickets(svc.runtime, query="MOVED") == []
    # the attendant cannot void it: its space is free already
    with pytest.raises(ConflictError, match="VACATED"):
        await commands.void_ticket(svc.runtime, ticket, attendant="ann", reason="gone")

    # pay_cash prices the ticket at the service clock's now: pay what that says is due
    now_due = (await commands.ticket_with_fee(svc.runtime, ticket))["fee"]["due_cents"]
    assert now_due > 0
    await commands.pay_cash(svc.runtime, ticket, amount_cents=now_due, attendant="paystation-1")
    row = await svc.ledger.fetchone(
        "SELECT status, paid_cents, paid_utc FROM tickets WHERE id = ?", (ticket,))
    assert row["status"] == "VACATED" and row["paid_cents"] == now_due and row["paid_utc"]
    assert await _occupied(svc, level, spot_type) == 0  # paying does not take the place back

    # it drives out within the grace period: nothing more to pay, closed once, count untouched
    exit_at = datetime.fromisoformat(row["paid_utc"]) + timedelta(minutes=5)
    out = await release(svc.ledger, svc.cfg, lane="out-1", plate="MOVED12", scanned_ticket=None,
                        terminal=svc.terminal, at=exit_at)
    assert out.ticket_id == ticket and out.paid_cents == 0
    t = await svc.ledger.fetchone("SELECT status, paid_cents FROM tickets WHERE id = ?", (ticket,))
    assert tuple(t) == ("CLOSED", now_due)
    assert await _occupied(svc, level, spot_type) == 0
    assert (await svc.ledger.verify()).ok


async def test_plate_back_after_never_reaching_its_spot_is_released_after_the_window(
        spot_lot_service):
    """A car that left before its spot's sensor saw it (or parked elsewhere) and whose exit
    missed the plate: its plate back at the entry is no passback once the ticket is older than
    `vacated_release_minutes`; the old ticket is vacated as never parked, with an alarm."""
    svc = spot_lot_service
    minutes = svc.cfg.policy.vacated_release_minutes
    assert svc.cfg.policy.passback == "hard" and minutes > 0
    ticket, spot, level, spot_type = await _enter(svc, "QUICK88", T0)
    await _sensor(svc, spot, "AVAILABLE", T0 + timedelta(seconds=1))  # never sensed a car
    # back inside the window: the car may be parked in another spot, so a passback
    early = await admit(svc.ledger, svc.cfg, lane="in-1", plate="QUICK88", confidence=1.0,
                        at=T0 + timedelta(minutes=minutes - 1), vehicle_type="REGULAR")
    assert not early.allow and early.kind == "passback"
    assert (await svc.ledger.fetchone(
        "SELECT status FROM tickets WHERE id = ?", (ticket,)))[0] == "OPEN"
    # back after it: the old ticket is vacated (never parked), an alarm raised, a new ticket
    back = await admit(svc.ledger, svc.cfg, lane="in-1", plate="QUICK88", confidence=1.0,
                       at=T0 + timedelta(minutes=minutes + 1), vehicle_type="REGULAR")
    assert back.allow
    rows = await svc.ledger.fetchall(
        "SELECT id, status FROM tickets WHERE plate = 'QUICK88' ORDER BY entry_seq")
    assert [(r[0] == ticket, r[1]) for r in rows] == [(True, "VACATED"), (False, "OPEN")]
    assert await _occupied(svc, level, spot_type) == 1  # one car, one count
    ev = await svc.ledger.fetchone(
        "SELECT json_extract(payload, '$.never_parked') FROM events WHERE type = 'ticket.vacated'")
    assert ev[0] == 1
    alarm = await svc.ledger.fetchall(
        "SELECT source, detail FROM alarms WHERE code = 'never_parked' AND cleared_utc IS NULL")
    assert [a[0] for a in alarm] == [ticket] and spot in alarm[0][1]
    # housekeeping still leaves a never-sensed ticket alone (no plate at an entry to say so)
    other, other_spot, _, _ = await _enter(svc, "ELSE999", T0)
    await _sensor(svc, other_spot, "AVAILABLE", T0 + timedelta(seconds=2))
    assert await housekeeping.release_vacated(svc.runtime, now=T0 + timedelta(days=1)) == 0
    assert (await svc.ledger.fetchone(
        "SELECT status FROM tickets WHERE id = ?", (other,)))[0] == "OPEN"
    assert (await svc.ledger.verify()).ok


async def test_an_unknown_sensor_never_releases_a_never_parked_ticket(spot_lot_service):
    svc = spot_lot_service
    ticket, spot, _, _ = await _enter(svc, "DARK444", T0)
    await _sensor(svc, spot, "UNKNOWN", T0 + timedelta(seconds=1))  # the bus went quiet
    again = await admit(svc.ledger, svc.cfg, lane="in-1", plate="DARK444", confidence=1.0,
                        at=T0 + timedelta(hours=5), vehicle_type="REGULAR")
    assert not again.allow and again.kind == "passback"
    assert (await svc.ledger.fetchone(
        "SELECT status FROM tickets WHERE id = ?", (ticket,)))[0] == "OPEN"

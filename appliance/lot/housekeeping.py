"""Periodic checks of the running lot: reservation no-shows and overstays, long stays,
counter drift between sensors, loops and tickets; and explicit count resets."""

from __future__ import annotations

from datetime import datetime, timedelta

from appliance.core.events import NewEvent
from appliance.core.types import LotMode, SpotType
from appliance.errors import InputError
from appliance.lot.alarms import clear_alarm, raise_alarm
from appliance.lot.payments import reconcile_offline
from appliance.lot.reservations import release_no_shows
from appliance.lot.runtime import LotRuntime
from appliance.lot.tickets import LEFT_ITS_SPOT, vacate


async def run_checks(lot: LotRuntime, *, now: datetime | None = None) -> dict[str, int]:
    """One round of every check; returns how many alarms/changes each produced."""
    now = now or lot.clock.now()
    ledger, cfg = lot.ledger, lot.cfg
    result = {"no_shows": len(await release_no_shows(ledger, cfg, now=now))}
    result["reservation_overstay"] = await check_reservation_conflicts(lot, now=now)
    result["overstay"] = await check_overstays(lot, now=now)
    result["vacated"] = await release_vacated(lot, now=now)
    result["drift"] = await check_drift(lot)
    result["offline_payments"] = sum((await reconcile_offline(lot)).values())
    result["recount"] = await nightly_recount(lot, now=now)
    result["disk_low"] = await check_disk(lot)
    return result


async def check_disk(lot: LotRuntime) -> int:
    """Free space on the data disk below `[storage] min_free_bytes`: an alarm while writes still
    work (a full disk stops the ledger; the gates keep opening but nothing is recorded)."""
    import os

    stat = os.statvfs(lot.data_dir)
    free = stat.f_bavail * stat.f_frsize
    limit = lot.cfg.storage.min_free_bytes
    source = str(lot.data_dir)
    if free < limit:
        raised = await raise_alarm(lot.ledger, code="disk_low", source=source,
                                   severity="critical",
                                   detail=f"{free / 1024**2:.1f} MiB free on the data disk "
                                          f"(alarm below {limit / 1024**2:.0f} MiB)")
        return int(raised is not None)
    await clear_alarm(lot.ledger, code="disk_low", source=source)
    return 0


async def nightly_recount(lot: LotRuntime, *, now: datetime) -> int:
    """Per-spot lots: once a night (03:00 lot time) set each level's counts from its sensors."""
    if lot.cfg.lot.mode != LotMode.PER_SPOT:
        return 0
    local = now.astimezone(lot.cfg.lot.tz)
    if local.hour != 3:
        return 0
    today = local.date().isoformat()
    if await lot.ledger.get_meta("last_recount_date") == today:
        return 0
    done = await recount_from_sensors(lot)
    async with lot.ledger.transaction() as tx:
        await tx.execute("INSERT INTO meta(key, value) VALUES ('last_recount_date', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (today,))
    return len(done)


async def check_reservation_conflicts(lot: LotRuntime, *, now: datetime) -> int:
    """Alarm when a reservation about to start finds no room: its spot or type is taken."""
    ledger = lot.ledger
    soon = (now + timedelta(minutes=15)).isoformat()
    rows = await ledger.fetchall(
        "SELECT * FROM reservations WHERE status = 'CONFIRMED' AND start_utc <= ? "
        "AND end_utc > ?", (soon, now.isoformat()))
    raised = 0
    for r in rows:
        if r["spot_id"]:
            spot = await ledger.fetchone("SELECT ticket_id FROM spots WHERE id = ?",
                                         (r["spot_id"],))
            blocked = spot is not None and spot["ticket_id"] is not None
        else:
            free = await ledger.fetchone(
                "SELECT COALESCE(SUM(capacity - occupied), 0) FROM capacity WHERE spot_type = ?",
                (r["spot_type"],))
            blocked = free[0] <= 0
        if blocked and await raise_alarm(
                ledger, code="reservation_overstay", source=r["id"],
                detail=f"reservation {r['id']} ({r['spot_type']}) starts at {r['start_utc']} "
                       "but its space is still taken"):
            raised += 1
    return raised


async def check_overstays(lot: LotRuntime, *, now: datetime) -> int:
    """Alarm for tickets open longer than the policy allows."""
    limit = now - timedelta(hours=lot.cfg.policy.overstay_alarm_hours)
    rows = await lot.ledger.fetchall(
        "SELECT id, plate, entry_utc FROM tickets WHERE status = 'OPEN' AND entry_utc < ? "
        "LIMIT 200", (limit.isoformat(),))
    raised = 0
    for r in rows:
        if await raise_alarm(lot.ledger, code="overstay", source=r["id"],
                             detail=f"plate {r['plate'] or '?'} in since {r['entry_utc']}"):
            raised += 1
    return raised


async def release_vacated(lot: LotRuntime, *, now: datetime) -> int:
    """Per-spot lots: release tickets whose car left its spot unseen by any exit.

    An exit camera that misses a plate (and no paper ticket) opens the gate anyway and charges
    the lost-ticket fee, but cannot tell which ticket left: without this its spot and count
    would stay taken for good and the lot would fill up with cars that are gone. A ticket is
    released once its spot's sensor, having seen a car there after the ticket's entry, has read
    AVAILABLE for `[policy] vacated_release_minutes`; an exit that reads its plate later still
    closes and charges it. A spot never seen occupied (the car parked elsewhere) is left alone.
    """
    cfg = lot.cfg
    minutes = cfg.policy.vacated_release_minutes
    if cfg.lot.mode != LotMode.PER_SPOT or minutes == 0:
        return 0
    limit = now - timedelta(minutes=minutes)
    rows = await lot.ledger.fetchall(
        "SELECT t.id, s.id AS spot_id FROM spots s JOIN tickets t ON t.id = s.ticket_id "
        f"WHERE {LEFT_ITS_SPOT} AND s.sensor_seen_utc < ? LIMIT 200", (limit.isoformat(),))
    released = 0
    for r in rows:
        async with lot.ledger.transaction() as tx:  # checked again: an exit may have won
            released += await vacate(
                tx, ticket_id=r["id"], at=now, vacant_before=limit,
                reason=f"spot {r['spot_id']} sensed empty for {minutes} min, no exit matched")
    return released


async def check_drift(lot: LotRuntime) -> int:
    """Compare sensors (per level) and loop passages (whole lot) with open tickets."""
    ledger, cfg = lot.ledger, lot.cfg
    tolerance = cfg.policy.drift_tolerance
    raised = 0
    if cfg.lot.mode == LotMode.PER_SPOT:
        rows = await ledger.fetchall(
            "SELECT s.level_id, SUM(s.sensor_state = 'OCCUPIED'), SUM(s.sensor_state = 'UNKNOWN'),"
            " COUNT(*) FROM spots s GROUP BY s.level_id")
        for level, sensed, unknown, total in rows:
            if unknown == total:
                continue  # no sensor data on this level: counter arithmetic only
            tickets = await ledger.fetchone(
                "SELECT COALESCE(SUM(occupied), 0) FROM capacity WHERE level_id = ?", (level,))
            diff = abs(sensed - tickets[0])
            if diff > tolerance + unknown:
                if await raise_alarm(ledger, code="counter_drift", source=f"level:{level}",
                                     detail=f"sensors see {sensed} occupied, tickets say "
                                            f"{tickets[0]} ({unknown} sensors unknown)"):
                    raised += 1
            else:
                await clear_alarm(ledger, code="counter_drift", source=f"level:{level}")
    # Loops: vehicles counted in minus out since start-up vs the change in open tickets.
    entered = sum(c.stats.vehicles_passed for c in lot.lanes.values()
                  if c.lane.direction == "entry")
    exited = sum(c.stats.vehicles_passed for c in lot.lanes.values()
                 if c.lane.direction == "exit")
    open_now = (await ledger.fetchone(
        "SELECT COUNT(*) FROM tickets WHERE status IN ('OPEN', 'PAID')"))[0]
    drift = (entered - exited) - (open_now - lot.open_tickets_at_start)
    if abs(drift) > tolerance:
        if await raise_alarm(ledger, code="counter_drift", source="loops",
                             detail=f"loops counted {entered - exited:+d} vehicles since start-up, "
                                    f"open tickets changed by {open_now - lot.open_tickets_at_start:+d}"):
            raised += 1
    else:
        await clear_alarm(ledger, code="counter_drift", source="loops")
    return raised


async def reset_counts(lot: LotRuntime, *, level: str, counts: dict[str, int], attendant: str,
                       reason: str) -> dict:
    """Set a level's occupied counts after a walk-through (audited event)."""
    if not attendant.strip() or not reason.strip():
        raise InputError("attendant and reason are required")
    levels = {lvl.id for lvl in lot.cfg.levels}
    if level not in levels:
        raise InputError(f"unknown level {level!r}")
    rows = []
    for spot_type, occupied in counts.items():
        SpotType(spot_type)
        if not isinstance(occupied, int) or occupied < 0:
            raise InputError(f"count for {spot_type} must be a non-negative integer")
        rows.append({"spot_type": spot_type, "occupied": occupied})
    async with lot.ledger.transaction() as tx:
        before = {r[0]: r[1] for r in await tx.fetchall(
            "SELECT spot_type, occupied FROM capacity WHERE level_id = ?", (level,))}
        for row in rows:
            if row["spot_type"] not in before:
                raise InputError(f"level {level} has no {row['spot_type']} capacity")
        await tx.append(NewEvent(type="counts.reset", payload={
            "level": level, "counts": rows, "before": before, "attendant": attendant,
            "reason": reason}))
    return {"level": level, "before": before, "after": {r["spot_type"]: r["occupied"]
                                                       for r in rows}}


async def recount_from_sensors(lot: LotRuntime, *, attendant: str = "nightly-recount") -> list:
    """Per-spot lots: set each level's counts to what its sensors see (skips unknown levels)."""
    out = []
    rows = await lot.ledger.fetchall(
        "SELECT level_id, type, SUM(sensor_state = 'OCCUPIED'), SUM(sensor_state = 'UNKNOWN') "
        "FROM spots GROUP BY level_id, type")
    by_level: dict[str, dict[str, int]] = {}
    skip: set[str] = set()
    for level, spot_type, occupied, unknown in rows:
        if unknown:
            skip.add(level)
        by_level.setdefault(level, {})[spot_type] = occupied
    for level, counts in by_level.items():
        if level in skip:
            continue
        out.append(await reset_counts(lot, level=level, counts=counts, attendant=attendant,
                                      reason="scheduled recount from sensors"))
    return out

"""Alarms: raised once per (code, source) while active, cleared when the cause goes away,
acknowledged by an attendant with a note. Each is a ledger event."""

from __future__ import annotations

import uuid
from typing import Any

from appliance.core.events import NewEvent
from appliance.errors import InputError
from appliance.ledger import Ledger, Tx


async def raise_alarm_in(tx: Tx, *, code: str, source: str, detail: str = "",
                         severity: str = "warning") -> str | None:
    """Raise an alarm inside an open transaction unless the same one is already active."""
    active = await tx.fetchone(
        "SELECT id FROM alarms WHERE code = ? AND source = ? AND cleared_utc IS NULL",
        (code, source))
    if active is not None:
        return None
    alarm_id = "A" + uuid.uuid4().hex[:12].upper()
    await tx.append(NewEvent(type="alarm.raised", payload={
        "alarm_id": alarm_id, "code": code, "source": source, "detail": detail,
        "severity": severity}))
    return alarm_id


async def raise_alarm(ledger: Ledger, *, code: str, source: str, detail: str = "",
                      severity: str = "warning") -> str | None:
    """Raise an alarm unless the same one is already active; return its id if new."""
    async with ledger.transaction() as tx:
        return await raise_alarm_in(tx, code=code, source=source, detail=detail,
                                    severity=severity)


async def clear_alarm(ledger: Ledger, *, code: str, source: str) -> bool:
    """Clear the active alarm (code, source) if any."""
    async with ledger.transaction() as tx:
        active = await tx.fetchone(
            "SELECT id FROM alarms WHERE code = ? AND source = ? AND cleared_utc IS NULL",
            (code, source))
        if active is None:
            return False
        await tx.append(NewEvent(type="alarm.cleared", payload={
            "alarm_id": active["id"], "code": code, "source": source}))
        return True


async def acknowledge(ledger: Ledger, *, alarm_id: str, attendant: str, note: str) -> None:
    """An attendant acknowledges an alarm with a note."""
    if not note.strip():
        raise InputError("a note is required to acknowledge an alarm")
    async with ledger.transaction() as tx:
        row = await tx.fetchone("SELECT id FROM alarms WHERE id = ?", (alarm_id,))
        if row is None:
            raise InputError(f"no alarm {alarm_id}")
        await tx.append(NewEvent(type="alarm.acknowledged", payload={
            "alarm_id": alarm_id, "attendant": attendant, "note": note}))


async def list_alarms(ledger: Ledger, *, active_only: bool = True) -> list[dict[str, Any]]:
    """Alarms, newest first."""
    where = "WHERE cleared_utc IS NULL" if active_only else ""
    rows = await ledger.fetchall(f"SELECT * FROM alarms {where} ORDER BY raised_seq DESC LIMIT 500")
    return [dict(r) for r in rows]

"""Reservations in the ledger: validated import, no-show release, overstay alarms."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from appliance.config import LotConfig
from appliance.core.events import NewEvent
from appliance.core.plates import normalise_plate
from appliance.core.reservations import CONFIRMED, Reservation, can_accept, no_shows
from appliance.core.types import SpotType
from appliance.errors import InputError
from appliance.ledger import Ledger


class ReservationRecord(BaseModel):
    """One reservation as imported or synced down (validated at the edge)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    spot_type: SpotType
    start: datetime
    end: datetime
    plate: str | None = None
    code: str | None = None
    level: str | None = None
    spot_id: str | None = None

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        return value

    @field_validator("plate")
    @classmethod
    def _plate(cls, value: str | None) -> str | None:
        return normalise_plate(value) or None if value else None

    @model_validator(mode="after")
    def _check(self) -> ReservationRecord:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if not self.plate and not self.code:
            raise ValueError("a reservation needs a plate or a code")
        return self

    def as_core(self) -> Reservation:
        """The pure value."""
        return Reservation(id=self.id, spot_type=self.spot_type, start=self.start, end=self.end,
                           plate=self.plate, code=self.code, level=self.level,
                           spot_id=self.spot_id)


def parse_records(data: Any, cfg: LotConfig) -> list[ReservationRecord]:
    """Validate a JSON list of reservations; every problem is reported as `[i].field: reason`."""
    if not isinstance(data, list):
        raise InputError("expected a JSON list of reservations")
    records, problems = [], []
    levels = {lvl.id for lvl in cfg.levels}
    spots = {s.id: s for s in cfg.spots}
    for i, raw in enumerate(data):
        try:
            rec = ReservationRecord.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            problems.append(f"[{i}]{'.' + where if where else ''}: "
                            f"{first['msg'].removeprefix('Value error, ')}")
            continue
        if rec.level and rec.level not in levels:
            problems.append(f"[{i}].level: unknown level {rec.level!r}")
        elif rec.spot_id and rec.spot_id not in spots:
            problems.append(f"[{i}].spot_id: unknown spot {rec.spot_id!r}")
        elif rec.spot_id and spots[rec.spot_id].type != rec.spot_type:
            problems.append(f"[{i}].spot_id: spot {rec.spot_id} is not {rec.spot_type}")
        else:
            records.append(rec)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"invalid reservation {problems[0]}{more}")
    return records


async def existing(ledger: Ledger) -> list[Reservation]:
    """Confirmed reservations in the ledger."""
    rows = await ledger.fetchall("SELECT * FROM reservations WHERE status = 'CONFIRMED'")
    return [Reservation(id=r["id"], spot_type=SpotType(r["spot_type"]),
                        start=datetime.fromisoformat(r["start_utc"]),
                        end=datetime.fromisoformat(r["end_utc"]), status=r["status"],
                        plate=r["plate"], code=r["code"], level=r["level_id"],
                        spot_id=r["spot_id"]) for r in rows]


async def import_records(ledger: Ledger, cfg: LotConfig, records: list[ReservationRecord],
                         *, source: str) -> dict[str, int]:
    """Import validated reservations in one transaction; refuse beyond the overbooking limit."""
    async with ledger.transaction() as tx:
        rows = await tx.fetchall("SELECT spot_type, SUM(capacity) FROM capacity GROUP BY spot_type")
        capacity = {SpotType(r[0]): r[1] for r in rows}
        held = await existing(ledger)
        accepted = rejected = 0
        for rec in records:
            core = rec.as_core()
            if not can_accept(core, held, capacity=capacity.get(rec.spot_type, 0),
                              overbooking_factor=cfg.policy.overbooking_factor):
                rejected += 1
                await tx.append(NewEvent(type="reservation.rejected", payload={
                    "reservation_id": rec.id, "reason": "over capacity x overbooking factor",
                    "source": source}))
                continue
            held = [r for r in held if r.id != rec.id] + [core]
            accepted += 1
            await tx.append(NewEvent(type="reservation.created", payload={
                "reservation_id": rec.id, "plate": rec.plate, "code": rec.code,
                "spot_type": str(rec.spot_type), "level": rec.level, "spot_id": rec.spot_id,
                "start_utc": rec.start.isoformat(), "end_utc": rec.end.isoformat(),
                "source": source}))
    return {"accepted": accepted, "rejected": rejected}


async def import_file(ledger: Ledger, cfg: LotConfig, path: Path) -> dict[str, int]:
    """Validate and import a JSON file of reservations (all records valid, or nothing)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read reservations: {err}") from err
    return await import_records(ledger, cfg, parse_records(data, cfg), source=str(path))


async def release_no_shows(ledger: Ledger, cfg: LotConfig, *, now: datetime) -> list[str]:
    """Mark confirmed reservations past their grace as NO_SHOW (frees the held capacity)."""
    grace = timedelta(minutes=cfg.policy.reservation_grace_minutes)
    late = no_shows(await existing(ledger), now=now, grace=grace)
    if not late:
        return []
    async with ledger.transaction() as tx:
        for r in late:
            row = await tx.fetchone("SELECT status FROM reservations WHERE id = ?", (r.id,))
            if row is not None and row["status"] == CONFIRMED:
                await tx.append(NewEvent(type="reservation.no_show", payload={
                    "reservation_id": r.id}))
    return [r.id for r in late]

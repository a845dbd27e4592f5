"""`lotedge quote`: price a stay against a lot's tariff, with the breakdown in words or JSON."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from appliance.core.money import cents_text
from appliance.core.types import SpotType
from appliance.errors import FeeError


def observes_dst(tz: ZoneInfo, year: int) -> bool:
    """Whether the zone's UTC offset changes during `year` (so a naive local time can mislead)."""
    return len({datetime(year, month, 1, tzinfo=tz).utcoffset() for month in range(1, 13)}) > 1


def parse_instant(text: str, tz: ZoneInfo, option: str) -> datetime:
    """An ISO 8601 instant; without an offset it is lot-local time, refused if the lot has DST."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise FeeError(f"{option}: not an ISO 8601 date-time: {text!r}") from err
    if moment.utcoffset() is not None:
        return moment
    if observes_dst(tz, moment.year):
        raise FeeError(f"{option} {text!r} has no UTC offset and {tz.key} observes DST; "
                       f"add one, e.g. {moment.replace(tzinfo=tz).isoformat()}")
    return moment.replace(tzinfo=tz)


def parse_spot_type(text: str) -> SpotType:
    """A spot type name, case-insensitive."""
    try:
        return SpotType(text.strip().upper())
    except ValueError as err:
        raise FeeError(f"unknown spot type {text!r} "
                       f"(one of {', '.join(t.value for t in SpotType)})") from err


def parse_decimal(text: str, option: str, *, low: Decimal, high: Decimal | None) -> Decimal:
    """An exact decimal within [low, high]."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as err:
        raise FeeError(f"{option}: not a number: {text!r}") from err
    if not value.is_finite() or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise FeeError(f"{option}: must be {bound} (got {text})")
    return value


def quote(
    config: Annotated[Path, typer.Option("--config", "-c", help="lot configuration TOML")],
    entry: Annotated[str | None, typer.Option(help="entry time, ISO 8601 with offset")] = None,
    exit_: Annotated[str | None, typer.Option("--exit", help="exit time, ISO 8601 with offset")]
    = None,
    spot_type: Annotated[str, typer.Option("--spot-type", help="spot type, e.g. EV")] = "REGULAR",
    validation: Annotated[list[str] | None, typer.Option(
        "--validation", help="merchant validation code (repeatable, once per code)")] = None,
    occupancy: Annotated[str | None, typer.Option(
        metavar="<decimal 0-1>",
        help="lot occupancy 0.0-1.0 when the ticket was issued (dynamic pricing)")] = None,
    rate_multiplier: Annotated[str | None, typer.Option(
        "--rate-multiplier", metavar="<decimal>", help="the multiplier locked on the ticket (instead of --occupancy)")]
    = None,
    lost_ticket: Annotated[bool, typer.Option(
        "--lost-ticket", help="price an exit with no matching entry")] = False,
    config_tariff: Annotated[bool, typer.Option(
        "--config-tariff", help="price with the config file's tariff even when a cloud bundle "
                                "put another in force")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Price a stay: fee, duration and a line-by-line breakdown.

    The tariff is the one new tickets lock now: a cloud bundle's, read from the lot's ledger
    when there is one, else the config file's (`--config-tariff` forces the file's).
    """
    from appliance.config import load_config
    from appliance.core.fees import compute_fee, lost_ticket_fee
    from appliance.core.pricing import entry_rate_multiplier
    from appliance.lot.tariffs import in_force_on_disk, tariff_id

    cfg = load_config(config)
    if config_tariff:
        tid, source, tariff = tariff_id(cfg.tariff), "config", cfg.tariff
    else:
        locked, source = in_force_on_disk(cfg.db_path(), cfg.tariff)
        tid, tariff = locked.id, locked.tariff
    tz = cfg.lot.tz
    kind = parse_spot_type(spot_type)
    codes = list(validation or [])
    if lost_ticket:
        if entry is not None or codes or occupancy is not None or rate_multiplier is not None:
            raise FeeError("--lost-ticket takes no --entry, --validation, --occupancy "
                           "or --rate-multiplier")
        fee = lost_ticket_fee(tariff)
        entry_at = exit_at = None
        rate = Decimal(1)
    else:
        if entry is None or exit_ is None:
            raise FeeError("give --entry and --exit (or --lost-ticket)")
        entry_at = parse_instant(entry, tz, "--entry")
        exit_at = parse_instant(exit_, tz, "--exit")
        if exit_at < entry_at:
            raise FeeError(f"--exit {exit_} is before --entry {entry}")
        if rate_multiplier is not None:
            if occupancy is not None:
                raise FeeError("give --occupancy or --rate-multiplier, not both")
            rate = parse_decimal(rate_multiplier, "--rate-multiplier", low=Decimal(0), high=None)
        else:
            occ = (parse_decimal(occupancy, "--occupancy", low=Decimal(0), high=Decimal(1))
                   if occupancy is not None else None)
            rate = entry_rate_multiplier(tariff, occupancy=occ, at=entry_at)
        fee = compute_fee(tariff, entry=entry_at, exit=exit_at, spot_type=kind, tz=tz,
                          rate_multiplier=rate, validations=codes)
    currency = cfg.lot.currency
    if json_out:
        print(json.dumps({
            "total_cents": fee.total_cents, "currency": currency,
            "duration_minutes": fee.duration_minutes, "product": fee.product,
            "spot_type": kind.value, "rate_multiplier": str(rate), "validations": codes,
            "entry": entry_at.isoformat() if entry_at else None,
            "exit": exit_at.isoformat() if exit_at else None, "timezone": tz.key,
            "tariff_id": tid, "tariff_source": source,
            "breakdown": [{"label": line.label, "amount_cents": line.amount_cents}
                          for line in fee.breakdown],
        }))
        return
    if entry_at is not None and exit_at is not None:
        print(f"{cfg.lot.name or cfg.lot.id}: {kind.value} spot, "
              f"entry {entry_at.astimezone(tz):%Y-%m-%d %H:%M %Z}, "
              f"exit {exit_at.astimezone(tz):%Y-%m-%d %H:%M %Z}, "
              f"{fee.duration_minutes // 60} h {fee.duration_minutes % 60:02d} min parked")
    if source != "config":
        print(f"tariff {tid} from the newest cloud bundle (--config-tariff for the file's)")
    width = max(len(cents_text(line.amount_cents)) for line in fee.breakdown)
    width = max(width, len(cents_text(fee.total_cents)))
    for line in fee.breakdown:
        print(f"  {cents_text(line.amount_cents):>{width}}  {line.label}")
    print(f"  {'-' * width}")
    print(f"  {cents_text(fee.total_cents):>{width}}  {currency} total")

"""Lot administration commands: reservations import, count resets, the lane report.

They go through the running service's API when it is up (one owner of the ledger's write
path), and open the ledger directly when it is not.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from appliance.client import ServiceUnavailable, SyncServiceClient
from appliance.config import LotConfig, load_config
from appliance.errors import InputError

reservations_app = typer.Typer(help="Reservations", no_args_is_help=True)
counts_app = typer.Typer(help="Occupancy counts", no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="lot configuration TOML")]


def _client(cfg: LotConfig) -> SyncServiceClient | None:
    sock = cfg.data_path(cfg.api.socket)
    if not sock.exists():
        return None
    client = SyncServiceClient(sock, local_admin=True)
    try:
        client.get("/health")
    except ServiceUnavailable:
        client.close()
        return None
    return client


async def _direct(cfg: LotConfig, fn):
    from appliance.service import Service

    service = Service(cfg, api=False)
    await service.start()
    try:
        return await fn(service.runtime)
    finally:
        await service.stop()


@reservations_app.command("import")
def reservations_import(file: Annotated[Path, typer.Argument(help="JSON list of reservations")],
                        config: ConfigOpt) -> None:
    """Validate every record and import them (all or nothing); over-capacity ones are refused."""
    from appliance.lot.reservations import import_records, parse_records

    cfg = load_config(config)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{file}: cannot read reservations: {err}") from err
    records = parse_records(data, cfg)  # validate before touching anything
    client = _client(cfg)
    if client is not None:
        result = client.post("/reservations/import", data)  # type: ignore[arg-type]
    else:
        result = asyncio.run(_direct(cfg, lambda s: import_records(s.ledger, cfg, records,
                                                                   source=str(file))))
    print(json.dumps(result))


@counts_app.command("reset")
def counts_reset(
    config: ConfigOpt,
    level: Annotated[str, typer.Option(help="level id")],
    set_: Annotated[list[str], typer.Option("--set", help="TYPE=N, e.g. REGULAR=41")],
    attendant: Annotated[str, typer.Option(help="who counted")],
    reason: Annotated[str, typer.Option(help="why (e.g. walk-through)")],
) -> None:
    """Set a level's occupied counts after a walk-through (an audited ledger event)."""
    from appliance.lot.housekeeping import reset_counts

    cfg = load_config(config)
    counts: dict[str, int] = {}
    for item in set_:
        name, _, value = item.partition("=")
        if not value.strip().isdigit():
            raise InputError(f"--set {item!r}: expected TYPE=N with N a whole number")
        counts[name.strip().upper()] = int(value)
    body = {"level": level, "counts": counts, "attendant": attendant, "reason": reason}
    client = _client(cfg)
    if client is not None:
        result = client.post("/counts/reset", body)
    else:
        result = asyncio.run(_direct(cfg, lambda s: reset_counts(
            s, level=level, counts=counts, attendant=attendant, reason=reason)))
    print(json.dumps(result))

"""`lotedge db`: the ledger file's own checks, with or without the service running."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance.config import load_config
from appliance.errors import LotedgeError
from appliance.ledger import Ledger, VerifyReport

db_app = typer.Typer(help="Ledger database tools", no_args_is_help=True)


def verify_file(db: Path, *, lot_id: str = "?", tz: Any = None) -> VerifyReport:
    """The ledger's VerifyReport (integrity_check, seq contiguity, hash chain)."""
    from zoneinfo import ZoneInfo

    async def run() -> VerifyReport:
        ledger = await Ledger.open(db, lot_id=lot_id, tz=tz or ZoneInfo("UTC"))
        try:
            return await ledger.verify()
        finally:
            await ledger.close()

    return asyncio.run(run())


@db_app.command("verify")
def db_verify(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="lot configuration TOML (its ledger is checked)")] = None,
    db: Annotated[Path | None, typer.Option(help="ledger file (instead of --config)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Check integrity_check, seq contiguity and the hash chain; exit 1 if anything is wrong."""
    lot_id, tz = "?", None
    if db is None:
        if config is None:
            raise LotedgeError("give --config or --db")
        cfg = load_config(config)
        db, lot_id, tz = cfg.db_path(), cfg.lot.id, cfg.lot.tz
    if not db.exists():
        raise LotedgeError(f"no ledger at {db}")
    report = verify_file(db, lot_id=lot_id, tz=tz)
    if json_out:
        print(json.dumps({"ok": report.ok, "integrity": report.integrity, "events": report.events,
                          "first_seq": report.first_seq, "last_seq": report.last_seq,
                          "problems": report.problems[:100]}))
    else:
        print(f"integrity_check: {report.integrity}")
        print(f"events: {report.events} (seq {report.first_seq}..{report.last_seq})")
        for problem in report.problems[:20]:
            print(f"PROBLEM: {problem}")
        print("ledger OK" if report.ok else f"ledger FAILED ({len(report.problems)} problems)")
    if not report.ok:
        raise typer.Exit(1)

"""`lotedge diag db`: verify, online backup and vacuum of the ledger."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance.cli.db import db_verify as verify
from appliance.cli.db import verify_file
from appliance.cli.diag.common import (
    CheckFailed,
    DiagContext,
    JsonOpt,
    ServiceRunning,
    audit,
    db_app,
    emit,
    exit_on_error,
)
from appliance.errors import LotedgeError
from appliance.ledger.export import scrub_secrets

# --- db -------------------------------------------------------------------------------------


@db_app.command("verify")
def db_verify(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """integrity_check, seq contiguity and hash chain (same as `lotedge db verify`)."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        verify(config=d.config_path, db=None, json_out=json_out)


def backup_ledger(db: Path, out: Path) -> dict[str, Any]:
    """Copy a live ledger with SQLite's online backup API into `out`, then verify the copy."""
    if not db.exists():
        raise LotedgeError(f"no ledger at {db}")
    started = time.monotonic()
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(db, timeout=10)
    try:
        source.execute("PRAGMA busy_timeout = 10000")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        target = sqlite3.connect(tmp)
        try:
            # One step (pages=-1): the copy is one read snapshot; WAL writers are not blocked.
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode = DELETE")
            redacted = scrub_secrets(target)  # no credentials, no PIN hashes in a backup
        finally:
            target.close()
    finally:
        source.close()

    report = verify_file(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    out = _link_new(tmp, out)
    dir_fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {"source": str(db), "out": str(out), "bytes": out.stat().st_size,
            "events": report.events, "last_seq": report.last_seq, "verified": report.ok,
            "redacted_events": redacted,
            "problems": report.problems[:20], "seconds": round(time.monotonic() - started, 3)}


def _link_new(tmp: Path, out: Path) -> Path:
    """Give the finished copy its name without replacing an existing file (a backup taken in
    the same instant gets a -2, -3, ... suffix); return the name it got."""
    target, n = out, 1
    while True:
        try:
            os.link(tmp, target)
            break
        except FileExistsError:
            n += 1
            target = out.with_name(f"{out.stem}-{n}{out.suffix}")
    tmp.unlink()
    return target


def prune_backups(directory: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` ledger-*.sqlite3 backups in a directory."""
    backups = sorted(directory.glob("ledger-*.sqlite3"))
    doomed = backups[:-keep] if keep > 0 else backups
    for path in doomed:
        path.unlink()
    return [str(p) for p in doomed]


@db_app.command("backup")
def db_backup(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="backup file, or a directory for a dated file")],
    keep: Annotated[int | None, typer.Option(
        help="with a directory: keep only the newest N backups there")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Online backup of the ledger (safe while the service runs), verified after copying."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        target = out
        if out.is_dir():  # named to the microsecond; backup_ledger never replaces a file
            target = out / f"ledger-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}.sqlite3"
        elif keep is not None:
            raise LotedgeError("--keep needs OUT to be a directory")
        data = backup_ledger(d.cfg.db_path(), target)
        if keep is not None:
            data["pruned"] = prune_backups(out, keep)
        audit(d, "db.backup", {"out": data["out"], "last_seq": data["last_seq"],
                                "verified": data["verified"]})
        emit(json_out, data, lambda c, x: c.print(
            f"backup {x['out']}: {x['bytes']} bytes, {x['events']} events (last seq "
            f"{x['last_seq']}), {'verified' if x['verified'] else 'VERIFY FAILED'} "
            f"in {x['seconds']} s"))
        if not data["verified"]:
            raise CheckFailed("backup does not verify")


@db_app.command("vacuum")
def db_vacuum(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Rebuild the ledger file compactly (only with the service stopped)."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        if d.service_up():
            raise ServiceRunning("the service is running; stop it first "
                                 "(systemctl stop lotedge): VACUUM locks the ledger")
        db = d.cfg.db_path()
        if not db.exists():
            raise LotedgeError(f"no ledger at {db}")
        before = db.stat().st_size
        started = time.monotonic()
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
        data = {"db": str(db), "bytes_before": before, "bytes_after": db.stat().st_size,
                "seconds": round(time.monotonic() - started, 3)}
        audit(d, "db.vacuum", {"bytes_before": before, "bytes_after": data["bytes_after"]})
        emit(json_out, data, lambda c, x: c.print(
            f"vacuum {x['db']}: {x['bytes_before']} -> {x['bytes_after']} bytes"))

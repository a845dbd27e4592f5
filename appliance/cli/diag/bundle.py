"""`lotedge diag bundle`: a redacted support bundle."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance.cli.db import verify_file
from appliance.cli.diag.common import DiagContext, JsonOpt, audit, diag_app, emit, exit_on_error
from appliance.host.redact import redact_config

# --- support bundle -------------------------------------------------------------------------

def recent_logs(d: DiagContext, *, lines: int = 2000) -> tuple[str, str]:
    """(source, text) of the recent service log: journald if it has entries, else the log file."""
    try:
        proc = subprocess.run(["journalctl", "-u", "lotedge", "-n", str(lines), "--no-pager",
                               "-o", "short-iso"], capture_output=True, text=True, timeout=20)
        if proc.returncode == 0 and proc.stdout.strip() and "-- No entries --" not in proc.stdout:
            return "journald", proc.stdout
    except (OSError, subprocess.TimeoutExpired):
        pass
    log_file = d.cfg.data_path("lotedge.log")
    if log_file.exists():
        with open(log_file, "rb") as f:
            f.seek(max(0, log_file.stat().st_size - 2_000_000))
            return str(log_file), f.read().decode("utf-8", "replace")
    return "none", "no journald entries for lotedge and no log file at " + str(log_file) + "\n"


@diag_app.command()
def bundle(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="output .tar.gz")],
    json_out: JsonOpt = False,
) -> None:
    """A support bundle: redacted config, health, status, db verify, alarms, recent logs."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        files: dict[str, bytes] = {}
        text = d.config_path.read_text(encoding="utf-8")
        files["config.toml"] = redact_config(text).encode()
        up = d.service_up()
        if up:
            client = d.client()
            files["health.json"] = json.dumps(client.get("/health"), indent=2).encode()
            files["status.json"] = json.dumps(client.get("/diag/status"), indent=2).encode()
            files["alarms.json"] = json.dumps(client.get("/alarms", all="1"), indent=2).encode()
            client.close()
        else:
            files["health.json"] = json.dumps({"service": "not running"}).encode()
        files["db-verify.json"] = json.dumps(_verify(d), indent=2).encode()
        source, log_text = recent_logs(d)
        files["logs.txt"] = log_text.encode()
        manifest = {"created_utc": datetime.now(UTC).isoformat(), "service_running": up,
                    "log_source": source, "technician": d.technician,
                    "files": {name: {"bytes": len(b)} for name, b in files.items()}}
        files["manifest.json"] = json.dumps(manifest, indent=2).encode()
        tmp = out.with_name(f".{out.name}.partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, payload in files.items():
                info = tarfile.TarInfo(f"lotedge-bundle/{name}")
                info.size, info.mode, info.mtime = len(payload), 0o600, int(time.time())
                tar.addfile(info, io.BytesIO(payload))
        os.replace(tmp, out)
        audit(d, "bundle", {"out": str(out)})
        data = {"out": str(out), "bytes": out.stat().st_size, "files": sorted(files),
                "service_running": up, "log_source": source}
        emit(json_out, data, lambda c, x: c.print(
            f"bundle {x['out']}: {x['bytes']} bytes, {len(x['files'])} files "
            f"(logs from {x['log_source']})"))


def _verify(d: DiagContext) -> dict[str, Any]:
    db = d.cfg.db_path()
    if not db.exists():
        return {"ok": False, "problems": [f"no ledger at {db}"]}
    r = verify_file(db, lot_id=d.cfg.lot.id, tz=d.cfg.lot.tz)
    return {"ok": r.ok, "integrity": r.integrity, "events": r.events, "first_seq": r.first_seq,
            "last_seq": r.last_seq, "problems": r.problems[:100]}

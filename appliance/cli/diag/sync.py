"""`lotedge diag sync`: the cloud link, from the service or from the ledger file."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console

from appliance.cli.diag.common import (
    CheckFailed,
    DiagContext,
    JsonOpt,
    diag_app,
    emit,
    exit_on_error,
    fail,
    print_pairs,
)
from appliance.client import ServiceUnavailable

# --- sync -----------------------------------------------------------------------------------


def tcp_reachable(url: str | None, *, default_port: int, timeout_s: float = 3.0) -> dict | None:
    """Whether host:port of `url` accepts a TCP connection, and how fast."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname
    if host is None:
        return {"url": url, "reachable": False, "error": "no host in URL"}
    port = parts.port or {"https": 443, "http": 80, "mqtts": 8883}.get(parts.scheme, default_port)
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as err:
        return {"host": host, "port": port, "reachable": False, "error": str(err)}
    return {"host": host, "port": port, "reachable": True,
            "connect_ms": round((time.monotonic() - started) * 1000, 1)}


def _backlog_from_file(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'acked_through'").fetchone()
        acked = int(row[0]) if row else 0
        n, first = conn.execute("SELECT COUNT(*), MIN(seq) FROM events WHERE seq > ?",
                                (acked,)).fetchone()
        ts = conn.execute("SELECT ts_utc FROM events WHERE seq = ?", (first,)).fetchone()
    age = None if ts is None else round(
        (datetime.now(UTC) - datetime.fromisoformat(ts[0])).total_seconds(), 1)
    return {"acked_through": acked, "unsynced_events": n, "oldest_unsynced_seq": first,
            "oldest_unsynced_age_s": age}


@diag_app.command()
def sync(
    ctx: typer.Context,
    push: Annotated[bool, typer.Option("--push", help="ask the service to push now")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Broker/cloud reachability, last ack, backlog; `--push` pushes now."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        cloud = d.cfg.cloud
        if push and not cloud.enabled:
            raise fail(json_out, "cloud sync is off ([cloud] enabled = false in "
                                 f"{d.config_path}): nothing to push")
        data: dict[str, Any] = {"enabled": cloud.enabled}
        if d.service_up():
            client = d.client()
            data.update(client.get("/diag/sync"))
            if push:
                data["push"] = client.post("/diag/sync/push", {"technician": d.technician})
            client.close()
            data["service"] = "running"
        else:
            if push:
                raise ServiceUnavailable(f"service not running at {d.socket_path}: cannot push")
            data["service"] = "not running"
            db = d.cfg.db_path()
            data["backlog"] = _backlog_from_file(db) if db.exists() else None
        data["mqtt"] = tcp_reachable(cloud.mqtt_url, default_port=1883) if cloud.enabled else None
        data["api"] = tcp_reachable(cloud.api_url, default_port=443) if cloud.enabled else None
        unreachable = [k for k in ("mqtt", "api") if data[k] and not data[k]["reachable"]]
        data["ok"] = not unreachable
        emit(json_out, data, _render_sync)
        if unreachable:
            raise CheckFailed(f"unreachable: {', '.join(unreachable)}")


def _render_sync(console: Console, x: dict) -> None:
    backlog = x.get("backlog") or {}
    rows = [("cloud", "enabled" if x["enabled"] else "disabled (offline by configuration)"),
            ("service", x["service"]),
            ("last ack", f"seq {backlog.get('acked_through')}"),
            ("backlog", f"{backlog.get('unsynced_events')} events, oldest "
                        f"{backlog.get('oldest_unsynced_age_s')} s")]
    for key in ("mqtt", "api"):
        r = x.get(key)
        if r:
            rows.append((key, f"{r.get('host')}:{r.get('port')} "
                              + (f"reachable in {r['connect_ms']} ms" if r["reachable"]
                                 else f"UNREACHABLE ({r['error']})")))
    if "sync" in x:
        rows.append(("sync", x["sync"].get("state", x["sync"])))
    print_pairs(console, rows)

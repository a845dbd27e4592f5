"""Diagnostics that ask the running service: status, loops, a gate cycle, sensors, devices."""

from __future__ import annotations

import contextlib
import json
import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from appliance import __version__
from appliance.cli.diag.common import (
    EXIT_FAILED,
    EXIT_NOT_RUNNING,
    CheckFailed,
    DiagContext,
    JsonOpt,
    LaneArg,
    Refused,
    _print_error,
    diag_app,
    emit,
    exit_on_error,
    print_pairs,
)
from appliance.client import ApiError, ServiceUnavailable, SyncServiceClient
from appliance.errors import LotedgeError

# --- status ---------------------------------------------------------------------------------


@diag_app.command()
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Service up?, version, config hash, uptime, lanes, sync backlog, disk, last errors."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        if not d.service_up():
            if json_out:  # the documented error shape: {"error", "exit_code"}
                raise ServiceUnavailable(f"service not running at {d.socket_path} (installed "
                                         f"version {__version__})")
            data = {"service": "not running", "socket": str(d.socket_path),
                    "installed_version": __version__}
            emit(json_out, data, lambda c, x: c.print(
                f"service: NOT RUNNING (no answer at {x['socket']}); "
                f"installed version {x['installed_version']}", soft_wrap=True))  # one line
            raise typer.Exit(EXIT_NOT_RUNNING)
        client = d.client()
        health = client.get("/health")
        diag = client.get("/diag/status")
        client.close()
        on_disk = None
        with contextlib.suppress(LotedgeError):
            on_disk = d.cfg.source_sha256
        data = {"service": "running", "socket": str(d.socket_path),
                "installed_version": __version__, **health,
                "config_on_disk_sha256": on_disk,
                "config_changed_since_start": (on_disk is not None
                                               and on_disk != health["config_sha256"]),
                **diag}
        emit(json_out, data, _render_status)


def _render_status(console: Console, x: dict) -> None:
    backlog, disk, sync = x["backlog"], x["disk"], x["sync"]
    age = backlog["oldest_unsynced_age_s"]
    print_pairs(console, [
        ("service", f"running (lot {x['lot_id']}, version {x['version']})"
                    + (f"; installed {x['installed_version']}: restart to switch"
                       if x.get("installed_version", x["version"]) != x["version"] else "")),
        ("uptime", f"{x['uptime_s']:.0f} s"),
        ("config", f"{(x['config_sha256'] or '?')[:12]}"
                   + ("  (CHANGED on disk since start)" if x["config_changed_since_start"]
                      else "")),
        ("ledger", f"last seq {x['last_seq']}, {disk['ledger_bytes']} bytes"),
        ("cloud", sync.get("state", "?")
                  + (f" since {sync['since_utc'][:19].replace('T', ' ')} UTC"
                     if sync.get("since_utc") else "")),
        ("sync backlog", f"{backlog['unsynced_events']} events"
                         + (f", oldest {age:.0f} s old" if age is not None else "")),
        ("disk", f"{disk['free_bytes'] // 2**20} MiB free ({disk['free_percent']}%) "
                 f"in {disk['data_dir']}"),
        ("active alarms", len(x["active_alarms"])),
    ])
    table = Table("lane", "dir", "state", "arming", "safety", "gate", "passed", "last plate")
    for lane in x["lanes"]:
        table.add_row(lane["lane"], lane["direction"], lane["state"], str(lane["arming"]),
                      str(lane["safety"]), "OPEN" if lane["gate_open"] else "closed",
                      str(lane["passed"]), lane["last_plate"] or "-")
    console.print(table)
    for err in x["last_errors"]:
        console.print(f"error seq {err['seq']} {err['ts_utc']} {err['type']} {err['payload']}")


# --- loops ----------------------------------------------------------------------------------


@diag_app.command()
def loops(
    ctx: typer.Context,
    lane: LaneArg,
    watch: Annotated[bool, typer.Option("--watch", help="stream new edges")] = False,
    count: Annotated[int | None, typer.Option(help="--watch: stop after N edges")] = None,
    duration_s: Annotated[float | None, typer.Option(help="--watch: stop after S seconds")] = None,
    interval_s: Annotated[float, typer.Option(help="--watch: poll interval")] = 0.1,
    json_out: JsonOpt = False,
) -> None:
    """Live loop states and debounced edges with timing (settle time, previous state length)."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        client = d.require()
        data = client.get(f"/diag/lanes/{lane}/loops")
        if not watch:
            emit(json_out, data, _render_loops)
            return
        emit(json_out, {k: v for k, v in data.items() if k != "edges"}, _render_loops)
        seq, seen = data["seq"], 0
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while (count is None or seen < count) and (deadline is None or time.monotonic() < deadline):
            time.sleep(interval_s)
            new = client.get(f"/diag/lanes/{lane}/loops", after=seq)
            for edge in new["edges"]:
                if count is not None and seen >= count:
                    break
                seen += 1
                if json_out:
                    print(json.dumps(edge), flush=True)
                else:
                    print(_edge_line(edge), flush=True)
            seq = new["seq"]
        client.close()


def _edge_line(e: dict) -> str:
    held = "" if e["previous_state_ms"] is None else f"  after {e['previous_state_ms']:.0f} ms"
    return (f"#{e['seq']} {e['loop']:<18} {'OCCUPIED' if e['present'] else 'clear':<8} "
            f"settle {e['settle_ms']:.1f} ms{held}")


def _render_loops(console: Console, x: dict) -> None:
    console.print(f"lane {x['lane']}: state {x['state']}, gate "
                  f"{'OPEN' if x['gate_open'] else 'closed'}")
    table = Table("loop", "pin", "present", "debounce ms", "edges", "glitches", "last edge s ago")
    for lp in x["loops"]:
        table.add_row(lp["loop"], str(lp["pin"]), str(lp["present"]), str(lp["debounce_ms"]),
                      str(lp["edges"]), str(lp["glitches"]), str(lp["last_edge_s_ago"]))
    console.print(table)
    for edge in x.get("edges", []):
        console.print(_edge_line(edge))


# --- gate cycle -----------------------------------------------------------------------------


class GateAction(StrEnum):
    """What `diag gate` does."""

    cycle = "cycle"


def _lane_snapshot(client: SyncServiceClient, lane: str) -> dict:
    for snap in client.get("/lanes"):
        if snap["lane"] == lane:
            return snap
    raise ApiError(404, f"no lane {lane!r}")


def _wait_gate(client: SyncServiceClient, lane: str, is_open: bool, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if _lane_snapshot(client, lane)["gate_open"] == is_open:
            return round((time.monotonic() - started) * 1000, 1)
        time.sleep(0.02)
    raise CheckFailed(f"gate of lane {lane} did not report {'open' if is_open else 'closed'} "
                      f"within {timeout_s} s")


@diag_app.command()
def gate(
    ctx: typer.Context,
    lane: LaneArg,
    action: Annotated[GateAction, typer.Argument(help="cycle: open, wait, close")],
    open_s: Annotated[float, typer.Option(help="how long to keep it open")] = 2.0,
    timeout_s: Annotated[float, typer.Option(help="position wait limit")] = 10.0,
    json_out: JsonOpt = False,
) -> None:
    """Open, wait and close a barrier (audited), refusing while a vehicle is on its loops."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        client = d.require()
        snap = _lane_snapshot(client, lane)
        if snap["arming"] or snap["safety"]:
            where = " and ".join(n for n in ("arming", "safety") if snap[n])
            raise Refused(f"refused: a vehicle is on the {where} loop of lane {lane}")
        if snap["held_open"]:
            raise Refused(f"refused: lane {lane} is held open by an attendant")
        client.post(f"/lanes/{lane}/open", {"attendant": d.attendant, "reason": "diag gate cycle"})
        try:
            opened_ms = _wait_gate(client, lane, True, timeout_s)
        except CheckFailed as err:
            _print_error(json_out, EXIT_FAILED, str(err))
            raise
        time.sleep(open_s)
        client.post(f"/lanes/{lane}/close", {"attendant": d.attendant})
        try:
            closed_ms = _wait_gate(client, lane, False, timeout_s)
        except CheckFailed as err:
            _print_error(json_out, EXIT_FAILED, str(err))
            raise
        client.close()
        data = {"lane": lane, "action": "cycle", "opened_ms": opened_ms, "held_s": open_s,
                "closed_ms": closed_ms, "position_source": "relay output",
                "attendant": d.attendant}
        emit(json_out, data, lambda c, x: c.print(
            f"lane {x['lane']}: opened in {x['opened_ms']} ms, held {x['held_s']} s, "
            f"closed in {x['closed_ms']} ms (position from the {x['position_source']})"))


# --- sensors and devices -------------------------------------------------------------------


@diag_app.command()
def sensors(
    ctx: typer.Context,
    level: Annotated[str | None, typer.Option(help="only this level")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Per-spot state from the ledger, with the sensor's health when the drivers report it."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        client = d.require()
        data = client.get("/diag/sensors", **({"level": level} if level else {}))
        client.close()
        emit(json_out, data, _render_sensors)


def _render_sensors(console: Console, x: dict) -> None:
    if not x["spots"]:
        console.print(f"no spots ({x['mode']} lot: no per-spot sensors)")
        return
    if not x["sensor_readings"]:
        console.print("sensor readings: not reported by this service (spot states from the ledger)")
    table = Table("spot", "level", "type", "sensor", "state", "sensor state", "last seen s",
                  "errors")
    for s in x["spots"]:
        h = s["sensor_health"] or {}
        table.add_row(s["spot"], s["level"], s["type"], s["sensor"] or "-", s["state"],
                      h.get("state", "-"), str(h.get("last_seen_s_ago", "-")),
                      str(sum(h.get("counters", {}).values())) if h else "-")
    console.print(table)


@diag_app.command()
def devices(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every device's health as the drivers report it (state, last seen, counters, faults)."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        client = d.require()
        data = client.get("/diag/devices")
        client.close()
        emit(json_out, data, lambda c, x: [c.print(
            f"{dev['kind']:<12} {dev['device']:<20} {dev['state']:<8} "
            f"seen {dev['last_seen_s_ago']} s ago {dev['counters']} {dev['faults'] or ''}")
            for dev in x["devices"]])

"""`lotedge diag ...`: the field technician's tools.

Commands that touch hardware go through the running service's API (one owner per GPIO pin and
serial port); with the service stopped, `serial ... sniff` and `camera ... snapshot` open the
device directly. Every command takes `--json` (one JSON document, or JSON lines for
`loops --watch`) for scripts. Exit codes are listed in `EXIT_CODES` and the README.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import getpass
import io
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from appliance.client import ApiError, ServiceUnavailable, SyncServiceClient
from appliance.errors import LotedgeError
from appliance.redact import redact_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_NOT_RUNNING = 3
EXIT_REFUSED = 4
EXIT_SERVICE_RUNNING = 5
EXIT_NOT_AVAILABLE = 6
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "a check failed (ledger does not verify, cloud unreachable, backup bad)",
    EXIT_INPUT: "bad input or configuration (unknown lane, unreadable file, ...)",
    EXIT_NOT_RUNNING: "the service is not running (its API socket does not answer)",
    EXIT_REFUSED: "refused for safety (a vehicle is present, close refused)",
    EXIT_SERVICE_RUNNING: "the command needs the service stopped (it owns the device/database)",
    EXIT_NOT_AVAILABLE: "this build of the service does not provide the data or action",
}

DEFAULT_CONFIG = Path("/etc/lotedge/lot.toml")

diag_app = typer.Typer(help="Field technician diagnostics (add --json for scripts)",
                       no_args_is_help=True)
db_app = typer.Typer(help="Ledger database: verify, online backup, vacuum", no_args_is_help=True)
diag_app.add_typer(db_app, name="db")

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]
LaneArg = Annotated[str, typer.Argument(help="lane id")]


class Refused(LotedgeError, RuntimeError):
    """Refused for safety (exit 4)."""


class ServiceRunning(LotedgeError, RuntimeError):
    """The command needs the service stopped (exit 5)."""


class NotAvailable(LotedgeError, RuntimeError):
    """Not provided by this build (exit 6)."""


class CheckFailed(LotedgeError, RuntimeError):
    """A check ran and failed (exit 1); the report was already printed."""


@dataclass
class DiagContext:
    """Options shared by every diag command."""

    config_path: Path
    socket: Path | None
    technician: str
    timeout_s: float = 5.0
    _cfg: Any = field(default=None, repr=False)

    @property
    def cfg(self):
        """The lot configuration (loaded on first use)."""
        if self._cfg is None:
            from appliance.config import load_config

            self._cfg = load_config(self.config_path)
        return self._cfg

    @property
    def socket_path(self) -> Path:
        """The service API's Unix socket."""
        return self.socket or self.cfg.data_path(self.cfg.api.socket)

    def client(self) -> SyncServiceClient:
        """A client of the running service."""
        return SyncServiceClient(self.socket_path, timeout_s=self.timeout_s)

    def service_up(self) -> bool:
        """True when the service answers on its socket."""
        if not self.socket_path.exists():
            return False
        client = self.client()
        try:
            client.get("/health")
            return True
        except ServiceUnavailable:
            return False
        finally:
            client.close()

    def require(self) -> SyncServiceClient:
        """A client, or exit 3 when the service is down."""
        if not self.service_up():
            raise ServiceUnavailable(f"service not running at {self.socket_path}")
        return self.client()

    @property
    def attendant(self) -> str:
        """The identity recorded in audited commands."""
        return f"tech:{self.technician}"


@diag_app.callback()
def diag_main(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option("--config", "-c", envvar="LOTEDGE_CONFIG",
                                         help="lot configuration TOML")] = DEFAULT_CONFIG,
    socket_path: Annotated[Path | None, typer.Option(
        "--socket", help="API socket (default: <data_dir>/<api.socket>)")] = None,
    technician: Annotated[str | None, typer.Option(
        envvar="LOTEDGE_TECHNICIAN", help="who is acting (recorded in audit events)")] = None,
) -> None:
    """Diagnostics for the field technician."""
    who = technician or os.environ.get("SUDO_USER") or getpass.getuser()
    ctx.obj = DiagContext(config_path=config, socket=socket_path, technician=who)


def _print_error(json_out: bool, code: int, message: str) -> None:
    if json_out:
        print(json.dumps({"error": message, "exit_code": code}))
    print(f"lotedge diag: error: {message}", file=sys.stderr)


@contextlib.contextmanager
def _errors(json_out: bool) -> Iterator[None]:
    """Map failures to one-line messages and the documented exit codes."""
    try:
        yield
    except ServiceUnavailable as err:
        _print_error(json_out, EXIT_NOT_RUNNING, str(err).split(": [Errno")[0])
        raise typer.Exit(EXIT_NOT_RUNNING) from None
    except ApiError as err:
        code = {409: EXIT_REFUSED, 501: EXIT_NOT_AVAILABLE, 400: EXIT_INPUT,
                404: EXIT_INPUT}.get(err.status, EXIT_FAILED)
        _print_error(json_out, code, str(err))
        raise typer.Exit(code) from None
    except CheckFailed:
        raise typer.Exit(EXIT_FAILED) from None
    except Refused as err:
        _print_error(json_out, EXIT_REFUSED, str(err))
        raise typer.Exit(EXIT_REFUSED) from None
    except ServiceRunning as err:
        _print_error(json_out, EXIT_SERVICE_RUNNING, str(err))
        raise typer.Exit(EXIT_SERVICE_RUNNING) from None
    except NotAvailable as err:
        _print_error(json_out, EXIT_NOT_AVAILABLE, str(err))
        raise typer.Exit(EXIT_NOT_AVAILABLE) from None
    except (LotedgeError, OSError) as err:
        _print_error(json_out, EXIT_INPUT, str(err))
        raise typer.Exit(EXIT_INPUT) from None


def _emit(json_out: bool, data: Any, human: Callable[[Console, Any], None]) -> None:
    if json_out:
        print(json.dumps(data, default=str))
    else:
        human(Console(highlight=False), data)


def _kv(console: Console, pairs: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        console.print(f"{key:<{width}}  {value}")


def _audit(d: DiagContext, action: str, detail: dict[str, Any]) -> None:
    """Record a technician action in the ledger (through the service when it runs)."""
    if d.service_up():
        client = d.client()
        try:
            client.post("/diag/audit", {"action": action, "technician": d.technician,
                                        "detail": detail})
        finally:
            client.close()
        return
    db = d.cfg.db_path()
    if not db.exists():
        return

    async def append() -> None:
        from appliance.core.events import NewEvent
        from appliance.ledger import Ledger

        ledger = await Ledger.open(db, lot_id=d.cfg.lot.id, tz=d.cfg.lot.tz)
        try:
            await ledger.append(NewEvent(type=f"diag.{action}",
                                         payload={**detail, "technician": d.technician}))
        finally:
            await ledger.close()

    asyncio.run(append())


# --- status ---------------------------------------------------------------------------------


@diag_app.command()
def status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Service up?, version, config hash, uptime, lanes, sync backlog, disk, last errors."""
    d: DiagContext = ctx.obj
    with _errors(json_out):
        if not d.service_up():
            data = {"service": "not running", "socket": str(d.socket_path)}
            _emit(json_out, data, lambda c, x: c.print(
                f"service: NOT RUNNING (no answer at {x['socket']})"))
            raise typer.Exit(EXIT_NOT_RUNNING)
        client = d.client()
        health = client.get("/health")
        diag = client.get("/diag/status")
        client.close()
        on_disk = None
        with contextlib.suppress(LotedgeError):
            on_disk = d.cfg.source_sha256
        data = {"service": "running", "socket": str(d.socket_path), **health,
                "config_on_disk_sha256": on_disk,
                "config_changed_since_start": (on_disk is not None
                                               and on_disk != health["config_sha256"]),
                **diag}
        _emit(json_out, data, _render_status)


def _render_status(console: Console, x: dict) -> None:
    backlog, disk, sync = x["backlog"], x["disk"], x["sync"]
    age = backlog["oldest_unsynced_age_s"]
    _kv(console, [
        ("service", f"running (lot {x['lot_id']}, version {x['version']})"),
        ("uptime", f"{x['uptime_s']:.0f} s"),
        ("config", f"{(x['config_sha256'] or '?')[:12]}"
                   + ("  (CHANGED on disk since start)" if x["config_changed_since_start"]
                      else "")),
        ("ledger", f"last seq {x['last_seq']}, {disk['ledger_bytes']} bytes"),
        ("cloud", sync.get("state", "?")),
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
    with _errors(json_out):
        client = d.require()
        data = client.get(f"/diag/lanes/{lane}/loops")
        if not watch:
            _emit(json_out, data, _render_loops)
            return
        _emit(json_out, {k: v for k, v in data.items() if k != "edges"}, _render_loops)
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
    with _errors(json_out):
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
        _emit(json_out, data, lambda c, x: c.print(
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
    with _errors(json_out):
        client = d.require()
        data = client.get("/diag/sensors", **({"level": level} if level else {}))
        client.close()
        _emit(json_out, data, _render_sensors)


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
    with _errors(json_out):
        client = d.require()
        data = client.get("/diag/devices")
        client.close()
        _emit(json_out, data, lambda c, x: [c.print(
            f"{dev['kind']:<12} {dev['device']:<20} {dev['state']:<8} "
            f"seen {dev['last_seen_s_ago']} s ago {dev['counters']} {dev['faults'] or ''}")
            for dev in x["devices"]])


# --- camera ---------------------------------------------------------------------------------


class CameraAction(StrEnum):
    """What `diag camera` does."""

    read = "read"
    snapshot = "snapshot"


def grab_frame(source: str) -> bytes:
    """One JPEG frame from a camera URL, device or file, opened directly with OpenCV."""
    import cv2

    target: str | int = int(source) if source.isdigit() else source
    if isinstance(target, str) and target.startswith("/dev/video") and target[10:].isdigit():
        target = int(target[10:])
    capture = cv2.VideoCapture(target)
    try:
        if not capture.isOpened():
            raise NotAvailable(f"cannot open camera {source!r}")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise NotAvailable(f"camera {source!r} gave no frame")
        ok, encoded = cv2.imencode(".jpg", frame)
        if not ok:
            raise NotAvailable(f"cannot encode a frame of camera {source!r}")
        return encoded.tobytes()
    finally:
        capture.release()


@diag_app.command()
def camera(
    ctx: typer.Context,
    lane: LaneArg,
    action: Annotated[CameraAction, typer.Argument(help="read: run LPR; snapshot: save a frame")],
    out: Annotated[Path | None, typer.Argument(help="snapshot: output JPEG file")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Read the plate at a lane now, or save a frame of its camera."""
    d: DiagContext = ctx.obj
    with _errors(json_out):
        if action == CameraAction.read:
            client = d.require()
            data = client.post(f"/diag/lanes/{lane}/camera/read")
            client.close()
            _emit(json_out, data, lambda c, x: c.print(
                f"lane {x['lane']}: plate {x['plate'] or 'NO READ'} confidence "
                f"{x['confidence']:.2f} type {x['vehicle_type'] or '-'} in {x['read_ms']} ms "
                f"({x['source']})"))
            return
        if out is None:
            raise LotedgeError("camera snapshot needs an output file: camera LANE snapshot OUT.jpg")
        if d.service_up():
            client = d.client()
            jpeg = base64.b64decode(client.get(f"/diag/lanes/{lane}/camera/snapshot")["jpeg_base64"])
            client.close()
            via = "service"
        else:
            try:
                source = d.cfg.lane(lane).camera
            except KeyError:
                raise LotedgeError(f"no lane {lane!r}") from None
            if source == "sim":
                raise NotAvailable(f"lane {lane} has the simulated camera (no frames)")
            jpeg = grab_frame(source)
            via = "device"
        out.write_bytes(jpeg)
        os.chmod(out, 0o600)  # a frame shows plates: personal data
        _audit(d, "camera.snapshot", {"lane": lane, "bytes": len(jpeg), "via": via})
        data = {"lane": lane, "out": str(out), "bytes": len(jpeg), "via": via}
        _emit(json_out, data, lambda c, x: c.print(
            f"saved {x['bytes']} bytes to {x['out']} (via the {x['via']})"))


# --- serial ---------------------------------------------------------------------------------


class SerialAction(StrEnum):
    """What `diag serial` does."""

    sniff = "sniff"


class RawFramer:
    """Splits a byte stream into frames at CR/LF or at an idle gap."""

    def __init__(self) -> None:
        self.buffer = b""
        self.frames: list[bytes] = []

    def feed(self, data: bytes) -> None:
        """Add bytes; complete lines become frames."""
        self.buffer += data
        while True:
            match = re.search(rb"[\r\n]", self.buffer)
            if match is None:
                break
            line, self.buffer = self.buffer[:match.start()], self.buffer[match.end():]
            if line:
                self.frames.append(line)

    def gap(self) -> None:
        """The line went idle: what is buffered is a frame."""
        if self.buffer:
            self.frames.append(self.buffer)
            self.buffer = b""


def _decoder(protocol: str) -> Callable[[bytes], list[Any]] | None:
    if protocol == "raw":
        return None
    try:
        if protocol == "maxbotix":
            from drivers.maxbotix import MaxBotixParser  # type: ignore[import-not-found]

            parser = MaxBotixParser()
        else:
            from drivers.rs485 import FrameParser  # type: ignore[import-not-found]

            parser = FrameParser()
    except ImportError as err:
        raise NotAvailable(f"protocol {protocol!r} needs the {err.name} driver, not in this build"
                           ) from None
    return parser.feed


def sniff_port(url: str, *, baudrate: int, duration_s: float, max_frames: int | None,
               protocol: str, gap_ms: float = 20.0) -> dict[str, Any]:
    """Read a serial device directly for a while: frames (hex and text), decoded values,
    error counts."""
    import serial

    decode = _decoder(protocol)
    framer = RawFramer()
    errors = {"read_errors": 0}
    decoded: list[Any] = []
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=gap_ms / 1000)
    except (serial.SerialException, ValueError) as err:
        raise LotedgeError(f"cannot open serial port {url}: {err}") from err
    total = 0
    deadline = time.monotonic() + duration_s
    with port:
        while time.monotonic() < deadline and (max_frames is None
                                               or len(framer.frames) < max_frames):
            try:
                chunk = port.read(256)
            except serial.SerialException as err:
                errors["read_errors"] += 1
                errors["last_error"] = str(err)
                time.sleep(0.05)
                continue
            if not chunk:
                framer.gap()
                continue
            total += len(chunk)
            framer.feed(chunk)
            if decode is not None:
                decoded.extend(decode(chunk))
        framer.gap()
    frames = framer.frames[:max_frames] if max_frames else framer.frames
    return {"port": url, "baudrate": baudrate, "protocol": protocol, "bytes": total,
            "frames": [{"hex": f.hex(" "), "text": f.decode("ascii", "replace")}
                       for f in frames],
            "decoded": [v if isinstance(v, int | float | str) else repr(v) for v in decoded],
            "errors": errors}


@diag_app.command()
def serial(
    ctx: typer.Context,
    port: Annotated[str, typer.Argument(help="device or pyserial URL, e.g. /dev/ttyUSB0")],
    action: Annotated[SerialAction, typer.Argument(help="sniff: show frames and errors")],
    baud: Annotated[int, typer.Option(help="baud rate")] = 9600,
    duration_s: Annotated[float, typer.Option(help="how long to listen")] = 5.0,
    frames: Annotated[int | None, typer.Option(help="stop after N frames")] = None,
    protocol: Annotated[str, typer.Option(help="raw | maxbotix | rs485")] = "raw",
    json_out: JsonOpt = False,
) -> None:
    """Frames and error counts of a serial device (through the service when it owns it)."""
    d: DiagContext = ctx.obj
    with _errors(json_out):
        if protocol not in ("raw", "maxbotix", "rs485"):
            raise LotedgeError(f"unknown protocol {protocol!r} (raw, maxbotix, rs485)")
        if d.service_up():
            client = d.client()
            data = client.get("/diag/serial", port=port)
            client.close()
        else:
            data = sniff_port(port, baudrate=baud, duration_s=duration_s, max_frames=frames,
                              protocol=protocol)
            _audit(d, "serial.sniff", {"port": port, "frames": len(data["frames"])})
        _emit(json_out, data, _render_serial)


def _render_serial(console: Console, x: dict) -> None:
    for frame in x.get("frames", []):
        console.print(f"{frame['hex']:<48}  {frame['text']!r}")
    if x.get("decoded"):
        console.print(f"decoded: {x['decoded']}")
    console.print(f"{x.get('bytes', '?')} bytes, {len(x.get('frames', []))} frames, "
                  f"errors {x.get('errors')}")


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
    with _errors(json_out):
        cloud = d.cfg.cloud
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
        _emit(json_out, data, _render_sync)
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
    _kv(console, rows)


# --- db -------------------------------------------------------------------------------------


@db_app.command("verify")
def db_verify(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """integrity_check, seq contiguity and hash chain (same as `lotedge db verify`)."""
    from appliance.cli import db_verify as verify

    d: DiagContext = ctx.obj
    with _errors(json_out):
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
        finally:
            target.close()
    finally:
        source.close()

    report = verify_file(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out)
    dir_fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {"source": str(db), "out": str(out), "bytes": out.stat().st_size,
            "events": report.events, "last_seq": report.last_seq, "verified": report.ok,
            "problems": report.problems[:20], "seconds": round(time.monotonic() - started, 3)}


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
    with _errors(json_out):
        target = out
        if out.is_dir():
            target = out / f"ledger-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.sqlite3"
        elif keep is not None:
            raise LotedgeError("--keep needs OUT to be a directory")
        data = backup_ledger(d.cfg.db_path(), target)
        if keep is not None:
            data["pruned"] = prune_backups(out, keep)
        _audit(d, "db.backup", {"out": str(target), "last_seq": data["last_seq"],
                                "verified": data["verified"]})
        _emit(json_out, data, lambda c, x: c.print(
            f"backup {x['out']}: {x['bytes']} bytes, {x['events']} events (last seq "
            f"{x['last_seq']}), {'verified' if x['verified'] else 'VERIFY FAILED'} "
            f"in {x['seconds']} s"))
        if not data["verified"]:
            raise CheckFailed("backup does not verify")


@db_app.command("vacuum")
def db_vacuum(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Rebuild the ledger file compactly (only with the service stopped)."""
    d: DiagContext = ctx.obj
    with _errors(json_out):
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
        _audit(d, "db.vacuum", {"bytes_before": before, "bytes_after": data["bytes_after"]})
        _emit(json_out, data, lambda c, x: c.print(
            f"vacuum {x['db']}: {x['bytes_before']} -> {x['bytes_after']} bytes"))


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
    with _errors(json_out):
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
        _audit(d, "bundle", {"out": str(out)})
        data = {"out": str(out), "bytes": out.stat().st_size, "files": sorted(files),
                "service_running": up, "log_source": source}
        _emit(json_out, data, lambda c, x: c.print(
            f"bundle {x['out']}: {x['bytes']} bytes, {len(x['files'])} files "
            f"(logs from {x['log_source']})"))


def verify_file(db: Path, *, lot_id: str = "?", tz: Any = None):
    """The ledger's VerifyReport (integrity_check, seq contiguity, hash chain)."""
    from zoneinfo import ZoneInfo

    from appliance.ledger import Ledger

    async def run():
        ledger = await Ledger.open(db, lot_id=lot_id, tz=tz or ZoneInfo("UTC"))
        try:
            return await ledger.verify()
        finally:
            await ledger.close()

    return asyncio.run(run())


def _verify(d: DiagContext) -> dict[str, Any]:
    db = d.cfg.db_path()
    if not db.exists():
        return {"ok": False, "problems": [f"no ledger at {db}"]}
    r = verify_file(db, lot_id=d.cfg.lot.id, tz=d.cfg.lot.tz)
    return {"ok": r.ok, "integrity": r.integrity, "events": r.events, "first_seq": r.first_seq,
            "last_seq": r.last_seq, "problems": r.problems[:100]}

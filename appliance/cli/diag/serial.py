"""`lotedge diag serial`: what a serial port carries (from the service, or sniffed)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from appliance.cli.diag.common import (
    DiagContext,
    JsonOpt,
    NotAvailable,
    audit,
    diag_app,
    emit,
    exit_on_error,
)
from appliance.errors import LotedgeError

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
            raise NotAvailable(f"protocol {protocol!r}: raw (Modbus RTU frames are split at the "
                               "inter-frame silence) or maxbotix")
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
    protocol: Annotated[str, typer.Option(help="raw (Modbus RTU too) | maxbotix")] = "raw",
    json_out: JsonOpt = False,
) -> None:
    """Frames and error counts of a serial device (through the service when it owns it)."""
    d: DiagContext = ctx.obj
    with exit_on_error(json_out):
        if protocol not in ("raw", "maxbotix"):
            raise LotedgeError(f"unknown protocol {protocol!r} (raw, maxbotix)")
        if d.service_up():
            client = d.client()
            data = client.get("/diag/serial", port=port)
            client.close()
        else:
            data = sniff_port(port, baudrate=baud, duration_s=duration_s, max_frames=frames,
                              protocol=protocol)
            audit(d, "serial.sniff", {"port": port, "frames": len(data["frames"])})
        emit(json_out, data, _render_serial)


def _render_serial(console: Console, x: dict) -> None:
    if "health" in x or "readings" in x:  # the running service's view of a port it owns
        _render_monitor(console, x)
        return
    for frame in x.get("frames", []):
        console.print(f"{frame['hex']:<48}  {frame['text']!r}")
    if x.get("decoded"):
        console.print(f"decoded: {x['decoded']}")
    console.print(f"{x.get('bytes', '?')} bytes, {len(x.get('frames', []))} frames, "
                  f"errors {x.get('errors')}")


def _render_monitor(console: Console, x: dict) -> None:
    """Health and latest readings of a port the running service owns (no raw frames)."""
    console.print(f"{x.get('port')}: {x.get('kind', 'device')} {x.get('device')}, owned by the "
                  "running service (raw frames only with the service stopped)")
    health = x.get("health")
    if health:
        seen = health.get("last_seen_s_ago")
        console.print(f"health: {health.get('state')}, last seen "
                      + ("never" if seen is None else f"{seen} s ago"))
        counters = health.get("counters") or {}
        if counters:
            console.print("counters: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
        for code, detail in (health.get("faults") or {}).items():
            console.print(f"FAULT {code}: {detail}")
    else:
        console.print("health: not reported by the service")
    readings = x.get("readings") or {}
    if readings:
        console.print(f"{len(readings)} readings:")
        for spot, r in readings.items():
            distance = r.get("distance_cm")
            confidence = r.get("confidence")
            console.print(f"  {spot:<12} {r.get('state', '?'):<10} "
                          f"{'-' if distance is None else f'{distance} cm':>8}  "
                          f"confidence {'-' if confidence is None else confidence}")
    elif x.get("kind") == "sensor_bus":
        console.print("no readings yet")

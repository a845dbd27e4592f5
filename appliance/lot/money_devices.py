"""Building the devices that touch money and paper from the config: the card terminal (the
simulator, a ZVT terminal, or the ZVT emulator), the printers and the ticket scanners; and the
lane-side helpers that use them (reading a scanned ticket, printing an entry ticket off the
event loop, the daily end-of-day)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.config import LotConfig, PrinterSection
from appliance.errors import DeviceError
from appliance.host.secrets import read_secret_file
from appliance.lot.printing import Paper, load_or_create_ticket_key, receipt_document
from drivers.payment import PaymentTerminal, SimulatedTerminal
from drivers.printer import EscposPrinter, PrinterFault, make_backend
from drivers.scanner import CameraQrScanner, HidScanner, ScannerFault, Scanners, SerialScanner
from drivers.tickets import SimulatedScanner
from drivers.zvt.client import ZvtTerminal
from drivers.zvt.emulator import ZvtEmulator

log = logging.getLogger(__name__)


def make_terminal(cfg: LotConfig, *, seed: int | None) -> tuple[PaymentTerminal,
                                                                 ZvtEmulator | None]:
    """The configured terminal, and the emulator to start when it is 'zvt-emulator'."""
    pay = cfg.payment
    if pay.terminal == "simulated":
        return SimulatedTerminal(seed=seed, offline_floor_cents=pay.offline_floor_cents), None
    password = "000000"
    if pay.password_file:
        password = str(read_secret_file(pay.password_file, key="payment.password_file"))
    tz = cfg.lot.tz

    def local_now() -> datetime:  # terminals keep the lot's local time
        return datetime.now(tz).replace(tzinfo=None)

    emulator = None
    if pay.terminal == "zvt-emulator":
        emulator = ZvtEmulator(password=password, seed=seed, clock=local_now,
                               offline_floor_cents=pay.offline_floor_cents)
    terminal = ZvtTerminal(host=pay.host, port=pay.port, password=password,
                           currency=pay.currency_code, flow=pay.flow,
                           answer_timeout_s=pay.answer_timeout_s, now_local=local_now)
    return terminal, emulator


def _default_printers(cfg: LotConfig) -> list[PrinterSection]:
    """No [[printers]]: a file printer per entry lane and one for the booth."""
    return [PrinterSection(id=lane.id) for lane in cfg.entry_lanes()] + [
        PrinterSection(id="booth")]


def make_paper(cfg: LotConfig, *, data_dir: Path, base_dir: Path | None,
               on_fault: Callable[[str, PrinterFault], None]) -> Paper:
    """The printers (as configured, else file printers) and the ticket key."""
    printers: dict[str, EscposPrinter] = {}
    for section in cfg.printers or _default_printers(cfg):
        options: dict[str, Any] = {
            "path": str(cfg.data_path(section.path or f"printer-{section.id}.escpos", base_dir)),
            "port": section.port, "baud": section.baud, "host": section.host,
            "vendor_id": section.vendor_id, "product_id": section.product_id}
        if section.backend == "network":
            options["port"] = section.tcp_port
        try:
            backend = make_backend(section.backend, **options)
        except Exception as err:  # python-escpos raises its own errors for a missing device
            raise DeviceError(f"cannot open the {section.backend} printer: {err}",
                              code="printer_open", device=section.id) from err
        printers[section.id] = EscposPrinter(section.id, backend, on_fault=on_fault)
    for lane in cfg.entry_lanes():
        if lane.id not in printers:
            log.warning("entry lane %s has no ticket printer: it admits by plate only", lane.id)
    key = load_or_create_ticket_key(cfg.data_path(cfg.receipts.ticket_key_file, base_dir))
    return Paper(cfg, printers, key)


def make_scanners(cfg: LotConfig, *, grab: Callable[[str], Any] | None = None) -> Scanners:
    """The configured scanners by lane; lanes without one use the simulated scanner. A scanner
    that cannot be opened is left out and listed in `faults` (the lane runs without it: plates
    and the lost-ticket path still let every car out)."""
    scanners = Scanners(SimulatedScanner())
    for section in cfg.scanners:
        if section.kind in ("serial", "hid"):
            try:
                scanners.by_lane[section.lane] = (
                    SerialScanner(section.lane, section.port, baud=section.baud,
                                  hold_s=section.hold_s) if section.kind == "serial"
                    else HidScanner(section.lane, section.port, hold_s=section.hold_s))
            except ScannerFault as fault:
                log.error("%s", fault)
                scanners.faults.append((section.lane, str(fault)))
        else:
            if grab is None:
                raise DeviceError("a camera scanner needs the lane's camera (lanes.camera)",
                                  code="scanner_fault", device=section.lane)
            lane = section.lane
            scanners.by_lane[lane] = CameraQrScanner(lane, lambda lane=lane: grab(lane))
    return scanners


async def scanned_ticket(scanners: Scanners, paper: Paper | None, lane: str, *,
                         on_alarm: Callable[[str, str, str], None]) -> str | None:
    """The ticket id scanned at a lane: a device's code must be a genuine ticket QR of this lot
    (a forged or foreign code is no ticket, and an alarm); the simulated scanner's is the id."""
    device = scanners.by_lane.get(lane)
    if device is None:
        return scanners.fallback.read(lane)
    text = await asyncio.to_thread(device.read, lane)
    if not text:
        return None
    device.leave(lane)  # one scan, one car
    ticket = paper.ticket_id_from_scan(text) if paper is not None else None
    if ticket is None:
        on_alarm("ticket_not_genuine", lane,
                 f"the code scanned is not a ticket of this lot: {text[:40]!r}")
    return ticket


async def print_exit_receipt(paper: Paper, ledger, cfg: LotConfig, *, lane: str,
                             ticket_id: str, at: datetime, tariffs=None) -> bool:
    """Print the receipt of a paid exit on the exit lane's printer; False when it could not
    (the printer's fault is already an alarm; the car has gone either way)."""
    lines = await receipt_document(ledger, cfg, ticket_id, at=at, tariffs=tariffs,
                                   width=paper.widths.get(lane, 42))
    try:
        await asyncio.to_thread(paper.print_lines, lane, lines)
    except DeviceError:
        return False
    return True


async def probe_printers_forever(paper: Paper, *, sleep: Callable[[float], Any],
                                 interval_s: float = 30.0) -> None:
    """Ask faulted printers again now and then: paper refilled, the entry lane prints again."""
    while True:
        await sleep(interval_s)
        for printer in paper.printers.values():
            if not printer.ok and await asyncio.to_thread(printer.probe):
                log.warning("printer %s: back in order", printer.name)


async def settle_doubts_forever(terminal: Any, *, sleep: Callable[[float], Any],
                                interval_s: float = 60.0) -> None:
    """Settle a terminal command left in doubt without waiting for the next payment."""
    resolve = getattr(terminal, "resolve_in_doubt", None)
    if resolve is None:
        return
    while True:
        await sleep(interval_s)
        if getattr(terminal, "in_doubt", None) is None:
            continue
        try:
            await resolve()
        except DeviceError as err:
            log.warning("payment terminal: command in doubt not settled yet: %s", err)


def _next_local(now: datetime, hhmm: str, tz) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    local = now.astimezone(tz)
    at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= local:
        at += timedelta(days=1)
    return at


async def end_of_day_forever(terminal: Any, cfg: LotConfig, *, now: Callable[[], datetime],
                             sleep: Callable[[float], Any],
                             on_result: Callable[[dict], Any]) -> None:
    """Run the terminal's end-of-day every day at `payment.end_of_day_at` (local time)."""
    if cfg.payment.end_of_day_at is None or not hasattr(terminal, "end_of_day"):
        return
    while True:
        at = _next_local(now(), cfg.payment.end_of_day_at, cfg.lot.tz)
        await sleep(max(1.0, (at - now()).total_seconds()))
        try:
            result = await terminal.end_of_day()
        except DeviceError as err:
            result = {"ok": False, "result": str(err)}
        try:
            await on_result(result)
        except Exception:
            log.exception("end-of-day result not recorded")

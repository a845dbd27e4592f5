"""ESC/POS receipt and ticket printers through python-escpos.

A document is lines of text (laid out by `appliance.core.receipts`), optionally a QR code, and
a cut. On paper that is: ESC @ (initialise), the lines in code page 437, the QR code as the
printer's own 2D symbol (GS ( k: model 2, module size, error correction M, store, print), then
ESC d 6 (feed six lines) and GS V 0 (full cut).

The backend is python-escpos's: `Usb`, `Serial` or `Network` for a real printer, `Dummy` in
tests (its `output` holds the bytes) and `File` for the simulated lot. Before each document the
printer's real-time status is asked where the backend can answer (USB, serial, network): no
paper or offline is a `PrinterFault`, as is any write error, and `on_fault` hears of it so the
appliance can raise an alarm; the entry lane then admits by plate only (docs/payments.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from appliance.errors import DeviceError

log = logging.getLogger(__name__)

QR_MODULE_SIZE = 6


class PrinterFault(DeviceError):
    """The printer cannot print: out of paper, offline, or the link failed."""

    def __init__(self, printer: str, detail: str, *, code: str = "printer_fault"):
        super().__init__(detail, code=code, device=printer)


def make_backend(kind: str, **options: Any):
    """A python-escpos printer: kind 'usb' (vendor_id, product_id), 'serial' (port, baud),
    'network' (host, port), 'file' (path) or 'dummy'. Text is sent in code page 437."""
    from escpos import printer as escpos_printer

    magic = {"encoding": "CP437", "disabled": True}
    match kind:
        case "dummy":
            return escpos_printer.Dummy(magic_encode_args=magic)
        case "file":
            return escpos_printer.File(devfile=options["path"], magic_encode_args=magic)
        case "usb":
            return escpos_printer.Usb(int(options["vendor_id"]), int(options["product_id"]),
                                      magic_encode_args=magic)
        case "serial":
            return escpos_printer.Serial(devfile=options["port"],
                                         baudrate=int(options.get("baud", 19200)),
                                         magic_encode_args=magic)
        case "network":
            return escpos_printer.Network(options["host"], port=int(options.get("port", 9100)),
                                          magic_encode_args=magic)
    raise ValueError(f"unknown printer backend {kind!r}")


class EscposPrinter:
    """One ESC/POS printer.

    Args:
        name: the printer's id (lane id or 'booth'), named in faults.
        backend: a python-escpos printer object.
        status_check: ask the printer for paper and online status before printing (only
            backends that can read answer; `Dummy` and `File` cannot).
        on_fault: called with (printer name, PrinterFault) when printing fails.
    """

    def __init__(self, name: str, backend, *, status_check: bool | None = None,
                 on_fault: Callable[[str, PrinterFault], None] | None = None) -> None:
        self.name = name
        self.backend = backend
        kind = type(backend).__name__
        self.status_check = kind in ("Usb", "Serial", "Network") if status_check is None \
            else status_check
        self.on_fault = on_fault
        self.fault: str | None = None  # the last fault, cleared by a good print
        self.printed = 0

    @property
    def ok(self) -> bool:
        """False while the last attempt failed."""
        return self.fault is None

    def _check(self) -> None:
        if not self.status_check:
            return
        from escpos.exceptions import Error as EscposError

        try:
            online = self.backend.is_online()
            paper = self.backend.paper_status()
        except (EscposError, OSError, NotImplementedError) as err:
            raise PrinterFault(self.name, f"no status answer: {err}",
                               code="printer_offline") from err
        if not online:
            raise PrinterFault(self.name, "printer offline (cover open or error)",
                               code="printer_offline")
        if paper == 0:
            raise PrinterFault(self.name, "out of paper", code="printer_paper_out")
        if paper == 1:
            log.warning("printer %s: paper near its end", self.name)

    def print_document(self, lines: Sequence[str], *, qr: str | None = None) -> None:
        """Print lines, an optional QR code and cut; a failure is a PrinterFault."""
        from escpos.constants import QR_ECLEVEL_M
        from escpos.exceptions import Error as EscposError

        try:
            self._check()
            p = self.backend
            p.hw("INIT")
            for line in lines:
                p.text(line.encode("cp437", "replace").decode("cp437") + "\n")
            if qr:
                p.qr(qr, native=True, size=QR_MODULE_SIZE, ec=QR_ECLEVEL_M)
            p.cut()
            flush = getattr(p, "flush", None)
            if callable(flush):
                flush()
        except PrinterFault as fault:
            self._failed(fault)
            raise
        except (EscposError, OSError, ValueError, RuntimeError) as err:
            # RuntimeError: python-escpos's USB backend without its USB library
            fault = PrinterFault(self.name, f"print failed: {err}", code="printer_io")
            self._failed(fault)
            raise fault from err
        self.fault = None
        self.printed += 1

    def probe(self) -> bool:
        """Ask a faulted printer again (status where the backend answers); True when it is
        fit to print, which clears the fault."""
        if self.fault is None:
            return True
        try:
            self._check()
        except PrinterFault:
            return False
        self.fault = None
        return True

    def _failed(self, fault: PrinterFault) -> None:
        self.fault = fault.code
        if self.on_fault is not None:
            try:
                self.on_fault(self.name, fault)
            except Exception:
                log.exception("printer fault listener failed")

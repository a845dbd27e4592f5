"""Paper at the lot: entry tickets, exit and booth receipts and the shift report on the lot's
ESC/POS printers, and the ticket key that signs and checks ticket QR codes.

The wiring builds one `Paper` (printers by id: lane ids and 'booth'); the API's print routes
and the entry lane use it. A printer fault is raised as an alarm by the wiring's `on_fault`
listener; while an entry lane's printer is faulted the lane admits by plate only.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from appliance.config import LotConfig
from appliance.core.receipts import (
    ReceiptFacts,
    entry_ticket_lines,
    read_ticket_payload,
    receipt_lines,
    shift_report_lines,
    ticket_payload,
)
from appliance.errors import InputError
from appliance.host.secrets import read_secret_file
from appliance.ledger import Ledger
from appliance.lot import attendants
from appliance.lot.tickets import fee_due
from drivers.printer import EscposPrinter


def load_or_create_ticket_key(path: Path) -> bytes:
    """The lot's ticket key (32 random bytes as hex, mode 0600, created on first use)."""
    if path.exists():
        return bytes.fromhex(str(read_secret_file(path, key="receipts.ticket_key_file")))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
    return key


class Paper:
    """The lot's printers and ticket key.

    Args:
        cfg: the lot configuration.
        printers: printers by id (lane id or 'booth').
        key: the ticket key.
    """

    def __init__(self, cfg: LotConfig, printers: Mapping[str, EscposPrinter], key: bytes):
        self.cfg = cfg
        self.printers = dict(printers)
        self.key = key
        self._last: dict[str, str] = {}  # lane -> ticket id just printed (the simulator takes it)
        self.widths = {p.id: p.width for p in cfg.printers}

    def _width(self, printer_id: str) -> int:
        return self.widths.get(printer_id, 42)

    def can_print_tickets(self, lane: str) -> bool:
        """Whether the lane's ticket printer is there and not faulted."""
        printer = self.printers.get(lane)
        return printer is not None and printer.ok

    def print_entry_ticket(self, *, lane: str, ticket_id: str, entry: datetime,
                           level: str | None) -> str:
        """Print an entry ticket with its signed QR code; returns the QR text. Raises
        PrinterFault (or InputError when the lane has no printer)."""
        printer = self.printers.get(lane)
        if printer is None:
            raise InputError(f"lane {lane} has no ticket printer")
        payload = ticket_payload(lot_id=self.cfg.lot.id, ticket_id=ticket_id, entry=entry,
                                 key=self.key)
        lines = entry_ticket_lines(lot_name=self.cfg.lot.name or self.cfg.lot.id, lane=lane,
                                   ticket_id=ticket_id, entry=entry, tz=self.cfg.lot.tz,
                                   level=level, width=self._width(lane))
        printer.print_document(lines, qr=payload)
        self._last[lane] = ticket_id
        return payload

    def take(self, lane: str) -> str | None:
        """The driver takes the ticket just printed at this lane (the traffic generator)."""
        return self._last.pop(lane, None)

    def ticket_id_from_scan(self, text: str) -> str | None:
        """The ticket a scanned code names, if it is a genuine ticket of this lot."""
        qr = read_ticket_payload(text, key=self.key, lot_id=self.cfg.lot.id)
        return qr.ticket_id if qr is not None else None

    def print_lines(self, printer_id: str, lines: list[str]) -> None:
        """Print a document on a printer by id; InputError when there is no such printer."""
        printer = self.printers.get(printer_id)
        if printer is None:
            raise InputError(f"no printer {printer_id!r} (configured: "
                             f"{', '.join(sorted(self.printers)) or 'none'})")
        printer.print_document(lines)

    def status(self) -> list[dict]:
        """Each printer's state for diagnostics."""
        return [{"printer": name, "ok": p.ok, "fault": p.fault, "printed": p.printed}
                for name, p in sorted(self.printers.items())]


async def receipt_document(ledger: Ledger, cfg: LotConfig, ticket_id: str, *, at: datetime,
                           copy: bool = False, width: int = 42, tariffs=None) -> list[str]:
    """The receipt of a ticket as printed: a closed ticket's exit record, else its fee now."""
    row = await ledger.fetchone("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
    if row is None:
        raise InputError(f"no ticket {ticket_id!r}")
    closed = await ledger.fetchone(
        "SELECT payload FROM events WHERE type = 'ticket.closed' "
        "AND json_extract(payload, '$.ticket_id') = ? ORDER BY seq DESC LIMIT 1", (ticket_id,))
    if closed is not None:
        c = json.loads(closed["payload"])
        exit_at = datetime.fromisoformat(c["exit_utc"])
        breakdown, total = c.get("breakdown") or [], int(c["fee_cents"])
    else:
        exit_at = at
        total, _, breakdown, _ = fee_due(cfg, row, at, tariffs=tariffs)
    pay = await ledger.fetchone(
        "SELECT p.method, p.processor_token, p.last4, p.brand, e.payload FROM payments p "
        "JOIN events e ON e.seq = p.seq WHERE p.ticket_id = ? AND p.status = 'captured' "
        "ORDER BY p.seq DESC LIMIT 1", (ticket_id,))
    payload = json.loads(pay["payload"]) if pay is not None else {}
    facts = ReceiptFacts(
        lot_name=cfg.lot.name or cfg.lot.id, ticket_id=ticket_id, plate=row["plate"],
        entry=datetime.fromisoformat(row["entry_utc"]), exit=exit_at, breakdown=breakdown,
        total_cents=total, paid_cents=int(row["paid_cents"]), currency=cfg.lot.currency,
        method=pay["method"] if pay is not None else "none",
        payment_reference=(pay["processor_token"] or payload.get("payment_id"))
        if pay is not None else None,
        last4=pay["last4"] if pay is not None else None,
        brand=pay["brand"] if pay is not None else None,
        tendered_cents=payload.get("tendered_cents"), change_cents=payload.get("change_cents"),
        vat_rate=cfg.receipts.vat_rate, vat_label=cfg.receipts.vat_label, copy=copy)
    return receipt_lines(facts, tz=cfg.lot.tz, width=width)


async def shift_document(ledger: Ledger, cfg: LotConfig, shift_id: str, *,
                         width: int = 42) -> list[str]:
    """The shift report as printed."""
    report = await attendants.shift_report(ledger, shift_id)
    return shift_report_lines(report, lot_name=cfg.lot.name or cfg.lot.id,
                              currency=cfg.lot.currency, tz=cfg.lot.tz, width=width)

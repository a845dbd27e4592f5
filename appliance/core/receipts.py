"""What goes on paper: the entry ticket's QR payload and the text of tickets, receipts and the
shift report. Pure: times, money and keys come in as arguments; lines of text come out, which
the printer driver turns into ESC/POS.

The QR payload is `LE1:<lot>:<ticket>:<entry, unix seconds, base 36>:<tag>`, the tag the first
10 base-32 characters of HMAC-SHA256 over the rest under the lot's ticket key. A QR made up or
edited (another ticket id, an entry time moved) fails the tag and is treated as no ticket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from appliance.core.money import cents_text, round_cents

PAYLOAD_VERSION = "LE1"
_TAG_CHARS = 10
WIDTH = 42  # characters per line of an 80 mm printer's font A (58 mm printers: 32)


def _b36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _tag(body: str, key: bytes) -> str:
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode()[:_TAG_CHARS]


def ticket_payload(*, lot_id: str, ticket_id: str, entry: datetime, key: bytes) -> str:
    """The QR text of an entry ticket: lot, ticket id and entry time, tagged with the key."""
    if entry.tzinfo is None:
        raise ValueError("entry must be timezone-aware")
    body = f"{PAYLOAD_VERSION}:{lot_id}:{ticket_id}:{_b36(int(entry.timestamp()))}"
    return f"{body}:{_tag(body, key)}"


@dataclass(frozen=True, kw_only=True, slots=True)
class TicketQr:
    """A verified ticket QR."""

    lot_id: str
    ticket_id: str
    entry: datetime


def read_ticket_payload(text: str, *, key: bytes, lot_id: str) -> TicketQr | None:
    """The ticket a scanned QR names, or None when it is not one of this lot's genuine
    tickets (wrong tag, other lot, not a ticket at all)."""
    parts = text.strip().split(":")
    if len(parts) != 5 or parts[0] != PAYLOAD_VERSION:
        return None
    body = ":".join(parts[:4])
    if not hmac.compare_digest(parts[4].encode(), _tag(body, key).encode()):
        return None
    if parts[1] != lot_id:
        return None
    try:
        entry = datetime.fromtimestamp(int(parts[3], 36), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return TicketQr(lot_id=parts[1], ticket_id=parts[2], entry=entry)


# --- layout helpers --------------------------------------------------------------------------
def _center(text: str, width: int) -> list[str]:
    """Centred lines, wrapped at word boundaries rather than cut."""
    return [(" " * ((width - len(part)) // 2) + part)
            for part in textwrap.wrap(text, width, break_long_words=True) or [""]]


def _pair(label: str, value: str, width: int) -> list[str]:
    """`label ........ value` on one line; a long label wraps, the value never is cut."""
    room = width - len(value) - 1
    if room >= len(label):
        return [label + " " * (width - len(label) - len(value)) + value]
    lines = []
    words = label.split()
    current = ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if len(current) <= room:
        lines.append(current + " " * (width - len(current) - len(value)) + value)
    else:
        lines.extend([current, value.rjust(width)])
    return lines


def _money(cents: int, currency: str) -> str:
    return f"{cents_text(cents)} {currency}"


def _local(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def vat_included_cents(gross_cents: int, rate: Decimal) -> int:
    """The VAT contained in a gross amount at `rate` (0.19 for 19 %), half up to the cent."""
    if rate <= 0:
        return 0
    return round_cents(Decimal(gross_cents) * rate / (Decimal(1) + rate))


def _rate_text(rate: Decimal) -> str:
    return format((rate * 100).normalize(), "f")


# --- documents -------------------------------------------------------------------------------
def entry_ticket_lines(*, lot_name: str, lane: str, ticket_id: str, entry: datetime,
                       tz: tzinfo, level: str | None, width: int = WIDTH) -> list[str]:
    """The text above an entry ticket's QR code."""
    lines = [*_center(lot_name, width), *_center("ENTRY TICKET", width), "-" * width]
    lines += _pair("Ticket", ticket_id, width)
    lines += _pair("Entry", _local(entry, tz), width)
    lines += _pair("Lane", lane, width)
    if level:
        lines += _pair("Level", level, width)
    lines += ["-" * width, *_center("Keep this ticket: scan it to pay and exit", width)]
    return lines


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceiptFacts:
    """What an exit or booth receipt shows."""

    lot_name: str
    ticket_id: str | None
    plate: str | None
    entry: datetime | None
    exit: datetime
    breakdown: Sequence[Mapping]  # {"label", "amount_cents"}
    total_cents: int
    paid_cents: int
    currency: str
    method: str  # card | cash | none
    payment_reference: str | None = None
    last4: str | None = None
    brand: str | None = None
    tendered_cents: int | None = None
    change_cents: int | None = None
    vat_rate: Decimal | None = None
    vat_label: str = "VAT"
    copy: bool = False  # a reprint


def receipt_lines(facts: ReceiptFacts, *, tz: tzinfo, width: int = WIDTH) -> list[str]:
    """An exit/booth receipt: the fee breakdown, total, VAT line, payment and its reference."""
    f = facts
    lines = [*_center(f.lot_name, width),
             *_center("RECEIPT" + (" (COPY)" if f.copy else ""), width), "-" * width]
    if f.ticket_id:
        lines += _pair("Ticket", f.ticket_id, width)
    if f.plate:
        lines += _pair("Plate", f.plate, width)
    if f.entry is not None:
        lines += _pair("Entry", _local(f.entry, tz), width)
    lines += _pair("Exit", _local(f.exit, tz), width)
    lines.append("-" * width)
    for item in f.breakdown:
        lines += _pair(str(item["label"]), _money(int(item["amount_cents"]), f.currency), width)
    lines.append("-" * width)
    lines += _pair("TOTAL", _money(f.total_cents, f.currency), width)
    if f.vat_rate is not None and f.vat_rate > 0:
        vat = vat_included_cents(f.total_cents, f.vat_rate)
        lines += _pair(f"incl. {f.vat_label} {_rate_text(f.vat_rate)}%",
                       _money(vat, f.currency), width)
    lines += _pair("Paid", _money(f.paid_cents, f.currency), width)
    if f.method == "card":
        card = " ".join(p for p in (f.brand, f"**** {f.last4}" if f.last4 else None) if p)
        lines += _pair("Card", card or "card", width)
    elif f.method == "cash":
        if f.tendered_cents is not None:
            lines += _pair("Cash tendered", _money(f.tendered_cents, f.currency), width)
        if f.change_cents is not None:
            lines += _pair("Change", _money(f.change_cents, f.currency), width)
    if f.payment_reference:
        lines += _pair("Reference", f.payment_reference, width)
    due = f.total_cents - f.paid_cents
    if due > 0:
        lines += _pair("Unpaid (invoiced)", _money(due, f.currency), width)
    lines += ["-" * width, *_center("Thank you", width)]
    return lines


_SHIFT_ROWS = (
    ("card_payments", "Card payments", None), ("card_cents", "Card total", "money"),
    ("cash_payments", "Cash payments", None), ("cash_cents", "Cash taken", "money"),
    ("expected_cents", "Cash expected", "money"), ("counted_cents", "Cash counted", "money"),
    ("difference_cents", "Difference", "money"), ("validations", "Validations", None),
    ("manual_opens", "Manual opens", None), ("holds", "Gate holds", None),
    ("overrides", "Fee overrides", None), ("lost_tickets", "Lost tickets", None),
    ("voids", "Voided tickets", None),
)


def shift_report_lines(report: Mapping, *, lot_name: str, currency: str, tz: tzinfo,
                       width: int = WIDTH) -> list[str]:
    """The shift report as printed: who, when, and each total the report holds."""
    lines = [*_center(lot_name, width), *_center("SHIFT REPORT", width), "-" * width]
    for key, label in (("id", "Shift"), ("attendant_id", "Attendant"),
                       ("closed_by", "Closed by")):
        if report.get(key):
            lines += _pair(label, str(report[key]), width)
    for key, label in (("opened_utc", "Opened"), ("closed_utc", "Closed")):
        if report.get(key):
            lines += _pair(label, _local(datetime.fromisoformat(str(report[key])), tz), width)
    lines.append("-" * width)
    for key, label, kind in _SHIFT_ROWS:
        if key not in report or report[key] is None:
            continue
        value = report[key]
        text = _money(int(value), currency) if kind == "money" else str(value)
        lines += _pair(label, text, width)
    lines += ["-" * width]
    return lines

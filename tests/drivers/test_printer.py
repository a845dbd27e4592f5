"""Tickets and receipts as printed bytes: python-escpos's Dummy backend against ESC/POS written
out by hand from the command set (ESC @ initialise; GS ( k function 165/167/169/180/181 for a
model-2 QR code; ESC d n feed; GS V 0 full cut), and printer faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from escpos.printer import Dummy

from appliance.core.receipts import (
    ReceiptFacts,
    entry_ticket_lines,
    read_ticket_payload,
    receipt_lines,
    ticket_payload,
)
from drivers.printer import EscposPrinter, PrinterFault, make_backend

ESC, GS, DLE, EOT = b"\x1b", b"\x1d", b"\x10", b"\x04"
INIT = ESC + b"@"
CUT = ESC + b"d\x06" + GS + b"V\x00"
BERLIN = ZoneInfo("Europe/Berlin")
KEY = bytes(range(32))
ENTRY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def gs_k(fn: int, params: bytes) -> bytes:
    """GS ( k pL pH cn=49 fn params: a 2D-code command for QR codes (cn '1')."""
    body = b"1" + bytes((fn,)) + params
    return GS + b"(k" + len(body).to_bytes(2, "little") + body


def qr_bytes(data: str) -> bytes:
    return (gs_k(65, b"2\x00")      # fn 165: model 2
            + gs_k(67, b"\x06")     # fn 167: module size 6 dots
            + gs_k(69, b"1")        # fn 169: error correction level M
            + gs_k(80, b"0" + data.encode())  # fn 180: store the data
            + gs_k(81, b"0"))       # fn 181: print it


def text(lines: list[str]) -> bytes:
    return b"".join(line.encode("cp437") + b"\n" for line in lines)


def expected_payload() -> str:
    # LE1:<lot>:<ticket>:<entry unix seconds in base 36>:<tag>; 1772460000 = TB9YW0 in base 36
    body = "LE1:demo:T0123456789AB:TB9YW0"
    tag = base64.b32encode(hmac.new(KEY, body.encode(), hashlib.sha256).digest()).decode()[:10]
    return f"{body}:{tag}"


TICKET_LINES = [
    " " * 12 + "Demo Lot",
    " " * 10 + "ENTRY TICKET",
    "-" * 32,
    "Ticket" + " " * 13 + "T0123456789AB",
    "Entry" + " " * 11 + "2026-03-02 15:00",
    "Lane" + " " * 24 + "in-1",
    "Level" + " " * 25 + "L1",
    "-" * 32,
    "Keep this ticket: scan it to pay",
    " " * 12 + "and exit",
]


def test_entry_ticket_layout_and_signed_payload():
    assert entry_ticket_lines(lot_name="Demo Lot", lane="in-1", ticket_id="T0123456789AB",
                              entry=ENTRY, tz=BERLIN, level="L1", width=32) == TICKET_LINES
    payload = ticket_payload(lot_id="demo", ticket_id="T0123456789AB", entry=ENTRY, key=KEY)
    assert payload == expected_payload()
    qr = read_ticket_payload(payload, key=KEY, lot_id="demo")
    assert qr is not None and qr.ticket_id == "T0123456789AB" and qr.entry == ENTRY


def test_forged_or_foreign_ticket_codes_are_no_ticket():
    payload = expected_payload()
    forged = payload.replace("T0123456789AB", "T0123456789AC")
    moved = payload.replace("TB9YW0", "TB9YW9")
    assert read_ticket_payload(forged, key=KEY, lot_id="demo") is None
    assert read_ticket_payload(moved, key=KEY, lot_id="demo") is None
    assert read_ticket_payload(payload, key=b"other key", lot_id="demo") is None
    assert read_ticket_payload(payload, key=KEY, lot_id="other") is None
    assert read_ticket_payload("T0123456789AB", key=KEY, lot_id="demo") is None
    assert read_ticket_payload("garbage:::", key=KEY, lot_id="demo") is None


def test_printed_ticket_bytes():
    printer = EscposPrinter("in-1", make_backend("dummy"))
    printer.print_document(TICKET_LINES, qr=expected_payload())
    assert printer.backend.output == (INIT + text(TICKET_LINES) + qr_bytes(expected_payload())
                                      + CUT)
    assert printer.ok and printer.printed == 1


RECEIPT_LINES = [
    " " * 12 + "Demo Lot",
    " " * 12 + "RECEIPT",
    "-" * 32,
    "Ticket" + " " * 13 + "T0123456789AB",
    "Plate" + " " * 21 + "AB1234",
    "Entry" + " " * 11 + "2026-03-02 15:00",
    "Exit" + " " * 12 + "2026-03-02 17:05",
    "-" * 32,
    "First hour" + " " * 14 + "3.00 EUR",
    "Each further hour (2 x 3.00 EUR",
    "on a regular spot, weekday" + " " * 6,
    "rates)" + " " * 18 + "6.00 EUR",
    "-" * 32,
    "TOTAL" + " " * 19 + "9.00 EUR",
    "incl. VAT 19%" + " " * 11 + "1.44 EUR",
    "Paid" + " " * 20 + "9.00 EUR",
    "Card" + " " * 14 + "VISA **** 4242",
    "Reference" + " " * 6 + "zvt:52500001:12:7",
    "-" * 32,
    " " * 11 + "Thank you",
]


def test_receipt_layout_wraps_long_labels_and_shows_vat_and_payment():
    facts = ReceiptFacts(
        lot_name="Demo Lot", ticket_id="T0123456789AB", plate="AB1234", entry=ENTRY,
        exit=datetime(2026, 3, 2, 16, 5, tzinfo=UTC),
        breakdown=[{"label": "First hour", "amount_cents": 300},
                   {"label": "Each further hour (2 x 3.00 EUR on a regular spot, weekday "
                             "rates)", "amount_cents": 600}],
        total_cents=900, paid_cents=900, currency="EUR", method="card",
        payment_reference="zvt:52500001:12:7", last4="4242", brand="VISA",
        vat_rate=Decimal("0.19"))
    lines = receipt_lines(facts, tz=BERLIN, width=32)
    assert [ln.rstrip() for ln in lines] == [ln.rstrip() for ln in RECEIPT_LINES]
    assert all(len(ln) <= 32 for ln in lines)


def test_printed_receipt_bytes():
    printer = EscposPrinter("booth", make_backend("dummy"))
    printer.print_document(RECEIPT_LINES)
    assert printer.backend.output == INIT + text(RECEIPT_LINES) + CUT


def test_cash_receipt_shows_tendered_and_change_and_unpaid_shows_invoice():
    cash = receipt_lines(ReceiptFacts(
        lot_name="L", ticket_id="T1", plate=None, entry=None, exit=ENTRY, breakdown=[],
        total_cents=750, paid_cents=750, currency="EUR", method="cash", tendered_cents=1000,
        change_cents=250, payment_reference="PABC"), tz=UTC, width=32)
    assert "Cash tendered" + " " * 10 + "10.00 EUR" in cash
    assert "Change" + " " * 18 + "2.50 EUR" in cash
    unpaid = receipt_lines(ReceiptFacts(
        lot_name="L", ticket_id="T1", plate=None, entry=None, exit=ENTRY, breakdown=[],
        total_cents=750, paid_cents=0, currency="EUR", method="none"), tz=UTC, width=32)
    assert "Unpaid (invoiced)" + " " * 7 + "7.50 EUR" in unpaid


class StatusPrinter(Dummy):
    """A Dummy that answers DLE EOT status queries like a printer (ESC/POS real-time status:
    bit 3 of the printer status = offline; paper sensor 0x60 near end, 0x0C end)."""

    def __init__(self, *, online: bool = True, paper: str = "ok") -> None:
        super().__init__(magic_encode_args={"encoding": "CP437", "disabled": True})
        self.online, self.paper = online, paper
        self._pending = b""

    def _raw(self, msg: bytes) -> None:
        if msg.startswith(DLE + EOT):
            self._pending = msg
            return
        super()._raw(msg)

    def _read(self) -> bytes:
        if self._pending.endswith(b"\x01"):
            return bytes((0x16 | (0x08 if not self.online else 0),))
        return bytes(({"ok": 0x12, "low": 0x1E, "out": 0x72}[self.paper],))


def test_out_of_paper_and_offline_are_faults_with_a_listener():
    heard = []
    paper_out = EscposPrinter("in-1", StatusPrinter(paper="out"), status_check=True,
                              on_fault=lambda name, fault: heard.append((name, fault.code)))
    with pytest.raises(PrinterFault) as err:
        paper_out.print_document(["x"])
    assert err.value.code == "printer_paper_out" and not paper_out.ok
    assert paper_out.backend.output == b""  # nothing half-printed
    offline = EscposPrinter("booth", StatusPrinter(online=False), status_check=True,
                            on_fault=lambda name, fault: heard.append((name, fault.code)))
    with pytest.raises(PrinterFault):
        offline.print_document(["x"])
    assert heard == [("in-1", "printer_paper_out"), ("booth", "printer_offline")]
    paper_out.backend.paper = "ok"  # refilled
    assert paper_out.probe() and paper_out.ok
    paper_out.print_document(["x"])
    assert paper_out.backend.output == INIT + b"x\n" + CUT


def test_low_paper_still_prints():
    printer = EscposPrinter("in-1", StatusPrinter(paper="low"), status_check=True)
    printer.print_document(["x"])
    assert printer.ok


def test_write_error_is_a_fault(tmp_path):
    printer = EscposPrinter("in-1", make_backend("file", path=str(tmp_path / "no" / "dir")))
    with pytest.raises(PrinterFault) as err:
        printer.print_document(["x"])
    assert err.value.code == "printer_io" and not printer.ok


def test_file_backend_writes_the_bytes(tmp_path):
    path = tmp_path / "p.escpos"
    printer = EscposPrinter("in-1", make_backend("file", path=str(path)))
    printer.print_document(["hello"])
    printer.backend.close()
    assert path.read_bytes() == INIT + b"hello\n" + CUT


def test_a_usb_printer_that_is_not_there_is_a_fault_not_a_crash():
    printer = EscposPrinter("in-1", make_backend("usb", vendor_id=0x04B8, product_id=0x0E15))
    with pytest.raises(PrinterFault) as err:
        printer.print_document(["x"])
    assert err.value.code == "printer_io" and not printer.ok

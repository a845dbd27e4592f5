"""ZVT commands the appliance (the ECR) sends and the answers it reads, as values. No IO.

Command layouts follow the ZVT-Protocol specification's chapter 2 (ECR to PT) and 3 (PT to
ECR); docs/payments.md lists each one used, with its BMPs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.zvt.apdu import (
    Apdu,
    ProtocolError,
    Tlv,
    bcd_decode,
    bcd_digits,
    bcd_encode,
    encode_bmp,
    parse_bmps,
    parse_tlv,
    split_apdu,
)

# control fields (class, instruction)
REGISTRATION = (0x06, 0x00)
AUTHORIZATION = (0x06, 0x01)
COMPLETION = (0x06, 0x0F)
ABORT_FROM_PT = (0x06, 0x1E)
REPEAT_RECEIPT = (0x06, 0x20)
PRE_AUTHORISATION = (0x06, 0x22)
BOOK_TOTAL = (0x06, 0x24)
PRE_AUTH_REVERSAL = (0x06, 0x25)
REVERSAL = (0x06, 0x30)
REFUND = (0x06, 0x31)
END_OF_DAY = (0x06, 0x50)
ABORT = (0x06, 0xB0)
PRINT_LINE = (0x06, 0xD1)
PRINT_TEXT_BLOCK = (0x06, 0xD3)
STATUS_ENQUIRY = (0x05, 0x01)
STATUS_INFORMATION = (0x04, 0x0F)
INTERMEDIATE_STATUS = (0x04, 0xFF)

# config-byte of Registration: receipts of payment (0x02) and administration (0x04) go to the
# ECR, intermediate status-information is sent (0x08), the ECR controls payment (0x10) and
# administration (0x20) functions, receipts come as text blocks (0x80)
CONFIG_BYTE = 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x80

# payment-type (BMP 19) in a Status-Information: how the card was authorised
PAYMENT_TYPE_OFFLINE = 0x40
PAYMENT_TYPE_NO_AUTH = 0x50  # card checked positively, no authorisation carried out
PAYMENT_TYPE_ONLINE = 0x60
PAYMENT_TYPE_PIN = 0x70

RESULT_TEXT = {
    0x00: "no error",
    0x05: "declined",
    0x62: "card not admitted",
    0x64: "card not readable",
    0x65: "card-data not present",
    0x66: "processing-error",
    0x6A: "function not permitted for this card",
    0x6C: "abort via timeout or abort-key",
    0x6F: "wrong currency",
    0x78: "card expired",
    0x83: "function not possible",
    0x9A: "ZVT-protocol error",
    0x9C: "repeat status-information",
    0xA0: "receiver not ready",
    0xB4: "already reversed",
    0xB5: "reversal not possible",
    0xC2: "diagnosis required",
    0xFF: "system error",
}

CARD_TYPES = {0x05: "girocard", 0x06: "MASTERCARD", 0x0A: "VISA", 0x2E: "Maestro",
              0x08: "AMEX", 0x0C: "Diners"}


def result_text(code: int) -> str:
    """The spec's text for a result-code."""
    return RESULT_TEXT.get(code, f"error {code:#04x}")


# --- ECR -> PT -------------------------------------------------------------------------------
def _password(password: str) -> bytes:
    if len(password) != 6 or not password.isdigit():
        raise ProtocolError("password: 6 digits")
    return bytes.fromhex(password)


def registration(password: str, currency: int, config_byte: int = CONFIG_BYTE) -> Apdu:
    """06 00: password, config-byte, currency code."""
    return Apdu(*REGISTRATION, _password(password) + bytes((config_byte,))
                + bcd_encode(currency, 2))


def _amount_command(control: tuple[int, int], amount_cents: int, currency: int | None) -> Apdu:
    data = encode_bmp(0x04, bcd_encode(amount_cents, 6))
    if currency is not None:
        data += encode_bmp(0x49, bcd_encode(currency, 2))
    return Apdu(*control, data)


def authorization(amount_cents: int, currency: int | None = None) -> Apdu:
    """06 01: a payment of `amount_cents`."""
    return _amount_command(AUTHORIZATION, amount_cents, currency)


def pre_authorisation(amount_cents: int, currency: int | None = None) -> Apdu:
    """06 22: reserve `amount_cents` on the card (booked later with Book Total)."""
    return _amount_command(PRE_AUTHORISATION, amount_cents, currency)


def book_total(receipt_no: int, amount_cents: int, currency: int | None = None) -> Apdu:
    """06 24: book `amount_cents` (at most the reserved amount) of pre-authorisation
    `receipt_no`."""
    data = encode_bmp(0x87, bcd_encode(receipt_no, 2)) + encode_bmp(
        0x04, bcd_encode(amount_cents, 6))
    if currency is not None:
        data += encode_bmp(0x49, bcd_encode(currency, 2))
    return Apdu(*BOOK_TOTAL, data)


def pre_auth_reversal(receipt_no: int, amount_cents: int) -> Apdu:
    """06 25: release the reservation of pre-authorisation `receipt_no`."""
    return Apdu(*PRE_AUTH_REVERSAL, encode_bmp(0x87, bcd_encode(receipt_no, 2))
                + encode_bmp(0x04, bcd_encode(amount_cents, 6)))


def reversal(password: str, receipt_no: int) -> Apdu:
    """06 30: reverse payment `receipt_no` (before the day's end-of-day)."""
    return Apdu(*REVERSAL, _password(password) + encode_bmp(0x87, bcd_encode(receipt_no, 2)))


def refund(password: str, amount_cents: int) -> Apdu:
    """06 31: pay `amount_cents` back to the card presented."""
    return Apdu(*REFUND, _password(password) + encode_bmp(0x04, bcd_encode(amount_cents, 6)))


def end_of_day(password: str) -> Apdu:
    """06 50: close the day: the terminal submits its transactions and reports totals."""
    return Apdu(*END_OF_DAY, _password(password))


def repeat_receipt(password: str) -> Apdu:
    """06 20: repeat the last transaction's receipt and its Status-Information."""
    return Apdu(*REPEAT_RECEIPT, _password(password))


def status_enquiry(password: str) -> Apdu:
    """05 01: the terminal's status."""
    return Apdu(*STATUS_ENQUIRY, _password(password))


def abort() -> Apdu:
    """06 B0: abort the command the terminal is running."""
    return Apdu(*ABORT)


# --- PT -> ECR -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, slots=True)
class StatusInfo:
    """A Status-Information (04 0F): a transaction's result and the card that paid."""

    result_code: int
    amount_cents: int | None = None
    trace_no: int | None = None
    receipt_no: int | None = None
    turnover_no: int | None = None
    payment_type: int | None = None
    card_type: int | None = None
    card_name: str | None = None
    pan: str | None = None  # masked: 'E' for each hidden digit
    terminal_id: str | None = None
    aid: str | None = None
    currency: int | None = None
    time: str | None = None  # HHMMSS
    date: str | None = None  # MMDD
    text: str | None = None
    tlv: tuple[Tlv, ...] = field(default=())

    @property
    def approved(self) -> bool:
        """Result-code 00."""
        return self.result_code == 0

    @property
    def offline(self) -> bool:
        """Approved by the terminal without its processor (below its floor limit)."""
        return self.payment_type in (PAYMENT_TYPE_OFFLINE, PAYMENT_TYPE_NO_AUTH)

    @property
    def last4(self) -> str | None:
        """The PAN's last four digits, when the terminal sent them unmasked."""
        if self.pan and len(self.pan) >= 4 and self.pan[-4:].isdigit():
            return self.pan[-4:]
        return None

    @property
    def brand(self) -> str | None:
        """Card name, else the name of its ZVT card type."""
        if self.card_name:
            return self.card_name
        return CARD_TYPES.get(self.card_type) if self.card_type is not None else None


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("cp437")


def decode_status_info(apdu: Apdu) -> StatusInfo:
    """The fields of a Status-Information APDU."""
    if apdu.command != STATUS_INFORMATION:
        raise ProtocolError(f"not a Status-Information: {apdu.cls:02X} {apdu.instr:02X}")
    values: dict[str, object] = {}
    tlv: tuple[Tlv, ...] = ()
    for number, raw in parse_bmps(apdu.data, lenient=True):
        match number:
            case 0x27:
                values["result_code"] = raw[0]
            case 0x04:
                values["amount_cents"] = bcd_decode(raw)
            case 0x0B:
                values["trace_no"] = bcd_decode(raw)
            case 0x87:
                values["receipt_no"] = bcd_decode(raw)
            case 0x88:
                values["turnover_no"] = bcd_decode(raw)
            case 0x19:
                values["payment_type"] = raw[0]
            case 0x8A:
                values["card_type"] = raw[0]
            case 0x8B:
                values["card_name"] = _text(raw)
            case 0x22:
                values["pan"] = bcd_digits(raw)
            case 0x29:
                values["terminal_id"] = bcd_digits(raw)
            case 0x3B:
                values["aid"] = _text(raw)
            case 0x49:
                values["currency"] = bcd_decode(raw)
            case 0x0C:
                values["time"] = bcd_digits(raw)
            case 0x0D:
                values["date"] = bcd_digits(raw)
            case 0x3C:
                values["text"] = _text(raw)
            case 0x06:
                tlv = parse_tlv(raw)
    if "result_code" not in values:
        raise ProtocolError("Status-Information without a result-code (BMP 27)")
    return StatusInfo(tlv=tlv, **values)  # type: ignore[arg-type]


def encode_status_info(info: StatusInfo) -> Apdu:
    """A Status-Information APDU from its fields (the emulator's side)."""
    data = encode_bmp(0x27, bytes((info.result_code,)))
    if info.amount_cents is not None:
        data += encode_bmp(0x04, bcd_encode(info.amount_cents, 6))
    if info.trace_no is not None:
        data += encode_bmp(0x0B, bcd_encode(info.trace_no, 3))
    if info.time is not None:
        data += encode_bmp(0x0C, bytes.fromhex(info.time))
    if info.date is not None:
        data += encode_bmp(0x0D, bytes.fromhex(info.date))
    if info.payment_type is not None:
        data += encode_bmp(0x19, bytes((info.payment_type,)))
    if info.pan is not None:
        digits = info.pan + ("F" if len(info.pan) % 2 else "")
        data += encode_bmp(0x22, bytes.fromhex(digits))
    if info.terminal_id is not None:
        data += encode_bmp(0x29, bytes.fromhex(info.terminal_id.rjust(8, "0")))
    if info.text is not None:
        data += encode_bmp(0x3C, info.text.encode("cp437"))
    if info.currency is not None:
        data += encode_bmp(0x49, bcd_encode(info.currency, 2))
    if info.receipt_no is not None:
        data += encode_bmp(0x87, bcd_encode(info.receipt_no, 2))
    if info.turnover_no is not None:
        data += encode_bmp(0x88, bcd_encode(info.turnover_no, 3))
    if info.card_type is not None:
        data += encode_bmp(0x8A, bytes((info.card_type,)))
    if info.card_name is not None:
        data += encode_bmp(0x8B, info.card_name.encode("cp437") + b"\x00")
    return Apdu(*STATUS_INFORMATION, data)


def abort_result(apdu: Apdu) -> int:
    """The result-code of a PT's Abort (06 1E); 0x6C when it sends none."""
    return apdu.data[0] if apdu.data else 0x6C


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceiptText:
    """Receipt lines the terminal sent for the ECR to print (06 D1 lines or a 06 D3 block)."""

    lines: tuple[str, ...]
    receipt_type: int | None = None  # 1 merchant, 2 cardholder, 3 administration
    last: bool = False  # the receipt is complete


def _split_trailing_tlv(data: bytes) -> tuple[bytes, tuple[Tlv, ...]]:
    """A print line's text and the TLV container some terminals append to it."""
    for i in range(len(data) - 2, -1, -1):
        if data[i] != 0x06:
            continue
        try:
            (number, raw), = parse_bmps(data[i:])
        except (ProtocolError, ValueError):
            continue
        if number == 0x06:
            return data[:i], parse_tlv(raw)
    return data, ()


def decode_print_line(apdu: Apdu) -> ReceiptText:
    """06 D1: an attribute byte (bit 8: last line) and one line of text."""
    if apdu.command != PRINT_LINE or not apdu.data:
        raise ProtocolError("not a Print Line")
    text, tlv = _split_trailing_tlv(apdu.data[1:])
    kind = next((t.value for t in tlv if t.tag == 0x1F07), b"")
    return ReceiptText(lines=(text.decode("cp437"),), last=bool(apdu.data[0] & 0x80),
                       receipt_type=kind[0] if kind else None)


def decode_text_block(apdu: Apdu) -> ReceiptText:
    """06 D3: a TLV container with the receipt type (1F07) and text lines (25 > 07)."""
    if apdu.command != PRINT_TEXT_BLOCK:
        raise ProtocolError("not a Print Text-Block")
    objects: tuple[Tlv, ...] = ()
    for number, raw in parse_bmps(apdu.data):
        if number == 0x06:
            objects = parse_tlv(raw)
    lines: list[str] = []
    kind = None
    last = False
    for obj in objects:
        if obj.tag == 0x1F07 and obj.value:
            kind = obj.value[0]
        elif obj.tag == 0x25:
            lines.extend(c.value.decode("cp437") for c in obj.children if c.tag == 0x07)
        elif obj.tag == 0x09 and obj.value:
            last = bool(obj.value[0] & 0x80)
    return ReceiptText(lines=tuple(lines), receipt_type=kind, last=last or bool(lines))


def encode_text_block(lines: list[str], receipt_type: int) -> Apdu:
    """06 D3 from receipt lines (the emulator's side)."""
    body = (Tlv(0x1F07, bytes((receipt_type,))),
            Tlv(0x25, children=tuple(Tlv(0x07, ln.encode("cp437")) for ln in lines)),
            Tlv(0x09, b"\x81"))
    data = b"".join(o.encode() for o in body)
    return Apdu(*PRINT_TEXT_BLOCK, encode_bmp(0x06, data))


def decode_any(buf: bytes) -> list[Apdu]:
    """Every complete APDU in `buf` (test and diagnostic helper); leftovers are an error."""
    out = []
    while buf:
        apdu, buf = split_apdu(buf)
        if apdu is None:
            raise ProtocolError("incomplete APDU at the end")
        out.append(apdu)
    return out

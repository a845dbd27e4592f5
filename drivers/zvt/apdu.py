"""ZVT APDUs, bitmaps (BMPs) and TLV containers: encoding and decoding, no IO.

Written from the ECR-Interface ZVT-Protocol specification ("PA00P015", revision 13.x, chapter
"Summary of utilised BMPs" and the TLV-container chapter). An APDU is CLASS, INSTR, a length
byte (or 0xFF and a two-byte little-endian length) and that many data bytes; a command's data
is a run of BMPs, each a one-byte number and a value whose length the number fixes, or an
LL/LLL prefix (digits as 0xFx bytes) gives, or (BMP 06) a BER-TLV length gives.

Anything malformed raises `ProtocolError`, and nothing else, whatever the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import DeviceError


class ProtocolError(DeviceError):
    """Bytes that are not a well-formed ZVT APDU, BMP or TLV container."""

    def __init__(self, detail: str):
        super().__init__(detail, code="zvt_protocol", device="payment")


# --- APDU ------------------------------------------------------------------------------------
MAX_DATA = 0xFFFF


@dataclass(frozen=True, slots=True)
class Apdu:
    """One APDU: control field (class, instruction) and its data block."""

    cls: int
    instr: int
    data: bytes = b""

    @property
    def command(self) -> tuple[int, int]:
        """The control field as a pair, e.g. (0x04, 0x0F) for Status-Information."""
        return self.cls, self.instr

    def encode(self) -> bytes:
        """The APDU's bytes: a short length below 255, else FF and a little-endian length."""
        if not (0 <= self.cls <= 0xFF and 0 <= self.instr <= 0xFF):
            raise ProtocolError("control field bytes must be 0-255")
        n = len(self.data)
        if n > MAX_DATA:
            raise ProtocolError(f"data block of {n} bytes exceeds {MAX_DATA}")
        head = bytes((self.cls, self.instr))
        if n < 0xFF:
            return head + bytes((n,)) + self.data
        return head + b"\xff" + n.to_bytes(2, "little") + self.data


def split_apdu(buf: bytes) -> tuple[Apdu | None, bytes]:
    """The first complete APDU in `buf` and the bytes after it; (None, buf) if incomplete."""
    if len(buf) < 3:
        return None, buf
    length = buf[2]
    start = 3
    if length == 0xFF:
        if len(buf) < 5:
            return None, buf
        length = int.from_bytes(buf[3:5], "little")
        start = 5
    end = start + length
    if len(buf) < end:
        return None, buf
    return Apdu(buf[0], buf[1], bytes(buf[start:end])), bytes(buf[end:])


def decode_apdu(buf: bytes) -> Apdu:
    """Exactly one APDU; trailing or missing bytes are a ProtocolError."""
    apdu, rest = split_apdu(bytes(buf))
    if apdu is None:
        raise ProtocolError(f"incomplete APDU ({len(buf)} bytes)")
    if rest:
        raise ProtocolError(f"{len(rest)} bytes after the APDU")
    return apdu


ACK = Apdu(0x80, 0x00)


def nack(code: int) -> Apdu:
    """A negative acknowledgement 84 xx (xx an error code, 0x9C 'repeat status-info')."""
    return Apdu(0x84, code & 0xFF)


# --- BCD and length prefixes -----------------------------------------------------------------
def bcd_encode(value: int, nbytes: int) -> bytes:
    """`value` as packed BCD in `nbytes` bytes (two digits per byte, most significant first)."""
    digits = str(value)
    if value < 0 or len(digits) > nbytes * 2:
        raise ProtocolError(f"{value} does not fit {nbytes} BCD bytes")
    return bytes.fromhex(digits.rjust(nbytes * 2, "0"))


def bcd_decode(raw: bytes) -> int:
    """Packed BCD to an integer; a nibble above 9 is a ProtocolError."""
    text = raw.hex()
    if not text.isdigit():
        raise ProtocolError(f"not BCD: {text}")
    return int(text) if text else 0


def bcd_digits(raw: bytes) -> str:
    """BCD digits as text, keeping 'E' masking nibbles (PANs) and dropping 'F' padding."""
    text = raw.hex().upper()
    if any(c not in "0123456789EF" for c in text):
        raise ProtocolError(f"not BCD digits: {text}")
    return text.replace("F", "")


def _prefix(n: int, digits: int) -> bytes:
    if n >= 10**digits:
        raise ProtocolError(f"length {n} does not fit {digits} digits")
    return bytes(0xF0 | int(d) for d in str(n).rjust(digits, "0"))


def _read_prefix(data: bytes, pos: int, digits: int) -> tuple[int, int]:
    raw = data[pos:pos + digits]
    if len(raw) < digits:
        raise ProtocolError("truncated length prefix")
    n = 0
    for b in raw:
        if b & 0xF0 != 0xF0 or b & 0x0F > 9:
            raise ProtocolError(f"bad length prefix byte {b:#04x}")
        n = n * 10 + (b & 0x0F)
    return n, pos + digits


# --- BMPs ------------------------------------------------------------------------------------
LL, LLL, TLV = -2, -3, -6
# number -> fixed length in bytes, or LL / LLL / TLV (spec "Summary of utilised BMPs")
BMP_LENGTHS: dict[int, int] = {
    0x01: 1,    # time-out (binary)
    0x02: 1,    # max. status-infos
    0x03: 1,    # service-byte
    0x04: 6,    # amount, BCD, in cents
    0x05: 1,    # pump number
    0x06: TLV,  # TLV container
    0x0B: 3,    # trace-number, BCD
    0x0C: 3,    # time HHMMSS, BCD
    0x0D: 2,    # date MMDD, BCD
    0x0E: 2,    # expiry date YYMM, BCD
    0x17: 2,    # card sequence-number, BCD
    0x19: 1,    # status-byte / payment-type / card-type (binary)
    0x22: LL,   # PAN / EF_ID, BCD, 'E' masks a digit
    0x23: LL,   # track 2
    0x24: LLL,  # track 3
    0x27: 1,    # result-code
    0x29: 4,    # terminal id, BCD
    0x2A: 15,   # VU number, ASCII
    0x2D: LL,   # track 1
    0x2E: LLL,  # synchronous chip data
    0x37: 3,    # trace-number of the original transaction (reversal)
    0x3A: 2,    # CVV/CVC
    0x3B: 8,    # AID authorisation attribute
    0x3C: LLL,  # additional data / text
    0x3D: 3,    # password, BCD
    0x49: 2,    # currency code, BCD (0978 = EUR)
    0x60: LLL,  # individual totals (end-of-day)
    0x87: 2,    # receipt-number, BCD
    0x88: 3,    # turnover record number, BCD
    0x8A: 1,    # card type (ZVT card-type id)
    0x8B: LL,   # card name, ASCII, 0-terminated
    0x8C: 1,    # card type id of the network operator
    0x92: LLL,  # additional data ec-Cash with chip
    0x9A: LLL,  # geldkarte payments / failed-payment record
    0xA0: 1,    # result-code AS
    0xA7: LL,   # chip data EF_ID
    0xAA: 3,    # date YYMMDD, BCD
    0xAF: LLL,  # EF_Info
    0xBA: 5,    # AID parameter
    0xF1: LL, 0xF2: LL, 0xF3: LL, 0xF4: LL, 0xF5: LL, 0xF6: LL, 0xF7: LL, 0xF8: LL,  # texts
}


def encode_bmp(number: int, value: bytes) -> bytes:
    """One BMP: its number, its length prefix where it has one, its value."""
    kind = BMP_LENGTHS.get(number)
    if kind is None:
        raise ProtocolError(f"unknown BMP {number:#04x}")
    if kind == LL:
        return bytes((number,)) + _prefix(len(value), 2) + value
    if kind == LLL:
        return bytes((number,)) + _prefix(len(value), 3) + value
    if kind == TLV:
        return bytes((number,)) + tlv_length(len(value)) + value
    if len(value) != kind:
        raise ProtocolError(f"BMP {number:#04x} is {kind} bytes, got {len(value)}")
    return bytes((number,)) + value


def parse_bmps(data: bytes, *, lenient: bool = False) -> list[tuple[int, bytes]]:
    """The BMPs of a data block, in order; an unknown number or short value is an error.

    `lenient`: stop at an unknown BMP (its length cannot be known) and keep what came before,
    for answers where a terminal's own additions must not cost the fields that matter."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        number = data[pos]
        pos += 1
        kind = BMP_LENGTHS.get(number)
        if kind is None:
            if lenient:
                return out
            raise ProtocolError(f"unknown BMP {number:#04x} at offset {pos - 1}")
        if kind == LL:
            n, pos = _read_prefix(data, pos, 2)
        elif kind == LLL:
            n, pos = _read_prefix(data, pos, 3)
        elif kind == TLV:
            n, pos = _read_tlv_length(data, pos)
        else:
            n = kind
        value = data[pos:pos + n]
        if len(value) != n:
            raise ProtocolError(f"BMP {number:#04x} truncated ({len(value)} of {n} bytes)")
        out.append((number, bytes(value)))
        pos += n
    return out


# --- TLV (BER-style tags and lengths) --------------------------------------------------------
def tlv_length(n: int) -> bytes:
    """A TLV length: one byte below 0x80, else 0x81 n or 0x82 n n (big-endian)."""
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return b"\x82" + n.to_bytes(2, "big")
    raise ProtocolError(f"TLV length {n} too long")


def _read_tlv_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise ProtocolError("truncated TLV length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count not in (1, 2):
        raise ProtocolError(f"bad TLV length byte {first:#04x}")
    raw = data[pos + 1:pos + 1 + count]
    if len(raw) != count:
        raise ProtocolError("truncated TLV length")
    return int.from_bytes(raw, "big"), pos + 1 + count


def _read_tag(data: bytes, pos: int) -> tuple[int, bool, int]:
    if pos >= len(data):
        raise ProtocolError("truncated TLV tag")
    start = pos
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:  # more tag bytes follow, each with bit 8 set but the last
        while True:
            if pos >= len(data) or pos - start >= 4:
                raise ProtocolError("truncated or overlong TLV tag")
            b = data[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
    return tag, bool(first & 0x20), pos


def _tag_bytes(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


@dataclass(frozen=True, slots=True)
class Tlv:
    """One TLV object: primitive (`value`) or constructed (`children`)."""

    tag: int
    value: bytes = b""
    children: tuple[Tlv, ...] = ()

    @property
    def constructed(self) -> bool:
        """Constructed objects hold other objects (tag bit 6 of the first byte)."""
        return bool(_tag_bytes(self.tag)[0] & 0x20)

    def encode(self) -> bytes:
        """Tag, length, value (children encoded in order when constructed)."""
        body = b"".join(c.encode() for c in self.children) if self.constructed else self.value
        return _tag_bytes(self.tag) + tlv_length(len(body)) + body

    def find(self, tag: int) -> Tlv | None:
        """The first object with `tag` at any depth below this one."""
        for child in self.children:
            if child.tag == tag:
                return child
            found = child.find(tag)
            if found is not None:
                return found
        return None


def parse_tlv(data: bytes, depth: int = 0) -> tuple[Tlv, ...]:
    """The TLV objects of a container's value, constructed ones parsed recursively."""
    if depth > 8:
        raise ProtocolError("TLV nested too deep")
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        tag, constructed, pos = _read_tag(data, pos)
        n, pos = _read_tlv_length(data, pos)
        value = data[pos:pos + n]
        if len(value) != n:
            raise ProtocolError(f"TLV {tag:#x} truncated")
        pos += n
        if constructed:
            out.append(Tlv(tag, b"", parse_tlv(value, depth + 1)))
        else:
            out.append(Tlv(tag, bytes(value)))
    return tuple(out)


def tlv_container(objects: list[Tlv] | tuple[Tlv, ...]) -> bytes:
    """BMP 06 holding these objects."""
    return encode_bmp(0x06, b"".join(o.encode() for o in objects))

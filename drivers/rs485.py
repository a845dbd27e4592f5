"""A home-made ASCII bus frame (colon framing with a CRC-16/MODBUS): spoken by no product.

Not used by the appliance: RS-485 spot sensors speak Modbus RTU (`drivers/modbus_sensors.py`).
This module and `serial_sim.SimulatedRs485Bus` remain only because `bench/bench_drivers.py` still
measures them; delete all three together once the bench moves to Modbus.

Frame (both directions), all ASCII:

    ':'  ADDR  CMD  DATA  CRC  CR LF
    ADDR  two upper-case hex digits, 01..F7 (00 = broadcast, never answered)
    CMD   one upper-case letter: 'R' read range (request has no DATA; the reply's DATA is four
          decimal digits, the distance in cm), 'E' error reply (DATA = two hex digits, the
          sensor's error code: 01 no echo, 02 blocked, 03 self-test failed)
    DATA  0..16 printable ASCII characters except ':'
    CRC   four upper-case hex digits: CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) over
          the ASCII bytes of ADDR + CMD + DATA

Example: the appliance sends `:05R` + CRC + CRLF; sensor 5 answers `:05R0123` + CRC + CRLF
(123 cm). Frames are parsed by `FrameParser`, which counts and skips everything malformed.
"""

from __future__ import annotations

from dataclasses import dataclass

_TABLE: list[int] = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0xA001 if _crc & 1 else _crc >> 1
    _TABLE.append(_crc)
del _byte, _crc

_MAX_LINE = 32
_HEX = frozenset(b"0123456789ABCDEF")


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS of `data` (check value of b'123456789' is 0x4B37)."""
    crc = 0xFFFF
    table = _TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


@dataclass(frozen=True, kw_only=True, slots=True)
class Frame:
    """One decoded frame."""

    address: int
    command: str
    data: str

    @property
    def distance_cm(self) -> int | None:
        """The range of an `R` reply, or None."""
        if self.command == "R" and len(self.data) == 4 and self.data.isdigit():
            return int(self.data)
        return None


def encode_frame(address: int, command: str, data: str = "") -> bytes:
    """Build a frame; raise ValueError on an address, command or data that cannot be sent."""
    if not 0 <= address <= 0xF7:
        raise ValueError(f"address: {address} is not in 0..247")
    if len(command) != 1 or not "A" <= command <= "Z":
        raise ValueError(f"command: {command!r} is not one upper-case letter")
    if len(data) > 16 or ":" in data or not all(" " <= ch <= "~" for ch in data):
        raise ValueError(f"data: {data!r} is not 0..16 printable characters without ':'")
    body = f"{address:02X}{command}{data}".encode("ascii")
    return b":" + body + b"%04X\r\n" % crc16_modbus(body)


def read_request(address: int) -> bytes:
    """The request that polls one sensor's range."""
    return encode_frame(address, "R")


def range_reply(address: int, distance_cm: int) -> bytes:
    """A sensor's range reply."""
    return encode_frame(address, "R", f"{distance_cm:04d}")


def error_reply(address: int, code: int) -> bytes:
    """A sensor's error reply."""
    return encode_frame(address, "E", f"{code:02X}")


class FrameParser:
    """Stream parser for bus frames; bad checksums, malformed lines and noise are counted, skipped.

    Anything before a ':' is noise; a line ends at LF (a missing CR is tolerated).
    """

    def __init__(self) -> None:
        self._partial = b""
        self.frames = 0
        self.bad_checksum = 0
        self.malformed = 0
        self.noise = 0

    @property
    def errors(self) -> int:
        """All rejected lines and noise runs."""
        return self.bad_checksum + self.malformed + self.noise

    def feed(self, data: bytes) -> list[Frame]:
        """Parse a chunk; return the complete valid frames in it."""
        buf = self._partial + data if self._partial else data
        lines = buf.split(b"\n")
        partial = lines.pop()
        if len(partial) > _MAX_LINE:
            # keep a trailing frame start, drop what cannot be a frame
            at = partial.rfind(b":")
            partial = partial[at:] if at >= 0 and len(partial) - at <= _MAX_LINE else b""
            self.malformed += 1
        self._partial = partial
        out: list[Frame] = []
        for line in lines:
            frame = self._line(line)
            if frame is not None:
                out.append(frame)
        self.frames += len(out)
        return out

    def _line(self, line: bytes) -> Frame | None:
        at = line.rfind(b":")
        if at < 0:
            if line.strip():
                self.malformed += 1
            return None
        if at > 0 and line[:at].strip():
            self.noise += 1
        body = line[at + 1:]
        if body.endswith(b"\r"):
            body = body[:-1]
        if len(body) < 7 or not _HEX.issuperset(body[:2]) or not _HEX.issuperset(body[-4:]):
            self.malformed += 1
            return None
        payload, crc_text = body[:-4], body[-4:]
        command = payload[2:3]
        data = payload[3:]
        if not (65 <= command[0] <= 90) or any(b < 32 or b > 126 for b in data):
            self.malformed += 1
            return None
        if int(crc_text, 16) != crc16_modbus(payload):
            self.bad_checksum += 1
            return None
        return Frame(address=int(payload[:2], 16), command=command.decode(),
                     data=data.decode("ascii"))

"""MaxBotix-style ASCII range output: `R` + four digits + CR, e.g. `R0123\\r` = 123 cm.

`MaxBotixParser` is pure (bytes in, distances out, errors counted); the port reader lives in
`drivers/spot_sensors.py`.
"""

from __future__ import annotations

_CR = b"\r"
_MAX_PARTIAL = 64


def encode_range(distance_cm: int) -> bytes:
    """The frame a sensor sends for one range reading."""
    if not 0 <= distance_cm <= 9999:
        raise ValueError(f"distance_cm: {distance_cm} does not fit in four digits")
    return b"R%04d\r" % distance_cm


class MaxBotixParser:
    """Stream parser: feed any chunks, get whole readings; malformed lines are counted, skipped.

    A line is everything up to a CR. A valid line is `R` + 4 ASCII digits; line noise in front of
    the `R` is dropped (counted in `noise_lines`) and the reading kept. LF and empty lines are
    ignored. A partial line is kept until the next chunk; one longer than 64 bytes is dropped.
    """

    def __init__(self) -> None:
        self._partial = b""
        self.frames = 0
        self.errors = 0
        self.noise_lines = 0

    def feed(self, data: bytes) -> list[int]:
        """Parse a chunk; return the distances (cm) of the complete valid frames in it."""
        buf = self._partial + data if self._partial else data
        lines = buf.split(_CR)
        partial = lines.pop()
        if len(partial) > _MAX_PARTIAL:
            self.errors += 1
            partial = b""
        self._partial = partial
        out: list[int] = []
        for line in lines:
            if len(line) == 5 and line[0] == 82 and line[1:].isdigit():
                out.append(int(line[1:]))
                continue
            value = self._slow(line)
            if value is not None:
                out.append(value)
        self.frames += len(out)
        return out

    def _slow(self, line: bytes) -> int | None:
        if b"\n" in line:
            line = line.replace(b"\n", b"")
        if not line:
            return None
        at = line.rfind(b"R")
        tail = line[at:] if at >= 0 else b""
        if len(tail) == 5 and tail[1:].isdigit():
            if at > 0:
                self.noise_lines += 1
            return int(tail[1:])
        self.errors += 1
        return None

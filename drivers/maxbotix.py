"""MaxBotix MaxSonar serial output as the sensors ship it: `R`, the range in ASCII digits, CR.

The digits depend on the model family (MaxBotix data sheets, "Pin 5 serial output"):

| format  | families                                   | frame        | one count |
|---------|--------------------------------------------|--------------|-----------|
| `R3-in` | LV-MaxSonar-EZ (MB1000-MB1040)              | `R123\\r`     | 1 inch    |
| `R3-cm` | XL-MaxSonar-EZ/AE/WR (MB1200-MB1340, MB72xx) | `R123\\r`     | 1 cm      |
| `R4-mm` | HR-MaxSonar (HRLV, HRXL; MB1003, MB736x)    | `R1234\\r`    | 1 mm      |

9600 baud 8N1. The sensor reports its maximum range when it sees nothing (LV 254/255 in, XL
765 cm, HRXL 5000 mm, 9999 mm on 10 m models) and its minimum when a target is closer than that:
neither is a distance, and a maximum-range reading is "no target", never "free".

`MaxBotixParser` is pure (bytes in, raw counts out, errors counted); `MaxBotixFormat` turns
counts into centimetres; the port reader lives in `drivers/spot_sensors.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

_CR = b"\r"
_MAX_PARTIAL = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class MaxBotixFormat:
    """One family's output: digits per frame, the unit of a count and the range limits."""

    name: str
    digits: int
    mm_per_count: float
    min_cm: int
    max_cm: int

    def to_cm(self, count: int) -> int:
        """A count in centimetres."""
        return round(count * self.mm_per_count / 10)

    def classify(self, count: int, *, min_cm: int | None = None,
                 max_cm: int | None = None) -> tuple[int | None, str]:
        """(distance_cm, "ok") or (None, "no_target" | "out_of_range") for one count."""
        cm = self.to_cm(count)
        top = self.max_cm if max_cm is None else max_cm
        bottom = self.min_cm if min_cm is None else min_cm
        if cm >= top:
            return None, "no_target"
        if cm <= bottom:
            return None, "out_of_range"
        return cm, "ok"


FORMATS = {f.name: f for f in (
    MaxBotixFormat(name="R3-in", digits=3, mm_per_count=25.4, min_cm=15, max_cm=645),
    MaxBotixFormat(name="R3-cm", digits=3, mm_per_count=10.0, min_cm=20, max_cm=765),
    MaxBotixFormat(name="R4-mm", digits=4, mm_per_count=1.0, min_cm=30, max_cm=500),
)}


def encode_range(count: int, digits: int = 4) -> bytes:
    """The frame a sensor sends for one reading (`count` in the family's unit)."""
    if not 0 <= count < 10**digits:
        raise ValueError(f"count: {count} does not fit in {digits} digits")
    return b"R%0*d\r" % (digits, count)


class MaxBotixParser:
    """Stream parser: feed any chunks, get whole readings; malformed lines are counted, skipped.

    A line is everything up to a CR. A valid line is `R` + `digits` ASCII digits; line noise in
    front of the `R` is dropped (counted in `noise_lines`) and the reading kept. LF and empty
    lines are ignored. A partial line is kept until the next chunk; one longer than 64 bytes is
    dropped. A frame with the wrong number of digits (another family's) is an error.
    """

    def __init__(self, digits: int = 4) -> None:
        if digits not in (3, 4):
            raise ValueError("digits: MaxBotix frames carry 3 or 4 digits")
        self.digits = digits
        self._partial = b""
        self.frames = 0
        self.errors = 0
        self.noise_lines = 0

    def feed(self, data: bytes) -> list[int]:
        """Parse a chunk; return the counts of the complete valid frames in it."""
        buf = self._partial + data if self._partial else data
        lines = buf.split(_CR)
        partial = lines.pop()
        if len(partial) > _MAX_PARTIAL:
            self.errors += 1
            partial = b""
        self._partial = partial
        size = self.digits + 1
        out: list[int] = []
        for line in lines:
            if len(line) == size and line[0] == 82 and line[1:].isdigit():
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
        if len(tail) == self.digits + 1 and tail[1:].isdigit():
            if at > 0:
                self.noise_lines += 1
            return int(tail[1:])
        self.errors += 1
        return None

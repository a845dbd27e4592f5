"""The message display at a lane (rate before the barrier opens, FULL, see attendant).

`MemoryLaneDisplay` is the simulator and keeps what each lane shows; a real display is driven
with one ASCII line per message (`LINE:<text>\\r\\n`) over a serial port (`SerialLaneDisplay`).
"""

from __future__ import annotations

from typing import Protocol


class LaneDisplay(Protocol):
    """Anything that can show a short text at a lane."""

    def show(self, lane: str, text: str) -> None: ...


class MemoryLaneDisplay:
    """The simulated lane display: remembers the current and recent messages per lane."""

    def __init__(self, history: int = 20) -> None:
        self.current: dict[str, str] = {}
        self.history: dict[str, list[str]] = {}
        self.shown: dict[str, int] = {}  # messages shown so far per lane (history is capped)
        self._keep = history

    def show(self, lane: str, text: str) -> None:
        """Show `text` at `lane`."""
        self.current[lane] = text
        self.shown[lane] = self.shown.get(lane, 0) + 1
        shown = self.history.setdefault(lane, [])
        shown.append(text)
        del shown[:-self._keep]


def display_line(text: str, *, width: int = 32) -> bytes:
    """The wire form of one message: printable ASCII, cut to the display width."""
    clean = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)[:width]
    return f"LINE:{clean}\r\n".encode("ascii")

"""Text labels and styles of states shown at the booth (text first, colour second)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from rich.text import Text

# Every state is a word; colour only repeats it (colour-blind safe).
STYLES = {
    "OPEN": "bold black on green", "HELD OPEN": "bold black on yellow",
    "CLOSED": "bold white on blue", "OCCUPIED": "bold black on yellow", "CLEAR": "dim",
    "UNKNOWN": "bold black on magenta", "ONLINE": "bold black on green",
    "OFFLINE": "bold black on yellow", "LOCAL": "bold black on yellow", "SERVICE DOWN": "bold white on red",
    "CRITICAL": "bold white on red", "WARNING": "bold black on yellow", "INFO": "bold",
    "ACKED": "dim", "NEW": "bold black on yellow", "FULL": "bold white on red",
}


def badge(word: str) -> Text:
    """A state word in its colour."""
    return Text(f" {word} ", style=STYLES.get(word, "bold"))


def money(cents: int | None, currency: str = "") -> str:
    """Integer cents as a decimal amount (display only)."""
    if cents is None:
        return "-"
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{part:02d}" + (f" {currency}" if currency else "")


def gate_word(lane: dict[str, Any]) -> str:
    """OPEN / HELD OPEN / CLOSED for a lane snapshot."""
    if lane.get("held_open"):
        return "HELD OPEN"
    return "OPEN" if lane.get("gate_open") else "CLOSED"


def loop_word(present: bool | None) -> str:
    """OCCUPIED / CLEAR / UNKNOWN for a loop detector."""
    if present is None:
        return "UNKNOWN"
    return "OCCUPIED" if present else "CLEAR"


def duration(minutes: int | None) -> str:
    """Minutes as `2h 05m`."""
    if minutes is None:
        return "-"
    hours, mins = divmod(int(minutes), 60)
    return f"{hours}h {mins:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


def short_time(iso: str | None, tz: tzinfo | None = None) -> str:
    """An ISO timestamp as `MM-DD HH:MM` in the lot's zone `tz` (as given when None)."""
    if not iso:
        return "-"
    if tz is None:
        return f"{iso[5:10]} {iso[11:16]}"
    return f"{datetime.fromisoformat(iso).astimezone(tz):%m-%d %H:%M}"


def clock_time(iso: str | None, tz: tzinfo | None = None) -> str:
    """An ISO timestamp as `HH:MM` in the lot's zone `tz` (as given when None)."""
    return short_time(iso, tz)[6:] if iso else "-"

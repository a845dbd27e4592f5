"""Ticket printer and ticket/QR scanner at a lane, with simulators.

The printer prints a ticket whose QR code carries the ticket id; the simulator writes the
ESC/POS-free text form to a file and remembers the last ticket per lane for the traffic generator.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


class FileTicketPrinter:
    """Prints tickets as text lines appended to a file (the simulated printer)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._last: dict[str, str] = {}
        self.printed = 0

    def print_ticket(self, *, lane: str, ticket_id: str, entry: datetime, level: str | None) -> None:
        """Print one entry ticket (QR payload = ticket id)."""
        self.printed += 1
        self._last[lane] = ticket_id
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(f"{entry.isoformat()}\t{lane}\t{ticket_id}\tQR:{ticket_id}\t{level or ''}\n")

    def take(self, lane: str) -> str | None:
        """The driver takes the ticket just printed at this lane."""
        return self._last.pop(lane, None)


class SimulatedScanner:
    """A ticket/QR scanner: the traffic generator holds a ticket up to it."""

    def __init__(self) -> None:
        self._at: dict[str, str] = {}

    def present(self, lane: str, ticket_id: str) -> None:
        """A ticket is being scanned at this lane."""
        self._at[lane] = ticket_id

    def leave(self, lane: str) -> None:
        """Nothing at the scanner."""
        self._at.pop(lane, None)

    def read(self, lane: str) -> str | None:
        """The ticket id scanned at this lane, if any."""
        return self._at.get(lane)

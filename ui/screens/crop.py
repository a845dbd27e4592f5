"""The plate crop of a lane's deciding read: drawn in the terminal (kitty graphics or sixel
where the terminal speaks them, else coloured half cells), with its path and a key that opens
it in the desktop's image viewer."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

# textual-image probes the terminal once, at import (before the app takes the screen); a
# terminal that does not answer is a fallback, not a traceback on the booth's screen.
logging.getLogger("textual_image").setLevel(logging.ERROR)
try:
    from textual_image.widget import Image as ImageWidget
except Exception:  # not installed, or its terminal probe failed (a 0x0 pty divides by
    ImageWidget = None  # zero): the path and the open key only


def open_command(path: Path) -> list[str] | None:
    """The command that opens `path` in the desktop's viewer (None without xdg-open)."""
    opener = shutil.which("xdg-open")
    return [opener, str(path)] if opener else None


class CropScreen(ModalScreen[None]):
    """One lane's plate crop; `o` opens the file, Escape closes."""

    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("o", "open", "Open file")]

    def __init__(self, lane: str, plate: str | None, path: str | None):
        super().__init__()
        self.lane = lane
        self.plate = plate
        self.path = Path(path) if path else None

    def compose(self) -> ComposeResult:
        """Title, the image (when there is one to draw), its path, key help."""
        with Vertical(id="form"):
            yield Static(f"{self.lane}: plate {self.plate or '(no read)'}", id="form-title",
                         markup=False)
            readable = self.path is not None and self.path.is_file()
            if readable and ImageWidget is not None:
                yield ImageWidget(str(self.path), id="crop-image")
            if self.path is None:
                where = "no crop was saved for this read"
            elif readable:
                where = f"crop: {self.path}"
            else:
                where = f"crop: {self.path} (not readable from this terminal)"
            yield Static(where, id="crop-path", markup=False)
            yield Static("o: open in the image viewer   Esc: close", id="form-help")

    def action_open(self) -> None:
        """Open the crop with xdg-open (detached; the booth keeps running)."""
        if self.path is None or not self.path.is_file():
            self.notify("no crop file to open", severity="warning")
            return
        command = open_command(self.path)
        if command is None:
            self.notify(f"no xdg-open here: open {self.path} by hand", severity="warning")
            return
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        self.notify(f"opening {self.path.name}")

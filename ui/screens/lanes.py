"""Lanes: live state of each lane; open (with reason), close, hold open."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ui.labels import badge, gate_word, loop_word
from ui.screens.crop import CropScreen
from ui.screens.dialogs import Field, FormDialog
from ui.screens.gated import RoleKeys


class LanesView(RoleKeys, Vertical):
    """Table of lanes, the selected lane's detail and the last command's result."""

    BINDINGS = [
        Binding("o", "open_gate", "Open gate"),
        Binding("c", "close_gate", "Close gate"),
        Binding("h", "hold", "Hold/release"),
        Binding("i", "crop", "Plate crop"),
    ]
    PERMISSION = {"open_gate": "gate.open", "close_gate": "gate.close", "hold": "gate.hold"}
    COLUMNS = ("Lane", "Dir", "Gate", "Vehicle", "Safety", "Plate", "Decision")
    WIDE_COLUMNS = 100  # below this the decisions would be cut: the detail line shows them

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.lanes: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        """Table, detail, message."""
        table = DataTable(id="lanes-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.COLUMNS)
        yield table
        yield Static("", id="lane-detail")
        yield Static("", id="lane-message")

    def on_resize(self) -> None:
        """Narrow terminals drop the Decision column (the detail below shows it whole)."""
        self.show(self.lanes)

    def show(self, lanes: list[dict[str, Any]]) -> None:
        """Redraw from a lanes snapshot, keeping the cursor."""
        self.lanes = lanes
        table = self.query_one(DataTable)
        row = table.cursor_row
        wide = self.size.width >= self.WIDE_COLUMNS
        columns = self.COLUMNS if wide else self.COLUMNS[:-1]
        if len(table.columns) != len(columns):
            table.clear(columns=True)
            table.add_columns(*columns)
        table.clear()
        for lane in lanes:
            plate = lane.get("last_plate")
            conf = lane.get("last_confidence") or 0.0
            cells = [lane["lane"], lane.get("direction", "?")[:5], badge(gate_word(lane)),
                     badge(loop_word(lane.get("arming"))), badge(loop_word(lane.get("safety"))),
                     f"{plate} {conf:.0%}" if plate else "no read"]
            if wide:
                cells.append(lane.get("last_decision") or "-")
            table.add_row(*cells, key=lane["lane"])
        if lanes:
            table.move_cursor(row=min(row, len(lanes) - 1))
        self._show_detail()

    def selected(self) -> dict[str, Any] | None:
        """The lane under the cursor."""
        table = self.query_one(DataTable)
        if not self.lanes or table.cursor_row is None or table.cursor_row >= len(self.lanes):
            return None
        return self.lanes[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Follow the cursor."""
        self._show_detail()

    def _show_detail(self) -> None:
        lane = self.selected()
        detail = self.query_one("#lane-detail", Static)
        if lane is None:
            detail.update("")
            return
        text = Text()
        text.append(f"{lane['lane']} ({lane.get('direction', '?')}) ", style="bold")
        text.append(f"state {lane.get('state', '?')}  gate ")
        text.append_text(badge(gate_word(lane)))
        text.append(f"  passed {lane.get('passed', 0)}  refused {lane.get('refused', 0)}\n")
        plate = lane.get("last_plate")
        conf = lane.get("last_confidence") or 0.0
        text.append(f"last plate: {plate + f' ({conf:.0%})' if plate else 'no read'}   "
                    f"crop: {lane.get('last_plate_crop') or '-'} (i: show)\n")
        text.append(f"last decision: {lane.get('last_decision') or '-'}")
        detail.update(text)

    def say(self, message: str, *, error: bool = False) -> None:
        """Show a command's result under the table."""
        self.query_one("#lane-message", Static).update(
            Text(message, style="bold white on red" if error else "bold"))

    def action_open_gate(self) -> None:
        """Open the selected lane's barrier (reason required)."""
        lane = self.selected()
        if lane is None:
            return
        lane_id = lane["lane"]

        async def done(values: dict[str, str] | None) -> None:
            if values:
                result = await self.app.command(f"/lanes/{lane_id}/open",
                                                {"reason": values["reason"]})
                if result is not None:
                    self.say(f"{lane_id}: gate OPEN commanded ({values['reason']})")

        self.app.push_screen(FormDialog(f"Open gate {lane_id}", [
            Field(name="reason", label="Reason (recorded in the ledger)")]), done)

    async def action_close_gate(self) -> None:
        """Close the selected lane's barrier (the service refuses over a vehicle)."""
        lane = self.selected()
        if lane is None:
            return
        lane_id = lane["lane"]
        result = await self.app.command(f"/lanes/{lane_id}/close", {}, quiet=True)
        if result is None:
            self.say(f"{lane_id}: CLOSE REFUSED - {self.app.last_error}", error=True)
        else:
            self.say(f"{lane_id}: gate CLOSED")

    def action_crop(self) -> None:
        """Show the plate crop of the read that decided the selected lane's last vehicle."""
        lane = self.selected()
        if lane is not None:
            self.app.push_screen(CropScreen(lane["lane"], lane.get("last_plate"),
                                            lane.get("last_plate_crop")))

    def action_hold(self) -> None:
        """Hold the selected barrier open, or release the hold (supervisor)."""
        lane = self.selected()
        if lane is None:
            return
        lane_id, hold = lane["lane"], not lane.get("held_open")

        async def done(values: dict[str, str] | None) -> None:
            if values:
                result = await self.app.command(f"/lanes/{lane_id}/hold",
                                                {"hold": hold, "reason": values["reason"]})
                if result is not None:
                    self.say(f"{lane_id}: {'HELD OPEN' if hold else 'hold released'}")

        title = f"{'Hold open' if hold else 'Release hold on'} {lane_id}"
        self.app.push_screen(FormDialog(title, [Field(name="reason", label="Reason")]), done)

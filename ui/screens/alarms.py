"""Alarms: active alarms (or all), acknowledged with a note."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ui.labels import badge
from ui.screens.dialogs import Field, FormDialog
from ui.screens.gated import RoleKeys


class AlarmsView(RoleKeys, Vertical):
    """Alarm table; `a` acknowledges the selected alarm, `t` toggles cleared ones."""

    BINDINGS = [Binding("a", "ack", "Acknowledge"), Binding("t", "toggle_all", "Active/all")]

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.alarms: list[dict[str, Any]] = []
        self.show_all = False

    def compose(self) -> ComposeResult:
        """Heading, table, selected alarm's detail."""
        yield Static("Active alarms", id="alarms-heading")
        table = DataTable(id="alarms-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("State", "Severity", "Code", "Source", "Raised", "Acked by")
        yield table
        yield Static("", id="alarm-detail", markup=False)

    PERMISSION = {"ack": "alarm.ack"}

    def show(self, alarms: list[dict[str, Any]]) -> None:
        """Redraw from the alarm list, keeping the cursor."""
        self.alarms = alarms
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for alarm in alarms:
            state = "CLEARED" if alarm.get("cleared_utc") else (
                "ACKED" if alarm.get("acked_by") else "NEW")
            table.add_row(badge(state), badge(str(alarm.get("severity", "warning")).upper()),
                          alarm["code"], alarm["source"], self.app.when(alarm.get("raised_utc")),
                          alarm.get("acked_by") or "-", key=alarm["id"])
        if alarms:
            table.move_cursor(row=min(row, len(alarms) - 1))
        self.query_one("#alarms-heading", Static).update(
            f"{'All' if self.show_all else 'Active'} alarms: {len(alarms)}"
            f"   (a: acknowledge, t: {'active only' if self.show_all else 'show cleared'})")
        self._detail()

    def selected(self) -> dict[str, Any] | None:
        """The alarm under the cursor."""
        row = self.query_one(DataTable).cursor_row
        return self.alarms[row] if self.alarms and row is not None and row < len(self.alarms) \
            else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Follow the cursor."""
        self._detail()

    def _detail(self) -> None:
        alarm = self.selected()
        text = ""
        if alarm is not None:
            text = f"{alarm['id']} {alarm['code']} @ {alarm['source']}: {alarm.get('detail') or ''}"
            if alarm.get("acked_by"):
                text += f"\nacked by {alarm['acked_by']}: {alarm.get('acked_note') or ''}"
        self.query_one("#alarm-detail", Static).update(text)

    def action_toggle_all(self) -> None:
        """Show active alarms only, or all (incl. cleared)."""
        self.show_all = not self.show_all
        self.app.call_later(self.app.poll)

    def action_ack(self) -> None:
        """Acknowledge the selected alarm with a note."""
        alarm = self.selected()
        if alarm is None:
            return
        alarm_id = alarm["id"]

        async def done(values: dict[str, str] | None) -> None:
            if values and await self.app.command(f"/alarms/{alarm_id}/ack",
                                                 {"note": values["note"]}) is not None:
                self.app.notify(f"alarm {alarm['code']} acknowledged")
                await self.app.poll()

        self.app.push_screen(FormDialog(f"Acknowledge {alarm['code']} @ {alarm['source']}", [
            Field(name="note", label="Note (what you did / saw)")]), done)

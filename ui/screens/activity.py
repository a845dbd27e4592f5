"""Activity: the latest entries, exits, payments, hand actions and alarms, newest first."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable


class ActivityView(Vertical):
    """The service's activity feed, refreshed with every poll while signed in."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.items: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        """One table: lot time and what happened."""
        table = DataTable(id="activity-table", cursor_type="row", zebra_stripes=True)
        table.add_column("Time", key="time")
        table.add_column("What", key="what")
        yield table

    def show(self, items: list[dict[str, Any]] | None) -> None:
        """Redraw from the feed (newest first), keeping the cursor."""
        self.items = items or []
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for item in self.items:
            table.add_row(self.app.when(item["ts_utc"])[6:], item["text"], key=str(item["seq"]))
        if self.items:
            table.move_cursor(row=min(row, len(self.items) - 1))

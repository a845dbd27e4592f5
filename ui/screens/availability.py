"""Availability: free spaces per level and type, UNKNOWN sensors and counter drift."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ui.labels import badge

DRIFT_CODES = {"counter_drift", "count_drift"}


class AvailabilityView(Vertical):
    """Per level x type table with totals and sensor/drift lines."""

    def compose(self) -> ComposeResult:
        """Totals line, pools table, sensors/drift lines."""
        yield Static("", id="avail-total")
        table = DataTable(id="avail-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("Level", "Type", "Capacity", "Occupied", "Free", "Unknown", "State")
        yield table
        yield Static("", id="avail-health")

    def show(self, availability: dict[str, Any], alarms: list[dict[str, Any]],
             sensors: list[dict[str, Any]] | None = None) -> None:
        """Redraw from an availability snapshot, the active alarms and the spot sensor states."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        pools = availability.get("pools", [])
        unknown_at = {(s["level"], s["spot_type"]): s["unknown"] for s in sensors or []}
        for pool in pools:
            unknown = unknown_at.get((pool["level"], pool["spot_type"]))
            state = "FULL" if pool["free"] <= 0 else "OPEN"
            table.add_row(pool["level"], pool["spot_type"], str(pool["capacity"]),
                          str(pool["occupied"]), str(pool["free"]),
                          "-" if unknown is None else str(unknown), badge(state))
        if pools:
            table.move_cursor(row=min(row, len(pools) - 1))
        total = Text()
        total.append(f"Lot {availability.get('lot_id', '?')}: ", style="bold")
        total.append(f"free {availability.get('free', '?')} / {availability.get('capacity', '?')}"
                     f"   occupied {availability.get('occupied', '?')}")
        levels = availability.get("levels", {})
        if levels:
            total.append("   " + "  ".join(f"{lv}: {v['free']} free" for lv, v in levels.items()))
        self.query_one("#avail-total", Static).update(total)
        health = Text()
        if sensors is None:
            health.append("spot sensors: not reported by the service\n")
        elif not sensors:
            health.append("spot sensors: none (counter lot)\n")
        else:
            unknown_total = sum(s["unknown"] for s in sensors)
            health.append("spot sensors ")
            health.append_text(badge("UNKNOWN") if unknown_total else Text("UNKNOWN"))
            health.append(f": {unknown_total} of {sum(s['spots'] for s in sensors)} spots\n")
        drift = [a for a in alarms if a.get("code") in DRIFT_CODES]
        stale = [a for a in alarms if a.get("code", "").startswith("sensor")]
        if drift:
            health.append_text(badge("WARNING"))
            health.append(" counter drift: " + "; ".join(
                f"{a['source']} {a.get('detail', '')}".strip() for a in drift) + "\n")
        else:
            health.append("counter drift: none reported\n")
        if stale:
            health.append_text(badge("WARNING"))
            health.append(" sensor alarms: " + ", ".join(a["source"] for a in stale))
        self.query_one("#avail-health", Static).update(health)

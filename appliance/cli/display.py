"""Terminal view of a running lot for `make run`: availability per level and type, lanes."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from appliance.lot.availability import Availability


def availability_table(av: Availability, *, title: str, lanes: list[dict] | None = None,
                       footer: str = "") -> Table | Group:
    """A rich table: one row per level, one column per spot type, cells 'free/capacity'."""
    types = sorted({str(p.spot_type) for p in av.pools})
    table = Table(title=title, caption=footer or None)
    table.add_column("Level")
    for t in types:
        table.add_column(t, justify="right")
    table.add_column("Free", justify="right", style="bold")
    cells: dict[tuple[str, str], str] = {}
    for p in av.pools:
        cells[(p.level, str(p.spot_type))] = f"{p.free}/{p.capacity}"
    for level, totals in av.by_level().items():
        free = totals["free"]
        status = "FULL" if free == 0 else str(free)
        table.add_row(level, *(cells.get((level, t), "-") for t in types), status)
    by_type = av.by_type()
    table.add_row("ALL", *(f"{by_type[t]['free']}/{by_type[t]['capacity']}" for t in types),
                  "FULL" if av.free == 0 else f"{av.free}/{av.capacity}", style="bold")
    if not lanes:
        return table
    lane_table = Table(title="Lanes")
    for name, justify in (("Lane", "left"), ("Dir", "left"), ("State", "left"),
                          ("Gate", "left"), ("Last plate", "left"), ("Decision", "left"),
                          ("Passed", "right"), ("Refused", "right")):
        lane_table.add_column(name, justify=justify)
    for lane in lanes:
        lane_table.add_row(lane["lane"], lane["direction"], lane["state"],
                           "OPEN" if lane["gate_open"] else "closed",
                           lane["last_plate"] or "(no read)", lane["last_decision"] or "-",
                           str(lane["passed"]), str(lane["refused"]))
    return Group(table, lane_table)

"""Terminal view of a running lot for `make run`: availability per level and type, lanes.

Laid out for an 80-column terminal: every table fits, and the status lines under them are
short lines of their own (cut with an ellipsis, never wrapped).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from appliance.lot.availability import Availability

WIDTH = 80


def availability_table(av: Availability, *, title: str) -> Table:
    """One row per level, one column per spot type; each cell is 'free/total' spaces."""
    types = sorted({str(p.spot_type) for p in av.pools})
    table = Table(title=f"{title}: free/total spaces", title_justify="left",
                  box=box.SIMPLE_HEAD, collapse_padding=True)
    table.add_column("Level")
    for t in types:
        table.add_column(t, justify="right")
    table.add_column("Level free", justify="right", style="bold")
    cells: dict[tuple[str, str], str] = {}
    for p in av.pools:
        cells[(p.level, str(p.spot_type))] = f"{p.free}/{p.capacity}"
    for level, totals in av.by_level().items():
        free = totals["free"]
        status = "FULL" if free == 0 else f"{free}/{totals['capacity']}"
        table.add_row(level, *(cells.get((level, t), "-") for t in types), status)
    by_type = av.by_type()
    table.add_row("ALL", *(f"{by_type[t]['free']}/{by_type[t]['capacity']}" for t in types),
                  "FULL" if av.free == 0 else f"{av.free}/{av.capacity}", style="bold")
    return table


def lanes_table(lanes: list[dict]) -> Table:
    """One row per lane: state, barrier, last plate and decision, cars passed and refused."""
    table = Table(title="Lanes", title_justify="left", box=box.SIMPLE_HEAD,
                  collapse_padding=True)
    for name, justify in (("Lane", "left"), ("State", "left"), ("Gate", "left"),
                          ("Last plate", "left"), ("Last decision", "left"),
                          ("Passed", "right"), ("Refused", "right")):
        table.add_column(name, justify=justify, overflow="ellipsis", no_wrap=True)
    for lane in lanes:
        table.add_row(lane["lane"],
                      lane["state"], "OPEN" if lane["gate_open"] else "closed",
                      lane["last_plate"] or ("(no read)" if lane["last_decision"] else "-"),
                      lane["last_decision"] or "-",
                      str(lane["passed"]), str(lane["refused"]))
    return table


def refusal_lines(lanes: list[dict], tz: tzinfo) -> list[str]:
    """'entry-1 last refused a car: FULL for LARGE (lot time 14:02)' for each lane that did."""
    out = []
    for lane in lanes:
        if not lane.get("last_refusal"):
            continue
        when = lane.get("last_refusal_utc")
        at = f" (lot time {datetime.fromisoformat(when).astimezone(tz):%H:%M})" if when else ""
        out.append(f"{lane['lane']} last refused a car: {lane['last_refusal']}{at}")
    return out


def live_view(av: Availability, *, title: str, lanes: list[dict] | None = None,
              status: list[str] | None = None, tz: tzinfo | None = None) -> Group:
    """The whole live view: availability, lanes, why cars were refused, status lines."""
    parts: list = [availability_table(av, title=title)]
    if lanes:
        parts.append(lanes_table(lanes))
    lines = [*(refusal_lines(lanes, tz) if lanes and tz else []), *(status or [])]
    parts += [Text(line, no_wrap=True, overflow="ellipsis") for line in lines]
    return Group(*parts)

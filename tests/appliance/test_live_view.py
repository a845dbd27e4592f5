"""`make run`'s live view: labelled cells, every refusal's reason, and nothing wrapped at 80
columns."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from rich.console import Console

from appliance.cli.display import live_view
from appliance.core.allocation import Pool
from appliance.core.types import SpotType
from appliance.lot.availability import Availability

TZ = ZoneInfo("America/New_York")


def demo_availability() -> Availability:
    pools = []
    for level in ("L1", "L2", "L3"):
        for t in SpotType:
            pools.append(Pool(level=level, spot_type=t, capacity=24, occupied=23))
    return Availability(lot_id="demo-lot", pools=tuple(pools), as_of_seq=1234)


def lanes() -> list[dict]:
    lane = {"direction": "entry", "state": "IDENTIFYING", "gate_open": False,
            "last_plate": "ABC1234X", "last_decision": "walk-in", "passed": 1234,
            "refused": 56, "last_refusal": "", "last_refusal_utc": None}
    return [
        {**lane, "lane": "entry-1", "last_decision": "FULL",
         "last_refusal": "FULL for LARGE", "last_refusal_utc": "2026-03-09T18:02:00+00:00"},
        {**lane, "lane": "entry-2", "last_refusal": "already inside (anti-passback)",
         "last_refusal_utc": "2026-03-09T18:05:00+00:00"},
        {**lane, "lane": "exit-1", "direction": "exit", "state": "PASSING", "gate_open": True},
        {**lane, "lane": "exit-2", "direction": "exit", "last_plate": None},
    ]


STATUS = ["lot time Mon 14:02 (60x real time), running 12:34. Ctrl-C stops.",
          "cars: entered 1234, exited 1100, refused 56, inside 134, trapped 0",
          "continuing the lot in var/: 97 cars parked from before",
          "(make run FRESH=1 or `lotedge run --fresh` starts an empty lot)"]


def render(width: int = 80) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(live_view(demo_availability(), title="lotedge demo-lot", lanes=lanes(),
                            status=STATUS, tz=TZ))
    return console.export_text().splitlines()


def test_fits_80_columns_and_nothing_wraps():
    lines = render()
    assert max(len(line) for line in lines) <= 80
    for status in STATUS:  # each status line is one line of its own, not wrapped
        assert status in lines
    assert "entry-1 last refused a car: FULL for LARGE (lot time 14:02)" in lines


def test_cells_are_labelled_free_over_total():
    text = "\n".join(render())
    assert "free/total spaces" in text
    assert "1/24" in text  # 24 spaces, 23 taken
    assert "Level free" in text


def test_each_refusal_says_why():
    text = "\n".join(render())
    assert "entry-2 last refused a car: already inside (anti-passback) (lot time 14:05)" in text
    assert "exit-1 last refused" not in text  # lanes that refused nobody say nothing

"""Save an SVG of `make run`'s live view (docs/img/live-view.svg) from a real simulated run.

`python -m tools.live_view_svg [--seconds 40] [--out docs/img/live-view.svg]` runs the demo lot
on simulated hardware in a temporary data directory for that many real seconds, then renders
the live view at 80 columns with rich and saves it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parent.parent


async def _snapshot(seconds: float, data_dir: str):
    from appliance.cli.display import live_view
    from appliance.clock import SimClock
    from appliance.config import load_config
    from appliance.service import Service
    from appliance.simulate import TrafficGenerator

    cfg = load_config(REPO / "config" / "demo-lot.toml")
    cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, data_dir=data_dir))
    clock = SimClock(speed=cfg.simulation.speed)
    service = Service(cfg, simulate=True, clock=clock)
    await service.start()
    traffic = TrafficGenerator(service, cfg.simulation, clock)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    started = time.monotonic()
    try:
        await service.run(stop, extra=[traffic.run])
        s = traffic.stats
        real_s = int(time.monotonic() - started)
        status = [f"lot time {clock.now().astimezone(cfg.lot.tz):%a %H:%M} "
                  f"({cfg.simulation.speed:g}x real time), running {real_s // 60}:"
                  f"{real_s % 60:02d}. Ctrl-C stops.",
                  f"cars: entered {s.entered}, exited {s.exited}, refused {s.refused}, "
                  f"inside {len(s.inside)}, trapped {s.trapped}"]
        return live_view(service.availability, title=f"lotedge {cfg.lot.id}",
                         lanes=[c.snapshot() for c in service.lanes.values()],
                         status=status, tz=cfg.lot.tz)
    finally:
        await service.stop()


def main(argv: list[str]) -> int:
    """Run the demo lot briefly and save its live view as an SVG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "live-view.svg")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        view = asyncio.run(_snapshot(args.seconds, tmp))
    console = Console(record=True, width=80, force_terminal=True, color_system="truecolor",
                      file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(view)
    console.save_svg(str(args.out), title="make run")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

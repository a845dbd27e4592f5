"""`lotedge drivers ...`: probe a lot's serial devices and show their health; parse captures."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from appliance.errors import InputError

drivers_app = typer.Typer(help="Hardware drivers: probe devices, health, parse serial captures",
                          no_args_is_help=True)


async def _probe(cfg, *, simulate: bool, seconds: float, occupied_share: float) -> dict:
    from appliance.core.occupancy import level_free_counts
    from appliance.core.types import SpotState
    from drivers.health import HealthRegistry
    from drivers.lot_devices import SimulatedPorts, led_signs, spot_sensor_array

    with tempfile.TemporaryDirectory(prefix="lotedge-dev-") as tmp:
        sims = SimulatedPorts.start(cfg, Path(tmp), seed=cfg.simulation.seed) if simulate else None
        health = HealthRegistry()
        try:
            array = spot_sensor_array(cfg, health, sims)
            signs = led_signs(cfg, health, sims)
        except ValueError as err:
            if sims:
                sims.stop()
            raise InputError(f"{err} (use --simulate, or set a real port)") from err
        if sims is not None:
            rng = random.Random(cfg.simulation.seed)
            for spot in cfg.spots:
                if rng.random() < occupied_share:
                    sims.park(spot.id)
        task = asyncio.create_task(array.run())
        try:
            await asyncio.sleep(seconds)
            states = array.states()
            per_level: dict[str, list[SpotState]] = {}
            for spot in cfg.spots:
                if spot.id in states:
                    per_level.setdefault(spot.level, []).append(states[spot.id])
            counts = level_free_counts(per_level, {})
            free = {lvl: c.free for lvl, c in counts.items()}
            for sign in signs:
                await sign.show(free)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for sign in signs:
                sign.link.close()
            if sims is not None:
                sims.stop()
        return {
            "levels": {lvl: {"free": c.free, "source": c.source, "unknown": c.unknown_spots}
                       for lvl, c in counts.items()},
            "signs": {s.sign_id: s.last_texts for s in signs},
            "health": health.snapshot(),
        }


@drivers_app.command("probe")
def probe(
    config: Annotated[Path, typer.Option("--config", "-c", help="lot configuration TOML")],
    simulate: Annotated[bool, typer.Option(help="pty simulators for ports set to \"sim\"")] = False,
    seconds: Annotated[float, typer.Option(help="how long to listen")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Open the lot's spot sensors and signs, listen for a while, print health; exit 1 on faults."""
    from appliance.config import load_config

    cfg = load_config(config)
    if not cfg.sensor_buses and not cfg.signs:
        raise InputError("this lot has no [[sensor_buses]] or [[signs]] to probe")
    report = asyncio.run(_probe(cfg, simulate=simulate, seconds=seconds, occupied_share=0.3))
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        for lvl, row in report["levels"].items():
            print(f"level {lvl}: free {row['free']} (from {row['source']}, "
                  f"{row['unknown']} unknown)")
        for sign_id, texts in report["signs"].items():
            print(f"sign {sign_id}: " + " ".join(f"{k}:{v}" for k, v in texts.items()))
        for dev in report["health"]["devices"]:
            if dev["kind"] == "spot_sensor" and not dev["faults"]:
                continue
            print(f"{dev['kind']:<12} {dev['device']:<16} {dev['state']:<8} "
                  f"seen {dev['last_seen_s_ago']} s ago  {dev['counters']}  {dev['faults'] or ''}")
        sensors = [d for d in report["health"]["devices"] if d["kind"] == "spot_sensor"]
        print(f"spot sensors: {len(sensors)}, faults: {report['health']['faults']}")
    if report["health"]["faults"]:
        raise typer.Exit(1)


@drivers_app.command("parse")
def parse(
    capture: Annotated[Path, typer.Argument(help="raw bytes captured from a MaxBotix port")],
    fmt: Annotated[str, typer.Option("--format", help="R3-in | R3-cm | R4-mm (the family)")
                   ] = "R4-mm",
) -> None:
    """Parse a raw MaxBotix serial capture and print its readings and error counts.

    (Modbus RTU buses: `lotedge diag serial PORT sniff --protocol raw` splits frames at the
    inter-frame silence; the driver's health counters say what each address answered.)
    """
    from drivers.maxbotix import FORMATS, MaxBotixParser

    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    try:
        data = capture.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {capture}: {err}") from err
    family = FORMATS[fmt]
    mb = MaxBotixParser(family.digits)
    values = [family.to_cm(c) for c in mb.feed(data)]
    print(f"frames: {mb.frames}  errors: {mb.errors}  noise: {mb.noise_lines}")
    print("distances_cm:", " ".join(map(str, values[:50])) + (" ..." if len(values) > 50 else ""))

"""Soak: many simulated hours of busy traffic on a lot with per-spot sensors; RSS and backlog.

`make soak` runs the issue's figure: 24 simulated hours at 600 vehicles/hour/lane on 4 entry
lanes (and 4 exit lanes) with a sensor on each of 500 spots (4 simulated RS-485 buses), syncing
to a private Mosquitto (reference ingest in its own process) that flaps every 10 lot minutes:

    python -m tests.integration.soak --hours 24 --speed 12   # about 2 h of real time

Lot time (arrivals, stays) runs `speed` times faster than real time; device timing (debounce,
passages, barrier auto-close, sensor polling) is real, so the soak shortens the barrier's
auto-close (250 ms) and the time a refused driver waits for a barrier (500 ms): with a lot's
defaults (1 s, 3 s) a lane keeps up only to speed ~6. Prints a JSON report: traffic, RSS trend, backlog, ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

from appliance.clock import SimClock
from appliance.config import LotConfig, load_config
from appliance.service import Service
from appliance.simulate import TrafficGenerator
from sync.devbroker import Broker

_LANE = """
[[lanes]]
id = "{id}"
direction = "{direction}"
arming_loop_pin = {arming}
safety_loop_pin = {safety}
barrier_relay_pin = {relay}
debounce_ms = 10
auto_close_ms = {auto_close_ms}
"""


def soak_lot(tmp: Path, *, spots: int = 500, entry_lanes: int = 4, rate_per_lane: int = 600,
             speed: float = 6.0, mean_stay_minutes: int = 10, min_stay_minutes: int = 2,
             buses: int = 4,
             sensors: bool = True, mqtt_url: str | None = None,
             auto_close_ms: int = 1000, gate_wait_ms: int = 3000) -> LotConfig:
    """A per-spot lot with `spots` sensed spots on `buses` RS-485 buses and busy simulated lanes
    (syncing to `mqtt_url` when given)."""
    per_bus = -(-spots // buses)
    ranges = []
    for b in range(buses):
        count = min(per_bus, spots - b * per_bus)
        level = "L1" if b < buses // 2 else "L2"
        # a fifth of each bus's spots are LARGE (15 % of the simulated vehicles are): with
        # only REGULAR spots every LARGE vehicle would be refused as "full"
        large = count // 5
        for kind, n, first in (("REGULAR", count - large, 1), ("LARGE", large, count - large + 1)):
            if n == 0:
                continue
            ranges.append(f"""
[[spot_ranges]]
level = "{level}"
type = "{kind}"
count = {n}
prefix = "B{b}{kind[0]}-"
first_distance_cm = {100 + b * 20000 + (first - 1) * 100}
distance_step_cm = 100
""" + (f"""sensor_bus = "bus{b}"
first_sensor_address = {first}
""" if sensors else ""))
        ranges.append(f"""
[[sensor_buses]]
id = "bus{b}"
port = "sim"
poll_interval_ms = 500
request_timeout_ms = 50
""" if sensors else "")
    pins = iter(range(4, 28))  # GPIO2/3 have fixed pull-ups
    lanes = []
    for direction in ("entry", "exit"):
        for i in range(entry_lanes):
            lanes.append(_LANE.format(id=f"{direction[:2]}-{i + 1}", direction=direction,
                                      arming=next(pins), safety=next(pins), relay=next(pins),
                                      auto_close_ms=auto_close_ms))
    text = f"""
[lot]
id = "soak-lot"
timezone = "America/New_York"
mode = "per_spot"
allocation = "preserve_larger"

[[levels]]
id = "L1"

[[levels]]
id = "L2"
{"".join(ranges)}
{"".join(lanes)}
[tariff]
grace_minutes = 10
minimum_charge_cents = 200
hourly_cents = 300
daily_max_cents = 2400

[storage]
data_dir = "{tmp / "var"}"

[devices]
spot_debounce_ms = 200

[simulation]
arrivals_per_hour_per_lane = {rate_per_lane}
speed = {speed}
mean_stay_minutes = {mean_stay_minutes}
min_stay_minutes = {min_stay_minutes}
passage_ms = 40
gate_wait_ms = {gate_wait_ms}
unreadable_plate_rate = 0.05
seed = 5
"""
    if mqtt_url:
        text += f"""
[cloud]
enabled = true
mqtt_url = "{mqtt_url}"
ack_timeout_s = 5
backoff_max_s = 2
"""
    path = tmp / "soak-lot.toml"
    path.write_text(text)
    return load_config(path)


def rss_kib() -> int:
    """This process's resident set size (KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class SoakReport:
    """What a soak run measured."""

    simulated_hours: float
    real_s: float
    arrived: int = 0
    entered: int = 0
    refused: int = 0
    exited: int = 0
    trapped: int = 0
    balked: int = 0
    max_lane_queue: int = 0
    device_queue_end: int = 0
    max_device_queue: int = 0
    events: int = 0
    ledger_ok: bool = False
    spot_events: int = 0
    vacated_tickets: int = 0  # released when their spot's sensor saw the car go (exit missed it)
    sync_flaps: int = 0  # broker outages during the run
    max_sync_backlog: int = 0
    sync_backlog_end: int = -1  # events not acknowledged by the cloud at the end (-1: no sync)
    sync_drain_s: float = 0.0  # last outage over: everything acknowledged this long after
    synced_through: int = 0
    cloud_chain_ok: bool = False
    rss_samples_kib: list[int] = field(default_factory=list)
    # 25 rows over the run (hourly in 24 h): traffic so far, cars inside, lane queues and real s per lane cycle
    timeline: list[dict] = field(default_factory=list)
    # with --tracemalloc N: the N tracebacks whose memory grew most from a quarter into the run to the end
    tracemalloc_top: list[dict] = field(default_factory=list)
    # with --census N: the N object types whose live count grew most, same span
    census_top: list[dict] = field(default_factory=list)

    @property
    def rss_first_quartile_kib(self) -> float:
        """Mean RSS over the first quarter of the run (after warm-up)."""
        q = max(1, len(self.rss_samples_kib) // 4)
        return statistics.fmean(self.rss_samples_kib[:q])

    @property
    def rss_last_quartile_kib(self) -> float:
        """Mean RSS over the last quarter of the run."""
        q = max(1, len(self.rss_samples_kib) // 4)
        return statistics.fmean(self.rss_samples_kib[-q:])

    def problems(self, *, synced: bool, max_refused_share: float = 0.01) -> list[str]:
        """Why this run fails the soak (empty: it passes).

        Refusals count too: the soak lot runs at ~80 % average occupancy, so more than
        `max_refused_share` of arrivals turned away means spaces were lost (a car gone but its
        ticket still holding a spot), not a full lot.
        """
        out = []
        if self.rss_last_quartile_kib > self.rss_first_quartile_kib * 1.10 + 10 * 1024:
            out.append(f"RSS grew {self.rss_first_quartile_kib / 1024:.1f} -> "
                       f"{self.rss_last_quartile_kib / 1024:.1f} MiB")
        if self.trapped:
            out.append(f"{self.trapped} cars trapped")
        if self.balked:
            out.append(f"{self.balked} drivers balked at a lane queue")
        if self.refused > self.arrived * max_refused_share:
            out.append(f"{self.refused} of {self.arrived} arrivals refused")
        if self.device_queue_end:
            out.append(f"{self.device_queue_end} device events not recorded")
        if not self.ledger_ok:
            out.append("ledger does not verify")
        if synced and self.sync_backlog_end != 0:
            out.append(f"{self.sync_backlog_end} events not acknowledged by the cloud")
        if synced and not self.cloud_chain_ok:
            out.append("the cloud copy's chain does not verify")
        return out

    def as_dict(self) -> dict:
        """JSON-ready summary (RSS samples reduced to their trend)."""
        d = {k: v for k, v in self.__dict__.items() if k != "rss_samples_kib"}
        d["rss_samples"] = len(self.rss_samples_kib)
        d["rss_first_quartile_mib"] = round(self.rss_first_quartile_kib / 1024, 1)
        d["rss_last_quartile_mib"] = round(self.rss_last_quartile_kib / 1024, 1)
        d["rss_max_mib"] = round(max(self.rss_samples_kib, default=0) / 1024, 1)
        return d


async def soak(cfg: LotConfig, *, simulated_hours: float, sample_s: float = 2.0,
               warmup_s: float = 5.0, broker: Broker | None = None,
               flap_minutes: float = 10.0, trace_top: int = 0,
               census_top: int = 0) -> SoakReport:
    """Run the service, its spot sensors and the traffic for `simulated_hours` of lot time.

    With `broker` (the one `cfg.cloud.mqtt_url` names, started), a reference cloud ingest runs
    as its own process and the broker flaps: down for `flap_minutes` of lot time, up for as
    long, again and again; at the end the backlog must drain to zero.
    """
    if broker is None:
        return await _soak(cfg, simulated_hours=simulated_hours, sample_s=sample_s,
                           warmup_s=warmup_s, trace_top=trace_top, census_top=census_top)
    cloud_db = cfg.data_path("cloud.sqlite3")
    ingest = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "cloud", "ingest", "--mqtt", broker.url,
         "--db", f"sqlite:///{cloud_db}", "--client-id", "soak-ingest",
         "--backoff-max-s", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        report = await _soak(cfg, simulated_hours=simulated_hours, sample_s=sample_s,
                             warmup_s=warmup_s, broker=broker, flap_minutes=flap_minutes,
                             trace_top=trace_top, census_top=census_top)
    finally:
        ingest.terminate()
        ingest.wait(10)
    if report.sync_backlog_end == 0:
        from sync.cloud_store import open_store
        from tests.sync.helpers import assert_exact_chain

        store = open_store(f"sqlite:///{cloud_db}")
        try:
            rows = store.events(cfg.lot.id)
            n = report.synced_through
            assert_exact_chain(rows[:n], n)
            report.cloud_chain_ok = True
        except AssertionError:
            report.cloud_chain_ok = False
        finally:
            store.close()
    return report


def _traced() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])


def _census() -> collections.Counter[str]:
    """Live objects the garbage collector tracks, by type (one pass: ~0.1 s a million)."""
    return collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}"
                               for o in gc.get_objects())


def _growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int) -> list[dict]:
    """The `top` allocation sites (by traceback) whose live memory grew most."""
    return [{"kib": round(d.size_diff / 1024, 1), "blocks": d.count_diff,
             "at": [f"{f.filename.removeprefix(str(Path.cwd()) + '/')}:{f.lineno}"
                    for f in d.traceback][-6:]}
            for d in after.compare_to(before, "traceback")[:top]]


async def _soak(cfg: LotConfig, *, simulated_hours: float, sample_s: float, warmup_s: float,
                broker: Broker | None = None, flap_minutes: float = 10.0,
                trace_top: int = 0, census_top: int = 0) -> SoakReport:
    if trace_top:
        tracemalloc.start(12)
    # taken a quarter into the run (the lot has filled): what grew after it is the leak
    baseline: dict[str, tracemalloc.Snapshot | collections.Counter[str]] = {}
    clock = SimClock(speed=cfg.simulation.speed)
    service = Service(cfg, simulate=True, clock=clock, api=False)
    await service.start()
    traffic = TrafficGenerator(service, cfg.simulation, clock)
    real_s = simulated_hours * 3600 / cfg.simulation.speed
    report = SoakReport(simulated_hours=simulated_hours, real_s=real_s)
    stop = asyncio.Event()
    stop_traffic = asyncio.Event()

    async def drive() -> None:
        arrivals = asyncio.create_task(traffic.run())
        await stop_traffic.wait()
        arrivals.cancel()

    entries = {lane.id for lane in cfg.entry_lanes()}
    last: dict[str, tuple[float, int]] = {}

    async def mark(lot_h: float) -> None:
        """A timeline row: where the lot stands, and how long a car held each lane lately."""
        s = traffic.stats
        row = await service.ledger.fetchone(
            "SELECT (SELECT COUNT(*) FROM tickets WHERE status IN ('OPEN', 'PAID')),"
            " (SELECT COUNT(*) FROM spots WHERE state = 'AVAILABLE'),"
            " (SELECT COUNT(*) FROM tickets WHERE status = 'VACATED')")
        cycle = {}
        for direction, ids in (("entry", entries), ("exit", set(s.lane_cycles) - entries)):
            busy = sum(s.lane_busy_s.get(i, 0.0) for i in ids)
            n = sum(s.lane_cycles.get(i, 0) for i in ids)
            was_busy, was_n = last.get(direction, (0.0, 0))
            last[direction] = (busy, n)
            cycle[f"{direction}_cycle_ms"] = round(1000 * (busy - was_busy) / max(1, n - was_n))
        queued = traffic._queued
        report.timeline.append({
            "lot_h": round(lot_h, 2), "arrived": s.arrived, "entered": s.entered,
            "refused": s.refused, "balked": s.balked, "exited": s.exited,
            "open_tickets": row[0], "available_spots": row[1], "vacated_tickets": row[2],
            "entry_queue": sum(queued.get(i, 0) for i in entries),
            "exit_queue": sum(v for k, v in queued.items() if k not in entries),
            "parked_tasks": len(traffic._cars), "rss_mib": round(rss_kib() / 1024, 1)} | cycle)
        quarter = len(report.timeline) == 7
        if tracemalloc.is_tracing():
            report.timeline[-1]["traced_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            if quarter:
                baseline["traced"] = _traced()
        if census_top:
            counts = _census()
            report.timeline[-1]["gc_objects"] = counts.total()
            if quarter:
                baseline["census"] = counts

    async def sample() -> None:
        started = time.monotonic()
        next_mark = 0.0
        while time.monotonic() - started < real_s:
            await asyncio.sleep(sample_s)
            lot_h = (time.monotonic() - started) * cfg.simulation.speed / 3600
            if lot_h >= next_mark:
                next_mark += simulated_hours / 24
                await mark(lot_h)
            if time.monotonic() - started >= warmup_s:
                report.rss_samples_kib.append(rss_kib())
            report.max_lane_queue = max(report.max_lane_queue,
                                        max(traffic._queued.values(), default=0))
            report.max_device_queue = max(report.max_device_queue, service.device_log.events.qsize())
        s = traffic.stats
        report.arrived, report.entered, report.refused = s.arrived, s.entered, s.refused
        report.exited, report.trapped, report.balked = s.exited, s.trapped, s.balked
        stop_traffic.set()
        await asyncio.sleep(1.0)  # the device recorder catches up
        report.device_queue_end = service.device_log.events.qsize()
        if broker is not None:
            await drain()
        stop.set()

    draining = asyncio.Event()
    toggling = asyncio.Lock()

    async def flap() -> None:
        """The broker goes down and comes back every `flap_minutes` of lot time."""
        while True:
            for down in (True, False):
                await clock.sleep(flap_minutes * 60)
                async with toggling:
                    if draining.is_set():
                        return
                    if down:
                        await asyncio.to_thread(broker.stop)
                        report.sync_flaps += 1
                    else:
                        await asyncio.to_thread(broker.start)

    async def watch_backlog() -> None:
        uplink = service.sync["uplink"]
        while True:
            backlog = await service.ledger.last_seq() - uplink.acked_through
            report.max_sync_backlog = max(report.max_sync_backlog, backlog)
            await asyncio.sleep(1.0)

    async def drain() -> None:
        """Flapping over, broker up: everything written so far must be acknowledged."""
        async with toggling:
            draining.set()
            if broker.proc is None:
                await asyncio.to_thread(broker.start)
        uplink = service.sync["uplink"]
        started = time.monotonic()
        target = await service.ledger.last_seq()
        while time.monotonic() - started < 120 and uplink.acked_through < target:
            await asyncio.sleep(0.2)
        report.sync_drain_s = round(time.monotonic() - started, 1)
        report.sync_backlog_end = max(0, target - uplink.acked_through)
        report.synced_through = uplink.acked_through

    extra = [drive, sample] + ([flap, watch_backlog] if broker is not None else [])
    await service.run(stop, extra=extra)
    if "traced" in baseline:
        report.tracemalloc_top = _growth(baseline["traced"], _traced(), trace_top)
    if tracemalloc.is_tracing():
        tracemalloc.stop()
    if "census" in baseline:
        grew = _census()
        grew.subtract(baseline["census"])
        report.census_top = [{"type": t, "grew": n} for t, n in grew.most_common(census_top)]
    verify = await service.ledger.verify()
    report.ledger_ok = verify.ok
    report.events = verify.events
    report.spot_events = (await service.ledger.fetchone(
        "SELECT COUNT(*) FROM events WHERE type = 'spot.state_changed'"))[0]
    report.vacated_tickets = (await service.ledger.fetchone(
        "SELECT COUNT(*) FROM tickets WHERE status = 'VACATED'"))[0]
    await service.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    """`make soak`: print the JSON report; exit 1 with the reasons listed under "problems"."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument("--speed", type=float, default=12.0,
                        help="lot time / real time (device timing is real: with the default "
                             "--auto-close-ms lanes keep up to ~12 at 600/h/lane)")
    parser.add_argument("--auto-close-ms", type=int, default=250,
                        help="barrier auto-close after the car clears (real time; a lot's "
                             "default is 1000: the shorter close lets lanes keep up at speed)")
    parser.add_argument("--gate-wait-ms", type=int, default=500,
                        help="how long a simulated driver waits for the barrier after the sign "
                             "answered (real time: a refused driver blocks the lane this long)")
    parser.add_argument("--rate", type=int, default=600, help="vehicles/hour per entry lane")
    parser.add_argument("--lanes", type=int, default=4, help="entry lanes (as many exits)")
    parser.add_argument("--spots", type=int, default=500)
    parser.add_argument("--flap-minutes", type=float, default=10.0,
                        help="sync to a private Mosquitto that goes down / comes back every this "
                             "many lot minutes (0: no sync)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this (new, empty) folder and keep the ledger afterwards")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                        help="trace Python allocations (slow) and report the N sites that grew "
                             "most from a quarter into the run to the end")
    parser.add_argument("--census", type=int, default=0, metavar="N",
                        help="count live objects by type each timeline row (cheap) and report "
                             "the N types that grew most from a quarter into the run to the end")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=False)
    with (contextlib.nullcontext(str(args.keep)) if args.keep is not None
          else tempfile.TemporaryDirectory()) as tmp:
        broker = Broker(Path(tmp) / "broker") if args.flap_minutes > 0 else None
        cfg = soak_lot(Path(tmp), spots=args.spots, entry_lanes=args.lanes,
                       rate_per_lane=args.rate, speed=args.speed,
                       mqtt_url=broker.url if broker else None,
                       auto_close_ms=args.auto_close_ms, gate_wait_ms=args.gate_wait_ms)
        started = time.monotonic()
        if broker:
            broker.start()
        try:
            report = asyncio.run(soak(cfg, simulated_hours=args.hours,
                                      sample_s=max(1.0, args.hours * 3600 / args.speed / 400),
                                      broker=broker, flap_minutes=args.flap_minutes,
                                      trace_top=args.tracemalloc,
                                      census_top=args.census))
        finally:
            if broker:
                broker.stop()
        out = report.as_dict() | {"wall_s": round(time.monotonic() - started, 1),
                                  "speed": args.speed, "rate_per_lane": args.rate,
                                  "entry_lanes": args.lanes, "spots": args.spots,
                                  "auto_close_ms": args.auto_close_ms,
                                  "gate_wait_ms": args.gate_wait_ms,
                                  "flap_minutes": args.flap_minutes}
    problems = report.problems(synced=broker is not None)
    print(json.dumps(out | {"problems": problems}, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

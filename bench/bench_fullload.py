"""The lane under real load: four busy lanes (2 entry, 2 exit; 150 arrivals/h per entry lane)
with real plate photos on every camera (`photos:` cameras from the US development set), 500
spot sensors polled on 4 RS-485 buses, the uplink syncing to a private Mosquitto and a reference
ingest, and an attendant terminal (a process of its own) polling the API once a second. RSS is
this process's: the service with its simulated lot (devices, traffic, photos on show); its
maximum is the kernel's high-water mark under load. Run once as is and once inside a cgroup
(v1 `cpu` controller) limited to half a core, a stand-in for a slower board (the simulated
devices and the cloud's processes run outside it).

`python -m bench fullload`; LOTEDGE_FULLLOAD_S sets each run's real seconds (default 240),
LOTEDGE_PLATES_DIR the photo folder (default /work/shared/plates/us).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

DEFAULT_PLATES = Path("/work/shared/plates/us")
LAG_PROBE_S = 0.005  # the event-loop lag probe's sleep
CGROUP = Path("/sys/fs/cgroup/cpu")


def _pct(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


def _rss_kib(field: str = "VmRSS") -> int:
    """A memory figure of this process in KiB (VmRSS now, VmHWM its peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _account(events: list[tuple[str, dict]], entered: list[tuple[str, str]]
             ) -> tuple[list[float], list[float], dict[str, int]]:
    """Read times, decision times and the entries' plates scored against the cars' own.

    events: (type, payload) of the run's plate reads, lane transitions and tickets, in order;
    entered: (entry lane, plate) of every car let in, in order. A lane serves one car at a
    time, so its n-th kept ticket is its n-th entered car's; a ticket voided when its car
    backed out belongs to no entered car and is left out.
    """
    reads, decisions = [], []
    issued: list[tuple[str, str, str | None]] = []  # (lane, ticket id, plate)
    voided: set[str] = set()
    deciding: dict[str, int] = {}
    for kind, p in events:
        if kind == "lane.plate_read":
            reads.append(p["read_ms"])
        elif kind == "ticket.issued":
            issued.append((p["lane"], p.get("ticket_id"), p.get("plate")))
        elif kind == "ticket.voided":
            voided.add(p.get("ticket_id"))
        elif p["to"] == "DECIDING":
            deciding[p["lane"]] = p["fact_mono_ns"]
        elif p["from"] == "DECIDING" and p["lane"] in deciding:
            decisions.append((p["fact_mono_ns"] - deciding.pop(p["lane"])) / 1e6)
    tickets: dict[str, list[str | None]] = {}
    for lane, ticket_id, plate in issued:
        if ticket_id not in voided:
            tickets.setdefault(lane, []).append(plate)
    cars: dict[str, list[str]] = {}
    for lane, plate in entered:
        cars.setdefault(lane, []).append(plate)
    every_plate = {plate for plates_in in cars.values() for plate in plates_in}
    scored = {"exact": 0, "unread": 0, "wrong_car": 0, "misread": 0}
    for lane, plates_in in cars.items():
        for own, got in zip(plates_in, tickets.get(lane, []), strict=False):
            if got == own:
                scored["exact"] += 1
            elif got is None:
                scored["unread"] += 1
            elif got in every_plate:
                scored["wrong_car"] += 1
            else:
                scored["misread"] += 1
    return reads, decisions, scored


async def scenario(duration_s: float, plates: Path) -> dict:
    """One full-load run in this process; the figures as a dict."""
    from appliance.clock import SimClock
    from appliance.config import load_config
    from appliance.service import Service
    from appliance.simulate import TrafficGenerator
    from sync.devbroker import Broker
    from tests.integration.soak import soak_lot

    tmp = Path(tempfile.mkdtemp(prefix="lotedge-fullload-"))
    broker = Broker(tmp / "broker")
    broker.start()
    cfg = soak_lot(tmp, spots=500, entry_lanes=2, rate_per_lane=150, speed=1.0,
                   mean_stay_minutes=3, min_stay_minutes=1, mqtt_url=broker.url)
    path = Path(cfg.source_path)
    text = path.read_text().replace('direction = "entry"',
                                    f'direction = "entry"\ncamera = "photos:{plates}"')
    text = text.replace('direction = "exit"', f'direction = "exit"\ncamera = "photos:{plates}"')
    path.write_text(text)
    cfg = load_config(path)
    ingest = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "cloud", "ingest", "--mqtt", broker.url,
         "--db", f"sqlite:///{tmp / 'cloud.sqlite3'}", "--client-id", "fullload-ingest"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clock = SimClock(speed=1.0)
    service = Service(cfg, simulate=True, clock=clock)
    await service.start()
    start_peak = _rss_kib("VmHWM")  # loading the models and opening the lot
    # From here the kernel's high-water mark holds the load's true peak: a one-second sample
    # catches the peak of a whole-frame text search (a tenth of a second) or misses it.
    Path("/proc/self/clear_refs").write_text("5")
    _off_the_board([p.pid for p in (broker.proc, ingest) if p is not None])
    traffic = TrafficGenerator(service, cfg.simulation, clock, record_entries=True)
    stop = asyncio.Event()
    rss: list[int] = []
    # the attendant terminal is a process of its own, as on a lot (its HTTP client is not the
    # appliance's memory)
    attendant = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_fullload", "--attendant",
        str(cfg.data_path(cfg.api.socket)), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)

    async def memory() -> None:
        while True:
            rss.append(_rss_kib())
            await asyncio.sleep(1.0)

    lags = array("d")  # ~200 samples a second: floats in a list would be the bench's own MBs

    async def loop_lag() -> None:
        # how late the event loop wakes a 5 ms sleep: what every lane's next step waits behind
        # (thousands of samples, where the decisions are a few dozen)
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LAG_PROBE_S)
            lags.append((time.perf_counter() - started - LAG_PROBE_S) * 1000)

    polls: list[float] = []

    async def clock_out() -> None:
        await asyncio.sleep(duration_s)
        polls.extend(json.loads((await attendant.communicate(b""))[0] or b"[]"))
        stop.set()  # the attendant has finished: the API goes with the service

    try:
        await service.run(stop, extra=[traffic.run, memory, loop_lag, clock_out])
        peak = _rss_kib("VmHWM")
        lanes = list(service.lanes.values())
        loop_to_gate = [ms for c in lanes for ms in c.stats.decision_latency_ms]
        discarded = sum(c.stats.reads_discarded for c in lanes)
        ledger = service.ledger
        rows = await ledger.fetchall(
            "SELECT type, payload FROM events WHERE type IN ('lane.plate_read', "
            "'lane.transition', 'ticket.issued', 'ticket.voided') ORDER BY seq")
    finally:
        if attendant.returncode is None:
            attendant.kill()
            await attendant.wait()
        await service.stop()
        ingest.terminate()
        ingest.wait(10)
        broker.stop()
    reads, decisions, entries = _account([(row["type"], json.loads(row["payload"]))
                                          for row in rows], traffic.entries or [])
    return {
        "cars_offered": traffic.stats.arrived, "entered": traffic.stats.entered,
        "exited": traffic.stats.exited, "balked": traffic.stats.balked,
        "trapped": traffic.stats.trapped, "entries_exact_plate": entries["exact"],
        "entries_no_plate": entries["unread"], "entries_misread": entries["misread"],
        "entries_wrong_car_plate": entries["wrong_car"],
        "late_reads_discarded": discarded, "plate_reads": len(reads),
        "plate_read_p50_ms": _pct(reads, 50), "plate_read_p95_ms": _pct(reads, 95),
        "loop_to_gate_p50_ms": _pct(loop_to_gate, 50), "loop_to_gate_p99_ms": _pct(loop_to_gate, 99),
        "decision_p99_ms": _pct(decisions, 99), "attendant_poll_p95_ms": _pct(polls, 95),
        "loop_lag_p99_ms": _pct(lags, 99), "loop_lag_max_ms": round(max(lags), 1) if lags else None,
        # the true peak under load (the kernel's high-water mark), the whole-frame text search's
        # (one read in ten on the US photos) on top of the steady memory
        "rss_max_mib": round(peak / 1024, 1),
        # the steady memory: the median of one-second samples
        "rss_p50_mib": round(statistics.median(rss) / 1024, 1) if rss else None,
        "rss_start_peak_mib": round(start_peak / 1024, 1),
    }


async def attendant_terminal(socket: str) -> list[float]:
    """Poll the API as the attendant terminal does (once a second) until stdin closes; the
    round-trip times in ms."""
    from appliance.client import ServiceClient, ServiceUnavailable

    client = ServiceClient(socket)
    polls: list[float] = []
    done = asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    try:
        while not done.done():  # the API listens once the service runs
            try:
                await client.get("/health")
                break
            except ServiceUnavailable:
                await asyncio.wait([done], timeout=0.2)
        while not done.done():
            started = time.perf_counter()
            for route in ("/health", "/availability", "/alarms"):
                await client.get(route)
            polls.append((time.perf_counter() - started) * 1000)
            await asyncio.wait([done], timeout=1.0)
    finally:
        await client.aclose()
    return polls


def _off_the_board(cloud_pids: list[int]) -> None:
    """Under the bench's CPU limit, move what is not the lot's board out of it: the simulated
    devices' threads (`sim:...`: the spot sensors' Modbus servers, the pty devices; on a lot
    they are hardware with CPUs of their own) and the cloud's processes (`cloud_pids`: the
    broker and the ingest). The service, its drivers and the attendant terminal stay."""
    import threading

    if "lotedge-bench-" not in Path("/proc/self/cgroup").read_text():
        return
    for thread in threading.enumerate():
        if thread.name.startswith("sim:") and thread.native_id is not None:
            (CGROUP / "tasks").write_text(str(thread.native_id))
    for pid in cloud_pids:
        (CGROUP / "cgroup.procs").write_text(str(pid))


def _limited(argv: list[str], quota_us: int) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside a fresh cgroup limited to quota_us per 100 ms (v1 cpu controller)."""
    group = CGROUP / f"lotedge-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))
        enter = f"echo $$ > {group / 'cgroup.procs'} && exec " + " ".join(argv)
        return subprocess.run(["sh", "-c", enter], capture_output=True, text=True, timeout=3600)
    finally:
        for _ in range(50):
            try:
                for sub in group.iterdir():  # a sub-group the service left (it removes its own)
                    if sub.is_dir():
                        sub.rmdir()
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def _one(limit: str) -> dict:
    duration = float(os.environ.get("LOTEDGE_FULLLOAD_S", "240"))
    plates = Path(os.environ.get("LOTEDGE_PLATES_DIR", DEFAULT_PLATES))
    argv = [sys.executable, "-m", "bench.bench_fullload", "--run", str(duration), str(plates)]
    if limit == "half-core":
        if not (CGROUP / "cgroup.procs").exists() or not os.access(CGROUP, os.W_OK):
            return {"error": "no writable cgroup v1 cpu controller here"}
        proc = _limited(argv, 50_000)
    else:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


GOALS = {"full": {"entries_wrong_car_plate": "0", "balked": "0", "plate_read_p95_ms": "<= 400",
                  "loop_to_gate_p99_ms": "<= 600", "decision_p99_ms": "<= 20",
                  "rss_max_mib": "<= 250"},
         "half-core": {"entries_wrong_car_plate": "0", "balked": "0",
                       "plate_read_p95_ms": "<= 1,200", "loop_to_gate_p99_ms": "<= 1,500",
                       "decision_p99_ms": "<= 20", "rss_max_mib": "<= 250"}}
UNITS = {"_ms": "ms", "_mib": "MiB"}


def run() -> list[dict]:
    """Both runs' figures as bench rows."""
    rows = []
    for limit in ("full", "half-core"):
        figures = _one(limit)
        if "error" in figures:
            rows.append({"name": f"fullload [{limit}]: not run", "value": 0, "unit": "",
                         "goal": figures["error"][:60]})
            continue
        for key, value in figures.items():
            unit = next((u for suffix, u in UNITS.items() if key.endswith(suffix)), "")
            rows.append({"name": f"fullload [{limit}] {key.replace('_', ' ')}",
                         "value": value if value is not None else -1, "unit": unit,
                         "goal": GOALS[limit].get(key, "")})
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--attendant":
        print(json.dumps(asyncio.run(attendant_terminal(sys.argv[2]))))
    elif len(sys.argv) == 4 and sys.argv[1] == "--run":
        print(json.dumps(asyncio.run(scenario(float(sys.argv[2]), Path(sys.argv[3])))))
    else:
        for row in run():
            print(row)

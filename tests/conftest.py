"""Shared fixtures: lot configurations written to temporary files, a simulated service."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appliance.config import LotConfig, load_config

REPO = Path(__file__).resolve().parents[1]

FAST_LOT = """
[lot]
id = "test-lot"
timezone = "America/New_York"
mode = "{mode}"
allocation = "nearest"

[[levels]]
id = "L1"
{capacity_l1}

[[levels]]
id = "L2"
{capacity_l2}

{spots}

[[lanes]]
id = "in-1"
direction = "entry"
arming_loop_pin = 4
safety_loop_pin = 17
barrier_relay_pin = 27
debounce_ms = 10

[[lanes]]
id = "in-2"
direction = "entry"
arming_loop_pin = 22
safety_loop_pin = 5
barrier_relay_pin = 6
debounce_ms = 10

[[lanes]]
id = "out-1"
direction = "exit"
arming_loop_pin = 13
safety_loop_pin = 19
barrier_relay_pin = 26
debounce_ms = 10

[[lanes]]
id = "out-2"
direction = "exit"
arming_loop_pin = 18
safety_loop_pin = 23
barrier_relay_pin = 24
debounce_ms = 10

[tariff]
grace_minutes = 10
minimum_charge_cents = 200
hourly_cents = 300
daily_max_cents = 2400

[storage]
data_dir = "{data_dir}"

[simulation]
arrivals_per_hour_per_lane = 36000
speed = 3600.0
mean_stay_minutes = 20
passage_ms = 60
gate_wait_ms = 400
max_queue = 1000
unreadable_plate_rate = 0.1
seed = 7
"""


def write_lot(tmp_path: Path, *, mode: str = "counter", per_level: int = 60) -> Path:
    """Write a fast test lot (short debounce and passages) and return its path."""
    if mode == "counter":
        cap = f"capacity = {{ REGULAR = {per_level - 20}, COMPACT = 10, LARGE = 5, EV = 5 }}"
        spots = ""
        cap1 = cap2 = cap
    else:
        cap1 = cap2 = ""
        spots = textwrap.dedent(f"""
        [[spot_ranges]]
        level = "L1"
        type = "REGULAR"
        count = {per_level - 10}
        prefix = "L1-R"
        first_distance_cm = 100
        distance_step_cm = 100

        [[spot_ranges]]
        level = "L1"
        type = "LARGE"
        count = 10
        prefix = "L1-L"
        first_distance_cm = 500
        distance_step_cm = 100

        [[spot_ranges]]
        level = "L2"
        type = "REGULAR"
        count = {per_level}
        prefix = "L2-R"
        first_distance_cm = 5000
        distance_step_cm = 100
        """)
    path = tmp_path / f"{mode}-lot.toml"
    path.write_text(FAST_LOT.format(mode=mode, capacity_l1=cap1, capacity_l2=cap2, spots=spots,
                                    data_dir=tmp_path / "var"))
    return path


@pytest.fixture
def counter_lot(tmp_path: Path) -> LotConfig:
    """A fast counter-mode lot in a temporary directory."""
    return load_config(write_lot(tmp_path, mode="counter"))


@pytest.fixture
def spot_lot(tmp_path: Path) -> LotConfig:
    """A fast per-spot lot in a temporary directory."""
    return load_config(write_lot(tmp_path, mode="per_spot"))


class RunningService:
    """A service running on the simulator in the test's event loop (no traffic by default)."""

    def __init__(self, cfg: LotConfig, *, traffic_cars: int | None = None):
        from appliance.clock import SimClock
        from appliance.service import Service

        self.cfg = cfg
        self.clock = SimClock(speed=1.0)
        self.service = Service(cfg, simulate=True, clock=self.clock)
        self.traffic_cars = traffic_cars
        self.traffic = None
        self._stop = None
        self._task = None

    @property
    def socket_path(self) -> Path:
        """The API's Unix socket."""
        return self.cfg.data_path(self.cfg.api.socket)

    async def __aenter__(self) -> RunningService:
        import asyncio

        from appliance.simulate import TrafficGenerator

        await self.service.start()
        self._stop = asyncio.Event()
        extra = []
        if self.traffic_cars:
            self.traffic = TrafficGenerator(self.service, self.cfg.simulation, self.clock,
                                            max_cars=self.traffic_cars)
            extra.append(self.traffic.run)
        self._task = asyncio.create_task(self.service.run(self._stop, extra=extra))
        for _ in range(300):
            if self.socket_path.exists():
                break
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        await self._task
        await self.service.stop()


@pytest.fixture
async def running_lot(counter_lot):
    """The fast counter lot's service, running with its API socket, no traffic."""
    async with RunningService(counter_lot) as running:
        yield running


_EXIT_STATUS = 0


def pytest_sessionfinish(session, exitstatus):
    """Remember the run's status for the exit guard below."""
    global _EXIT_STATUS
    _EXIT_STATUS = int(exitstatus)


def pytest_unconfigure(config):
    """A failing test may leave a database thread running; never let it hang CI after the
    summary is printed: exit with the run's own status."""
    import os
    import sys
    import threading

    stray = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stray:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS)

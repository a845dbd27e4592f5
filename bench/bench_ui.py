"""Attendant UI figures: PIN hashing cost, and the UI's poll and command round trips over the socket."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path


def _pin_ms(n: int = 10) -> float:
    from appliance.lot.attendants import hash_pin, verify_pin

    stored = hash_pin("48214821")
    times = []
    for _ in range(n):
        started = time.perf_counter()
        verify_pin("48214821", stored)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _round_trips(n: int = 50) -> tuple[float, float]:
    from appliance.client import ServiceClient
    from appliance.config import load_config
    from tests.conftest import RunningService, write_lot

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(write_lot(Path(tmp)))
        async with RunningService(cfg) as running:
            client = ServiceClient(running.socket_path, local_admin=True)  # to add sue
            await client.post("/attendants", {"id": "sue", "name": "Sue", "role": "supervisor",
                                              "pin": "22222222"})
            session = await client.post("/auth/sign-in", {"attendant": "sue", "pin": "22222222"})
            client.set_session(session["token"])
            polls, commands = [], []
            for i in range(n):
                started = time.perf_counter()
                for path in ("/health", "/availability", "/alarms", "/shift"):
                    await client.get(path)
                polls.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await client.post("/lanes/in-1/hold", {"hold": i % 2 == 0, "reason": "bench"})
                commands.append((time.perf_counter() - started) * 1000)
            await client.aclose()
    return statistics.median(polls), statistics.median(commands)


def run() -> list[dict]:
    """Median PIN verify, UI poll (4 GETs) and a role-gated command, in milliseconds."""
    poll_ms, command_ms = asyncio.run(_round_trips())
    return [
        {"name": "PIN verify (scrypt n=2^14 r=8)", "value": _pin_ms(), "unit": "ms",
         "goal": "<= 250 ms on a Pi 4"},
        {"name": "UI poll round trip (health+availability+alarms+shift)", "value": poll_ms,
         "unit": "ms", "goal": "< 100 ms (poll period 1 s)"},
        {"name": "role-gated command round trip (hold, ledger fsync)", "value": command_ms,
         "unit": "ms", "goal": "< 100 ms"},
    ]

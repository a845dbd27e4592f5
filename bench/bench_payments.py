"""Money and paper on the lane's path: a ZVT exit payment (pre-authorisation + Book Total)
against the emulator over loopback TCP, laying out and printing a ticket to the Dummy
backend, and finding a ticket QR in a lane-camera frame."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

PAYMENTS = 200
PRINTS = 500
FRAMES = 50


async def _zvt() -> list[float]:
    from drivers.zvt.client import ZvtTerminal
    from drivers.zvt.emulator import ZvtEmulator

    emu = ZvtEmulator(seed=1)
    port = await emu.start()
    term = ZvtTerminal(port=port, answer_timeout_s=5)
    times = []
    try:
        for i in range(PAYMENTS):
            started = time.perf_counter()
            await term.authorize(idempotency_key=f"k{i}", amount_cents=900)
            await term.capture(idempotency_key=f"k{i}", amount_cents=900)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await emu.stop()
    return times


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def run() -> list[dict]:
    """The figures."""
    import cv2
    import numpy as np

    from appliance.core.receipts import entry_ticket_lines, ticket_payload
    from drivers.printer import EscposPrinter, make_backend
    from drivers.scanner import decode_qr

    zvt = asyncio.run(_zvt())
    key = bytes(32)
    entry = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    started = time.perf_counter()
    for i in range(PRINTS):
        printer = EscposPrinter("in-1", make_backend("dummy"))
        payload = ticket_payload(lot_id="demo", ticket_id=f"T{i:012d}", entry=entry, key=key)
        printer.print_document(entry_ticket_lines(
            lot_name="Demo", lane="in-1", ticket_id=f"T{i:012d}", entry=entry,
            tz=ZoneInfo("Europe/Berlin"), level="L1"), qr=payload)
    print_ms = (time.perf_counter() - started) * 1000 / PRINTS
    code = cv2.QRCodeEncoder.create().encode(payload)
    code = cv2.resize(code, None, fx=5, fy=5, interpolation=cv2.INTER_NEAREST)
    frame = np.full((720, 1280), 90, np.uint8)
    frame[200:200 + code.shape[0], 500:500 + code.shape[1]] = code
    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    times = []
    for _ in range(FRAMES):
        started = time.perf_counter()
        assert decode_qr(frame) == payload
        times.append((time.perf_counter() - started) * 1000)
    return [
        {"name": "ZVT exit payment (06 22 + 06 24), loopback p50", "value": _p(zvt, 50),
         "unit": "ms", "goal": "protocol overhead only; the card takes seconds"},
        {"name": "ZVT exit payment, loopback p95", "value": _p(zvt, 95), "unit": "ms"},
        {"name": "entry ticket layout + ESC/POS bytes", "value": print_ms, "unit": "ms"},
        {"name": "ticket QR found in a 1280x720 frame, p50", "value": _p(times, 50),
         "unit": "ms", "goal": "< 100 ms (inside the exit decision)"},
    ]

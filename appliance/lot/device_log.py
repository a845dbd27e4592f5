"""The devices' facts in the ledger: spot changes, faults, recoveries and gate commands,
queued by the drivers' `record` callback and written in batches; a fault is also an attendant
alarm (raised once, cleared on recovery)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo

from appliance.core.events import NewEvent, fact_time
from appliance.errors import LotedgeError
from appliance.ledger import Ledger
from appliance.lot.alarms import clear_alarm, raise_alarm

log = logging.getLogger(__name__)


def _severity(fault: Mapping[str, str]) -> str:
    # A broken safety loop or gate can trap or hit a car; a spot sensor only blurs a count.
    return "critical" if fault["kind"] in ("loop", "gate") else "warning"


class DeviceLog:
    """Queue of device facts, written to the ledger by `run()`; each stamped with the time it
    was reported (`fact_utc`, `fact_local`, `fact_mono_ns`), which a batch write comes after.

    Args:
        now: wall time (the service's clock).
        tz: the lot's time zone, for `fact_local`.
    """

    def __init__(self, *, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 tz: tzinfo = UTC) -> None:
        self.events: asyncio.Queue[NewEvent] = asyncio.Queue()
        self.recorded = 0
        self.dropped = 0
        self._now = now
        self._tz = tz

    def record(self, event: NewEvent) -> None:
        """Queue a device fact (the drivers' `record` callback; never blocks)."""
        stamp = fact_time(self._now(), time.monotonic_ns(), self._tz)
        self.events.put_nowait(NewEvent(type=event.type, payload={**event.payload, **stamp}))

    async def run(self, ledger: Ledger, *, batch: int = 200) -> None:
        """Write queued device facts to the ledger, a batch per transaction, until cancelled."""
        while True:
            first = await self.events.get()
            pending = [first]
            while len(pending) < batch and not self.events.empty():
                pending.append(self.events.get_nowait())
            delay = 0.1
            while True:
                try:
                    async with ledger.transaction() as tx:
                        for ev in pending:
                            await tx.append(ev)
                    self.recorded += len(pending)
                    await self._alarms(ledger, pending)
                    break
                except (LotedgeError, sqlite3.Error):
                    log.exception("could not record %d device events; retrying", len(pending))
                    await asyncio.sleep(delay)
                    delay = min(5.0, delay * 2)
                except Exception:  # a malformed fact must not block the ones behind it
                    log.exception("dropping %d unrecordable device events", len(pending))
                    self.dropped += len(pending)
                    break

    async def _alarms(self, ledger: Ledger, events: list[NewEvent]) -> None:
        for ev in events:
            if ev.type not in ("device.fault", "device.recovered"):
                continue
            p = ev.payload
            try:
                if ev.type == "device.fault":
                    await raise_alarm(ledger, code=p["code"], source=p["device"],
                                      detail=p["detail"], severity=_severity(p))
                else:
                    await clear_alarm(ledger, code=p["code"], source=p["device"])
            except (LotedgeError, sqlite3.Error):
                log.exception("could not update the alarm for %s %s", p["device"], p["code"])

"""Batched recording of lane facts (state transitions, notes) off the gate's path.

Gate commands and decisions are appended synchronously before they are acted on; facts that
change nothing (a transition, a backed-out car) are queued here and committed in batches, so a
busy lane costs one fsync per batch rather than per fact. Each queued fact carries the time it
happened (`fact_utc`, `fact_local`, `fact_mono_ns`), not only the time of its batch's write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from appliance.core.events import NewEvent, fact_time
from appliance.ledger import Ledger
from appliance.lot.late import LateRecords

log = logging.getLogger(__name__)


class EventRecorder:
    """Queue of events appended in batches by `run()`.

    Args:
        ledger: where events go.
        max_batch: most events per transaction.
    """

    def __init__(self, ledger: Ledger, *, max_batch: int = 200, late: LateRecords | None = None,
                 now: Callable[[], datetime] | None = None,
                 monotonic_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.ledger = ledger
        self._monotonic_ns = monotonic_ns
        self.max_batch = max_batch
        self._late = late
        self._now = now or (lambda: datetime.now(UTC))
        self._queue: asyncio.Queue[NewEvent] = asyncio.Queue()
        self.recorded = 0
        self.failed = 0

    def record(self, event_type: str, payload: dict, *, at_mono_ns: int | None = None) -> None:
        """Queue a fact for the ledger, stamped with when it happened (`at_mono_ns` on the
        host's monotonic clock; default now)."""
        mono_now = self._monotonic_ns()
        at_mono = mono_now if at_mono_ns is None else at_mono_ns
        at_utc = self._now() - timedelta(microseconds=(mono_now - at_mono) / 1000)
        self._queue.put_nowait(NewEvent(type=event_type, payload={
            **payload, **fact_time(at_utc, at_mono, self.ledger.tz)}))

    @property
    def backlog(self) -> int:
        """Events queued but not yet committed."""
        return self._queue.qsize()

    async def _write(self, batch: list[NewEvent]) -> None:
        try:
            async def write(tx) -> None:  # one trip to the database thread
                for event in batch:
                    await tx.append(event)

            await self.ledger.run(write)
            self.recorded += len(batch)
        except Exception as err:
            self.failed += len(batch)
            log.exception("could not record %d lane facts", len(batch))
            if self._late is not None:  # written late, with an alarm, once the ledger can
                at = self._now()
                for event in batch:
                    self._late.note(event.type, dict(event.payload), at=at, error=err)

    async def run(self) -> None:
        """Commit queued events until cancelled, then flush what is left."""
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._write(batch)
        finally:
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued now."""
        batch: list[NewEvent] = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch and self.ledger._conn is not None:
            await self._write(batch)

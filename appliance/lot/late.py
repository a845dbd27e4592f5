"""Facts the ledger could not take at the time (disk full, I/O error), kept in memory and
written late, with an alarm, as soon as the ledger takes writes again.

A full disk must never trap a car, so lanes keep opening; what they could not record is held
here (bounded), shown on `/health` and in the alarm list at once, and written as
`ledger.late_record` events (the original type, payload and time inside; no projection runs,
so nothing is applied twice) plus one critical `ledger_unwritable` alarm for the attendant.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from appliance.core.events import NewEvent
from appliance.ledger import Ledger
from appliance.lot.alarms import raise_alarm_in

log = logging.getLogger(__name__)


class LateRecords:
    """Bounded in-memory journal of unrecorded facts.

    Args:
        limit: most facts kept (beyond it newer facts are counted, not kept: the first ones
            tell how the outage began).
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._facts: list[dict[str, Any]] = []
        self.dropped = 0
        self.since: datetime | None = None
        self.last_error = ""
        self.written = 0

    @property
    def pending(self) -> int:
        """Facts waiting to be written."""
        return len(self._facts) + self.dropped

    def note(self, event_type: str, payload: dict[str, Any], *, at: datetime,
             error: BaseException | str) -> None:
        """Keep a fact the ledger refused."""
        self.since = self.since or at
        self.last_error = str(error)
        if len(self._facts) >= self.limit:
            self.dropped += 1
            return
        self._facts.append({"type": event_type, "payload": payload, "happened_utc": at.isoformat(),
                            "error": str(error)})

    def status(self) -> dict[str, Any]:
        """For /health: is everything written, and if not since when."""
        return {"writable": not self.pending, "unrecorded": self.pending,
                "since_utc": self.since.isoformat() if self.since else None,
                "error": self.last_error or None, "written_late": self.written}

    def live_alarm(self) -> dict[str, Any] | None:
        """The alarm an attendant must see now, although it cannot be written yet."""
        if not self.pending or self.since is None:
            return None
        return {"id": "LIVE-ledger", "code": "ledger_unwritable", "source": "ledger",
                "severity": "critical", "raised_utc": self.since.isoformat(), "raised_seq": None,
                "cleared_utc": None, "acked_by": None, "acked_note": None, "acked_utc": None,
                "detail": f"ledger not writable ({self.last_error}); gates keep opening; "
                          f"{self.pending} facts held in memory until it is"}

    async def flush(self, ledger: Ledger, *, now: datetime) -> int:
        """Write everything held, and the alarm, in one transaction; 0 if nothing or it fails."""
        if not self.pending or self.since is None:
            return 0
        facts = list(self._facts)
        tickets_missing = sum(1 for f in facts if f["type"] == "lane.decision_failed")
        try:
            async with ledger.transaction() as tx:
                for fact in facts:
                    await tx.append(NewEvent(type="ledger.late_record", payload=fact), at=now)
                await raise_alarm_in(
                    tx, code="ledger_unwritable", source=f"ledger:{self.since.isoformat()}",
                    severity="critical",
                    detail=f"the ledger could not be written from {self.since.isoformat()} to "
                           f"{now.isoformat()} ({self.last_error}); {len(facts)} facts recorded "
                           f"late, {self.dropped} lost beyond the memory limit; "
                           f"{tickets_missing} cars passed without a ticket")
        except Exception as err:
            log.warning("ledger still not writable: %s", err)
            return 0
        del self._facts[:len(facts)]  # facts noted meanwhile stay for the next flush
        self.written += len(facts)
        self.dropped = 0
        self.since = None if not self._facts else self.since
        return len(facts)

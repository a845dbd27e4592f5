"""Bounded local storage: prune events the cloud has acknowledged, never the unsynced ones.

Budget = ledger pages in use + image files. Events older than `max_age_days` that the cloud
acknowledged are pruned; when the budget is nearly spent (`alarm_ratio`), synced events are
pruned oldest first, then (if allowed) images. If the budget is still nearly spent the backlog
is unsynced events, which are kept: the alarm `storage.budget` (source `sync`) is raised once
per episode and cleared when it ends, and gates keep working. Pruning keeps `chain_base` = "seq:hash" so the chain still verifies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from appliance.ledger import Ledger
from appliance.lot.alarms import clear_alarm, raise_alarm

log = logging.getLogger(__name__)

PRUNE_CHUNK = 5_000
ALARM_CODE = "storage.budget"


@dataclass(frozen=True, kw_only=True)
class RetentionReport:
    """What one retention pass found and did."""

    used_bytes: int
    budget_bytes: int
    pruned_events: int
    pruned_images: int
    unsynced_events: int
    alarm: bool


async def ledger_bytes(ledger: Ledger) -> int:
    """Bytes of database pages in use (free pages are reused, so they do not count)."""
    page_size = (await ledger.fetchone("PRAGMA page_size"))[0]
    pages = (await ledger.fetchone("PRAGMA page_count"))[0]
    free = (await ledger.fetchone("PRAGMA freelist_count"))[0]
    return (pages - free) * page_size


def _images(images_dir: Path | None) -> list[Path]:
    if images_dir is None or not images_dir.is_dir():
        return []
    return sorted((p for p in images_dir.rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_mtime)


async def prune_through(ledger: Ledger, seq: int) -> int:
    """Delete events with seq <= `seq` (all must be acked) in short transactions; return count."""
    pruned = 0
    while True:
        async with ledger.transaction() as tx:
            first = await tx.fetchone("SELECT MIN(seq) AS s FROM events")
            if first is None or first["s"] is None or first["s"] > seq:
                return pruned
            bound = min(seq, first["s"] + PRUNE_CHUNK - 1)
            last = await tx.fetchone("SELECT seq, hash FROM events WHERE seq <= ? "
                                     "ORDER BY seq DESC LIMIT 1", (bound,))
            await tx.execute("DELETE FROM events WHERE seq <= ?", (bound,))
            await tx.execute("INSERT INTO meta(key, value) VALUES ('chain_base', ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             (f"{last['seq']}:{last['hash']}",))
            pruned += bound - first["s"] + 1


async def enforce(ledger: Ledger, *, now: datetime, max_bytes: int, max_age_days: int,
                  alarm_ratio: float = 0.9, images_dir: Path | None = None,
                  prune_images: bool = True) -> RetentionReport:
    """One retention pass (see the module docstring)."""
    acked_text = await ledger.get_meta("acked_through")
    acked = int(acked_text) if acked_text else 0
    pruned = 0
    cutoff = (now - timedelta(days=max_age_days)).astimezone(ledger.tz_utc).isoformat()
    young = await ledger.fetchone("SELECT seq FROM events WHERE ts_utc >= ? AND seq <= ? "
                                  "ORDER BY seq LIMIT 1", (cutoff, acked))
    old_through = (young["seq"] - 1) if young else acked
    if old_through > 0:
        pruned += await prune_through(ledger, old_through)
    threshold = int(max_bytes * alarm_ratio)
    images = _images(images_dir)
    image_bytes = sum(p.stat().st_size for p in images)
    used = await ledger_bytes(ledger) + image_bytes
    while used > threshold:
        first = await ledger.fetchone("SELECT MIN(seq) AS s FROM events")
        if first is None or first["s"] is None or first["s"] > acked:
            break
        # Prune a share of the synced events proportional to the overshoot.
        count = await ledger.fetchone("SELECT COUNT(*) AS n FROM events")
        share = max(PRUNE_CHUNK, int(count["n"] * (used - threshold * 0.8) / max(used, 1)))
        pruned += await prune_through(ledger, min(acked, first["s"] + share - 1))
        used = await ledger_bytes(ledger) + image_bytes
    pruned_images = 0
    if used > threshold and prune_images:
        for path in images:
            if used <= threshold:
                break
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            used -= size
            pruned_images += 1
    unsynced_row = await ledger.fetchone("SELECT COUNT(*) AS n FROM events WHERE seq > ?",
                                         (acked,))
    unsynced = unsynced_row["n"] if unsynced_row else 0
    alarm = used > threshold
    if alarm:
        detail = (f"{used} of {max_bytes} bytes used; {unsynced} events not yet synced are "
                  "kept; gates keep working")
        if await raise_alarm(ledger, code=ALARM_CODE, source="sync", detail=detail,
                             severity="critical"):
            log.error("storage: %s", detail)
    else:
        await clear_alarm(ledger, code=ALARM_CODE, source="sync")
    return RetentionReport(used_bytes=used, budget_bytes=max_bytes, pruned_events=pruned,
                           pruned_images=pruned_images, unsynced_events=unsynced, alarm=alarm)

"""The sync tasks of a running lot when `[cloud] enabled = true` (the wiring starts them)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.lot.alarms import clear_alarm, raise_alarm
from appliance.lot.availability import Availability
from appliance.lot.runtime import LotRuntime
from sync.downlink import Downlink, parse_public_key
from sync.retention import enforce
from sync.uplink import Uplink, uplink_from_config
from sync.watch import SyncWatch

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 300.0


@dataclass(frozen=True)
class SyncParts:
    """The running sync: task factories, and the uplink and downlink for diagnostics."""

    tasks: list[Callable[[], Any]]
    uplink: Uplink
    downlink: Downlink | None


def sync_tasks(lot: LotRuntime, *, availability: Callable[[], Availability | None],
               on_availability: Callable[[Callable[[Availability], None]], None]) -> SyncParts:
    """Task factories for the service: uplink, downlink (if api_url is set), retention and
    the link watch; availability snapshots are published retained as they change."""
    cloud = lot.cfg.cloud
    ledger = lot.ledger
    downlink = None
    if cloud.api_url:
        downlink = Downlink(ledger, api_url=cloud.api_url,
                            public_key_b64=parse_public_key(cloud.bundle_public_key),
                            poll_interval_s=cloud.bundle_poll_interval_s,
                            stale_after_s=(cloud.bundle_stale_after_h * 3600
                                           if cloud.bundle_stale_after_h else None))
    uplink = uplink_from_config(ledger, cloud,
                                on_bundle_notice=downlink.notice if downlink else None)
    on_availability(lambda snapshot: uplink.publish_availability(snapshot.as_dict()))
    if (current := availability()) is not None:
        uplink.publish_availability(current.as_dict())

    async def retention() -> None:
        while True:
            try:
                await enforce(ledger, now=lot.clock.now(), max_bytes=cloud.retention_max_bytes,
                              max_age_days=cloud.retention_max_age_days,
                              alarm_ratio=cloud.retention_alarm_ratio,
                              images_dir=lot.data_dir / "images",
                              prune_images=cloud.retention_prune_images)
            except Exception:
                log.exception("retention pass failed; will retry")
            await asyncio.sleep(RETENTION_INTERVAL_S)

    watch = SyncWatch(alarm_after_s=cloud.offline_alarm_s)

    async def watch_link() -> None:
        """Broker down or cloud not acknowledging for long: an attendant alarm (and its clear)."""
        interval = min(30.0, cloud.offline_alarm_s / 4)
        while True:
            backlog = max(0, await ledger.last_seq() - uplink.acked_through)
            for change in watch.observe(time.monotonic(), connected=uplink.connected.is_set(),
                                        backlog=backlog, acked_through=uplink.acked_through,
                                        api_ok=downlink.ok if downlink else None,
                                        api_error=downlink.last_error if downlink else ""):
                if change.raise_:
                    log.warning("sync alarm %s: %s", change.code, change.detail)
                    await raise_alarm(ledger, code=change.code, source=change.source,
                                      detail=change.detail)
                else:
                    await clear_alarm(ledger, code=change.code, source=change.source)
            await asyncio.sleep(interval)

    tasks: list[Callable[[], Any]] = [supervised("uplink", uplink.run),
                                      supervised("retention", retention),
                                      supervised("watch", watch_link)]
    if downlink is not None:
        tasks.append(supervised("downlink", downlink.run))
    return SyncParts(tasks, uplink, downlink)


def supervised(name: str, run: Callable[[], Any], *, restart_s: float = 5.0) -> Callable[[], Any]:
    """Wrap a task so that a crash is logged and restarted, never taking the lanes down."""

    async def guard() -> None:
        while True:
            try:
                await run()
                return
            except Exception:
                log.exception("sync task %s crashed; restarting in %.0f s", name, restart_s)
            await asyncio.sleep(restart_s)

    guard.__name__ = f"sync:{name}"
    return guard

"""Hooks the sync tasks into the running service when `[cloud] enabled = true`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from appliance.alarms import clear_alarm, raise_alarm
from sync.downlink import Downlink, parse_public_key
from sync.retention import enforce
from sync.uplink import uplink_from_config
from sync.watch import SyncWatch

if TYPE_CHECKING:
    from appliance.service import Service

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 300.0


def sync_tasks(service: Service) -> list[Callable[[], Any]]:
    """Task factories for Service.run: uplink, downlink (if api_url is set) and retention."""
    cloud = service.cfg.cloud
    ledger = service.ledger
    assert ledger is not None, "start the service first"
    downlink = None
    if cloud.api_url:
        downlink = Downlink(ledger, api_url=cloud.api_url,
                            public_key_b64=parse_public_key(cloud.bundle_public_key),
                            poll_interval_s=cloud.bundle_poll_interval_s)
    uplink = uplink_from_config(ledger, cloud,
                                on_bundle_notice=downlink.notice if downlink else None)
    service.on_availability(lambda snapshot: uplink.publish_availability(snapshot.as_dict()))
    if service.availability is not None:
        uplink.publish_availability(service.availability.as_dict())

    async def retention() -> None:
        while True:
            try:
                await enforce(ledger, now=service.clock.now(), max_bytes=cloud.retention_max_bytes,
                              max_age_days=cloud.retention_max_age_days,
                              alarm_ratio=cloud.retention_alarm_ratio,
                              images_dir=service.data_dir / "images",
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
    service.sync = {"uplink": uplink, "downlink": downlink}  # for diagnostics and tests
    return tasks


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

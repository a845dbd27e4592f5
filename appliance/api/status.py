"""`/health`, `/availability`, `/lanes` and `/events`: what the lot is doing, read-only."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.routing import Route

from appliance import __version__
from appliance.api.probes import ServiceProbes
from appliance.api.requests import int_param
from appliance.core.events import redact_payload
from appliance.lot.runtime import LotRuntime


def routes(lot: LotRuntime, probes: ServiceProbes, handler: Callable) -> list[Route]:
    """The status routes, wrapped by the API's auth and error handler."""

    async def health(request: Request):
        ledger = lot.ledger
        lanes = [c.snapshot() for c in lot.lanes.values()]
        if request.scope.get("client") is not None:  # public over TCP: no plates
            lanes = [{k: v for k, v in lane.items() if "plate" not in k} for lane in lanes]
        sync = probes.sync_status() if lot.cfg.cloud.enabled else None
        return {
            "ok": True, "version": __version__, "lot_id": lot.cfg.lot.id,
            "config_sha256": lot.cfg.source_sha256,
            "uptime_s": round(time.monotonic() - probes.started_monotonic, 1),
            "simulate": probes.simulate,
            "last_seq": await ledger.last_seq(),
            "lanes": lanes,
            "time_utc": lot.clock.now().isoformat(),
            "timezone": lot.cfg.lot.timezone, "currency": lot.cfg.lot.currency,
            "ledger": lot.late.status(),
            "tariff": lot.tariffs.describe(),
            **({"sync": {**sync, "backlog": (await ledger.last_seq()) - sync.get(
                "acked_through", 0)}} if sync is not None else {}),
        }

    async def availability(request: Request):
        snapshot = probes.availability()
        return snapshot.as_dict() if snapshot else {}

    async def lanes(request: Request):
        return [c.snapshot() for c in lot.lanes.values()]

    async def events(request: Request):
        after = int_param(request, "after", 0, low=0, high=2**63 - 1)
        limit = int_param(request, "limit", 100, low=1, high=1000)
        out = []
        for event in await lot.ledger.events_after(after, limit):
            row = event.as_dict()
            row["payload"] = redact_payload(event.type, row["payload"])  # older ledgers' PINs
            out.append(row)
        return out

    return [
        Route("/health", handler(health)),
        Route("/availability", handler(availability)),
        Route("/lanes", handler(lanes)),
        Route("/events", handler(events)),
    ]

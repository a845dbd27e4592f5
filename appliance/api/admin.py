"""Lot administration: `/reservations/import` and `/counts/reset`."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.routing import Route

from appliance.api.requests import json_body, parse_json
from appliance.errors import InputError
from appliance.lot.housekeeping import reset_counts
from appliance.lot.reservations import import_records, parse_records
from appliance.lot.runtime import LotRuntime


def routes(lot: LotRuntime, handler: Callable) -> list[Route]:
    """The administration routes, wrapped by the API's auth and error handler."""

    async def reservations_import(request: Request):
        records = parse_records(parse_json(await request.body()), lot.cfg)
        return await import_records(lot.ledger, lot.cfg, records, source="api")

    async def counts_reset(request: Request):
        b = await json_body(request)
        counts = b.get("counts")
        if not isinstance(counts, dict):
            raise InputError("counts must be an object {spot_type: occupied}")
        return await reset_counts(lot, level=str(b.get("level", "")), counts=counts,
                                  attendant=str(b.get("attendant") or ""),
                                  reason=str(b.get("reason") or ""))

    return [
        Route("/reservations/import", handler(reservations_import), methods=["POST"]),
        Route("/counts/reset", handler(counts_reset), methods=["POST"]),
    ]

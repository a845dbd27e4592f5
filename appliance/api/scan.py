"""`/scan/{lane}`: the ticket a lane's or the booth's scanner holds now.

`GET /scan/booth` answers `{"lane", "scanned": bool, "ticket_id", "genuine"}`: `ticket_id` is
set only for a genuine ticket QR of this lot; a code that is not one says `genuine: false`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request
from starlette.routing import Route

from appliance.lot.runtime import LotRuntime


def routes(lot: LotRuntime, handler: Callable) -> list[Route]:
    """The scan route, wrapped by the API's auth and error handler."""

    async def scanned(request: Request):
        lane = request.path_params["lane"]
        out = {"lane": lane, "scanned": False, "ticket_id": None, "genuine": False}
        device = lot.scanners.by_lane.get(lane) if lot.scanners is not None else None
        if device is None:
            return out
        text = await asyncio.to_thread(device.read, lane)
        if not text:
            return out
        ticket = lot.paper.ticket_id_from_scan(text) if lot.paper is not None else None
        out.update(scanned=True, ticket_id=ticket, genuine=ticket is not None)
        return out

    return [Route("/scan/{lane}", handler(scanned))]

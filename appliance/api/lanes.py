"""`/lanes/{lane}/open|close|hold`: an attendant's hand on a barrier (audited commands)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.routing import Route

from appliance.api.requests import json_body
from appliance.lot import commands
from appliance.lot.runtime import LotRuntime


def routes(lot: LotRuntime, handler: Callable) -> list[Route]:
    """The barrier command routes, wrapped by the API's auth and error handler."""

    async def lane_open(request: Request):
        b = await json_body(request)
        return await commands.open_gate(lot, request.path_params["lane"],
                                        attendant=b.get("attendant"), reason=b.get("reason"))

    async def lane_close(request: Request):
        b = await json_body(request)
        return await commands.close_gate(lot, request.path_params["lane"],
                                         attendant=b.get("attendant"))

    async def lane_hold(request: Request):
        b = await json_body(request)
        return await commands.hold_open(lot, request.path_params["lane"],
                                        hold=bool(b.get("hold", True)),
                                        attendant=b.get("attendant"), reason=b.get("reason"))

    return [
        Route("/lanes/{lane}/open", handler(lane_open), methods=["POST"]),
        Route("/lanes/{lane}/close", handler(lane_close), methods=["POST"]),
        Route("/lanes/{lane}/hold", handler(lane_hold), methods=["POST"]),
    ]

"""`/alarms`: the active (or all) alarms, and an attendant's acknowledgement."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.routing import Route

from appliance.api.requests import json_body, required_text
from appliance.errors import InputError
from appliance.lot import alarms
from appliance.lot.runtime import LotRuntime


def routes(lot: LotRuntime, handler: Callable) -> list[Route]:
    """The alarm routes, wrapped by the API's auth and error handler."""

    async def alarm_list(request: Request):
        active = request.query_params.get("all") is None
        live = lot.late.live_alarm()  # a full disk: shown although it cannot be written
        return ([live] if live else []) + await alarms.list_alarms(lot.ledger,
                                                                   active_only=active)

    async def alarm_ack(request: Request):
        b = await json_body(request)
        if request.path_params["alarm"] == "LIVE-ledger":
            raise InputError("the ledger cannot be written yet; this alarm is written (and can "
                             "be acknowledged) as soon as it can")
        await alarms.acknowledge(lot.ledger, alarm_id=request.path_params["alarm"],
                                 attendant=required_text(b.get("attendant"), "attendant"),
                                 note=b.get("note") or "")
        return {"acknowledged": request.path_params["alarm"]}

    return [
        Route("/alarms", handler(alarm_list)),
        Route("/alarms/{alarm}/ack", handler(alarm_ack), methods=["POST"]),
    ]

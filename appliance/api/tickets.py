"""`/tickets`: search, a ticket with its fee now, and the booth's ticket actions."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.routing import Route

from appliance.api.requests import json_body
from appliance.lot import commands
from appliance.lot.runtime import LotRuntime


def routes(lot: LotRuntime, handler: Callable) -> list[Route]:
    """The ticket routes, wrapped by the API's auth and error handler."""

    async def tickets(request: Request):
        return await commands.search_tickets(lot, query=request.query_params.get("q", ""))

    async def ticket(request: Request):
        return await commands.ticket_with_fee(lot, request.path_params["ticket"])

    async def ticket_action(request: Request):
        b = await json_body(request)
        ticket_id, action = request.path_params["ticket"], request.path_params["action"]
        if action == "override":
            return await commands.override_fee(lot, ticket_id, fee_cents=b.get("fee_cents"),
                                               attendant=b.get("attendant"),
                                               reason=b.get("reason"))
        if action == "validate":
            return await commands.apply_validation(lot, ticket_id, code=b.get("code"),
                                                   attendant=b.get("attendant"))
        if action == "pay-cash":
            return await commands.pay_cash(lot, ticket_id, amount_cents=b.get("amount_cents"),
                                           attendant=b.get("attendant"))
        if action == "void":
            return await commands.void_ticket(lot, ticket_id, attendant=b.get("attendant"),
                                              reason=b.get("reason"))
        raise commands.NotFoundError(f"no ticket action {action!r}")

    return [
        Route("/tickets", handler(tickets)),
        Route("/tickets/{ticket}", handler(ticket)),
        Route("/tickets/{ticket}/{action}", handler(ticket_action), methods=["POST"]),
    ]

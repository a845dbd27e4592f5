"""`/tickets`: search, a ticket with its fee now, and the booth's ticket actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from starlette.requests import Request
from starlette.routing import Route

from appliance.api.requests import json_body
from appliance.errors import InputError
from appliance.lot import commands
from appliance.lot.runtime import LotRuntime


def _when(text: str | None, name: str) -> datetime:
    """A query parameter as an aware timestamp (ISO 8601 with its offset)."""
    if not text:
        raise InputError(f"{name} is required (an ISO time with its offset)")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{name}: not an ISO time: {text!r}") from None
    if when.tzinfo is None:
        raise InputError(f"{name}: give the time with its offset, e.g. 2026-03-14T15:00+01:00")
    return when


def routes(lot: LotRuntime, handler: Callable) -> list[Route]:
    """The ticket routes, wrapped by the API's auth and error handler."""

    async def tickets(request: Request):
        params = request.query_params
        if params.get("no_plate"):
            return await commands.tickets_without_plate(
                lot, lane=params.get("lane") or None, after=_when(params.get("from"), "from"),
                before=_when(params.get("to"), "to"))
        return await commands.search_tickets(lot, query=params.get("q", ""))

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
                                           tendered_cents=b.get("tendered_cents"),
                                           attendant=b.get("attendant"))
        if action == "lost":
            return await commands.lost_ticket(lot, ticket_id, attendant=b.get("attendant"))
        if action == "void":
            return await commands.void_ticket(lot, ticket_id, attendant=b.get("attendant"),
                                              reason=b.get("reason"))
        raise commands.NotFoundError(f"no ticket action {action!r}")

    return [
        Route("/tickets", handler(tickets)),
        Route("/tickets/{ticket}", handler(ticket)),
        Route("/tickets/{ticket}/{action}", handler(ticket_action), methods=["POST"]),
    ]

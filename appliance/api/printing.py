"""`/print`: receipts and the shift report on the booth's (or a lane's) receipt printer.

`POST /print/receipt/{ticket}` prints a ticket's receipt (body: `printer`, default "booth";
`copy`: true for a reprint); `POST /print/shift` prints a shift report (body: `shift_id`,
`printer`). Both are gated like the other booth commands (api/shift.py GATED); `GET /print`
lists the printers and their state.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.routing import Route

from appliance.api.requests import json_body
from appliance.errors import InputError
from appliance.lot.printing import receipt_document, shift_document
from appliance.lot.runtime import LotRuntime


def routes(lot: LotRuntime, handler: Callable) -> list[Route]:
    """The print routes, wrapped by the API's auth and error handler."""

    def paper():
        if lot.paper is None:
            raise InputError("no printers are configured")
        return lot.paper

    async def printers(request: Request):
        return {"printers": paper().status()}

    async def print_receipt(request: Request):
        b = await json_body(request)
        target = str(b.get("printer") or "booth")
        p = paper()
        lines = await receipt_document(lot.ledger, lot.cfg, request.path_params["ticket"],
                                       at=lot.clock.now(), copy=bool(b.get("copy")),
                                       width=p.widths.get(target, 42), tariffs=lot.tariffs)
        p.print_lines(target, lines)
        return {"printed": True, "printer": target, "lines": lines}

    async def print_shift(request: Request):
        b = await json_body(request)
        shift_id = b.get("shift_id")
        if not shift_id:
            raise InputError("shift_id is required")
        target = str(b.get("printer") or "booth")
        p = paper()
        lines = await shift_document(lot.ledger, lot.cfg, str(shift_id),
                                     width=p.widths.get(target, 42))
        p.print_lines(target, lines)
        return {"printed": True, "printer": target, "lines": lines}

    return [
        Route("/print", handler(printers)),
        Route("/print/receipt/{ticket}", handler(print_receipt), methods=["POST"]),
        Route("/print/shift", handler(print_shift), methods=["POST"]),
    ]

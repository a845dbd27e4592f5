"""API for attendants, sign-in sessions, shifts, role gating of the attendant commands, and
the booth's view of spot sensors (`GET /availability/sensors`).

Installed on the service API by `install(app, lot)`. Once at least one attendant is
registered, every attendant command (gate open/close/hold, ticket actions, alarm ack) needs
the header `X-Lotedge-Session: <token>` from `POST /auth/sign-in`; the session's role must
allow the action, and the session's attendant id replaces any `attendant` in the body, so the
ledger records who really did it. With no attendant registered yet (a fresh appliance) the
commands keep taking `attendant` from the body.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from appliance.api.limits import bearer_ok
from appliance.api.peer import source_of, trusted_local_user
from appliance.api.requests import error_response, int_param, json_body, parse_json, replaying
from appliance.core.roles import PERMISSIONS, allowed, least_role_for
from appliance.errors import DeviceError, InputError, LotedgeError
from appliance.ledger import Ledger
from appliance.lot import activity, attendants
from appliance.lot.attendants import Desk, RoleError, Session, SignInError
from appliance.lot.runtime import LotRuntime

SESSION_HEADER = "X-Lotedge-Session"

# The privileged requests and the permission each needs (core/roles.py says which role has it).
GATED: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), action) for method, pattern, action in (
        ("POST", r"^/lanes/[^/]+/open$", "gate.open"),
        ("POST", r"^/lanes/[^/]+/close$", "gate.close"),
        ("POST", r"^/lanes/[^/]+/hold$", "gate.hold"),
        ("POST", r"^/tickets/[^/]+/validate$", "ticket.validate"),
        ("POST", r"^/tickets/[^/]+/pay-cash$", "ticket.cash"),
        ("POST", r"^/tickets/[^/]+/override$", "ticket.override"),
        ("POST", r"^/tickets/[^/]+/void$", "ticket.void"),
        ("POST", r"^/tickets/[^/]+/lost$", "ticket.lost"),
        ("POST", r"^/alarms/[^/]+/ack$", "alarm.ack"),
        ("POST", r"^/print/receipt/[^/]+$", "receipt.print"),
        ("POST", r"^/print/shift$", "receipt.print"),
        ("POST", r"^/attendants$", "attendant.add"),
        ("POST", r"^/attendants/[^/]+/pin$", "attendant.add"),
        ("POST", r"^/counts/reset$", "counts.reset"),
        ("POST", r"^/reservations/import$", "reservations.import"),
        ("POST", r"^/diag/audit$", "diagnostics"),
        ("POST", r"^/diag/sync/push$", "diagnostics"),
        ("POST", r"^/diag/lanes/[^/]+/camera/read$", "diagnostics"),
        ("GET", r"^/diag/lanes/[^/]+/camera/snapshot$", "diagnostics"),
        ("GET", r"^/events$", "events.read"),
    ))
BOOTSTRAP_HINT = ("no attendant exists yet: as root (or the service user) on the appliance run "
                  "`lotedge attendants add ID --name NAME --role supervisor`")


# What the spot sensors say per level x type (per-spot lots; none in counter lots).
SENSOR_SQL = (
    "SELECT level_id, type, COUNT(*), SUM(sensor_state = 'OCCUPIED'), "
    "SUM(sensor_state = 'UNKNOWN') FROM spots GROUP BY level_id, type ORDER BY level_id, type")


def gated_action(method: str, path: str) -> str | None:
    """The permission a request needs, or None if it is not a privileged request."""
    for gated_method, pattern, action in GATED:
        if method == gated_method and pattern.match(path):
            return action
    return None


def _need_role(session: Session, action: str) -> None:
    if not allowed(session.role, action):
        role = least_role_for(action)
        raise RoleError(f"{action} needs role {role.value if role else '?'}; "
                        f"{session.attendant_id} is {session.role.value}")


class RoleGate:
    """ASGI middleware: a privileged request needs a signed-in session whose role allows it (the
    session's attendant replaces any name in the body), on every transport; only root or the
    service's user on the Unix socket act without one (they own the ledger file anyway)."""

    def __init__(self, app: ASGIApp, *, ledger: Ledger, desk: Desk):
        self.app = app
        self.ledger = ledger
        self.desk = desk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gate one request."""
        action = (gated_action(scope["method"], scope["path"])
                  if scope["type"] == "http" else None)
        if action is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        token = headers.get(SESSION_HEADER.lower())
        if token is None and trusted_local_user(scope) is not None:
            await self.app(scope, receive, send)
            return
        try:
            if token is None:
                role = least_role_for(action)
                hint = ("" if await attendants.any_attendants(self.ledger)
                        else f"; {BOOTSTRAP_HINT}")
                raise SignInError(f"{action} needs a signed-in "
                                  f"{role.value if role else '?'}: sign in first{hint}")
            session = self.desk.session(token)
            _need_role(session, action)
        except SignInError as err:
            await error_response(401, str(err))(scope, receive, send)
            return
        except RoleError as err:
            await error_response(403, str(err))(scope, receive, send)
            return
        scope.setdefault("state", {})["actor"] = session.attendant_id
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = parse_json(raw) if raw else {}
        except InputError:
            body = None  # the handler answers 400 for it
        if isinstance(body, dict):
            body["attendant"] = session.attendant_id
            if scope["path"].startswith("/diag/"):
                body["technician"] = session.attendant_id
            raw = json.dumps(body).encode()
        await self.app(scope, replaying(raw, receive), send)


def install(app: Starlette, lot: LotRuntime, *, token: str | None = None) -> None:
    """Add the attendant, session and shift routes and the role gate to the API app."""

    desk = Desk()
    app.state.desk = desk

    def handler(fn):
        async def wrapped(request: Request) -> JSONResponse:
            if token is not None and request.scope.get("client") is not None:
                if not bearer_ok(request.headers.get("authorization"), token):
                    return error_response(401, "missing or wrong API token")
            try:
                result = await fn(request)
            except SignInError as err:
                return error_response(401, str(err))
            except RoleError as err:
                return error_response(403, str(err))
            except (InputError, ValueError, KeyError, TypeError) as err:
                return error_response(400, str(err))
            except DeviceError as err:  # a printer out of paper, a terminal gone: try later
                return error_response(503, str(err))
            except LotedgeError as err:
                return error_response(500, str(err))
            return JSONResponse(result)

        return wrapped

    def session_of(request: Request) -> Session:
        return desk.session(request.headers.get(SESSION_HEADER))

    def with_permissions(session: Session) -> dict[str, Any]:
        out = session.as_dict()
        out["permissions"] = sorted(PERMISSIONS[session.role])
        return out

    async def sign_in(request: Request):
        b = await json_body(request)
        session = await desk.sign_in(lot.ledger, attendant_id=str(b.get("attendant") or ""),
                                     pin=str(b.get("pin") or ""), source=source_of(request.scope))
        return with_permissions(session)

    async def sign_out(request: Request):
        await desk.sign_out(lot.ledger, request.headers.get(SESSION_HEADER, ""))
        return {"signed_out": True}

    async def whoami(request: Request):
        return with_permissions(session_of(request))

    async def attendant_list(request: Request):
        return await attendants.list_attendants(lot.ledger)

    async def attendant_add(request: Request):
        b = await json_body(request)
        # the role gate let this through: a supervisor's session, or root / the service user
        by = getattr(request.state, "actor", None) or \
            f"local:{trusted_local_user(request.scope)}"
        return await attendants.add_attendant(
            lot.ledger, attendant_id=b.get("id"), name=b.get("name"), role=b.get("role"),
            pin=b.get("pin"), by=by)

    async def attendant_pin(request: Request):
        b = await json_body(request)
        by = getattr(request.state, "actor", None) or \
            f"local:{trusted_local_user(request.scope)}"
        return await attendants.set_pin(lot.ledger, attendant_id=request.path_params["attendant"],
                                        pin=b.get("pin"), by=by)

    async def shift_current(request: Request):
        return await attendants.shift_report(lot.ledger, session_of(request).shift_id)

    async def shift_close(request: Request):
        session = session_of(request)
        _need_role(session, "shift.close")
        b = await json_body(request)
        shift_id = b.get("shift_id") or session.shift_id
        report = await attendants.close_shift(lot.ledger, shift_id=shift_id,
                                              counted_cents=b.get("counted_cents"),
                                              closed_by=session.attendant_id,
                                              reason=b.get("reason"))
        desk.end_shift_sessions(shift_id)
        return report

    async def activity_feed(request: Request):
        session_of(request)  # the feed names plates and people: signed-in staff only
        return await activity.recent(lot.ledger,
                                     limit=int_param(request, "limit", 50, low=1, high=500))

    async def sensor_states(request: Request):
        rows = await lot.ledger.fetchall(SENSOR_SQL)
        return [{"level": r[0], "spot_type": r[1], "spots": r[2], "sensor_occupied": r[3],
                 "unknown": r[4]} for r in rows]

    app.router.routes.extend([
        Route("/availability/sensors", handler(sensor_states)),
        Route("/auth/sign-in", handler(sign_in), methods=["POST"]),
        Route("/auth/sign-out", handler(sign_out), methods=["POST"]),
        Route("/auth/session", handler(whoami)),
        Route("/attendants", handler(attendant_list)),
        Route("/attendants", handler(attendant_add), methods=["POST"]),
        Route("/attendants/{attendant}/pin", handler(attendant_pin), methods=["POST"]),
        Route("/shift", handler(shift_current)),
        Route("/shift/close", handler(shift_close), methods=["POST"]),
        Route("/activity", handler(activity_feed)),
    ])
    app.add_middleware(RoleGate, ledger=lot.ledger, desk=desk)

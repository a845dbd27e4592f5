"""The local service API (Starlette on uvicorn): the only way the attendant UI and the
diagnostics CLI reach the running appliance.

Served on a Unix socket (mode 0660: file permissions are the authentication) and, when
`api.http_port` is set, on loopback HTTP where everything but `GET /availability` and
`GET /health` needs `Authorization: Bearer <token>` (token file mode 0600 in the data dir).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance import __version__, alarms, api_shift, commands
from appliance.api_diag import diag_routes
from appliance.errors import InputError, LotedgeError
from appliance.secrets import read_secret_file

if TYPE_CHECKING:
    from appliance.service import Service

PUBLIC = {("GET", "/availability"), ("GET", "/health")}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"request body is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise InputError("request body must be a JSON object")
    return data


def create_app(service: Service, *, token: str | None = None) -> Starlette:
    """The API application bound to a running service."""

    def handler(fn):
        async def wrapped(request: Request) -> JSONResponse:
            if token is not None and (request.method, request.url.path) not in PUBLIC:
                if request.scope.get("client") is not None:  # TCP; the Unix socket has none
                    given = request.headers.get("authorization", "")
                    if not secrets.compare_digest(given, f"Bearer {token}"):
                        return _error(401, "missing or wrong API token")
            try:
                result = await fn(request)
            except commands.NotFoundError as err:
                return _error(404, str(err))
            except commands.ConflictError as err:
                return _error(409, str(err))
            except (InputError, ValueError, KeyError, TypeError) as err:
                return _error(400, str(err))
            except LotedgeError as err:
                return _error(500, str(err))
            return result if isinstance(result, JSONResponse) else JSONResponse(result)

        return wrapped

    async def health(request: Request):
        ledger = service.ledger
        return {
            "ok": ledger is not None, "version": __version__, "lot_id": service.cfg.lot.id,
            "config_sha256": service.cfg.source_sha256,
            "uptime_s": round(time.monotonic() - service.started_monotonic, 1),
            "simulate": service.simulate,
            "last_seq": await ledger.last_seq() if ledger else None,
            "lanes": [c.snapshot() for c in service.lanes.values()],
            "time_utc": service.clock.now().isoformat(),
            "ledger": service.late.status(),
            "tariff": service.tariffs.describe(),
            **({"sync": {**service.sync_status(),
                         "backlog": (await ledger.last_seq()) - service.sync_status().get(
                             "acked_through", 0)}}
               if ledger is not None and service.cfg.cloud.enabled else {}),
        }

    async def availability(request: Request):
        return service.availability.as_dict() if service.availability else {}

    async def lanes(request: Request):
        return [c.snapshot() for c in service.lanes.values()]

    async def lane_open(request: Request):
        b = await _body(request)
        return await commands.open_gate(service, request.path_params["lane"],
                                        attendant=b.get("attendant"), reason=b.get("reason"))

    async def lane_close(request: Request):
        b = await _body(request)
        return await commands.close_gate(service, request.path_params["lane"],
                                         attendant=b.get("attendant"))

    async def lane_hold(request: Request):
        b = await _body(request)
        return await commands.hold_open(service, request.path_params["lane"],
                                        hold=bool(b.get("hold", True)),
                                        attendant=b.get("attendant"), reason=b.get("reason"))

    async def tickets(request: Request):
        return await commands.search_tickets(service, query=request.query_params.get("q", ""))

    async def ticket(request: Request):
        return await commands.ticket_with_fee(service, request.path_params["ticket"])

    async def ticket_action(request: Request):
        b = await _body(request)
        ticket_id, action = request.path_params["ticket"], request.path_params["action"]
        if action == "override":
            return await commands.override_fee(service, ticket_id, fee_cents=b.get("fee_cents"),
                                               attendant=b.get("attendant"),
                                               reason=b.get("reason"))
        if action == "validate":
            return await commands.apply_validation(service, ticket_id, code=b.get("code"),
                                                   attendant=b.get("attendant"))
        if action == "pay-cash":
            return await commands.pay_cash(service, ticket_id, amount_cents=b.get("amount_cents"),
                                           attendant=b.get("attendant"))
        if action == "void":
            return await commands.void_ticket(service, ticket_id, attendant=b.get("attendant"),
                                              reason=b.get("reason"))
        raise commands.NotFoundError(f"no ticket action {action!r}")

    async def alarm_list(request: Request):
        active = request.query_params.get("all") is None
        live = service.late.live_alarm()  # a full disk: shown although it cannot be written
        return ([live] if live else []) + await alarms.list_alarms(service.ledger,
                                                                   active_only=active)

    async def alarm_ack(request: Request):
        b = await _body(request)
        if request.path_params["alarm"] == "LIVE-ledger":
            raise InputError("the ledger cannot be written yet; this alarm is written (and can "
                             "be acknowledged) as soon as it can")
        await alarms.acknowledge(service.ledger, alarm_id=request.path_params["alarm"],
                                 attendant=commands._need(b.get("attendant"), "attendant"),
                                 note=b.get("note") or "")
        return {"acknowledged": request.path_params["alarm"]}

    async def events(request: Request):
        after = int(request.query_params.get("after", "0"))
        limit = min(int(request.query_params.get("limit", "100")), 1000)
        return [e.as_dict() for e in await service.ledger.events_after(after, limit)]

    async def reservations_import(request: Request):
        from appliance.reservations import import_records, parse_records

        raw = await request.body()
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"request body is not JSON: {err}") from err
        records = parse_records(data, service.cfg)
        return await import_records(service.ledger, service.cfg, records, source="api")

    async def counts_reset(request: Request):
        from appliance.housekeeping import reset_counts

        b = await _body(request)
        counts = b.get("counts")
        if not isinstance(counts, dict):
            raise InputError("counts must be an object {spot_type: occupied}")
        return await reset_counts(service, level=str(b.get("level", "")), counts=counts,
                                  attendant=str(b.get("attendant") or ""),
                                  reason=str(b.get("reason") or ""))

    routes = [
        Route("/reservations/import", handler(reservations_import), methods=["POST"]),
        Route("/counts/reset", handler(counts_reset), methods=["POST"]),
        Route("/health", handler(health)),
        Route("/availability", handler(availability)),
        Route("/lanes", handler(lanes)),
        Route("/lanes/{lane}/open", handler(lane_open), methods=["POST"]),
        Route("/lanes/{lane}/close", handler(lane_close), methods=["POST"]),
        Route("/lanes/{lane}/hold", handler(lane_hold), methods=["POST"]),
        Route("/tickets", handler(tickets)),
        Route("/tickets/{ticket}", handler(ticket)),
        Route("/tickets/{ticket}/{action}", handler(ticket_action), methods=["POST"]),
        Route("/alarms", handler(alarm_list)),
        Route("/alarms/{alarm}/ack", handler(alarm_ack), methods=["POST"]),
        Route("/events", handler(events)),
        *diag_routes(service, handler),
    ]
    app = Starlette(routes=routes)
    app.state.service = service
    api_shift.install(app, service, token=token)
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def load_or_create_token(path: Path) -> str:
    """The API token (created with mode 0600 on first use)."""
    if path.exists():
        return str(read_secret_file(path, key="api.token_file"))  # refused unless owner-only
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


async def serve_api(service: Service) -> None:
    """Serve the API until cancelled."""
    cfg = service.cfg
    base = service.base_dir
    token = load_or_create_token(cfg.data_path(cfg.api.token_file, base))
    app = create_app(service, token=token)
    sock_path = cfg.data_path(cfg.api.socket, base)
    if sock_path.exists():
        sock_path.unlink()
    servers = [_Server(uvicorn.Config(app, uds=str(sock_path), log_level="warning",
                                      lifespan="off"))]
    if cfg.api.http_port:
        servers.append(_Server(uvicorn.Config(app, host=cfg.api.http_host,
                                              port=cfg.api.http_port, log_level="warning",
                                              lifespan="off")))
    tasks = [asyncio.create_task(s.serve()) for s in servers]

    async def chmod_when_ready() -> None:
        for _ in range(200):
            if sock_path.exists():
                os.chmod(sock_path, 0o660)
                return
            await asyncio.sleep(0.01)

    try:
        await chmod_when_ready()
        # asyncio.wait, not gather: cancelling gather would cancel uvicorn mid-loop and skip
        # its shutdown, leaving the socket answering after the service stopped.
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for s in servers:
            s.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)

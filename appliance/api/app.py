"""The local service API (Starlette on uvicorn): the only way the attendant UI and the
diagnostics CLI reach the running appliance.

Served on a Unix socket (mode 0660: file permissions are the authentication) and, when
`api.http_port` is set, on loopback HTTP where everything but `GET /availability` and
`GET /health` needs `Authorization: Bearer <token>` (token file mode 0600 in the data dir).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from appliance.api import admin, alarms, diag, lanes, printing, scan, shift, status, tickets
from appliance.api.limits import BodyLimit, bearer_ok
from appliance.api.peer import PeerCredProtocol
from appliance.api.probes import ServiceProbes
from appliance.api.requests import error_response
from appliance.errors import DeviceError, InputError, LotedgeError
from appliance.host.secrets import read_secret_file
from appliance.lot.commands import ConflictError, NotFoundError
from appliance.lot.runtime import LotRuntime

PUBLIC = {("GET", "/availability"), ("GET", "/health")}


def create_app(lot: LotRuntime, probes: ServiceProbes, *, token: str | None = None) -> Starlette:
    """The API application bound to a running lot."""

    def handler(fn):
        async def wrapped(request: Request) -> JSONResponse:
            if token is not None and (request.method, request.url.path) not in PUBLIC:
                if request.scope.get("client") is not None:  # TCP; the Unix socket has none
                    if not bearer_ok(request.headers.get("authorization"), token):
                        return error_response(401, "missing or wrong API token")
            try:
                result = await fn(request)
            except NotFoundError as err:
                return error_response(404, str(err))
            except ConflictError as err:
                return error_response(409, str(err))
            except (InputError, ValueError, KeyError, TypeError) as err:
                return error_response(400, str(err))
            except DeviceError as err:  # a printer out of paper, a terminal gone: try later
                return error_response(503, str(err))
            except LotedgeError as err:
                return error_response(500, str(err))
            return result if isinstance(result, JSONResponse) else JSONResponse(result)

        return wrapped

    routes = [
        *admin.routes(lot, handler),
        *status.routes(lot, probes, handler),
        *lanes.routes(lot, handler),
        *tickets.routes(lot, handler),
        *alarms.routes(lot, handler),
        *diag.routes(lot, probes, handler),
        *printing.routes(lot, handler),
        *scan.routes(lot, handler),
    ]
    app = Starlette(routes=routes)
    shift.install(app, lot, token=token)
    app.add_middleware(BodyLimit)  # outermost: nothing reads a body over the limit
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


async def serve_api(lot: LotRuntime, probes: ServiceProbes, *, base_dir: Path | None,
                    token: str) -> None:
    """Serve the API until cancelled (`base_dir`: what relative data paths are relative to;
    `token`: what TCP clients must present, from `load_or_create_token` at start-up)."""
    cfg = lot.cfg
    app = create_app(lot, probes, token=token)
    sock_path = cfg.data_path(cfg.api.socket, base_dir)
    if sock_path.exists():
        sock_path.unlink()
    servers = [_Server(uvicorn.Config(app, uds=str(sock_path), log_level="warning",
                                      lifespan="off", http=PeerCredProtocol))]
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

"""Client of the local service API (Unix socket), for the attendant UI and the diag CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from appliance.errors import LotedgeError


class ServiceUnavailable(LotedgeError, ConnectionError):
    """The service is not running (or its socket is not reachable)."""


class ApiError(LotedgeError, RuntimeError):
    """The service refused a request; `status` is the HTTP status."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def _unwrap(response: httpx.Response) -> Any:
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text}
    if response.status_code >= 400:
        raise ApiError(response.status_code, data.get("error", response.text)
                       if isinstance(data, dict) else str(data))
    return data


# Asks the service to act on the caller's OS identity (root or the service user only, checked
# by the kernel's SO_PEERCRED on the socket; the same name as appliance.api.peer.LOCAL_ADMIN).
LOCAL_ADMIN_HEADER = "X-Lotedge-Local-Admin"


def _headers(local_admin: bool) -> dict[str, str]:
    return {LOCAL_ADMIN_HEADER: "1"} if local_admin else {}


class ServiceClient:
    """Async client over the Unix socket (pass `transport=` to use another backend;
    `local_admin=True` acts as root / the service user, as the CLI does, instead of signing in)."""

    def __init__(self, socket_path: Path | str, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = 5.0, local_admin: bool = False):
        self.socket_path = str(socket_path)
        self._client = httpx.AsyncClient(
            transport=transport or httpx.AsyncHTTPTransport(uds=self.socket_path),
            base_url="http://lotedge", timeout=timeout_s, headers=_headers(local_admin))

    def set_session(self, token: str | None) -> None:
        """Send this sign-in session token with every request (None: signed out)."""
        self._client.headers.pop("X-Lotedge-Session", None)
        if token:
            self._client.headers["X-Lotedge-Session"] = token

    async def get(self, path: str, **params: Any) -> Any:
        """GET a resource."""
        try:
            return _unwrap(await self._client.get(path, params=params or None))
        except httpx.TransportError as err:
            raise ServiceUnavailable(f"service not reachable at {self.socket_path}: {err}") from err

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a command."""
        try:
            return _unwrap(await self._client.post(path, json=body or {}))
        except httpx.TransportError as err:
            raise ServiceUnavailable(f"service not reachable at {self.socket_path}: {err}") from err

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class SyncServiceClient:
    """Blocking client over the Unix socket, for CLI commands (`local_admin=True`: act as the
    caller's OS user, accepted for root and the service user only)."""

    def __init__(self, socket_path: Path | str, *, timeout_s: float = 5.0,
                 local_admin: bool = False):
        self.socket_path = str(socket_path)
        self._client = httpx.Client(transport=httpx.HTTPTransport(uds=self.socket_path),
                                    base_url="http://lotedge", timeout=timeout_s,
                                    headers=_headers(local_admin))

    def get(self, path: str, **params: Any) -> Any:
        """GET a resource."""
        try:
            return _unwrap(self._client.get(path, params=params or None))
        except httpx.TransportError as err:
            raise ServiceUnavailable(f"service not reachable at {self.socket_path}: {err}") from err

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a command."""
        try:
            return _unwrap(self._client.post(path, json=body or {}))
        except httpx.TransportError as err:
            raise ServiceUnavailable(f"service not reachable at {self.socket_path}: {err}") from err

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

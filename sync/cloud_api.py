"""The reference cloud's bundle endpoint: a tiny asyncio HTTP/1.1 server (GET only).

Serves `GET /v1/lots/{lot_id}/bundle?since=VERSION` from a directory holding signed bundle
files `{bundle_dir}/{lot_id}/*.json`: 200 with the newest signed bundle if its version is
greater than `since`, 204 if not or if the lot has no bundle yet (a new lot is not an error),
404 for an unknown path, 400 for a bad `since`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

_ROUTE = re.compile(r"^/v1/lots/([A-Za-z0-9_-]{1,64})/bundle$")
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 500: "Internal Server Error"}


def newest_bundle(bundle_dir: Path, lot_id: str) -> tuple[int, bytes] | None:
    """(version, file bytes) of the lot's newest signed bundle, or None."""
    lot_dir = bundle_dir / lot_id
    if not lot_dir.is_dir():
        return None
    best: tuple[int, bytes] | None = None
    for path in lot_dir.glob("*.json"):
        raw = path.read_bytes()
        try:
            version = json.loads(raw)["bundle"]["version"]
        except (ValueError, KeyError, TypeError):
            log.warning("cloud api: skipping unreadable bundle file %s", path)
            continue
        if isinstance(version, int) and (best is None or version > best[0]):
            best = (version, raw)
    return best


class BundleServer:
    """Serves signed bundles from a directory."""

    def __init__(self, bundle_dir: Path, *, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.host = host
        self.port = port
        self.requests = 0
        self._server: asyncio.Server | None = None

    def respond(self, method: str, target: str) -> tuple[int, bytes]:
        """Status and body for one request (the routing, without sockets)."""
        if method != "GET":
            return 405, b""
        parts = urlsplit(target)
        match = _ROUTE.match(parts.path)
        if not match:
            return 404, b""
        since_text = parse_qs(parts.query).get("since", ["0"])[0]
        if not since_text.isdigit():
            return 400, b'{"error": "since must be a non-negative integer"}'
        found = newest_bundle(self.bundle_dir, match.group(1))
        if found is None:
            return 204, b""  # no bundle for this lot yet: nothing new, not an error
        version, raw = found
        return (200, raw) if version > int(since_text) else (204, b"")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 10)
            while True:
                line = await asyncio.wait_for(reader.readline(), 10)
                if line in (b"\r\n", b"\n", b""):
                    break
            pieces = request_line.decode("latin-1").split()
            if len(pieces) != 3:
                status, body = 400, b""
            else:
                try:
                    status, body = self.respond(pieces[0], pieces[1])
                except OSError:
                    log.exception("cloud api: cannot read bundles")
                    status, body = 500, b""
            self.requests += 1
            head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode("latin-1") + (body if status != 204 else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def start(self) -> None:
        """Listen (port 0 picks a free port, stored in `self.port`)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        """Start if needed and serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

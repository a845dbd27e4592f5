"""Who is on the other end of the Unix socket: the kernel's answer (SO_PEERCRED), not a name
the client gives. Root and the service's own user are the machine's administrators; anyone
else who can reach the socket (the `lotedge` group: the booth's kiosk user, technicians'
accounts) must sign in like at the booth."""

from __future__ import annotations

import os
import pwd
import socket
import struct
from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

PEER_KEY = "lotedge.peer"
# The request asks to act on the caller's OS identity (appliance.client sends it for the CLI).
LOCAL_ADMIN = "x-lotedge-local-admin"


def peer_of(sock: Any) -> dict[str, int] | None:
    """pid, uid and gid of a connected Unix socket's peer (None for other sockets)."""
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return {"pid": pid, "uid": uid, "gid": gid}


class PeerCredProtocol(H11Protocol):
    """uvicorn's h11 protocol that puts the Unix-socket peer's credentials into every
    request's scope (`scope["extensions"]["lotedge.peer"]`)."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        """Read the peer once per connection and wrap the app to hand it on."""
        super().connection_made(transport)
        peer = peer_of(transport.get_extra_info("socket"))
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})[PEER_KEY] = peer
            await inner(scope, receive, send)

        self.app = app


def trusted_local_user(scope: Scope) -> str | None:
    """`root` or the service's user, when the request asks to act as the local administrator
    (the CLI's `X-Lotedge-Local-Admin` header) and came over the Unix socket from one of them
    (they own the ledger file anyway); else None. Without the header even root signs in, so
    a booth terminal run as root is still a booth terminal."""
    peer = (scope.get("extensions") or {}).get(PEER_KEY)
    if scope.get("client") is not None or not peer:
        return None
    if not any(name.lower() == LOCAL_ADMIN.encode() for name, _ in scope.get("headers", [])):
        return None
    if peer["uid"] not in (0, os.geteuid()):
        return None
    try:
        return pwd.getpwuid(peer["uid"]).pw_name
    except KeyError:
        return f"uid{peer['uid']}"


def source_of(scope: Scope) -> str:
    """Where a request came from, for counting failed sign-ins: the OS user on the socket
    (`uid:1001`), the address over TCP (`ip:127.0.0.1`)."""
    client = scope.get("client")
    if client:
        return f"ip:{client[0]}"
    peer = (scope.get("extensions") or {}).get(PEER_KEY)
    return f"uid:{peer['uid']}" if peer else "local"

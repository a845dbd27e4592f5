"""Before the service listens: is its API socket or HTTP port already taken by another process?"""

from __future__ import annotations

import socket
from pathlib import Path

from appliance.errors import ListenError


def check_listen_free(sock_path: Path, *, http_host: str, http_port: int) -> None:
    """Raise ListenError (one line naming the key) if another process answers on the API socket
    or holds the HTTP port; a stale socket file nobody answers on is left to be replaced."""
    if sock_path.exists():
        probe = socket.socket(socket.AF_UNIX)
        probe.settimeout(1.0)
        try:
            probe.connect(str(sock_path))
        except OSError:
            pass  # nobody listening: a stale socket from a crash, the server replaces it
        else:
            raise ListenError(f"api.socket: {sock_path} is in use (is another lotedge running?)")
        finally:
            probe.close()
    if http_port:
        probe = socket.socket(socket.AF_INET6 if ":" in http_host else socket.AF_INET)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((http_host, http_port))
        except OSError as err:
            raise ListenError(f"api.http_port: {http_host}:{http_port} is in use: "
                              f"{err.strerror or err}") from err
        finally:
            probe.close()

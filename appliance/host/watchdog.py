"""systemd readiness and watchdog (the sd_notify protocol, spoken directly).

The protocol is one datagram of `KEY=VALUE` lines to the AF_UNIX socket named in
`$NOTIFY_SOCKET` (a leading `@` means the abstract namespace). The watchdog pings come from a
task on the service's event loop, so a blocked loop stops them and systemd restarts the service
after `WatchdogSec=`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd (no NOTIFY_SOCKET).

    Args:
        environ: where NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID are read (default os.environ).
    """

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address
        self.sent = 0
        watchdog_usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_s: float | None = None
        if watchdog_usec and (not pid or pid == str(os.getpid())):
            with contextlib.suppress(ValueError):
                usec = int(watchdog_usec)
                if usec > 0:
                    self.watchdog_s = usec / 1_000_000

    @property
    def enabled(self) -> bool:
        """True when systemd is listening."""
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one message (e.g. "READY=1", "STATUS=..."); False if not sent."""
        if self.address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)  # never block the event loop on a full queue
                sock.sendto(message, self.address)
        except (FileNotFoundError, ConnectionRefusedError) as err:
            # Nobody listens any more (`lotedge release start` listens only until READY=1;
            # systemd never goes away): stop instead of warning every 30 s for ever.
            log.warning("sd_notify to %s failed: %s; no more notifications",
                        self.address.lstrip("\0"), err)
            self.address = None
            return False
        except OSError as err:
            log.warning("sd_notify to %s failed: %s", self.address.lstrip("\0"), err)
            return False
        self.sent += 1
        return True

    async def run(self, *, ready: Callable[[], bool] = lambda: True,
                  healthy: Callable[[], bool] = lambda: True, status: Callable[[], str] | None = None,
                  ready_timeout_s: float = 60.0) -> None:
        """Send READY=1 once `ready()` holds, then WATCHDOG=1 every half period while
        `healthy()`; STOPPING=1 when cancelled."""
        if not self.enabled:
            return
        try:
            waited = 0.0
            while not ready() and waited < ready_timeout_s:
                await asyncio.sleep(0.05)
                waited += 0.05
            self.notify("READY=1", f"MAINPID={os.getpid()}",
                        f"STATUS={status() if status else 'running'}")
            interval_s = self.watchdog_s / 2 if self.watchdog_s else None
            while True:
                await asyncio.sleep(interval_s or 30.0)
                if interval_s is None:
                    if status:
                        self.notify(f"STATUS={status()}")
                    continue
                if healthy():
                    lines = ["WATCHDOG=1"] + ([f"STATUS={status()}"] if status else [])
                    self.notify(*lines)
                else:
                    log.error("watchdog: service unhealthy, withholding the ping")
        finally:
            self.notify("STOPPING=1")

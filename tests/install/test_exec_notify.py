"""A service started by `lotedge release start` (the unit's command, no systemd) outlives the
launcher's notify socket: its notifier stops after one warning instead of one every 30 s."""

from __future__ import annotations

import logging
import socket
import tempfile
from pathlib import Path

from appliance.host.watchdog import Notifier


def test_notifications_stop_once_nobody_listens(caplog):
    path = Path(tempfile.mkdtemp(prefix="sdn")) / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.notify("READY=1") and sock.recv(100) == b"READY=1"
    path.unlink()  # the launcher got READY=1 and left
    with caplog.at_level(logging.WARNING, logger="appliance.host.watchdog"):
        assert notifier.notify("STATUS=running") is False
        assert notifier.notify("STATUS=running") is False
        assert notifier.notify("STOPPING=1") is False
    assert len(caplog.records) == 1 and "no more notifications" in caplog.text
    assert notifier.enabled is False

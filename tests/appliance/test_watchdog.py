"""sd_notify over a real AF_UNIX datagram socket: READY, watchdog pings while the loop runs,
no pings while it is blocked, STOPPING on shutdown."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from appliance.host.watchdog import Notifier
from appliance.service import systemd_notifier


class NotifySocket:
    """A bound datagram socket standing in for systemd's notify socket; records arrivals."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sdn")
        self.path = str(Path(self.dir) / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def pings(self) -> list[float]:
        return [t for t, m in self.messages if "WATCHDOG=1" in m.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify_socket():
    ns = NotifySocket()
    yield ns
    ns.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled and notifier.notify("READY=1") is False
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000",
                     "WATCHDOG_PID": "1"}).watchdog_s is None  # meant for another process


async def test_pings_while_healthy_and_stop_while_the_loop_is_blocked(notify_socket):
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "200000"})
    assert notifier.watchdog_s == 0.2
    task = asyncio.create_task(notifier.run(status=lambda: "ok"))
    await asyncio.sleep(0.55)
    healthy_pings = len(notify_socket.pings())
    assert healthy_pings >= 3  # every 0.1 s

    blocked_from = time.monotonic()
    time.sleep(0.6)  # a hung event loop: no task can run
    blocked_to = time.monotonic()
    await asyncio.sleep(0.35)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    pings = notify_socket.pings()
    during = [t for t in pings if blocked_from + 0.05 < t < blocked_to]
    assert during == []
    assert any(t > blocked_to for t in pings)  # resumed once the loop ran again
    texts = [m for _, m in notify_socket.messages]
    assert texts[0].splitlines()[0] == "READY=1" and "STATUS=ok" in texts[0]
    assert texts[-1] == "STOPPING=1"


def test_a_full_notify_queue_never_blocks_the_caller():
    path = str(Path(tempfile.mkdtemp(prefix="sdn")) / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)  # bound, never read: the queue fills up
        notifier = Notifier({"NOTIFY_SOCKET": path})
        results = [notifier.notify("WATCHDOG=1") for _ in range(5000)]
    assert results[0] is True and results[-1] is False  # dropped, not blocked


async def test_abstract_namespace_address():
    name = f"lotedge-test-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert sock.recv(100) == b"READY=1"


async def test_service_sends_ready_after_its_api_socket_is_up(running_lot, notify_socket):
    env = {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "100000"}
    task = asyncio.create_task(systemd_notifier(running_lot.service, environ=env))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    first = notify_socket.messages[0][1]
    assert "READY=1" in first and "STATUS=lot test-lot: 4 lanes, free 120/120" in first
    assert len(notify_socket.pings()) >= 2
    assert notify_socket.messages[-1][1] == "STOPPING=1"


def test_lotedge_run_notifies_systemd(notify_socket, counter_lot, tmp_path):
    import os
    import subprocess
    import sys

    lotedge = str(Path(sys.executable).with_name("lotedge"))
    env = {**os.environ, "NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000"}
    proc = subprocess.run([lotedge, "run", "--config", counter_lot.source_path, "--simulate",
                           "--duration", "2.5", "--no-display"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    time.sleep(0.1)
    texts = [m for _, m in notify_socket.messages]
    assert texts[0].startswith("READY=1\nMAINPID=") and "STATUS=lot test-lot: 4 lanes" in texts[0]
    assert len(notify_socket.pings()) >= 3  # every 0.2 s once ready
    assert texts[-1] == "STOPPING=1"

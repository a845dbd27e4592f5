"""A serial port owned by one worker thread: opened on demand, reopened with backoff when lost.

pyserial is blocking, so each port is read in its own thread and results are handed to the
asyncio loop with `call_soon_threadsafe`; the event loop never waits on a port.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import serial

try:
    from termios import error as _TermiosError
except ImportError:  # not a POSIX system
    _TermiosError = OSError

from appliance.errors import DeviceError
from drivers.health import DeviceHealth

log = logging.getLogger(__name__)

# What a vanished or broken port raises: pyserial's own error, the OS's, and termios' (which is
# not an OSError: tcflush on an unplugged tty raises termios.error).
PORT_ERRORS = (serial.SerialException, OSError, _TermiosError)


class Backoff:
    """Exponential delays for reopening: `initial_s`, doubling up to `max_s`; reset on success."""

    def __init__(self, *, initial_s: float = 0.05, max_s: float = 5.0, factor: float = 2.0):
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self._next = initial_s

    def next_delay(self) -> float:
        """The delay before the next attempt (grows each call)."""
        delay = self._next
        self._next = min(self.max_s, self._next * self.factor)
        return delay

    def reset(self) -> None:
        """The last attempt succeeded."""
        self._next = self.initial_s


class SerialLink:
    """One serial port (`/dev/ttyUSB0`, a pty path, or a pyserial URL such as `loop://`).

    Library errors are translated to DeviceError (code `port_lost` / `port_open`) and counted in
    the device's health; a lost port is closed and reopened by the next `ensure_open`.

    Args:
        name: device name for health and errors.
        url: what pyserial opens.
        baud: line speed.
        timeout_s: read timeout of the port.
        health: where counters and faults go.
        backoff: reopen delays.
        opener: how to open a port (default `serial.serial_for_url`).
    """

    def __init__(self, name: str, url: str, *, baud: int = 9600, timeout_s: float = 0.1,
                 health: DeviceHealth | None = None, backoff: Backoff | None = None,
                 opener: Callable[..., Any] = serial.serial_for_url) -> None:
        self.name = name
        self.url = url
        self.baud = baud
        self.timeout_s = timeout_s
        self.health = health
        self.backoff = backoff or Backoff()
        self._opener = opener
        self.port: Any = None
        self.opens = 0
        self.reopens = 0
        self.open_failures = 0
        self.lost = 0

    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        return self.port is not None

    def _count(self, counter: str) -> None:
        if self.health is not None:
            self.health.count(counter)

    def try_open(self) -> bool:
        """One attempt to open the port; False (counted) if it is not there."""
        if self.port is not None:
            return True
        try:
            # exclusive: a second program (or a second lotedge) gets "busy", not half the bytes
            self.port = self._opener(self.url, baudrate=self.baud, timeout=self.timeout_s,
                                     write_timeout=1.0, exclusive=True)
        except (*PORT_ERRORS, ValueError) as err:
            self.open_failures += 1
            self._count("open_failures")
            if self.health is not None:
                self.health.fault("port_open", f"cannot open {self.url}: {err}")
            return False
        self.opens += 1
        if self.opens > 1:
            self.reopens += 1
            self._count("reopens")
        self.backoff.reset()
        if self.health is not None:
            self.health.info["port"] = self.url
            self.health.clear("port_open", "port opened")
            self.health.clear("port_lost", "port reopened")
        return True

    def ensure_open(self, stop: threading.Event) -> bool:
        """Open the port, retrying with backoff until it opens (True) or `stop` is set (False)."""
        while not stop.is_set():
            if self.try_open():
                return True
            stop.wait(self.backoff.next_delay())
        return False

    def _lost_port(self, err: Exception) -> DeviceError:
        self.lost += 1
        self._count("port_lost")
        if self.health is not None:
            self.health.fault("port_lost", str(err))
        self.close()
        return DeviceError(f"serial port lost: {err}", code="port_lost", device=self.name)

    def read_available(self) -> bytes:
        """Wait up to `timeout_s` for a byte, then return it and whatever else is waiting."""
        if self.port is None:
            raise DeviceError("port is not open", code="port_lost", device=self.name)
        try:
            data = self.port.read(1)
            if data:
                waiting = self.port.in_waiting
                if waiting:
                    data += self.port.read(waiting)
            return data
        except PORT_ERRORS as err:
            raise self._lost_port(err) from err

    def read_line(self, terminator: bytes = b"\n", max_bytes: int = 64) -> bytes:
        """Read until `terminator`, `max_bytes` or the timeout, whichever comes first."""
        if self.port is None:
            raise DeviceError("port is not open", code="port_lost", device=self.name)
        try:
            return self.port.read_until(terminator, max_bytes)
        except PORT_ERRORS as err:
            raise self._lost_port(err) from err

    def write(self, data: bytes) -> None:
        """Write and flush `data`."""
        if self.port is None:
            raise DeviceError("port is not open", code="port_lost", device=self.name)
        try:
            self.port.write(data)
            self.port.flush()
        except PORT_ERRORS as err:
            raise self._lost_port(err) from err

    def discard_input(self) -> None:
        """Drop stale input (before a bus request)."""
        if self.port is not None:
            try:
                self.port.reset_input_buffer()
            except PORT_ERRORS as err:
                raise self._lost_port(err) from err

    def close(self) -> None:
        """Close the port (a later `ensure_open` reopens it)."""
        port, self.port = self.port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a vanished device may fail in many ways; it is gone
                log.debug("closing %s failed", self.url, exc_info=True)


class PortWorker:
    """Base of the per-port reader threads: `start()`, `stop()`; subclasses implement `_work`.

    `on_thread_start`, if set before `start()`, is called first in the worker thread (the
    service moves it into its pollers' CPU group there, see `appliance.host.cpu_quota`).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.crashes = 0
        self.on_thread_start: Callable[[], None] | None = None

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._guarded, name=f"port:{self.name}",
                                        daemon=True)
        self._thread.start()

    def _guarded(self) -> None:
        if self.on_thread_start is not None:
            self.on_thread_start()
        while not self._stop.is_set():
            try:
                self._work(self._stop)
            except Exception:  # a bug in one reader must not kill the port; log, pause, go on
                self.crashes += 1
                log.exception("port worker %s failed; restarting", self.name)
                self._stop.wait(1.0)

    def _work(self, stop: threading.Event) -> None:
        raise NotImplementedError

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the worker and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

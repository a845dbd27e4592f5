"""Simulated serial devices on pty pairs, speaking the real protocols.

The driver opens the pty's slave through a stable symlink (as udev's /dev/serial/by-id would be),
so the same pyserial code runs in tests, in `lotedge run --simulate` and on a Pi. `unplug()`
closes the pty and removes the link (the driver sees the port vanish); `plug()` brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import select
import threading
import tty
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from appliance.core.register_maps import RegisterMap
from drivers.maxbotix import FORMATS, encode_range


class PtyDevice:
    """A pty pair with a symlink to its slave; the simulator owns the master end."""

    def __init__(self, link_path: str | Path) -> None:
        self.link_path = Path(link_path)
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self.plugs = 0
        self.plug()

    @property
    def path(self) -> str:
        """What a driver opens."""
        return str(self.link_path)

    @property
    def plugged(self) -> bool:
        """True while the device is present."""
        return self._master is not None

    def plug(self) -> None:
        """Create the pty and point the link at it."""
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(slave)
            tmp = self.link_path.with_name(self.link_path.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.link_path)
            self._master, self._slave = master, slave
            self.plugs += 1

    def unplug(self) -> None:
        """Remove the device: the link disappears and the open port fails."""
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None

    def write(self, data: bytes) -> bool:
        """Send bytes to the driver; False if unplugged."""
        master = self._master
        if master is None:
            return False
        try:
            os.write(master, data)
            return True
        except OSError:
            return False

    def read(self, timeout_s: float) -> bytes:
        """Bytes the driver wrote (empty after `timeout_s`, or when unplugged)."""
        # Holding the lock while selecting makes unplug() wait for us: a file that another
        # thread is selecting on stays open in the kernel, and the driver would not see it go.
        with self._lock:
            master = self._master
            if master is not None:
                try:
                    ready, _, _ = select.select([master], [], [], timeout_s)
                    return os.read(master, 4096) if ready else b""
                except (OSError, ValueError):
                    return b""
        threading.Event().wait(timeout_s)
        return b""

    def close(self) -> None:
        """Unplug for good."""
        self.unplug()


class _SimThread:
    def __init__(self, device: PtyDevice, name: str) -> None:
        self.device = device
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim:{name}", daemon=True)

    def start(self) -> _SimThread:
        """Start simulating."""
        self._thread.start()
        return self

    def _run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the simulator thread and remove the device."""
        self._stop.set()
        self._thread.join(2.0)
        self.device.close()

    @property
    def path(self) -> str:
        """The port path a driver opens."""
        return self.device.path


class SimulatedMaxBotix(_SimThread):
    """A MaxBotix sensor free-running at `interval_s` in its family's format, with line noise.

    Set `distance_cm` to move the target; a target beyond the family's range makes it report its
    maximum (no target), as the real sensors do; None makes the sensor silent.
    """

    def __init__(self, link_path: str | Path, *, distance_cm: int | None = 400,
                 interval_s: float = 0.1, noise_rate: float = 0.0, seed: int | None = None,
                 fmt: str = "R3-cm"):
        super().__init__(PtyDevice(link_path), Path(link_path).name)
        self.distance_cm = distance_cm
        self.interval_s = interval_s
        self.noise_rate = noise_rate
        self.format = FORMATS[fmt]
        self._rng = random.Random(seed)
        self.sent = 0

    def frame(self, distance_cm: int) -> bytes:
        """What the sensor sends for a target at `distance_cm`."""
        f = self.format
        top = round(f.max_cm * 10 / f.mm_per_count)
        count = min(max(round(distance_cm * 10 / f.mm_per_count), 0), top)
        return encode_range(count, f.digits)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self._rng.random() < self.noise_rate:
                self.device.write(self._rng.randbytes(self._rng.randrange(1, 8)))
            d = self.distance_cm
            if d is not None and self.device.write(self.frame(d)):
                self.sent += 1


class SimulatedSign(_SimThread):
    """An LED availability sign: records every line it receives and what it shows per field."""

    def __init__(self, link_path: str | Path) -> None:
        super().__init__(PtyDevice(link_path), Path(link_path).name)
        self.lines: list[str] = []
        self.shown: dict[str, str] = {}
        self._partial = b""
        self.lock = threading.Lock()

    def _run(self) -> None:
        while not self._stop.is_set():
            data = self.device.read(0.05)
            if not data:
                continue
            buf = self._partial + data
            *lines, self._partial = buf.split(b"\r\n")
            with self.lock:
                for raw in lines:
                    text = raw.decode("ascii", "replace")
                    self.lines.append(text)
                    field, _, value = text.partition(":")
                    if value:
                        self.shown[field] = value


class SimulatedModbusBus:
    """Modbus RTU spot sensors served by pymodbus's own server, not by code of ours.

    The server speaks RTU framing over a loopback TCP socket (a serial-over-TCP bridge); the
    driver opens it as the pyserial URL `socket://127.0.0.1:PORT`, so the same pymodbus client
    code runs here and on a real RS-485 adapter. Each address holds `register_map`'s registers
    (both as holding and input registers).

    `distances[address]`: the range the sensor measures (None: no target); `silent`: addresses
    that do not answer at all; `exceptions[address]`: answer with that Modbus exception code;
    `raw[address]`: registers served as given; `corrupt_rate`: share of answers with one bit
    flipped (a bad CRC on the wire).

    With `baud` given, each answer comes when it would on an RS-485 line at that speed: the
    request and the answer at `char_bits` per byte (start, 8 data, parity, stop), the 3.5
    character silence after each, and `turnaround_ms` in the sensor. The loopback socket
    itself takes no time, so an unpaced bus answers a poll in a fraction of a millisecond: far
    more polls per second than a real line carries (19200 baud 8N1: about 13.5 ms a poll).
    """

    def __init__(self, register_map: RegisterMap, addresses: Iterable[int], *,
                 distance_cm: int | None = 400, seed: int | None = None, port: int = 0,
                 baud: int | None = None, char_bits: int = 10,
                 turnaround_ms: float = 2.0) -> None:
        self.map = register_map
        self.char_s = char_bits / baud if baud else 0.0
        self.turnaround_s = turnaround_ms / 1000 if baud else 0.0
        self.distances: dict[int, int | None] = dict.fromkeys(addresses, distance_cm)
        self.silent: set[int] = set()
        self.exceptions: dict[int, int] = {}
        self.raw: dict[int, list[int]] = {}  # registers served as they are (published examples)
        self.corrupt_rate = 0.0
        self._rng = random.Random(seed)
        self.requests = 0
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, name="sim:modbus", daemon=True)

    @property
    def path(self) -> str:
        """The URL the driver opens."""
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> SimulatedModbusBus:
        """Start the server (returns once it listens)."""
        self._thread.start()
        self.plug()
        return self

    def _device(self, address: int) -> SimDevice:
        m = self.map
        block = [SimData(m.register, count=m.count, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        return SimDevice(id=address, simdata=(bits, bits, block, list(block)),
                         action=functools.partial(self._action, address))

    async def _action(self, address: int, function_code: int, start_address: int,
                      req_address: int, count: int, current_registers: list[int],
                      set_values: Any) -> ExcCodes | None:
        self.requests += 1
        if self.char_s:
            answer_bytes = 5 if address in self.exceptions else 5 + 2 * count
            await asyncio.sleep((8 + answer_bytes + 2 * 3.5) * self.char_s + self.turnaround_s)
        if address in self.exceptions:
            return ExcCodes(self.exceptions[address])
        words = self.raw.get(address) or self.map.encode(self.distances.get(address))
        offset = self.map.register - start_address
        current_registers[offset:offset + len(words)] = words
        return None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        if data[0] in self.silent or data[0] not in self.distances:
            return b""
        if self.corrupt_rate and self._rng.random() < self.corrupt_rate:
            raw = bytearray(data)
            raw[self._rng.randrange(1, len(raw))] ^= 0x01
            return bytes(raw)
        return data

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _on_loop(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5.0)

    async def _listen(self) -> None:
        self._server = ModbusTcpServer(
            [self._device(a) for a in sorted(self.distances)], framer=FramerType.RTU,
            address=("127.0.0.1", self.port), ignore_missing_devices=True,
            trace_packet=self._trace)
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
            for conn in list(getattr(server, "active_connections", {}).values()):
                conn.close()

    @property
    def device(self) -> SimulatedModbusBus:
        """The adapter to `plug()`/`unplug()`, as `PtyDevice` is for the pty simulators."""
        return self

    @property
    def plugged(self) -> bool:
        """True while the server listens."""
        return self._server is not None

    def plug(self) -> None:
        """The adapter is back: listen again on the same port."""
        if self._server is None:
            self._on_loop(self._listen())

    def unplug(self) -> None:
        """The adapter is gone: the listener and every open connection close."""
        self._on_loop(self._close())

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop.is_running():
            self.unplug()
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)

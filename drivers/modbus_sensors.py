"""RS-485 spot sensors on Modbus RTU, polled through pymodbus (a maintained Modbus stack).

pymodbus does the protocol: request and answer frames, CRC-16 (low byte first), the 3.5
character inter-frame silence, exception responses, the answer timeout and retries. This module
decides what to poll (one register map per bus, `appliance.core.register_maps`), turns answers
into readings, and keeps per-address health: counters, a `silent` fault within
`silent_fault_after_s`, a `bad_readings` fault when too many answers are exceptions, corrupt
or out of range, and a `no_target` fault when a sensor sees nothing for too long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException

from appliance.core.register_maps import RegisterMap
from appliance.errors import DeviceError
from drivers.health import HealthRegistry, SensorHealth
from drivers.serial_link import Backoff, PortWorker

log = logging.getLogger(__name__)
# pymodbus logs every unanswered poll at ERROR with a dump of the last frames; a silent sensor
# would flood the journal twice a second. Each outcome is counted and faulted per address here.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "device failure", 5: "acknowledge", 6: "device busy",
                   10: "gateway path unavailable", 11: "gateway target failed to respond"}


MAX_RTU_FRAME = 256  # bytes (Modbus over serial line, section 2.5.1)


class BlockingSerialClient(ModbusSerialClient):
    """pymodbus's serial client, waiting for an answer in the kernel instead of polling for it.

    The stock client sleeps in steps of four character times (2 ms at 19200 baud) and asks the
    port how many bytes are waiting after each step; over a pyserial socket:// bridge, which only
    tells whether any byte is waiting, it also reads the answer one byte per step. That costs a
    few percent of a core per bus, taken from the lane on a small board. Here a read blocks in
    pyserial (select on the port, up to the answer timeout) until the first byte comes, then takes
    whatever else is already waiting; pymodbus's framer asks again until the frame is whole or
    its deadline passes, as it does with the stock client.

    A serial-over-TCP gateway (`socket://`, an RS-485-to-Ethernet converter) cannot say how many
    bytes wait, only whether any do (pyserial's `in_waiting` is 0 or 1 there), so asking it
    would take the answer two bytes a read: there the rest is read without waiting, whatever
    its length (a 7-byte answer: 2 reads of the port instead of 4, 5 selects a poll instead of 18).
    """

    def recv(self, size: int | None) -> bytes:
        if not self.socket:
            raise ConnectionException(str(self))
        try:
            data = self.socket.read(1 if size is None else size)
            if data and size is None:
                data += self._waiting()
            return data
        except (BlockingIOError, InterruptedError):
            raise
        except OSError:
            self.close()
            raise ConnectionException(str(self)) from None

    def _waiting(self) -> bytes:
        """The bytes that have come in and not been read yet, without waiting for more."""
        if not str(self.comm_params.host).startswith("socket://"):
            more = self._in_waiting()  # a serial port counts them
            return self.socket.read(more) if more else b""
        timeout, self.socket.timeout = self.socket.timeout, 0  # the gateway only says "some"
        try:
            return self.socket.read(MAX_RTU_FRAME)
        finally:
            self.socket.timeout = timeout


class ModbusSensorBus(PortWorker):
    """Polls the distance register of every sensor on one RS-485 bus, one address at a time.

    Args:
        bus_id: the bus id in config; readings are sensor 'BUS_ID:ADDRESS'.
        url: the serial port (a device path or a pyserial URL such as socket://host:port).
        addresses: Modbus device addresses to poll (1-247).
        register_map: where the sensor model keeps its distance.
        deliver: called (in the poller thread) with (sensor, distance_cm or None, at_s).
        health: registry (the bus and each address are devices).
        baud, parity, stop_bits: the line (8 data bits).
        timeout_ms: how long one answer is waited for; `retries` more tries after a timeout.
        poll_interval_ms: one round of the bus at most this often.
        silent_fault_after_s, no_target_fault_after_s, bad_rate_fault: see `SensorHealth`.
        client_factory: builds the pymodbus client (tests may wrap it).
    """

    def __init__(self, bus_id: str, url: str, addresses: Iterable[int], *,
                 register_map: RegisterMap, deliver: Callable[[str, int | None, float], None],
                 health: HealthRegistry, baud: int = 19200, parity: str = "N",
                 stop_bits: int = 1, timeout_ms: int = 100, retries: int = 1,
                 poll_interval_ms: int = 500, silent_fault_after_s: float = 3.0,
                 no_target_fault_after_s: float = 60.0, bad_rate_fault: float = 0.2,
                 backoff: Backoff | None = None,
                 client_factory: Callable[..., Any] = BlockingSerialClient) -> None:
        super().__init__(bus_id)
        self.bus_id = bus_id
        self.url = url
        self.addresses = sorted(set(addresses))
        self.map = register_map
        self._deliver = deliver
        self.health = health.device(bus_id, "sensor_bus")
        self.health.info.update(port=url, model=register_map.id, line=f"{baud} 8{parity}{stop_bits}")
        now = time.monotonic()
        self.sensors = {a: SensorHealth(health.device(f"{bus_id}:{a}", "spot_sensor"),
                                        silent_fault_after_s=silent_fault_after_s,
                                        no_target_fault_after_s=no_target_fault_after_s,
                                        bad_rate_fault=bad_rate_fault, now_s=now)
                        for a in self.addresses}
        self.poll_interval_s = poll_interval_ms / 1000
        self.backoff = backoff or Backoff(initial_s=0.2, max_s=5.0)
        self._rx_bytes = 0
        self.last_frames: deque[tuple[str, bytes]] = deque(maxlen=32)  # for diag serial
        self._client = client_factory(url, baudrate=baud, parity=parity, stopbits=stop_bits,
                                      bytesize=8, timeout=timeout_ms / 1000, retries=retries,
                                      reconnect_delay=0, trace_packet=self._trace)
        self.rounds = 0

    def _trace(self, sending: bool, data: bytes) -> bytes:
        # bytes that came back: a poll that got bytes but no valid answer had a corrupt frame
        # (pymodbus drops a frame whose CRC does not match and retries)
        if not sending:
            self._rx_bytes += len(data)
        self.last_frames.append(("tx" if sending else "rx", bytes(data)))
        return data

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self._connect(stop):
                break
            started = time.monotonic()
            try:
                for address in self.addresses:
                    if stop.is_set():
                        break
                    self.poll(address)
            except DeviceError:
                continue
            self.rounds += 1
            self.health.seen("ok")
            stop.wait(max(0.0, self.poll_interval_s - (time.monotonic() - started)))
        self._client.close()

    def _connect(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self._client.connected or self._client.connect():
                self.backoff.reset()
                self.health.clear("port_open", "port opened")
                self.health.clear("port_lost", "port reopened")
                return True
            self.health.count("open_failures")
            self.health.fault("port_open", f"cannot open {self.url}")
            now = time.monotonic()
            for sensor in self.sensors.values():
                sensor.check(now)
            stop.wait(self.backoff.next_delay())
        return False

    def poll(self, address: int) -> int | None:
        """Read one sensor; deliver and return its distance (None: no answer or no target)."""
        sensor = self.sensors[address]
        rx_before = self._rx_bytes
        read = (self._client.read_holding_registers if self.map.function == 3
                else self._client.read_input_registers)
        distance: int | None = None
        try:
            answer = read(self.map.register, count=self.map.count, device_id=address)
        except ConnectionException as err:
            self._client.close()
            self.health.count("port_lost")
            self.health.fault("port_lost", str(err))
            raise DeviceError(f"serial port lost: {err}", code="port_lost",
                              device=self.bus_id) from err
        except ModbusException:  # no (valid) answer within timeout and retries
            outcome = "bad_frame" if self._rx_bytes > rx_before else "timeout"
        else:
            if answer.isError():
                outcome = "exception"
                code = getattr(answer, "exception_code", 0)
                sensor.device.info["last_exception"] = (
                    f"{code} {EXCEPTION_NAMES.get(code, 'unknown')}")
            else:
                distance, outcome = self.map.decode(list(answer.registers))
        now = time.monotonic()
        sensor.record(outcome, now)
        self._deliver(f"{self.bus_id}:{address}", distance, now)
        return distance

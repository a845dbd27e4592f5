"""Ticket scanners at exits and the booth: what a QR code or barcode on a ticket says.

Three kinds, one interface (`read(lane)` is the text scanned at that lane in the last
`hold_s` seconds, else None):

* `SerialScanner`: a serial (or USB-CDC) scanner sending each code as a line ended by CR or
  LF, through pyserial (`opener` takes a pyserial URL, so tests use `loop://`).
* `HidScanner`: a USB scanner that types like a keyboard, read from its evdev device (the
  optional `evdev` package, imported only when one is configured); `HidDecoder` turns key
  events into text with a US layout and is tested on recorded event tuples.
* `CameraQrScanner`: no scanner fitted, the lane camera's frame is searched for a QR code
  with OpenCV's `QRCodeDetector`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from appliance.errors import DeviceError

log = logging.getLogger(__name__)


class ScannerFault(DeviceError):
    """The scanner's port or device cannot be opened or read."""

    def __init__(self, device: str, detail: str):
        super().__init__(detail, code="scanner_fault", device=device)


class _Latest:
    """The last code seen, with when (monotonic), for a short hold window."""

    def __init__(self, hold_s: float, clock: Callable[[], float]) -> None:
        self.hold_s = hold_s
        self._clock = clock
        self._code: str | None = None
        self._at = 0.0
        self._lock = threading.Lock()
        self.count = 0

    def put(self, code: str) -> None:
        with self._lock:
            self._code, self._at = code, self._clock()
            self.count += 1

    def get(self) -> str | None:
        with self._lock:
            if self._code is not None and self._clock() - self._at <= self.hold_s:
                return self._code
            return None

    def clear(self) -> None:
        with self._lock:
            self._code = None


class SerialScanner:
    """A line-terminated serial scanner read by a thread.

    Args:
        lane: the lane it serves.
        port: device path or pyserial URL.
        baud: line speed (scanners ship at 9600).
        hold_s: how long a scan counts as 'at the scanner'.
        opener: pyserial's `serial_for_url` (tests may pass their own).
        on_scan: called with (lane, text) from the reader thread.
    """

    def __init__(self, lane: str, port: str, *, baud: int = 9600, hold_s: float = 30.0,
                 opener: Callable[..., Any] | None = None,
                 on_scan: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import serial

        self.lane = lane
        self.port = port
        self._latest = _Latest(hold_s, clock)
        self._on_scan = on_scan
        try:
            self._serial = (opener or serial.serial_for_url)(port, baudrate=baud, timeout=0.2)
        except (serial.SerialException, OSError, ValueError) as err:
            raise ScannerFault(lane, f"cannot open {port}: {err}") from err
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"scanner:{lane}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import serial

        buf = b""
        while not self._stop.is_set():
            try:
                chunk = self._serial.read(256)
            except (serial.SerialException, OSError) as err:
                log.warning("scanner %s: %s", self.lane, err)
                self._stop.wait(1.0)
                continue
            if not chunk:
                continue
            buf += chunk
            while True:
                cut = min((i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0), default=-1)
                if cut < 0:
                    break
                line, buf = buf[:cut], buf[cut + 1:]
                text = line.decode("latin-1").strip()
                if text:
                    self._latest.put(text)
                    if self._on_scan is not None:
                        self._on_scan(self.lane, text)
            buf = buf[-4096:]

    def read(self, lane: str) -> str | None:
        """The code scanned here lately."""
        return self._latest.get() if lane == self.lane else None

    def leave(self, lane: str) -> None:
        """Forget the scan once the car has gone."""
        if lane == self.lane:
            self._latest.clear()

    def close(self) -> None:
        """Stop the reader and release the port."""
        self._stop.set()
        self._thread.join(timeout=2)
        self._serial.close()


# --- USB HID (keyboard wedge) ----------------------------------------------------------------
EV_KEY = 1
KEY_ENTER, KEY_KPENTER, KEY_LEFTSHIFT, KEY_RIGHTSHIFT = 28, 96, 42, 54
_ROWS = {2: "1234567890-=", 16: "qwertyuiop[]", 30: "asdfghjkl;'`", 44: "zxcvbnm,./"}
_SHIFTED = dict(zip("1234567890-=[];'`,./\\", "!@#$%^&*()_+{}:\"~<>?|", strict=True))
KEYMAP: dict[int, str] = {code + i: ch for code, row in _ROWS.items() for i, ch in enumerate(row)}
KEYMAP[43] = "\\"
KEYMAP[57] = " "


class HidDecoder:
    """Key events (type, code, value) of a keyboard-wedge scanner to text, US layout; a code
    is complete at Enter."""

    def __init__(self) -> None:
        self._shift = False
        self._chars: list[str] = []

    def feed(self, ev_type: int, code: int, value: int) -> str | None:
        """One input event; returns the scanned text when Enter ends it."""
        if ev_type != EV_KEY:
            return None
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            self._shift = value != 0
            return None
        if value != 1:  # key down only (no release, no autorepeat)
            return None
        if code in (KEY_ENTER, KEY_KPENTER):
            text, self._chars = "".join(self._chars), []
            return text or None
        ch = KEYMAP.get(code)
        if ch is None:
            return None
        if self._shift:
            ch = ch.upper() if ch.isalpha() else _SHIFTED.get(ch, ch)
        self._chars.append(ch)
        return None


class HidScanner:
    """A keyboard-wedge USB scanner read from its evdev device (grabbed, so its keystrokes do
    not reach the console)."""

    def __init__(self, lane: str, device: str, *, hold_s: float = 30.0,
                 on_scan: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        try:
            import evdev
        except ImportError as err:
            raise ScannerFault(lane, "USB-HID scanners need the 'evdev' package "
                               "(pip install 'lotedge[hid]')") from err
        self.lane = lane
        self._latest = _Latest(hold_s, clock)
        self._on_scan = on_scan
        try:
            self._dev = evdev.InputDevice(device)
            self._dev.grab()
        except OSError as err:
            raise ScannerFault(lane, f"cannot open {device}: {err}") from err
        self._decoder = HidDecoder()
        self._thread = threading.Thread(target=self._run, name=f"hid:{lane}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._dev.read_loop():
                text = self._decoder.feed(event.type, event.code, event.value)
                if text:
                    self._latest.put(text)
                    if self._on_scan is not None:
                        self._on_scan(self.lane, text)
        except OSError as err:  # unplugged
            log.warning("scanner %s: %s", self.lane, err)

    def read(self, lane: str) -> str | None:
        """The code scanned here lately."""
        return self._latest.get() if lane == self.lane else None

    def leave(self, lane: str) -> None:
        """Forget the scan once the car has gone."""
        if lane == self.lane:
            self._latest.clear()

    def close(self) -> None:
        """Release the device."""
        try:
            self._dev.ungrab()
            self._dev.close()
        except OSError:
            pass


# --- camera ----------------------------------------------------------------------------------
def decode_qr(frame) -> str | None:
    """The text of a QR code in a BGR or grey image, or None."""
    import cv2

    detector = cv2.QRCodeDetector()
    text, points, _ = detector.detectAndDecode(frame)
    if text:
        return text
    if frame.ndim == 3:  # a photographed ticket: try the grey, contrast-stretched image
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX)
        text, _, _ = detector.detectAndDecode(grey)
        return text or None
    return None


class CameraQrScanner:
    """A lane without a scanner: its camera's latest frame is searched for a ticket QR.

    Args:
        grab: returns the lane's latest frame (a numpy image) or None; called off the loop.
    """

    def __init__(self, lane: str, grab: Callable[[], Any]) -> None:
        self.lane = lane
        self._grab = grab

    def read(self, lane: str) -> str | None:
        """Decode a QR from the lane camera now (None: no frame or no code)."""
        if lane != self.lane:
            return None
        try:
            frame = self._grab()
        except Exception as err:  # a broken camera means no ticket read, never a stuck lane
            log.warning("camera QR %s: %s", lane, err)
            return None
        return None if frame is None else decode_qr(frame)

    def leave(self, lane: str) -> None:
        """Nothing is held."""

    def close(self) -> None:
        """Nothing to release."""


class Scanners:
    """The lot's scanners by lane, with the simulated one answering lanes without a device."""

    def __init__(self, fallback) -> None:
        self.fallback = fallback
        self.by_lane: dict[str, Any] = {}
        self.faults: list[tuple[str, str]] = []  # (lane, why) of scanners that did not open

    def present(self, lane: str, code: str) -> None:
        """The traffic generator holds a ticket up (simulated lanes)."""
        self.fallback.present(lane, code)

    def leave(self, lane: str) -> None:
        """The car has gone."""
        device = self.by_lane.get(lane)
        if device is not None:
            device.leave(lane)
        self.fallback.leave(lane)

    def read(self, lane: str) -> str | None:
        """What was scanned at `lane`."""
        device = self.by_lane.get(lane)
        if device is not None:
            code = device.read(lane)
            if code:
                return code
        return self.fallback.read(lane)

    def close(self) -> None:
        """Release every device."""
        for device in self.by_lane.values():
            try:
                device.close()
            except Exception:
                log.exception("closing scanner")

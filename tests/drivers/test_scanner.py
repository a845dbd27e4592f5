"""Ticket scanners: a serial scanner over pyserial's loop://, a keyboard-wedge scanner's
recorded key events, and the camera's QR detector on generated and photographed-like images."""

from __future__ import annotations

import time

import cv2
import numpy as np
import serial

from drivers.scanner import (
    EV_KEY,
    CameraQrScanner,
    HidDecoder,
    Scanners,
    SerialScanner,
    decode_qr,
)
from drivers.tickets import SimulatedScanner

CODE = "LE1:demo:T0123456789AB:TB9YW0:ABCDEFGHIJ"


def _wait_for(fn, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.02)
    return None


def test_serial_scanner_reads_cr_and_lf_terminated_codes():
    port = serial.serial_for_url("loop://", timeout=0.2)
    heard = []
    scanner = SerialScanner("out-1", "loop://", opener=lambda *a, **k: port,
                            on_scan=lambda lane, text: heard.append((lane, text)))
    try:
        port.write(CODE.encode() + b"\r\n")
        assert _wait_for(lambda: scanner.read("out-1")) == CODE
        assert scanner.read("out-2") is None
        scanner.leave("out-1")
        assert scanner.read("out-1") is None
        port.write(b"SECOND\r")
        assert _wait_for(lambda: scanner.read("out-1")) == "SECOND"
        assert heard == [("out-1", CODE), ("out-1", "SECOND")]
    finally:
        scanner.close()


def test_serial_scan_expires_after_the_hold_window():
    now = [100.0]
    port = serial.serial_for_url("loop://", timeout=0.2)
    scanner = SerialScanner("out-1", "loop://", opener=lambda *a, **k: port, hold_s=30,
                            clock=lambda: now[0])
    try:
        port.write(b"T1\n")
        assert _wait_for(lambda: scanner.read("out-1")) == "T1"
        now[0] += 31
        assert scanner.read("out-1") is None
    finally:
        scanner.close()


# Key events (type, code, value) as evdev reports a keyboard-wedge scanner typing
# "LE1:ab" then Enter: shift down/up around capitals and ':' (shift + ';').
SHIFT = 42
RECORDED = [
    (EV_KEY, SHIFT, 1), (EV_KEY, 38, 1), (EV_KEY, 38, 0), (EV_KEY, 18, 1), (EV_KEY, 18, 0),
    (EV_KEY, SHIFT, 0), (0, 0, 0),  # a SYN report between keys
    (EV_KEY, 2, 1), (EV_KEY, 2, 0),
    (EV_KEY, SHIFT, 1), (EV_KEY, 39, 1), (EV_KEY, 39, 0), (EV_KEY, SHIFT, 0),
    (EV_KEY, 30, 1), (EV_KEY, 30, 2), (EV_KEY, 30, 0),  # autorepeat (2) is ignored
    (EV_KEY, 48, 1), (EV_KEY, 48, 0),
    (EV_KEY, 28, 1), (EV_KEY, 28, 0),
]


def test_hid_decoder_turns_recorded_key_events_into_text():
    decoder = HidDecoder()
    out = [text for event in RECORDED if (text := decoder.feed(*event))]
    assert out == ["LE1:ab"]
    # and a second code right after, digits and dashes
    second = [(EV_KEY, 11, 1), (EV_KEY, 12, 1), (EV_KEY, 10, 1), (EV_KEY, 96, 1)]
    assert [t for e in second if (t := decoder.feed(*e))] == ["0-9"]


def _qr_image(text: str, scale: int = 8) -> np.ndarray:
    img = cv2.QRCodeEncoder.create().encode(text)
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return cv2.copyMakeBorder(img, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)


def test_camera_decodes_a_generated_qr():
    assert decode_qr(_qr_image(CODE)) == CODE


def test_camera_decodes_a_printed_ticket_held_up_to_it():
    # a ticket: white paper with text lines above the code, held at an angle in a dim,
    # grey scene, as the lane camera would see it
    code = _qr_image(CODE, scale=5)
    paper = np.full((code.shape[0] + 120, code.shape[1] + 60), 235, np.uint8)
    for row in range(10, 100, 22):
        cv2.putText(paper, "DEMO LOT  ENTRY TICKET", (15, row + 12), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, 20, 1)
    paper[110:110 + code.shape[0], 30:30 + code.shape[1]] = np.minimum(code, 235)
    scene = np.full((720, 960), 70, np.uint8)
    h, w = paper.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[300, 120], [300 + w * 0.95, 150], [290 + w * 0.97, 150 + h * 0.93],
                      [285, 110 + h]])
    warp = cv2.warpPerspective(paper, cv2.getPerspectiveTransform(src, dst), (960, 720),
                               dst=scene.copy(), borderMode=cv2.BORDER_TRANSPARENT)
    frame = cv2.cvtColor((warp * 0.8).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    assert decode_qr(frame) == CODE


def test_camera_scanner_and_no_code():
    frames = iter([_qr_image(CODE), np.full((200, 200, 3), 128, np.uint8), None])
    scanner = CameraQrScanner("out-1", lambda: next(frames))
    assert scanner.read("out-1") == CODE
    assert scanner.read("out-1") is None  # a frame without a code
    assert scanner.read("out-1") is None  # no frame at all

    def broken():
        raise OSError("camera unplugged")

    assert CameraQrScanner("out-1", broken).read("out-1") is None


def test_scanners_prefer_the_lane_device_then_the_simulated_one():
    scanners = Scanners(SimulatedScanner())
    scanners.by_lane["out-1"] = CameraQrScanner("out-1", lambda: _qr_image(CODE))
    scanners.present("out-2", "T9")
    assert scanners.read("out-1") == CODE and scanners.read("out-2") == "T9"
    scanners.leave("out-2")
    assert scanners.read("out-2") is None

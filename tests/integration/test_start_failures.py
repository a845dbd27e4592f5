"""A start that fails says so and exits: each start-up failure -> its exit code, one stderr line,
within 5 s (docs/hardware.md "Exit codes"); every ledger command on a damaged ledger likewise."""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import tty
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.core.events import NewEvent
from appliance.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 5.0

LOT = """
[lot]
id = "t"
mode = "counter"
[[levels]]
id = "G"
capacity = {{ REGULAR = 10 }}
[[lanes]]
id = "in"
direction = "entry"
arming_loop_pin = 4
safety_loop_pin = 17
barrier_relay_pin = 27
{lane}
[hardware]
pin_factory = "{pins}"
[storage]
data_dir = "{data}"
[api]
http_port = {http_port}
{extra}
"""


def write_lot(tmp: Path, *, pins: str = "mock", lane: str = "", extra: str = "",
              http_port: int = 0) -> Path:
    path = tmp / "lot.toml"
    path.write_text(LOT.format(pins=pins, lane=lane, extra=extra, data=tmp / "var",
                               http_port=http_port))
    return path


def lotedge(*args: str, timeout_s: float = 10.0) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("INVOCATION_ID", None)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", *args], capture_output=True,
                          text=True, timeout=timeout_s, env=env, cwd=ROOT)
    return proc, time.monotonic() - started


def assert_fails(proc: subprocess.CompletedProcess, elapsed_s: float, code: int,
                 *words: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert elapsed_s < BOUND_S, f"took {elapsed_s:.1f} s: {lines[-3:]}"
    assert proc.returncode == code, (proc.returncode, proc.stderr[-1500:])
    assert len(lines) == 1, lines
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def run(path: Path, *more: str):
    return lotedge("run", "--config", str(path), "--no-display", "--duration", "30", *more)


def test_a_config_error_exits_2_naming_the_key(tmp_path: Path):
    path = write_lot(tmp_path, lane='fail_state = "ajar"')
    assert_fails(*run(path), 2, "lanes[0].fail_state")


def test_a_sim_port_without_simulate_exits_2_naming_the_key(tmp_path: Path):
    path = write_lot(tmp_path, extra='[[sensor_buses]]\nid = "bus1"\nport = "sim"\n')
    assert_fails(*run(path), 2, "sensor_buses[0].port", "--simulate")


def test_a_missing_gpio_backend_exits_4(tmp_path: Path):
    path = write_lot(tmp_path, pins="lgpio")
    assert_fails(*run(path), 4, "gpio")


def test_auto_gpio_on_a_machine_without_one_exits_4(tmp_path: Path):
    path = write_lot(tmp_path, pins="auto")
    assert_fails(*run(path), 4, "not a Raspberry Pi")


def test_a_missing_serial_port_exits_5(tmp_path: Path):
    path = write_lot(tmp_path, extra='[[sensor_buses]]\nid = "bus1"\n'
                                      f'port = "{tmp_path}/ttyUSB9"\n')
    assert_fails(*run(path), 5, "bus1", "ttyUSB9")


def test_a_busy_serial_port_exits_5(tmp_path: Path):
    master, slave = os.openpty()
    tty.setraw(slave)
    holder = os.open(os.ttyname(slave), os.O_RDWR | os.O_NOCTTY)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what another program holding it does
    try:
        path = write_lot(tmp_path, extra='[[sensor_buses]]\nid = "bus1"\n'
                                          f'port = "{os.ttyname(slave)}"\n')
        assert_fails(*run(path), 5, "bus1", "busy")
    finally:
        for fd in (holder, slave, master):
            os.close(fd)


def test_a_missing_lpr_model_exits_6(tmp_path: Path):
    path = write_lot(tmp_path, lane='camera = "/dev/video99"',
                     extra='[lpr]\ndet_model = "/nonexistent/det.onnx"\n')
    assert_fails(*run(path), 6, "camera", "det.onnx")


def test_an_api_socket_in_use_exits_7(tmp_path: Path):
    sock_path = tmp_path / "var" / "lotedge.sock"
    sock_path.parent.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen()
    try:
        assert_fails(*run(write_lot(tmp_path)), 7, "api", "lotedge.sock")
    finally:
        listener.close()


def test_an_http_port_in_use_exits_7(tmp_path: Path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        assert_fails(*run(write_lot(tmp_path, http_port=port)), 7, "api", str(port))
    finally:
        listener.close()


# --- a damaged ledger -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_ledger(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"

    async def make() -> None:
        ledger = await Ledger.open(path, lot_id="t", tz=ZoneInfo("UTC"))
        for i in range(300):
            await ledger.append(NewEvent(type="diag.note", payload={"i": i, "pad": "x" * 200}))
        await ledger.close()

    asyncio.run(make())
    return path


def damage(good: Path, into: Path, how: str) -> None:
    into.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = bytearray(good.read_bytes())
    rng = random.Random(7)
    if how == "random":
        data = bytearray(rng.randbytes(len(data)))
    elif how == "truncated":
        data = data[: len(data) // 3]
    elif how == "flipped":
        mid = len(data) // 2
        for at in range(mid, mid + 4096, 7):
            data[at] ^= 0xFF
    into.write_bytes(bytes(data))
    into.chmod(0o600)


COMMANDS = {
    "run": ("run", "--no-display", "--duration", "30"),
    "db verify": ("db", "verify"),
    "report": ("report",),
    "diag db verify": ("diag", "db", "verify"),
    "counts reset": ("counts", "reset", "--level", "G", "--set", "REGULAR=1",
                     "--attendant", "ann", "--reason", "walk-through"),
}


@pytest.mark.parametrize("how", ["random", "truncated", "flipped"])
def test_every_ledger_command_on_a_damaged_ledger_says_so_and_exits(tmp_path: Path, how: str,
                                                                     good_ledger: Path):
    path = write_lot(tmp_path)
    damage(good_ledger, tmp_path / "var" / "ledger.sqlite3", how)
    for name, args in COMMANDS.items():
        if args[0] == "diag":
            argv = ("diag", "--config", str(path), *args[1:])
        else:
            argv = (*args[:2], "--config", str(path), *args[2:]) if args[0] in (
                "db", "counts") else (args[0], "--config", str(path), *args[1:])
        proc, elapsed = lotedge(*argv)
        lines = proc.stderr.strip().splitlines()
        assert elapsed < BOUND_S, (name, elapsed)
        assert proc.returncode != 0, (name, proc.stdout[-500:])
        assert "Traceback" not in proc.stderr, (name, proc.stderr[-1500:])
        assert len(lines) == 1, (name, lines)
        if name != "db verify" and name != "diag db verify":  # verify reports its own findings
            assert proc.returncode == 3 and "ledger" in lines[0], (name, proc.returncode, lines)


def test_an_intact_ledger_still_starts_and_stops(tmp_path: Path, good_ledger: Path):
    path = write_lot(tmp_path)
    target = tmp_path / "var" / "ledger.sqlite3"
    target.parent.mkdir(mode=0o700)
    shutil.copy(good_ledger, target)
    proc, _ = lotedge("run", "--config", str(path), "--no-display", "--duration", "1")
    assert proc.returncode == 0, proc.stderr[-1500:]


def test_systemd_does_not_restart_on_what_a_restart_cannot_mend():
    unit = (ROOT / "systemd" / "lotedge.service").read_text()
    line = next(x for x in unit.splitlines() if x.startswith("RestartPreventExitStatus="))
    assert line.split("=", 1)[1].split() == ["2", "3"]

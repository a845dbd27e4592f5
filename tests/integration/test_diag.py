"""`lotedge diag ...` against the real service on the simulator: JSON output parsed and asserted,
exit codes checked."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from appliance import __version__
from appliance.cli.diag.common import EXIT_INPUT, EXIT_NOT_AVAILABLE, EXIT_NOT_RUNNING, EXIT_REFUSED
from appliance.cli.main import app
from appliance.config import load_config
from drivers.loops import SimulatedLoop
from lpr.source import PlateResult
from tests.conftest import RunningService, write_lot

LOTEDGE = str(Path(sys.executable).with_name("lotedge"))


def _cli(config: Path | str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["diag", "--config", str(config), "--technician", "ann",
                                      *args])
    return result.exit_code, result.stdout, result.stderr


async def diag(config, *args: str) -> tuple[int, str, str]:
    """Run a diag command in a thread (the service keeps running on this event loop)."""
    return await asyncio.to_thread(_cli, config, *args)


async def diag_json(config, *args: str, code: int = 0):
    exit_code, out, err = await diag(config, *args, "--json")
    assert exit_code == code, (exit_code, out, err)
    return json.loads(out)


async def _events(service, event_type):
    rows = await service.ledger.fetchall("SELECT payload FROM events WHERE type = ?", (event_type,))
    return [json.loads(r[0]) for r in rows]


def _config(running) -> str:
    return running.cfg.source_path


async def test_status_reports_service_lanes_backlog_disk_and_errors(running_lot):
    service = running_lot.service
    status = await diag_json(_config(running_lot), "status")
    assert status["service"] == "running" and status["lot_id"] == "test-lot"
    assert status["config_sha256"] == running_lot.cfg.source_sha256
    assert status["config_changed_since_start"] is False
    assert [lane["lane"] for lane in status["lanes"]] == ["in-1", "in-2", "out-1", "out-2"]
    last_seq = await service.ledger.last_seq()
    assert status["backlog"]["acked_through"] == 0
    assert status["backlog"]["unsynced_events"] == last_seq
    assert status["backlog"]["oldest_unsynced_seq"] == 1
    assert status["backlog"]["oldest_unsynced_age_s"] >= 0
    assert status["disk"]["free_bytes"] > 0 and status["disk"]["ledger_bytes"] > 0
    assert status["sync"] == {"available": False, "enabled": False, "state": "disabled",
                              "mqtt_url": "mqtt://127.0.0.1:1883", "api_url": None}
    assert status["last_errors"] == []

    # A refused close is an error the technician should see; an edited config is flagged.
    safety = SimulatedLoop(service.pin_factory, 17)
    safety.occupy()
    await asyncio.sleep(0.05)
    from appliance.client import ApiError, ServiceClient

    client = ServiceClient(running_lot.socket_path, local_admin=True)
    with pytest.raises(ApiError):
        await client.post("/lanes/in-1/close", {"attendant": "ann"})
    await client.aclose()
    safety.clear()
    Path(_config(running_lot)).write_text(Path(_config(running_lot)).read_text() + "# edit\n")
    status = await diag_json(_config(running_lot), "status")
    # The lane also raises a tailgate alarm: the safety loop was occupied with the gate shut.
    assert sorted(e["type"] for e in status["last_errors"]) == ["alarm.raised",
                                                               "gate.close_refused"]
    (raised,) = [json.loads(e["payload"]) for e in status["last_errors"]
                 if e["type"] == "alarm.raised"]
    assert (raised["code"], raised["source"]) == ("tailgate", "in-1")
    assert [a["id"] for a in status["active_alarms"]] == [raised["alarm_id"]]
    assert status["config_changed_since_start"] is True
    code, out, _ = await diag(_config(running_lot), "status")
    assert code == 0 and "CHANGED" in out and "in-1" in out


async def test_service_down_is_exit_3_naming_the_socket(counter_lot):
    config = counter_lot.source_path
    data = await diag_json(config, "status", code=EXIT_NOT_RUNNING)
    assert set(data) == {"error", "exit_code"} and data["exit_code"] == EXIT_NOT_RUNNING
    assert data["error"].startswith(
        f"service not running at {counter_lot.data_path('lotedge.sock')}")
    code, out, _ = await diag(config, "status")
    assert code == EXIT_NOT_RUNNING and "service: NOT RUNNING" in out
    for args in (["loops", "in-1"], ["gate", "in-1", "cycle"], ["sensors"], ["camera", "in-1",
                                                                            "read"]):
        code, out, err = await diag(config, *args)
        assert code == EXIT_NOT_RUNNING, (args, out, err)
        assert f"service not running at {counter_lot.data_path('lotedge.sock')}" in err


async def test_loops_watch_streams_edges_with_timing(running_lot):
    service = running_lot.service
    env = {**os.environ, "LOTEDGE_TECHNICIAN": "ann"}
    proc = await asyncio.create_subprocess_exec(
        LOTEDGE, "diag", "--config", _config(running_lot), "loops", "in-1", "--watch",
        "--count", "2", "--duration-s", "20", "--json", stdout=asyncio.subprocess.PIPE, env=env)
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    assert first["lane"] == "in-1" and first["state"] == "IDLE"
    assert [(lp["loop"], lp["pin"], lp["present"], lp["debounce_ms"]) for lp in first["loops"]] \
        == [("in-1/arming", 4, False, 10), ("in-1/safety", 17, False, 10)]
    arming = SimulatedLoop(service.pin_factory, 4)
    arming.occupy()
    await asyncio.sleep(0.1)
    arming.clear()
    edges = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 20)) for _ in range(2)]
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert [(e["loop"], e["present"]) for e in edges] == [("in-1/arming", True),
                                                         ("in-1/arming", False)]
    assert all(10 <= e["settle_ms"] < 500 for e in edges)  # the 10 ms debounce, plus scheduling
    assert edges[0]["previous_state_ms"] is None
    assert 90 <= edges[1]["previous_state_ms"] < 1000  # occupied for ~100 ms
    await asyncio.sleep(0.5)

    once = await diag_json(_config(running_lot), "loops", "in-1")
    assert [e["seq"] for e in once["edges"]][:2] == [1, 2]
    assert once["loops"][0]["edges"] == 2 and once["loops"][0]["glitches"] == 0


async def test_gate_cycle_is_audited_and_refused_with_a_vehicle_present(running_lot):
    service = running_lot.service
    gate = service.lanes["in-1"].gate  # up or down whatever the relay's wiring
    assert not gate.is_open
    data = await diag_json(_config(running_lot), "gate", "in-1", "cycle", "--open-s", "0.2")
    assert data["lane"] == "in-1" and data["opened_ms"] >= 0 and data["closed_ms"] >= 0
    assert data["position_source"] == "relay output"
    assert not gate.is_open
    assert await _events(service, "gate.manual_open") == [
        {"lane": "in-1", "attendant": "tech:ann", "reason": "diag gate cycle"}]
    assert await _events(service, "gate.manual_close") == [{"lane": "in-1",
                                                            "attendant": "tech:ann"}]

    safety = SimulatedLoop(service.pin_factory, 5)  # in-2's safety loop
    safety.occupy()
    await asyncio.sleep(0.05)
    code, out, err = await diag(_config(running_lot), "gate", "in-2", "cycle", "--json")
    assert code == EXIT_REFUSED
    assert json.loads(out)["error"] == "refused: a vehicle is on the safety loop of lane in-2"
    assert all(e["lane"] != "in-2" for e in await _events(service, "gate.manual_open"))
    safety.clear()
    await asyncio.sleep(0.05)
    code, _, err = await diag(_config(running_lot), "gate", "nope", "cycle")
    assert code == EXIT_INPUT and "no lane 'nope'" in err


async def test_sensors_show_spots_from_the_ledger(spot_lot):
    async with RunningService(spot_lot) as running:
        data = await diag_json(spot_lot.source_path, "sensors", "--level", "L1")
        # device health is reported (loops and gates); this lot has no spot sensors
        assert data["mode"] == "per_spot" and data["sensor_readings"] is True
        assert len(data["spots"]) == 60 and {s["level"] for s in data["spots"]} == {"L1"}
        assert data["spots"][0] == {"spot": "L1-L001", "level": "L1", "type": "LARGE",
                                    "sensor": None, "state": "AVAILABLE", "ticket_id": None,
                                    "sensor_state": "UNKNOWN", "sensor_health": None}
        assert len((await diag_json(spot_lot.source_path, "sensors"))["spots"]) == 120
        code, _, err = await diag(spot_lot.source_path, "sensors", "--level", "L9")
        assert code == EXIT_INPUT and "no level 'L9'" in err
        # Device health of every loop and gate, from the drivers' health registry.
        data = await diag_json(spot_lot.source_path, "devices")
        names = {d["device"] for d in data["devices"]}
        assert {"in-1/gate", "in-1/arming", "in-1/safety", "out-2/gate"} <= names
        assert data["faults"] == 0
        assert running.service.ledger is not None


async def test_camera_read_runs_the_plate_source(running_lot):
    running_lot.service.plates.present("in-1", PlateResult(plate="ABC1234", confidence=0.93,
                                                           vehicle_type="REGULAR"))
    data = await diag_json(_config(running_lot), "camera", "in-1", "read")
    assert (data["plate"], data["confidence"], data["vehicle_type"], data["source"]) == \
        ("ABC1234", 0.93, "REGULAR", "SimulatedPlates")
    assert (await diag_json(_config(running_lot), "camera", "in-2", "read"))["plate"] is None
    data = await diag_json(_config(running_lot), "camera", "in-1", "snapshot", "x.jpg",
                           code=EXIT_NOT_AVAILABLE)
    assert "camera snapshot (SimulatedPlates)" in data["error"]


async def test_camera_snapshot_opens_the_device_when_the_service_is_stopped(tmp_path):
    import cv2
    import numpy as np

    video = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    frame[:, 32:] = (0, 0, 255)
    for _ in range(3):
        writer.write(frame)
    writer.release()
    path = write_lot(tmp_path)
    path.write_text(path.read_text().replace(
        'id = "in-1"\n', f'id = "in-1"\ncamera = "{video}"\n', 1))
    out = tmp_path / "snap.jpg"
    data = await diag_json(path, "camera", "in-1", "snapshot", str(out))
    assert data["via"] == "device" and data["bytes"] == out.stat().st_size
    image = cv2.imread(str(out))
    assert image.shape == (48, 64, 3)
    assert image[24, 50][2] > 200 and image[24, 10][2] < 50  # the red right half survived
    assert out.stat().st_mode & 0o777 == 0o600
    data = await diag_json(path, "camera", "in-2", "snapshot", str(out), code=EXIT_NOT_AVAILABLE)
    assert "simulated camera" in data["error"]


def _pty_writer(frames: bytes):
    master, slave = os.openpty()
    name = os.ttyname(slave)
    import termios
    import tty

    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)

    def feed():
        time.sleep(0.5)
        os.write(master, frames)

    thread = threading.Thread(target=feed, daemon=True)
    return master, slave, name, thread


async def test_serial_sniff_reads_frames_directly_when_the_service_is_stopped(tmp_path):
    master, slave, name, thread = _pty_writer(b"R0123\rR0456\r\x01\x02")
    thread.start()
    try:
        data = await diag_json(write_lot(tmp_path), "serial", name, "sniff", "--duration-s", "2",
                               "--frames", "3")
    finally:
        thread.join()
        os.close(master)
        os.close(slave)
    assert [f["text"] for f in data["frames"]] == ["R0123", "R0456", "\x01\x02"]
    assert data["frames"][2]["hex"] == "01 02"
    assert data["bytes"] == 14 and data["errors"] == {"read_errors": 0}
    code, _, err = await diag(write_lot(tmp_path), "serial", "/dev/nonexistent-tty", "sniff",
                              "--duration-s", "0.1")
    assert code == EXIT_INPUT and "cannot open serial port /dev/nonexistent-tty" in err


async def test_serial_goes_through_the_running_service(running_lot):
    code, _, err = await diag(_config(running_lot), "serial", "/dev/ttyUSB0", "sniff")
    assert code == EXIT_INPUT and "does not own serial port '/dev/ttyUSB0'" in err


async def test_serial_monitor_of_a_bus_the_service_owns(tmp_path):
    from tests.drivers.test_service_wiring import sensor_lot

    cfg = sensor_lot(tmp_path)
    async with RunningService(cfg) as running:
        await asyncio.sleep(1.0)  # a few polls of the simulated bus
        data = await diag_json(cfg.source_path, "serial", "bus1", "sniff", "--json")
        assert data["device"] == "bus1" and data["kind"] == "sensor_bus"
        assert data["health"]["device"] == "bus1"
        assert set(data["readings"]) == {s.id for s in cfg.spots}
        assert running.service.devices.sensors is not None
        code, out, err = await diag(cfg.source_path, "serial", "bus1", "sniff")
        assert code == 0, err
        assert "sensor_bus bus1, owned by the running service" in out
        assert "health: " in out and "? bytes" not in out
        for spot in cfg.spots:
            assert spot.id in out


async def test_camera_snapshot_through_the_running_service(tmp_path):
    import cv2

    from lpr.synthetic import render_scene

    frames = tmp_path / "cam"
    frames.mkdir()
    cv2.imwrite(str(frames / "f0.jpg"), render_scene("ABC1234"))
    path = write_lot(tmp_path)
    path.write_text(path.read_text().replace('id = "in-1"\n', f'id = "in-1"\ncamera = "dir:{frames}"\n', 1))
    cfg = load_config(path)
    async with RunningService(cfg):
        out = tmp_path / "snap.jpg"
        data = await diag_json(path, "camera", "in-1", "snapshot", str(out))
        assert data["via"] == "service" and out.stat().st_size == data["bytes"] > 1000
        assert cv2.imread(str(out)).shape == (360, 640, 3)


async def test_sync_reachability_backlog_and_push(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    open_port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    path = write_lot(tmp_path)
    base = path.read_text()
    try:
        path.write_text(base + f'\n[cloud]\nenabled = true\nmqtt_url = "mqtt://127.0.0.1:{open_port}"\n')
        cfg = load_config(path)
        async with RunningService(cfg) as running:
            data = await diag_json(path, "sync")
            assert data["service"] == "running" and data["ok"] is True
            assert data["mqtt"]["reachable"] is True and data["mqtt"]["port"] == open_port
            assert data["backlog"]["unsynced_events"] == await running.service.ledger.last_seq()
            # the listener accepts TCP but is no MQTT broker: the uplink stays offline
            assert data["sync"]["state"] in ("offline", "starting")
            await diag_json(path, "sync", "--push")
            assert len(await _events(running.service, "diag.sync.push")) == 1
            for _ in range(50):  # the uplink is up and its link down: since when, in status
                status = await diag_json(path, "status")
                if status["sync"]["state"] == "offline":
                    break
                await asyncio.sleep(0.1)
            assert status["sync"]["state"] == "offline"
            from datetime import datetime
            since = datetime.fromisoformat(status["sync"]["since_utc"])
            assert since.utcoffset() is not None
            code, out, _ = await diag(path, "status")
            assert f"offline since {status['sync']['since_utc'][:19].replace('T', ' ')} UTC" in out
            last_seq = await running.service.ledger.last_seq()
        path.write_text(base + f'\n[cloud]\nenabled = true\nmqtt_url = "mqtt://127.0.0.1:{closed_port}"\n')
        data = await diag_json(path, "sync", code=1)
        assert data["service"] == "not running" and data["ok"] is False
        assert data["mqtt"]["reachable"] is False
        assert data["backlog"]["unsynced_events"] == last_seq + 1  # + service.stopped, from the file
    finally:
        listener.close()


async def test_db_backup_while_the_service_writes(running_lot, tmp_path):
    from appliance.cli.db import verify_file
    from appliance.core.events import NewEvent

    service = running_lot.service
    stop = asyncio.Event()

    async def writer():
        n = 0
        while not stop.is_set():
            await service.ledger.append(NewEvent(type="test.tick", payload={"n": n}))
            n += 1
            await asyncio.sleep(0)
        return n

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)
    out = tmp_path / "backup.sqlite3"
    data = await diag_json(_config(running_lot), "db", "backup", str(out))
    await asyncio.sleep(0.1)
    stop.set()
    written = await task
    assert written > 20 and data["verified"] is True and data["problems"] == []
    assert out.stat().st_mode & 0o777 == 0o600
    live_last = await service.ledger.last_seq()
    assert 0 < data["last_seq"] < live_last  # a consistent snapshot taken mid-stream
    report = await asyncio.to_thread(verify_file, out)
    assert report.ok and report.last_seq == data["last_seq"]
    import sqlite3

    with sqlite3.connect(out) as conn:
        backup_hashes = conn.execute("SELECT seq, hash FROM events ORDER BY seq").fetchall()
    live = await service.ledger.fetchall("SELECT seq, hash FROM events WHERE seq <= ? ORDER BY seq",
                                         (data["last_seq"],))
    assert backup_hashes == [tuple(r) for r in live]
    audits = await _events(service, "diag.db.backup")
    assert audits == [{"technician": "ann", "out": str(out), "last_seq": data["last_seq"],
                       "verified": True}]

    backups = tmp_path / "backups"
    backups.mkdir()
    for stamp in ("20240101T000000Z", "20240102T000000Z", "20240103T000000Z"):
        (backups / f"ledger-{stamp}.sqlite3").write_bytes(b"old")
    data = await diag_json(_config(running_lot), "db", "backup", str(backups), "--keep", "2")
    assert sorted(p.name for p in backups.iterdir())[0] == "ledger-20240103T000000Z.sqlite3"
    assert len(list(backups.iterdir())) == 2 and len(data["pruned"]) == 2

    verify = await diag_json(_config(running_lot), "db", "verify")
    assert verify["ok"] is True
    data = await diag_json(_config(running_lot), "db", "vacuum", code=5)
    assert "stop it first" in data["error"]


async def test_db_vacuum_with_the_service_stopped(counter_lot):
    async with RunningService(counter_lot):
        pass
    data = await diag_json(counter_lot.source_path, "db", "vacuum")
    assert data["bytes_after"] > 0
    verify = await diag_json(counter_lot.source_path, "db", "verify")
    assert verify["ok"] is True
    import sqlite3

    with sqlite3.connect(counter_lot.db_path()) as conn:
        (payload,) = conn.execute(
            "SELECT payload FROM events WHERE type = 'diag.db.vacuum'").fetchone()
    assert json.loads(payload)["technician"] == "ann"


async def test_bundle_redacts_secrets_and_holds_health_and_verify(tmp_path):
    path = write_lot(tmp_path)
    path.write_text(path.read_text()
                    + '\n[cloud]\nmqtt_url = "mqtt://lot7:hunter2@127.0.0.1:1883"\n')
    cfg = load_config(path)
    async with RunningService(cfg) as running:
        token = cfg.data_path(cfg.api.token_file).read_text().strip()
        out = tmp_path / "support.tar.gz"
        data = await diag_json(path, "bundle", str(out))
        assert data["service_running"] is True
        with tarfile.open(out) as tar:
            members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar}
        assert set(members) == {"config.toml", "health.json", "status.json", "alarms.json",
                                "db-verify.json", "logs.txt", "manifest.json"}
        blob = b"".join(members.values())
        assert b"hunter2" not in blob and token.encode() not in blob
        assert b"mqtt://REDACTED@127.0.0.1:1883" in members["config.toml"]
        assert json.loads(members["health.json"])["lot_id"] == "test-lot"
        assert json.loads(members["db-verify.json"])["ok"] is True
        assert out.stat().st_mode & 0o777 == 0o600
        assert len(await _events(running.service, "diag.bundle")) == 1


def test_redact_config_hides_secret_values_but_keeps_file_paths():
    from appliance.host.redact import redact_config

    text = ('[cloud]\npassword = "pw1"\napi_token="tokval"\npassword_file = "/etc/lotedge/pw"\n'
            'mqtt_url = "mqtts://user:pw2@broker:8883"\nname = "keep"\n')
    red = redact_config(text)
    assert "pw1" not in red and "tokval" not in red and "pw2" not in red
    assert 'password_file = "/etc/lotedge/pw"' in red and 'name = "keep"' in red
    assert 'password = "REDACTED"' in red and "mqtts://REDACTED@broker:8883" in red


async def test_audit_route_records_only_known_actions_under_the_callers_name(running_lot):
    from appliance.client import ApiError, ServiceClient

    client = ServiceClient(running_lot.socket_path, local_admin=True)
    done = await client.post("/diag/audit", {"action": "bundle", "technician": "ann",
                                             "detail": {"out": "/x", "technician": "mallory"}})
    assert done["type"] == "diag.bundle"
    assert await _events(running_lot.service, "diag.bundle") == [{"out": "/x",
                                                                  "technician": "ann"}]
    for body in ({"action": "gate.open", "technician": "ann"}, {"action": "bundle"},
                 {"action": "bundle", "technician": "ann", "detail": {"x": "y" * 5000}}):
        with pytest.raises(ApiError) as info:
            await client.post("/diag/audit", body)
        assert info.value.status == 400
    await client.aclose()


async def test_bundle_with_the_service_stopped_uses_the_log_file(counter_lot, tmp_path):
    async with RunningService(counter_lot):
        pass
    counter_lot.data_path("lotedge.log").write_text("2026-01-01 INFO lotedge started\n")
    out = tmp_path / "b.tar.gz"
    data = await diag_json(counter_lot.source_path, "bundle", str(out))
    assert data["service_running"] is False
    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar}
    assert json.loads(members["health.json"]) == {"service": "not running"}
    assert json.loads(members["db-verify.json"])["ok"] is True
    if data["log_source"] != "journald":  # a host whose journal has a lotedge unit uses it
        assert members["logs.txt"] == b"2026-01-01 INFO lotedge started\n"
    assert json.loads(members["manifest.json"])["log_source"] == data["log_source"]


async def test_technician_actions_work_once_attendants_exist(running_lot):
    """With staff enrolled, `lotedge diag` (root on the appliance) still cycles a gate and
    writes its audit lines; a signed-out socket client does neither."""
    from appliance.client import ApiError, ServiceClient

    admin = ServiceClient(running_lot.socket_path, local_admin=True)
    await admin.post("/attendants", {"id": "sue", "name": "Sue", "role": "supervisor",
                                     "pin": "246810"})
    await admin.aclose()
    data = await diag_json(_config(running_lot), "gate", "in-1", "cycle", "--open-s", "0.2")
    assert data["lane"] == "in-1"
    assert (await _events(running_lot.service, "gate.manual_open"))[-1]["attendant"] == "tech:ann"
    plain = ServiceClient(running_lot.socket_path)
    with pytest.raises(ApiError) as info:
        await plain.post("/diag/audit", {"action": "bundle", "technician": "mallory"})
    assert info.value.status == 401
    await plain.aclose()


def test_not_running_is_one_line_with_the_whole_socket_path(tmp_path):
    deep = tmp_path / ("a-long-folder-name-" * 5)  # the path is wider than an 80-column line
    deep.mkdir()
    cfg = load_config(write_lot(deep))
    result = CliRunner().invoke(app, ["diag", "status", "-c", str(cfg.source_path)])
    assert result.exit_code == EXIT_NOT_RUNNING
    assert result.stdout.splitlines() == [
        f"service: NOT RUNNING (no answer at {cfg.data_path(cfg.api.socket)}); "
        f"installed version {__version__}"]


def test_config_after_the_command_and_from_the_environment(counter_lot):
    config = counter_lot.source_path
    socket_path = str(counter_lot.data_path("lotedge.sock"))
    for args, env in ((["diag", "status", "-c", config], {}),
                      (["diag", "db", "verify", "--config", config, "--json"], {}),
                      (["diag", "status", f"--config={config}"], {}),
                      (["diag", "status"], {"LOTEDGE_CONFIG": config})):
        result = CliRunner().invoke(app, args, env=env)
        assert "/etc/lotedge/lot.toml" not in result.stderr, (args, result.stderr)
        if args[1] == "status":
            assert result.exit_code == EXIT_NOT_RUNNING, (args, result.output)
            assert socket_path in result.stdout, (args, result.stdout)
    missing = CliRunner().invoke(app, ["diag", "status"], env={"LOTEDGE_CONFIG": "/nonexistent.toml"})
    assert missing.exit_code == EXIT_INPUT
    assert "/nonexistent.toml" in missing.stderr


def test_sync_push_with_the_cloud_off_says_so(counter_lot):
    assert counter_lot.cloud.enabled is False
    code, out, err = _cli(counter_lot.source_path, "sync", "--push", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["exit_code"] == 1 and "cloud sync is off" in data["error"]
    code, out, err = _cli(counter_lot.source_path, "sync", "--push")
    assert code == 1 and "cloud sync is off ([cloud] enabled = false" in err


async def test_backups_in_the_same_second_never_overwrite_each_other(running_lot, tmp_path):
    from appliance.cli.diag.db import backup_ledger

    backups = tmp_path / "backups"
    backups.mkdir()
    first = await diag_json(_config(running_lot), "db", "backup", str(backups))
    second = await diag_json(_config(running_lot), "db", "backup", str(backups))
    assert first["out"] != second["out"]
    assert len(list(backups.glob("ledger-*.sqlite3"))) == 2
    # the same name twice (a clock that did not move): the second copy gets its own name
    db = running_lot.cfg.db_path()
    same = tmp_path / "same.sqlite3"
    a = await asyncio.to_thread(backup_ledger, db, same)
    b = await asyncio.to_thread(backup_ledger, db, same)
    assert a["out"] == str(same) and b["out"] == str(tmp_path / "same-2.sqlite3")
    assert a["verified"] and b["verified"] and same.exists()
    assert not list(tmp_path.glob(".*.partial"))

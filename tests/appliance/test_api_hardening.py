"""The local API tried as an attacker would: real HTTP on loopback and the real Unix socket,
raw sockets where a client library would be too polite."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from appliance.config import load_config
from tests.conftest import RunningService, write_lot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def http_lot(tmp_path: Path):
    """The counter lot with its API also on loopback HTTP."""
    cfg = load_config(write_lot(tmp_path, mode="counter"))
    cfg = dataclasses.replace(cfg, api=dataclasses.replace(cfg.api, http_port=_free_port(),
                                                           http_host="127.0.0.1"))
    async with RunningService(cfg) as running:
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", cfg.api.http_port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.02)
        token = cfg.data_path(cfg.api.token_file).read_text().strip()
        yield running, f"http://127.0.0.1:{cfg.api.http_port}", token


def _unix(running: RunningService) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(running.socket_path)),
                             base_url="http://lotedge", headers={"X-Lotedge-Local-Admin": "1"})


async def _raw_http(port: int, request: bytes, *, timeout_s: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), timeout_s)
    finally:
        writer.close()


async def test_an_oversized_body_is_refused_from_its_header_before_it_is_read(http_lot):
    running, url, token = http_lot
    port = running.cfg.api.http_port
    # A client that announces 100 MB and sends nothing: answered at once, not waited for.
    head = (f"POST /reservations/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n").encode()
    answer = await _raw_http(port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_an_oversized_streamed_body_is_refused(http_lot):
    running, _, _ = http_lot

    async def chunks():
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MiB with no Content-Length (chunked)

    async with _unix(running) as client:
        r = await client.post("/reservations/import", content=chunks())
    assert r.status_code == 413 and "request body over" in r.json()["error"]


async def test_deeply_nested_json_is_a_400_not_a_500(http_lot):
    running, _, _ = http_lot
    async with _unix(running) as client:
        for body in ("[" * 50_000 + "]" * 50_000, '{"a":' * 40 + "1" + "}" * 40):
            r = await client.post("/lanes/in-1/open", content=body)
            assert r.status_code == 400, (r.status_code, r.text[:200])
            assert "nests deeper than 32" in r.json()["error"]
        # a body within the limit still reaches the command
        r = await client.post("/lanes/in-1/open", json={"attendant": "ann", "reason": "test"})
        assert r.status_code == 200


@pytest.mark.parametrize("query", ["limit=-1", "limit=0", "limit=5000", "after=-3", "limit=ten"])
async def test_event_paging_parameters_are_bounded(http_lot, query):
    running, _, _ = http_lot
    async with _unix(running) as client:
        r = await client.get(f"/events?{query}")
    assert r.status_code == 400, r.text[:200]


async def test_event_pages_are_at_most_a_thousand(http_lot):
    running, _, _ = http_lot
    from appliance.core.events import NewEvent

    async with running.service.ledger.transaction() as tx:
        for i in range(1200):
            await tx.append(NewEvent(type="test.filler", payload={"i": i}))
    async with _unix(running) as client:
        page = (await client.get("/events?limit=1000")).json()
        default = (await client.get("/events")).json()
    assert len(page) == 1000 and len(default) == 100


async def test_public_health_over_http_carries_no_plates(http_lot):
    running, url, token = http_lot
    controller = next(iter(running.service.lanes.values()))
    controller.stats.last_plate = "SECRET12"
    async with httpx.AsyncClient(base_url=url) as http:
        public = await http.get("/health")
    assert public.status_code == 200 and "SECRET12" not in public.text
    assert public.json()["lanes"]  # the lanes are still there, without their plates
    async with _unix(running) as client:  # the booth on the socket still sees them
        assert "SECRET12" in (await client.get("/health")).text


async def test_bearer_scheme_is_case_insensitive_and_the_token_still_checked(http_lot):
    _, url, token = http_lot
    async with httpx.AsyncClient(base_url=url) as http:
        for scheme in ("Bearer", "bearer", "BEARER"):
            r = await http.get("/lanes", headers={"Authorization": f"{scheme} {token}"})
            assert r.status_code == 200, scheme
        for header in (f"Bearer {token}x", f"Basic {token}", "Bearer", ""):
            r = await http.get("/lanes", headers={"Authorization": header})
            assert r.status_code == 401, header


def _lotedge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "INVOCATION_ID"}
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_a_group_readable_api_token_stops_the_start_with_one_line(tmp_path: Path):
    path = write_lot(tmp_path, mode="counter")
    cfg = load_config(path)
    token = cfg.data_path(cfg.api.token_file)
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text("guessable\n")
    token.chmod(0o644)
    proc = _lotedge("run", "--config", str(path), "--simulate", "--duration", "3")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "api.token_file" in lines[0] and "chmod 600" in lines[0], lines
    assert "Traceback" not in proc.stderr


def test_a_world_readable_pin_file_is_refused_with_one_line(tmp_path: Path):
    path = write_lot(tmp_path, mode="counter")
    pin = tmp_path / "pin.txt"
    pin.write_text("482915\n")
    pin.chmod(0o644)
    proc = _lotedge("attendants", "add", "ann", "--name", "Ann", "--role", "supervisor",
                    "--pin-file", str(pin), "--config", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--pin-file" in lines[0] and "Traceback" not in proc.stderr
    pin.chmod(0o600)  # the same file, owner-only, is taken
    ok = _lotedge("attendants", "add", "ann", "--name", "Ann", "--role", "supervisor",
                  "--pin-file", str(pin), "--config", str(path))
    assert ok.returncode == 0, ok.stderr


def test_files_the_service_creates_are_private_outside_systemd(tmp_path: Path):
    path = write_lot(tmp_path, mode="counter")
    data = tmp_path / "fresh-data"
    proc = _lotedge("run", "--config", str(path), "--simulate", "--data-dir", str(data),
                    "--duration", "2", "--no-display")
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite3" for p in files), files  # the ledger is among them
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, (p, oct(p.stat().st_mode))

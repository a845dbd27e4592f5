"""The Unix socket is a transport, not an identity: a process of another user that can reach it
(a member of the `lotedge` group: here `nobody`, with the socket opened to it) gets nothing
privileged without a signed-in session, whatever it claims; root acts only when it asks to
(the CLI's local-administrator header, checked against the kernel's SO_PEERCRED)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from appliance.client import ServiceClient
from appliance.config import load_config
from tests.conftest import RunningService, write_lot

NOBODY = 65534
CLIENT = """
import json, sys, httpx
sock, session = sys.argv[1], sys.argv[2]
headers = {"X-Lotedge-Local-Admin": "1"}  # claims to be the administrator
if session:
    headers["X-Lotedge-Session"] = session
requests = json.loads(sys.stdin.read())
out = []
with httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://x",
                  headers=headers) as http:
    for method, path, body in requests:
        r = http.request(method, path, json=body) if body is not None else http.request(method, path)
        out.append([r.status_code, r.text[:300]])
print(json.dumps(out))
"""

PRIVILEGED = [
    ["POST", "/counts/reset", {"level": "L1", "counts": {"REGULAR": 0}, "attendant": "mallory",
                               "reason": "walk-through"}],
    ["POST", "/reservations/import", []],
    ["POST", "/attendants", {"id": "eve", "name": "Eve", "role": "technician", "pin": "987654"}],
    ["POST", "/diag/audit", {"action": "bundle", "technician": "mallory"}],
    ["POST", "/lanes/in-1/open", {"attendant": "mallory", "reason": "let me out"}],
    ["GET", "/events", None],
]


@pytest.fixture
async def shared_lot():
    """A running lot whose data dir another user can traverse and whose socket it may open
    (as a `lotedge` group member could)."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run a client as another user")
    top = Path(tempfile.mkdtemp(prefix="lotedge-peer-"))
    top.chmod(0o755)
    cfg = load_config(write_lot(top, mode="counter"))
    cfg.data_path(cfg.api.socket).parent.mkdir(parents=True, exist_ok=True)
    cfg.data_path(cfg.api.socket).parent.chmod(0o755)
    try:
        async with RunningService(cfg) as running:
            yield running
    finally:
        shutil.rmtree(top, ignore_errors=True)


async def as_nobody(running: RunningService, requests: list, *, session: str = "") -> list:
    """Send `requests` over the socket from a process running as `nobody`."""
    await asyncio.sleep(0.05)  # the service sets the socket's mode once it is up; then open it
    running.socket_path.chmod(0o666)
    proc = await asyncio.create_subprocess_exec(
        "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable,
        "-c", CLIENT, str(running.socket_path), session, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": "/nonexistent"})
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(requests).encode()), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out)


async def _count(running: RunningService, *types: str) -> int:
    marks = ",".join("?" * len(types))
    row = await running.service.ledger.fetchone(
        f"SELECT COUNT(*) FROM events WHERE type IN ({marks})", types)
    return row[0]


WRITES = ("counts.reset", "reservation.created", "attendant.added", "diag.bundle",
          "gate.manual_open")


async def test_another_user_gets_nothing_privileged_without_a_session(shared_lot):
    answers = await as_nobody(shared_lot, PRIVILEGED)
    assert [status for status, _ in answers] == [401] * len(PRIVILEGED), answers
    assert "lotedge attendants add" in answers[0][1]  # a fresh lot says how to bootstrap
    assert await _count(shared_lot, *WRITES) == 0


async def test_the_local_administrator_acts_without_a_session_and_root_needs_to_ask(shared_lot):
    plain = ServiceClient(shared_lot.socket_path)  # root, but not asking: a booth terminal
    with pytest.raises(Exception) as info:
        await plain.post("/counts/reset", PRIVILEGED[0][2])
    assert getattr(info.value, "status", None) == 401
    admin = ServiceClient(shared_lot.socket_path, local_admin=True)
    await admin.post("/counts/reset", PRIVILEGED[0][2])
    await admin.post("/attendants", {"id": "sue", "name": "Sue", "role": "supervisor",
                                     "pin": "246810"})
    added = await shared_lot.service.ledger.fetchone(
        "SELECT payload FROM events WHERE type = 'attendant.added'")
    assert json.loads(added[0])["by"] == "local:root"  # who bootstrapped, from the kernel
    await plain.aclose()
    await admin.aclose()


async def test_another_user_acts_within_its_signed_in_role(shared_lot):
    admin = ServiceClient(shared_lot.socket_path, local_admin=True)
    await admin.post("/attendants", {"id": "ann", "name": "Ann", "role": "attendant",
                                     "pin": "135791"})
    await admin.post("/attendants", {"id": "sue", "name": "Sue", "role": "supervisor",
                                     "pin": "246810"})
    ann = await admin.post("/auth/sign-in", {"attendant": "ann", "pin": "135791"})
    sue = await admin.post("/auth/sign-in", {"attendant": "sue", "pin": "246810"})
    await admin.aclose()
    as_ann = await as_nobody(shared_lot, PRIVILEGED[:1], session=ann["token"])
    assert as_ann[0][0] == 403 and "supervisor" in as_ann[0][1]
    as_sue = await as_nobody(shared_lot, PRIVILEGED[:1], session=sue["token"])
    assert as_sue[0][0] == 200, as_sue
    row = await shared_lot.service.ledger.fetchone(
        "SELECT payload FROM events WHERE type = 'counts.reset'")
    assert json.loads(row[0])["attendant"] == "sue"  # the session's name, not "mallory"


async def test_a_stranger_guessing_pins_does_not_lock_the_booth_out(shared_lot):
    admin = ServiceClient(shared_lot.socket_path, local_admin=True)
    await admin.post("/attendants", {"id": "ann", "name": "Ann", "role": "attendant",
                                     "pin": "135791"})
    guesses = [["POST", "/auth/sign-in", {"attendant": "ann", "pin": f"00000{i}"}]
               for i in range(7)]
    answers = await as_nobody(shared_lot, guesses)
    assert [a[0] for a in answers] == [401] * 7 and "locked here" in answers[-1][1]
    booth = ServiceClient(shared_lot.socket_path)  # the booth terminal: another OS user here
    assert (await booth.post("/auth/sign-in", {"attendant": "ann", "pin": "135791"}))["token"]
    row = await shared_lot.service.ledger.fetchone(
        "SELECT failures FROM signin_failures WHERE source = ? AND attendant_id = 'ann'",
        (f"uid:{NOBODY}",))
    assert row is not None and row[0] >= 5  # counted where it came from, kept in the ledger
    await admin.aclose()
    await booth.aclose()

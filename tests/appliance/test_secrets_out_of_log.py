"""Secrets are not facts: PIN hashes never enter the event log, older ledgers' hashes are
redacted by every reader, backups hold none, PINs are long enough, and a lockout cannot be
turned against the attendants."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.cli.diag.db import backup_ledger
from appliance.client import ServiceClient
from appliance.core.events import NewEvent
from appliance.errors import InputError
from appliance.ledger import Ledger
from appliance.ledger.schema import MIGRATIONS
from appliance.lot.attendants import Desk, SignInError, add_attendant, check_pin, hash_pin

LOT = "lot-1"


async def _log_text(ledger: Ledger) -> str:
    rows = await ledger.fetchall("SELECT payload FROM events ORDER BY seq")
    return "\n".join(r[0] for r in rows)


async def test_a_new_attendant_leaves_no_pin_hash_in_the_log_or_the_api(running_lot):
    admin = ServiceClient(running_lot.socket_path, local_admin=True)
    await admin.post("/attendants", {"id": "sue", "name": "Sue", "role": "supervisor",
                                     "pin": "246810"})
    ledger = running_lot.service.ledger
    assert "scrypt" not in await _log_text(ledger)
    events = await admin.get("/events", limit=1000)
    assert "scrypt" not in json.dumps(events)
    added = [e for e in events if e["type"] == "attendant.added"]
    assert added and added[0]["payload"]["by"] == "local:root"
    stored = await ledger.fetchone("SELECT secret_hash FROM credentials WHERE attendant_id='sue'")
    assert stored[0].startswith("scrypt$")
    assert (await admin.post("/auth/sign-in", {"attendant": "sue", "pin": "246810"}))["token"]
    await admin.aclose()


async def test_an_older_ledgers_pin_hash_is_redacted_by_every_reader(running_lot, tmp_path):
    ledger = running_lot.service.ledger
    legacy_hash = hash_pin("135791")
    # what versions before the credentials table wrote
    await ledger.append(NewEvent(type="attendant.added", payload={
        "attendant_id": "old", "name": "Old Timer", "role": "supervisor",
        "pin_hash": legacy_hash, "by": "admin (local socket)"}))
    client = ServiceClient(running_lot.socket_path, local_admin=True)
    # the PIN still works (taken into credentials) ...
    assert (await client.post("/auth/sign-in", {"attendant": "old", "pin": "135791"}))["token"]
    # ... but the API never shows the hash
    events = await client.get("/events", limit=1000)
    shown = next(e for e in events if e["type"] == "attendant.added")
    assert shown["payload"]["pin_hash"] == "[redacted]" and legacy_hash not in json.dumps(events)
    await client.aclose()
    # a backup holds neither the hash nor any credential, and still verifies
    out = tmp_path / "backup.sqlite3"
    result = await asyncio.to_thread(backup_ledger, running_lot.cfg.db_path(), out)
    assert result["verified"] and result["redacted_events"] == 1, result
    salt_hex = legacy_hash.split("$")[4]
    raw = out.read_bytes()
    assert b"scrypt$" not in raw and salt_hex.encode() not in raw
    copy = sqlite3.connect(out)
    assert copy.execute("SELECT COUNT(*) FROM credentials").fetchone()[0] == 0
    copy.close()
    # and the live ledger verifies as it is
    assert (await ledger.verify()).ok


async def test_a_redacted_event_is_the_only_content_a_verify_accepts_unhashed(tmp_path: Path):
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=LOT, tz=UTC)
    await ledger.append(NewEvent(type="attendant.added", payload={
        "attendant_id": "old", "name": "Old", "role": "attendant", "pin_hash": hash_pin("135791"),
        "by": "x"}))
    await ledger.append(NewEvent(type="gate.manual_open", payload={"lane": "in-1",
                                                                   "attendant": "a",
                                                                   "reason": "r"}))
    await ledger.close()
    db = sqlite3.connect(tmp_path / "l.sqlite3")
    db.execute("DROP TRIGGER events_no_update")
    db.execute("UPDATE events SET payload = json_set(payload, '$.pin_hash', '[redacted]') "
               "WHERE type = 'attendant.added'")
    db.commit()
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=LOT, tz=UTC)
    assert (await ledger.verify()).ok  # redaction of a secret field: accepted
    await ledger.close()
    db.execute("UPDATE events SET payload = json_set(payload, '$.reason', '[redacted]') "
               "WHERE type = 'gate.manual_open'")
    db.commit()
    db.close()
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=LOT, tz=UTC)
    report = await ledger.verify()  # any other edit still breaks the chain
    await ledger.close()
    assert not report.ok and any("does not match its content" in p for p in report.problems)


async def test_the_migration_moves_hashes_out_of_the_attendants_table(tmp_path: Path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:11], start=1):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute("INSERT INTO attendants(id, name, role, pin_hash, added_utc, added_seq) "
                 "VALUES ('ann', 'Ann', 'attendant', ?, '2026-01-01T00:00:00+00:00', 1)",
                 (hash_pin("112233"),))
    conn.commit()
    conn.close()
    ledger = await Ledger.open(path, lot_id=LOT, tz=UTC)
    columns = {r[1] for r in await ledger.fetchall("PRAGMA table_info(attendants)")}
    assert "pin_hash" not in columns
    session = await Desk().sign_in(ledger, attendant_id="ann", pin="112233")
    assert session.attendant_id == "ann"
    await ledger.close()


@pytest.mark.parametrize("pin", ["1234", "12345", "1234567890123", "too short!", "abc",
                                 " padded passphrase ", "x" * 129])
def test_short_or_odd_pins_are_refused(pin):
    with pytest.raises(InputError, match="6 to 12 digits"):
        check_pin(pin)


@pytest.mark.parametrize("pin", ["123456", "000000000000", "correct horse battery"])
def test_six_digits_or_a_passphrase_are_taken(pin):
    assert check_pin(pin) == pin


class _Wall:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


async def test_a_lockout_is_per_source_and_survives_a_restart(tmp_path: Path):
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=LOT, tz=UTC)
    await add_attendant(ledger, attendant_id="ann", name="Ann", role="attendant",
                        pin="135791", by="test")
    wall = _Wall()
    desk = Desk(wall=wall)
    for _ in range(5):
        with pytest.raises(SignInError, match="wrong PIN"):
            await desk.sign_in(ledger, attendant_id="ann", pin="000000", source="uid:1001")
    with pytest.raises(SignInError, match="locked here"):
        await desk.sign_in(ledger, attendant_id="ann", pin="135791", source="uid:1001")
    # the booth terminal (another source) is not locked out by the stranger
    assert (await desk.sign_in(ledger, attendant_id="ann", pin="135791", source="uid:1002"))
    # a restart forgets nothing
    await ledger.close()
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=LOT, tz=UTC)
    with pytest.raises(SignInError, match="locked here"):
        await Desk(wall=wall).sign_in(ledger, attendant_id="ann", pin="135791",
                                      source="uid:1001")
    wall.at += timedelta(minutes=6)  # the pair's lockout ends
    assert await Desk(wall=wall).sign_in(ledger, attendant_id="ann", pin="135791",
                                         source="uid:1001")
    await ledger.close()


async def test_guessing_many_attendants_backs_the_source_off(tmp_path: Path):
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=LOT, tz=UTC)
    await add_attendant(ledger, attendant_id="ann", name="Ann", role="attendant",
                        pin="135791", by="test")
    wall = _Wall()
    desk = Desk(wall=wall)
    for i in range(10):  # one wrong PIN each for ten names: no pair is locked
        with pytest.raises(SignInError, match="wrong PIN"):
            await desk.sign_in(ledger, attendant_id=f"user{i}", pin="000000", source="ip:10.0.0.9")
    with pytest.raises(SignInError, match="from this terminal"):
        await desk.sign_in(ledger, attendant_id="ann", pin="135791", source="ip:10.0.0.9")
    assert await desk.sign_in(ledger, attendant_id="ann", pin="135791", source="uid:1002")
    wall.at += timedelta(seconds=3)  # the backoff after ten failures is 2 s
    assert await desk.sign_in(ledger, attendant_id="ann", pin="135791", source="ip:10.0.0.9")
    await ledger.close()

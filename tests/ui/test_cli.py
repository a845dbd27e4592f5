"""`lotedge attendants add/list`: through the running service, or into the ledger when it is down."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from appliance.cli.main import app
from appliance.ledger import Ledger
from appliance.lot.attendants import verify_pin


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


async def test_add_through_running_service(running_lot, tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.touch(mode=0o600)  # a PIN file must be owner-only
    pin_file.write_text("48214821\n")
    result = await asyncio.to_thread(
        _invoke, "attendants", "add", "sue", "--name", "Sue Ng", "--role", "supervisor",
        "--pin-file", str(pin_file), "--socket", str(running_lot.socket_path))
    assert result.exit_code == 0, result.output
    assert "through the running service" in result.output
    rows = await running_lot.service.ledger.fetchall(
        "SELECT payload FROM events WHERE type = 'attendant.added'")
    payload = json.loads(rows[0][0])
    assert payload["attendant_id"] == "sue" and payload["role"] == "supervisor"
    assert "pin_hash" not in payload and "scrypt" not in rows[0][0]  # secrets are not facts
    stored = await running_lot.service.ledger.fetchone(
        "SELECT secret_hash FROM credentials WHERE attendant_id = 'sue'")
    assert verify_pin("48214821", stored[0]) and "48214821" not in stored[0]
    listed = await asyncio.to_thread(_invoke, "attendants", "list", "--socket",
                                     str(running_lot.socket_path))
    assert "sue" in listed.output and "supervisor" in listed.output


def test_add_offline_writes_the_ledger_and_rejects_bad_input(counter_lot, tmp_path):
    config = counter_lot.source_path
    pin_file = tmp_path / "pin"
    pin_file.touch(mode=0o600)  # a PIN file must be owner-only
    pin_file.write_text("12341234")
    ok = _invoke("attendants", "add", "ann", "--name", "Ann Lee", "--pin-file", str(pin_file),
                 "--config", config)
    assert ok.exit_code == 0, ok.output
    assert "service not running" in ok.output
    again = _invoke("attendants", "add", "ann", "--name", "Ann", "--pin-file", str(pin_file),
                    "--config", config)
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    pin_file.write_text("12")
    short = _invoke("attendants", "add", "bob", "--name", "Bob", "--pin-file", str(pin_file),
                    "--config", config)
    assert short.exit_code != 0 and "6 to 12 digits" in str(short.exception)
    pin_file.write_text("56785678")
    role = _invoke("attendants", "add", "bob", "--name", "Bob", "--role", "boss",
                   "--pin-file", str(pin_file), "--config", config)
    assert role.exit_code != 0 and "role: must be one of" in str(role.exception)

    async def stored():
        ledger = await Ledger.open(counter_lot.db_path(), lot_id=counter_lot.lot.id,
                                   tz=counter_lot.lot.tz)
        try:
            return [dict(r) for r in await ledger.fetchall("SELECT id, role FROM attendants")]
        finally:
            await ledger.close()

    assert asyncio.run(stored()) == [{"id": "ann", "role": "attendant"}]

"""Attendants, sign-in, role gating and shift close over the service API."""

from __future__ import annotations

import json

import pytest

from appliance.client import ApiError, ServiceClient
from appliance.lot.attendants import hash_pin, verify_pin


async def _events(service, event_type):
    rows = await service.ledger.fetchall("SELECT payload FROM events WHERE type = ?", (event_type,))
    return [json.loads(r[0]) for r in rows]


def test_pin_hash_is_salted_scrypt_and_verifies():
    first, second = hash_pin("48214821"), hash_pin("48214821")
    assert first.startswith("scrypt$") and first != second and "48214821" not in first
    assert verify_pin("48214821", first) and not verify_pin("48224822", first)
    assert not verify_pin("48214821", "garbage")
    with pytest.raises(ValueError, match="pin"):
        hash_pin("12a4")


async def _staff(client):
    admin = ServiceClient(client.socket_path, local_admin=True)  # as `lotedge attendants add`
    await admin.post("/attendants", {"id": "ann", "name": "Ann", "role": "attendant",
                                     "pin": "11111111"})
    await admin.post("/attendants", {"id": "sue", "name": "Sue", "role": "supervisor",
                                     "pin": "22222222"})
    await admin.aclose()


async def test_sign_in_opens_shift_and_stamps_identity(running_lot):
    service = running_lot.service
    client = ServiceClient(running_lot.socket_path)
    await _staff(client)
    added = await _events(service, "attendant.added")
    assert [a["attendant_id"] for a in added] == ["ann", "sue"]
    assert all("pin_hash" not in a for a in added)  # the hashes live in credentials only
    with pytest.raises(ApiError) as info:
        await client.post("/auth/sign-in", {"attendant": "ann", "pin": "99999999"})
    assert info.value.status == 401
    # Once attendants exist, commands need a session.
    with pytest.raises(ApiError) as info:
        await client.post("/lanes/in-1/open", {"attendant": "ann", "reason": "x"})
    assert info.value.status == 401
    session = await client.post("/auth/sign-in", {"attendant": "ann", "pin": "11111111"})
    assert session["role"] == "attendant" and "gate.open" in session["permissions"]
    client.set_session(session["token"])
    await client.post("/lanes/in-1/open", {"attendant": "mallory", "reason": "card reader"})
    assert await _events(service, "gate.manual_open") == [
        {"lane": "in-1", "attendant": "ann", "reason": "card reader"}]
    opened = await _events(service, "shift.opened")
    assert opened == [{"shift_id": session["shift_id"], "attendant": "ann"}]
    assert (await _events(service, "attendant.signed_in"))[0]["attendant"] == "ann"
    # An attendant may not override a fee or close the shift.
    with pytest.raises(ApiError) as info:
        await client.post("/lanes/in-1/hold", {"reason": "event"})
    assert info.value.status == 403 and "supervisor" in str(info.value)
    with pytest.raises(ApiError) as info:
        await client.post("/shift/close", {"counted_cents": 0})
    assert info.value.status == 403
    await client.aclose()


async def test_shift_close_reports_cash_expected_vs_counted(running_lot):
    from appliance.lot.tickets import admit

    service = running_lot.service
    client = ServiceClient(running_lot.socket_path)
    await _staff(client)
    outcome = await admit(service.ledger, service.cfg, lane="in-1", plate="CASH123",
                          confidence=0.9, at=service.clock.now())
    sue = await client.post("/auth/sign-in", {"attendant": "sue", "pin": "22222222"})
    client.set_session(sue["token"])
    await client.post(f"/tickets/{outcome.ticket_id}/override",
                      {"fee_cents": 750, "reason": "agreed"})
    paid = await client.post(f"/tickets/{outcome.ticket_id}/pay-cash", {"amount_cents": 750})
    assert paid["status"] == "PAID"
    current = await client.get("/shift")
    assert current["expected_cents"] == 750 and current["cash_payments"] == 1
    report = await client.post("/shift/close", {"counted_cents": 700})
    assert (report["expected_cents"], report["counted_cents"], report["difference_cents"]) == (
        750, 700, -50)
    closed = await _events(service, "shift.closed")
    assert closed[0]["difference_cents"] == -50 and closed[0]["closed_by"] == "sue"
    with pytest.raises(ApiError) as info:  # the shift's sessions end with it
        await client.get("/shift")
    assert info.value.status == 401
    await client.aclose()


async def test_with_no_attendants_only_the_local_administrator_acts(running_lot):
    client = ServiceClient(running_lot.socket_path)  # the socket alone is no identity
    with pytest.raises(ApiError) as info:
        await client.post("/lanes/in-2/open", {"attendant": "tech", "reason": "commissioning"})
    assert info.value.status == 401 and "lotedge attendants add" in str(info.value)
    assert await _events(running_lot.service, "gate.manual_open") == []
    admin = ServiceClient(running_lot.socket_path, local_admin=True)  # root, kernel-checked
    await admin.post("/lanes/in-2/open", {"attendant": "tech", "reason": "commissioning"})
    assert (await _events(running_lot.service, "gate.manual_open"))[0]["attendant"] == "tech"
    await client.aclose()
    await admin.aclose()


async def test_wrong_pins_lock_the_attendant(running_lot):
    client = ServiceClient(running_lot.socket_path)
    await _staff(client)
    for _ in range(5):
        with pytest.raises(ApiError):
            await client.post("/auth/sign-in", {"attendant": "ann", "pin": "00000000"})
    with pytest.raises(ApiError) as info:
        await client.post("/auth/sign-in", {"attendant": "ann", "pin": "11111111"})
    assert info.value.status == 401 and "locked" in str(info.value)
    assert len(await _events(running_lot.service, "attendant.sign_in_failed")) == 5
    await client.aclose()


async def test_shift_routes_need_the_api_token_over_tcp(running_lot):
    import httpx

    from appliance.api.app import create_app

    app = create_app(running_lot.service.runtime, running_lot.service.probes, token="s3cret")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        r = await http.get("/attendants")
        assert r.status_code == 401
        r = await http.get("/attendants", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json() == []
        r = await http.post("/attendants", headers={"Authorization": "Bearer s3cret"},
                            json={"id": "eve", "name": "Eve", "role": "technician",
                                  "pin": "12341234"})
        assert r.status_code == 401  # over TCP adding staff needs a supervisor session


async def test_sensor_states_per_level_and_type(spot_lot):
    from tests.conftest import RunningService

    async with RunningService(spot_lot) as running:
        ledger = running.service.ledger
        first = (await ledger.fetchone("SELECT id, level_id, type FROM spots ORDER BY id"))
        # No event sets spots.sensor_state yet (the spot-sensor driver will); set the
        # projection column as that projection would. Every other spot stays UNKNOWN.
        async with ledger.transaction() as tx:
            await tx.execute("UPDATE spots SET sensor_state = 'OCCUPIED' WHERE id = ?",
                             (first["id"],))
        client = ServiceClient(running.socket_path)
        rows = await client.get("/availability/sensors")
        await client.aclose()
    spots = len(spot_lot.spots)
    assert sum(r["spots"] for r in rows) == spots
    assert sum(r["sensor_occupied"] for r in rows) == 1
    assert sum(r["unknown"] for r in rows) == spots - 1
    mine = [r for r in rows if (r["level"], r["spot_type"]) == (first["level_id"], first["type"])]
    assert mine[0]["sensor_occupied"] == 1

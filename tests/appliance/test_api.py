"""The local API over the Unix socket: the same commands as the lanes, audited in the ledger."""

from __future__ import annotations

import asyncio
import json

import pytest

from appliance.client import ApiError, ServiceClient
from appliance.lot.tariffs import tariff_id
from drivers.loops import SimulatedLoop


async def _events(service, event_type):
    rows = await service.ledger.fetchall("SELECT payload FROM events WHERE type = ?", (event_type,))
    return [json.loads(r[0]) for r in rows]


async def test_health_and_availability(running_lot):
    client = ServiceClient(running_lot.socket_path, local_admin=True)
    health = await client.get("/health")
    assert health["ok"] and health["lot_id"] == "test-lot"
    assert {lane["lane"] for lane in health["lanes"]} == {"in-1", "in-2", "out-1", "out-2"}
    assert health["tariff"] == {"id": tariff_id(running_lot.cfg.tariff), "source": "config",
                                "hourly_cents": 300, "daily_max_cents": 2400}
    av = await client.get("/availability")
    assert av["capacity"] == 2 * (40 + 10 + 5 + 5)
    assert av["free"] == av["capacity"]
    await client.aclose()


async def test_manual_open_needs_reason_and_is_audited(running_lot):
    client = ServiceClient(running_lot.socket_path, local_admin=True)
    with pytest.raises(ApiError) as info:
        await client.post("/lanes/in-1/open", {"attendant": "ann"})
    assert info.value.status == 400 and "reason" in str(info.value)
    await client.post("/lanes/in-1/open", {"attendant": "ann", "reason": "broken card reader"})
    gate = running_lot.service.lanes["in-1"].gate  # up or down whatever the relay's wiring
    for _ in range(100):
        if gate.is_open:
            break
        await asyncio.sleep(0.01)
    assert gate.is_open
    events = await _events(running_lot.service, "gate.manual_open")
    assert events == [{"lane": "in-1", "attendant": "ann", "reason": "broken card reader"}]
    await client.aclose()


async def test_close_refused_while_safety_loop_occupied(running_lot):
    client = ServiceClient(running_lot.socket_path, local_admin=True)
    service = running_lot.service
    await client.post("/lanes/in-1/open", {"attendant": "ann", "reason": "test"})
    safety = SimulatedLoop(service.pin_factory, 17)
    safety.occupy()
    await asyncio.sleep(0.05)  # past the 10 ms debounce
    with pytest.raises(ApiError) as info:
        await client.post("/lanes/in-1/close", {"attendant": "ann"})
    assert info.value.status == 409 and "safety loop" in str(info.value)
    assert service.lanes["in-1"].gate.is_open  # still open
    assert len(await _events(service, "gate.close_refused")) == 1
    safety.clear()
    await asyncio.sleep(0.05)
    await client.aclose()


async def test_unknown_lane_is_404(running_lot):
    client = ServiceClient(running_lot.socket_path, local_admin=True)
    with pytest.raises(ApiError) as info:
        await client.post("/lanes/nope/open", {"attendant": "a", "reason": "r"})
    assert info.value.status == 404
    await client.aclose()


async def test_ticket_search_override_and_void(running_lot):
    from appliance.lot.tickets import admit

    service = running_lot.service
    outcome = await admit(service.ledger, service.cfg, lane="in-1", plate="ABC1234",
                          confidence=0.9, at=service.clock.now())
    client = ServiceClient(running_lot.socket_path, local_admin=True)
    found = await client.get("/tickets", q="abc-123")
    assert [t["id"] for t in found] == [outcome.ticket_id]
    fuzzy = await client.get("/tickets", q="A8C1234")
    assert [t["id"] for t in fuzzy] == [outcome.ticket_id]
    ticket = await client.post(f"/tickets/{outcome.ticket_id}/override",
                               {"fee_cents": 500, "attendant": "bob", "reason": "regular"})
    assert ticket["fee"]["override_cents"] == 500 and ticket["fee"]["due_cents"] == 500
    with pytest.raises(ApiError):
        await client.post(f"/tickets/{outcome.ticket_id}/override",
                          {"fee_cents": -1, "attendant": "bob", "reason": "x"})
    before = (await client.get("/availability"))["occupied"]
    await client.post(f"/tickets/{outcome.ticket_id}/void", {"attendant": "bob", "reason": "test"})
    await asyncio.sleep(0.05)
    assert (await client.get("/availability"))["occupied"] == before - 1
    overrides = await _events(service, "ticket.fee_overridden")
    assert overrides[0]["attendant"] == "bob" and overrides[0]["fee_cents"] == 500
    await client.aclose()


async def test_malformed_body_is_400(running_lot):
    import httpx

    transport = httpx.AsyncHTTPTransport(uds=str(running_lot.socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://x",
                                 headers={"X-Lotedge-Local-Admin": "1"}) as raw:
        r = await raw.post("/lanes/in-1/open", content=b"{not json")
        assert r.status_code == 400 and "JSON" in r.json()["error"]

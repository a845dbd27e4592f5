"""The booth's API beyond printing, over the real socket: the activity feed, cars with no plate
read, cash with change, the lost-ticket fee and the shift report, each as a role may use it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from appliance.client import ApiError, ServiceClient
from appliance.lot.tickets import admit
from tests.ui.test_attendant_app import _events, _staff


async def _signed_in(running, who: str, pin: str) -> ServiceClient:
    client = ServiceClient(running.socket_path)
    session = await client.post("/auth/sign-in", {"attendant": who, "pin": pin})
    client.set_session(session["token"])
    return client


async def test_the_activity_feed_is_for_signed_in_staff(running_lot):
    await _staff(running_lot)
    anonymous = ServiceClient(running_lot.socket_path)
    ann = await _signed_in(running_lot, "ann", "11111111")
    try:
        with pytest.raises(ApiError) as refused:
            await anonymous.get("/activity")
        assert refused.value.status == 401
        feed = await ann.get("/activity", limit=5)
        assert feed[0]["type"] == "attendant.signed_in" and feed[0]["text"] == (
            "SIGN IN ann (attendant)")
        with pytest.raises(ApiError, match="limit must be between 1 and 500"):
            await ann.get("/activity", limit=0)
    finally:
        await anonymous.aclose()
        await ann.aclose()


async def test_no_plate_search_needs_a_window_with_offsets(running_lot):
    service = running_lot.service
    now = service.clock.now()
    ticket = await admit(service.ledger, service.cfg, lane="in-1", plate=None, confidence=0,
                         at=now - timedelta(minutes=30))
    await _staff(running_lot)
    ann = await _signed_in(running_lot, "ann", "11111111")
    try:
        local = now.astimezone(service.cfg.lot.tz)
        found = await ann.get("/tickets", no_plate="1", lane="in-1",
                              **{"from": (local - timedelta(hours=1)).isoformat(),
                                 "to": local.isoformat()})
        assert [t["id"] for t in found] == [ticket.ticket_id]
        assert await ann.get("/tickets", no_plate="1", lane="in-2",
                             **{"from": (local - timedelta(hours=1)).isoformat(),
                                "to": local.isoformat()}) == []
        with pytest.raises(ApiError, match="give the time with its offset"):
            await ann.get("/tickets", no_plate="1", **{"from": "2026-03-14T09:00",
                                                        "to": local.isoformat()})
        with pytest.raises(ApiError, match="window is empty"):
            await ann.get("/tickets", no_plate="1", **{"from": local.isoformat(),
                                                        "to": local.isoformat()})
    finally:
        await ann.aclose()


async def test_short_cash_is_refused_and_nothing_is_recorded(running_lot):
    service = running_lot.service
    ticket = await admit(service.ledger, service.cfg, lane="in-1", plate="SHT0001",
                         confidence=0.9, at=service.clock.now() - timedelta(minutes=90))
    await _staff(running_lot)
    ann = await _signed_in(running_lot, "ann", "11111111")
    try:
        with pytest.raises(ApiError, match="less than the 600 cents due"):
            await ann.post(f"/tickets/{ticket.ticket_id}/pay-cash",
                           {"amount_cents": 600, "tendered_cents": 599})
        assert await _events(service, "payment.recorded") == []
        paid = await ann.post(f"/tickets/{ticket.ticket_id}/pay-cash",
                              {"amount_cents": 600, "tendered_cents": 1000})
        assert paid["status"] == "PAID" and paid["cash"] == {
            "amount_cents": 600, "tendered_cents": 1000, "change_cents": 400}
    finally:
        await ann.aclose()


async def test_an_attendant_may_charge_the_lost_ticket_fee_but_not_override(running_lot):
    service = running_lot.service
    ticket = await admit(service.ledger, service.cfg, lane="in-1", plate="LST0002",
                         confidence=0.9, at=service.clock.now() - timedelta(hours=30))
    await _staff(running_lot)
    ann = await _signed_in(running_lot, "ann", "11111111")
    try:
        before = await ann.get(f"/tickets/{ticket.ticket_id}")
        assert before["lost_fee_cents"] == before["fee"]["total_cents"] > 2400  # a long stay
        with pytest.raises(ApiError, match="needs role supervisor"):
            await ann.post(f"/tickets/{ticket.ticket_id}/override",
                           {"fee_cents": 0, "reason": "x"})
        lost = await ann.post(f"/tickets/{ticket.ticket_id}/lost", {})
        assert lost["override_cents"] == before["fee"]["total_cents"]
        report = await ann.get("/shift")
        assert (report["lost_tickets"], report["overrides"]) == (1, 0)
    finally:
        await ann.aclose()


async def test_a_ticket_lists_the_validation_codes_of_its_tariff(counter_lot):
    import dataclasses
    from decimal import Decimal

    from appliance.core.tariff import Validation
    from appliance.lot import commands
    from tests.conftest import RunningService

    tariff = dataclasses.replace(counter_lot.tariff, validations=(
        Validation(code="CAFE1H", name="Cafe", free_hours=1),
        Validation(code="MALL10", percent_off=Decimal(10))))
    cfg = dataclasses.replace(counter_lot, tariff=tariff)
    async with RunningService(cfg) as running:
        service = running.service
        outcome = await admit(service.ledger, cfg, lane="in-1", plate="VAL777", confidence=0.9,
                              at=running.clock.now())
        ticket = await commands.ticket_with_fee(service.runtime, outcome.ticket_id)
        assert ticket["validation_codes"] == [
            {"code": "CAFE1H", "label": "Validation CAFE1H (Cafe): 1 free hour"},
            {"code": "MALL10", "label": "Validation MALL10: 10% off"}]


def test_every_feed_line_reads_an_event_with_fields_missing():
    from appliance.lot.activity import LINES, line

    for event_type in LINES:
        assert line(event_type, {}).strip()  # older events lack newer fields: still one line
    assert line("ticket.fee_overridden", {"ticket_id": "T1", "fee_cents": 2400, "lost": True,
                                          "attendant": "ann", "reason": "lost ticket"}) == (
        "LOST TICKET T1 fee 24.00 by ann (lost ticket)")

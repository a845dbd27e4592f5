"""Merchant validations through the attendant commands: unknown codes refused, fee shows them."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from appliance.core.tariff import Validation
from appliance.errors import FeeError
from appliance.lot import commands
from appliance.lot.tickets import admit
from tests.conftest import RunningService


async def test_validation_is_checked_and_shown_in_the_fee(counter_lot):
    tariff = dataclasses.replace(counter_lot.tariff, validations=(
        Validation(code="CAFE1H", name="Cafe", free_hours=1),))
    cfg = dataclasses.replace(counter_lot, tariff=tariff)
    async with RunningService(cfg) as running:
        service = running.service
        entered = running.clock.now()
        outcome = await admit(service.ledger, cfg, lane="in-1", plate="VAL123", confidence=0.9,
                              at=entered)
        ticket_id = outcome.ticket_id
        with pytest.raises(FeeError, match="unknown validation code 'NOPE'"):
            await commands.apply_validation(service.runtime, ticket_id, code="NOPE", attendant="ann")
        events = await service.ledger.fetchall(
            "SELECT seq FROM events WHERE type = 'ticket.validation_applied'")
        assert events == []
        await commands.apply_validation(service.runtime, ticket_id, code="CAFE1H", attendant="ann")
        # 2 h 30 min: 3 started hours x 3.00 = 9.00, one free hour = -3.00
        ticket = await commands.ticket_with_fee(
            service.runtime, ticket_id, at=entered + timedelta(hours=2, minutes=30))
        assert ticket["validations"] == ["CAFE1H"]
        assert ticket["fee"]["total_cents"] == 600
        assert [line["amount_cents"] for line in ticket["fee"]["breakdown"]] == [900, -300]

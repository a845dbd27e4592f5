"""Booth arithmetic: change in integer cents, refusal of short cash, the lost-ticket fee."""

from __future__ import annotations

import pytest

from appliance.core.booth import change_cents, lost_ticket_fee_cents
from appliance.errors import InputError


def test_change_is_tendered_minus_due():
    assert change_cents(due_cents=1250, tendered_cents=2000) == 750
    assert change_cents(due_cents=1250, tendered_cents=1250) == 0
    assert change_cents(due_cents=0, tendered_cents=0) == 0


@pytest.mark.parametrize(("due", "tendered"), [(1250, 1249), (1, 0)])
def test_short_cash_is_refused(due, tendered):
    with pytest.raises(InputError, match="less than"):
        change_cents(due_cents=due, tendered_cents=tendered)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_amounts_are_whole_cents(bad):
    with pytest.raises(InputError, match="non-negative integer"):
        change_cents(due_cents=100, tendered_cents=bad)


def test_lost_ticket_fee_is_never_below_the_stay():
    assert lost_ticket_fee_cents(fee_now_cents=300, lost_fee_cents=2500) == 2500
    assert lost_ticket_fee_cents(fee_now_cents=7500, lost_fee_cents=2500) == 7500

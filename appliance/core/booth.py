"""Booth arithmetic: the change for cash tendered, and what a lost ticket costs (integer cents)."""

from __future__ import annotations

from appliance.errors import InputError


def change_cents(*, due_cents: int, tendered_cents: int) -> int:
    """The change to hand back for `tendered_cents` against `due_cents`; InputError when the
    cash tendered does not cover what is due (the booth never records a part payment)."""
    for name, value in (("due_cents", due_cents), ("tendered_cents", tendered_cents)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(f"{name} must be a non-negative integer")
    if tendered_cents < due_cents:
        raise InputError(f"cash tendered {tendered_cents} cents is less than the "
                         f"{due_cents} cents due")
    return tendered_cents - due_cents


def lost_ticket_fee_cents(*, fee_now_cents: int, lost_fee_cents: int) -> int:
    """The fee of a ticket whose paper is lost: the tariff's lost-ticket fee, or the fee for
    the recorded stay if that is higher (losing the ticket must not make a long stay cheaper)."""
    return max(fee_now_cents, lost_fee_cents)

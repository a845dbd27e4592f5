"""Exact money: integer cents, one rounding rule (half up to the cent, applied once at the end)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

_WHOLE_CENT = Decimal(1)


def round_cents(amount: Decimal) -> int:
    """Round a Decimal amount of cents half up to a whole cent."""
    return int(amount.quantize(_WHOLE_CENT, rounding=ROUND_HALF_UP))


def cents_text(amount_cents: int) -> str:
    """Render cents as a plain amount: 1234 -> '12.34', -5 -> '-0.05'."""
    sign = "-" if amount_cents < 0 else ""
    whole, cents = divmod(abs(amount_cents), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_cents(amount_cents: int, currency: str = "USD") -> str:
    """Render cents for people: 1234 -> '12.34 USD'."""
    return f"{cents_text(amount_cents)} {currency}"

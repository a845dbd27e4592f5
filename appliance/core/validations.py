"""Merchant validations: amount off, percentage off, free hours; never below zero, once per code.

They are applied in a fixed order whatever order they were presented in: free hours first, then
percentages (of what is left), then fixed amounts; each takes off at most what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from appliance.core.tariff import Tariff, Validation
from appliance.errors import FeeError

_HUNDRED = Decimal(100)


def _order(validation: Validation) -> tuple[int, str]:
    if validation.free_hours is not None:
        return 0, validation.code
    if validation.percent_off is not None:
        return 1, validation.code
    return 2, validation.code


def resolve_validations(tariff: Tariff, codes: Sequence[str]) -> tuple[Validation, ...]:
    """The tariff's validations for `codes`, in application order; unknown or repeated codes fail."""
    if not codes:
        return ()
    if isinstance(codes, str):
        raise TypeError("validations must be a sequence of codes, not one string")
    if len(codes) == 1 and codes[0] in tariff.validations_by_code:
        return (tariff.validations_by_code[codes[0]],)
    known = tariff.validations_by_code
    seen: set[str] = set()
    found: list[Validation] = []
    for code in codes:
        validation = known.get(code)
        if validation is None:
            hint = f"known: {', '.join(sorted(known))}" if known else "this lot has none"
            raise FeeError(f"unknown validation code {code!r} ({hint})")
        if code in seen:
            raise FeeError(f"validation code {code!r} given twice: each code applies once per ticket")
        seen.add(code)
        found.append(validation)
    return tuple(sorted(found, key=_order))


def apply_validations(amount: Decimal, validations: Sequence[Validation], *,
                      hour_value: Decimal) -> tuple[Decimal, list[tuple[str, Decimal]]]:
    """Take validations off an exact amount; return what is left and one (label, -off) per code.

    `hour_value` is what one hour is worth on this ticket (hourly rate times its multipliers).
    """
    lines: list[tuple[str, Decimal]] = []
    for validation in validations:
        if validation.free_hours is not None:
            off = validation.free_hours * hour_value
        elif validation.percent_off is not None:
            off = amount * validation.percent_off / _HUNDRED
        else:
            off = Decimal(validation.amount_off_cents)
        off = min(off, amount)
        amount -= off
        lines.append((validation.label, -off))
    return amount, lines

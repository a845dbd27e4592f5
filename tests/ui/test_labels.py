"""Display helpers: money as typed and shown at the booth (integer cents, never floats)."""

from __future__ import annotations

import pytest

from ui.labels import duration, gate_word, loop_word, money
from ui.screens.tickets import parse_amount_cents


@pytest.mark.parametrize(("text", "cents"), [("12.50", 1250), ("12", 1200), (" 0.05 ", 5),
                                              ("0", 0), ("1000.1", 100010)])
def test_amounts_parse_to_exact_cents(text, cents):
    assert parse_amount_cents(text) == cents


@pytest.mark.parametrize("text", ["12.505", "-1", "abc", "", "NaN", "Infinity", "1e3.5"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(ValueError, match="not an amount"):
        parse_amount_cents(text)


def test_money_and_words():
    assert money(1250, "USD") == "12.50 USD" and money(-50) == "-0.50" and money(None) == "-"
    assert duration(125) == "2h 05m" and duration(60 * 50) == "2d 2h"
    assert gate_word({"gate_open": True, "held_open": True}) == "HELD OPEN"
    assert gate_word({"gate_open": False}) == "CLOSED"
    assert loop_word(None) == "UNKNOWN" and loop_word(True) == "OCCUPIED"

"""The worked examples of docs/fees.md: each `lotedge quote` line there gives the total the page
computes by hand."""

from __future__ import annotations

import json
import re
import shlex
import sys

import pytest

from appliance.cli.main import main
from tests.conftest import REPO

PAGE = REPO / "docs" / "fees.md"
_EXAMPLE = re.compile(r"^\$ (lotedge quote .+)\n\s*(-?[\d,]+\.\d\d)\s+USD total$", re.M)


def examples() -> list[tuple[list[str], int]]:
    """(quote arguments, total in cents) of every console example on the page."""
    found = []
    for command, total in _EXAMPLE.findall(PAGE.read_text(encoding="utf-8")):
        args = shlex.split(command)[2:]
        found.append((args, round(float(total.replace(",", "")) * 100)))
    return found


def test_the_page_has_its_worked_examples():
    assert len(examples()) >= 10


@pytest.mark.parametrize(("args", "total_cents"), examples(),
                         ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_quote_gives_the_pages_total(args, total_cents, capsys, monkeypatch):
    args = [str(REPO / a) if a.startswith("config/") else a for a in args]
    monkeypatch.setattr(sys, "argv", ["lotedge", "quote", *args, "--json"])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    assert (done.value.code or 0) == 0, err
    got = json.loads(out)
    assert got["total_cents"] == total_cents
    assert sum(line["amount_cents"] for line in got["breakdown"]) == total_cents

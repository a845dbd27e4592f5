"""`lotedge quote`: answers for the demo lot's documented rules, and clear exit-2 errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli.main import main
from tests.conftest import REPO

DEMO = str(REPO / "config" / "demo-lot.toml")
COUNTER = str(REPO / "config" / "counter-lot.toml")

TOKYO_LOT = """
[lot]
id = "tokyo"
timezone = "Asia/Tokyo"
currency = "JPY"
mode = "counter"

[[levels]]
id = "G"
capacity = { REGULAR = 10 }

[tariff]
grace_minutes = 0
minimum_charge_cents = 300
hourly_cents = 300
daily_max_cents = 2000
"""


def run(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["lotedge", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def quote_json(args: list[str], capsys, monkeypatch) -> dict:
    code, out, err = run(["quote", "--config", DEMO, "--json", *args], capsys, monkeypatch)
    assert code == 0, err
    return json.loads(out)


def test_json_has_total_currency_duration_and_breakdown(capsys, monkeypatch):
    # Monday 10:00 EDT, 3 h 20 min: 4 started hours x 3.50 = 14.00, weekday peak x1.25
    got = quote_json(["--entry", "2026-03-09T10:00-04:00", "--exit", "2026-03-09T13:20-04:00"],
                     capsys, monkeypatch)
    assert got["total_cents"] == 1750 and isinstance(got["total_cents"], int)
    assert got["currency"] == "USD"
    assert got["duration_minutes"] == 200
    assert [line["amount_cents"] for line in got["breakdown"]] == [1400, 350]
    assert got["breakdown"][1]["label"] == "Weekday peak band x1.25"


@pytest.mark.parametrize(("args", "total_cents", "product", "rate"), [
    # EV x1.5, occupancy 85 % locks x1.425, CAFE15: 14.00 x1.25 x1.5 x1.425 x0.85 = 31.7953
    (["--entry", "2026-03-09T10:00-04:00", "--exit", "2026-03-09T13:20-04:00",
      "--spot-type", "ev", "--occupancy", "0.85", "--validation", "CAFE15"],
     3180, "hourly", "1.425"),
    # spring-forward Sunday: 01:30 EST -> 03:30 EDT is 1 h; evening band x0.8
    (["--entry", "2026-03-08T01:30-05:00", "--exit", "2026-03-08T03:30-04:00"],
     280, "hourly", "1"),
    # early bird: in at 07:00, out 18:30 -> flat 12.00 instead of 28.00
    (["--entry", "2026-03-09T07:00-04:00", "--exit", "2026-03-09T18:30-04:00"],
     1200, "flat", "1"),
    # concert night: flat 20.00 for a 2 h stay
    (["--entry", "2026-07-04T17:00-04:00", "--exit", "2026-07-04T19:00-04:00"],
     2000, "event", "1"),
    # marathon day x1.3 with 85 % occupancy x1.425 = x1.8525: 2 h = 7.00 x 1.8525 = 12.9675
    (["--entry", "2026-11-01T10:00-05:00", "--exit", "2026-11-01T12:00-05:00",
      "--occupancy", "0.85"], 1297, "hourly", "1.8525"),
    # a locked multiplier from a ticket, and validations stacking to zero
    (["--entry", "2026-03-14T10:00-04:00", "--exit", "2026-03-14T12:00-04:00",
      "--rate-multiplier", "2", "--validation", "MALL5", "--validation", "CINEMA2H"],
     0, "hourly", "2"),
    # 72 h 5 min: 3 x 28.00 + 1 started hour (entered Saturday 10:00, no band)
    (["--entry", "2026-03-14T10:00-04:00", "--exit", "2026-03-17T10:05-04:00"],
     3 * 2800 + 350, "hourly", "1"),
])
def test_documented_rules(args, total_cents, product, rate, capsys, monkeypatch):
    got = quote_json(args, capsys, monkeypatch)
    assert (got["total_cents"], got["product"], got["rate_multiplier"]) == (
        total_cents, product, rate)
    assert sum(line["amount_cents"] for line in got["breakdown"]) == total_cents


def test_lost_ticket(capsys, monkeypatch):
    assert quote_json(["--lost-ticket"], capsys, monkeypatch)["total_cents"] == 3500


def test_text_output_shows_lines_and_total(capsys, monkeypatch):
    code, out, _ = run(["quote", "-c", DEMO, "--entry", "2026-03-09T10:00-04:00",
                        "--exit", "2026-03-09T13:20-04:00"], capsys, monkeypatch)
    assert code == 0
    assert "14.00  3 h 20 min: 4 started hours x 3.50" in out
    assert "17.50  USD total" in out


def test_naive_times_are_lot_local_where_there_is_no_dst(tmp_path: Path, capsys, monkeypatch):
    lot = tmp_path / "tokyo.toml"
    lot.write_text(TOKYO_LOT)
    code, out, err = run(["quote", "-c", str(lot), "--json", "--entry", "2026-03-09T10:00",
                          "--exit", "2026-03-09T11:30+09:00"], capsys, monkeypatch)
    assert code == 0, err
    got = json.loads(out)
    assert (got["total_cents"], got["duration_minutes"], got["currency"]) == (600, 90, "JPY")
    assert got["entry"] == "2026-03-09T10:00:00+09:00"


@pytest.mark.parametrize(("args", "message"), [
    (["--entry", "2026-03-09T10:00", "--exit", "2026-03-09T12:00-04:00"],
     "--entry '2026-03-09T10:00' has no UTC offset and America/New_York observes DST"),
    (["--entry", "2026-03-09T12:00-04:00", "--exit", "2026-03-09T10:00-04:00"],
     "is before --entry"),
    (["--entry", "2026-03-09T10:00-04:00", "--exit", "2026-03-09T12:00-04:00",
      "--spot-type", "TRUCK"], "unknown spot type 'TRUCK'"),
    (["--entry", "2026-03-09T10:00-04:00", "--exit", "2026-03-09T12:00-04:00",
      "--validation", "FREEBIE"], "unknown validation code 'FREEBIE'"),
    (["--entry", "2026-03-09T10:00-04:00", "--exit", "2026-03-09T12:00-04:00",
      "--validation", "MALL5", "--validation", "MALL5"], "once per ticket"),
    (["--entry", "2026-03-09T10:00-04:00", "--exit", "2026-03-09T12:00-04:00",
      "--occupancy", "1.5"], "--occupancy: must be between 0 and 1"),
    (["--entry", "2026-03-09T10:00-04:00", "--exit", "2026-03-09T12:00-04:00",
      "--occupancy", "lots"], "--occupancy: not a number"),
    (["--entry", "yesterday", "--exit", "2026-03-09T12:00-04:00"],
     "--entry: not an ISO 8601 date-time"),
    (["--exit", "2026-03-09T12:00-04:00"], "give --entry and --exit"),
])
def test_bad_input_exits_2_with_one_line(args, message, capsys, monkeypatch):
    code, out, err = run(["quote", "--config", DEMO, *args], capsys, monkeypatch)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("lotedge: error: ")
    assert message in err


@pytest.mark.parametrize("args", [
    ["quote", "--entry", "2026-03-09T10:00-04:00"],                 # missing --config
    ["quote", "--config", DEMO, "--no-such-option"],
])
def test_usage_errors_exit_2(args, capsys, monkeypatch):
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 2
    assert "Usage" in err


def test_console_script_end_to_end():
    proc = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "quote", "--config", COUNTER, "--json",
         "--entry", "2026-03-28T23:30:00+00:00", "--exit", "2026-03-29T03:30:00+01:00"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    # Europe/London springs forward that night: 3 real hours, Saturday entry: weekend x0.8
    assert (got["duration_minutes"], got["total_cents"], got["currency"]) == (180, 600, "GBP")

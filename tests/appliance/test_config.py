"""Config validation: clear errors naming the key and the line; the shipped lots load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_config, parse_config
from appliance.core.types import LotMode, SpotType
from appliance.errors import ConfigError
from tests.conftest import REPO

DEMO = REPO / "config" / "demo-lot.toml"
COUNTER = REPO / "config" / "counter-lot.toml"


def test_demo_lot_has_every_spot_type_and_four_lanes():
    cfg = load_config(DEMO)
    assert cfg.lot.mode == LotMode.PER_SPOT
    assert len(cfg.levels) == 3
    assert 100 <= len(cfg.spots) <= 150
    assert {s.type for s in cfg.spots} == set(SpotType)
    assert len(cfg.entry_lanes()) == 2 and len(cfg.exit_lanes()) == 2
    assert len({s.id for s in cfg.spots}) == len(cfg.spots)


def test_counter_lot_has_no_spots_but_capacity():
    cfg = load_config(COUNTER)
    assert cfg.lot.mode == LotMode.COUNTER
    assert cfg.spots == ()
    assert sum(sum(lvl.capacity.values()) for lvl in cfg.levels) > 0


def _broken(old: str, new: str) -> str:
    text = DEMO.read_text()
    assert old in text
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


@pytest.mark.parametrize(
    ("old", "new", "key", "needle"),
    [
        ("arming_loop_pin = 22", 'arming_loop_pin = "five"', "lanes[1].arming_loop_pin",
         'arming_loop_pin = "five"'),
        ("hourly_cents = 350", "hourly_cent = 350", "tariff.hourly_cent", "hourly_cent ="),
        ('timezone = "America/New_York"', 'timezone = "Mars/Olympus"', "lot.timezone",
         'timezone = "Mars/Olympus"'),
        ('type = "LARGE"', 'type = "TRUCK"', "spot_ranges[7].type", 'type = "TRUCK"'),
        ("safety_loop_pin = 19", "safety_loop_pin = 4", "lanes[2].safety_loop_pin",
         "safety_loop_pin = 4"),
    ],
)
def test_errors_name_key_and_line(old, new, key, needle):
    text = _broken(old, new)
    with pytest.raises(ConfigError) as info:
        parse_config(text, path="lot.toml")
    err = info.value
    assert key in str(err)
    assert err.line == _line_of(text, needle)
    assert str(err).startswith(f"lot.toml:{err.line}: ")
    assert "\n" not in str(err)


def test_missing_required_key_is_named():
    text = _broken('id = "entry-1"\n', "")
    with pytest.raises(ConfigError, match=r"lanes\[0\]\.id: required key is missing"):
        parse_config(text)


def test_bad_toml_reports_line():
    with pytest.raises(ConfigError) as info:
        parse_config("[lot]\nid = \n", path="x.toml")
    assert info.value.line == 2


def test_float_money_is_rejected():
    text = _broken("hourly_cents = 350", "hourly_cents = 3.5")
    with pytest.raises(ConfigError, match="tariff.hourly_cents"):
        parse_config(text)


def test_cli_broken_config_exits_2_with_one_line(tmp_path: Path):
    bad = tmp_path / "broken.toml"
    bad.write_text(_broken("debounce_ms = 100", "debounce_ms = -5"))
    proc = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "run", "--config", str(bad), "--simulate"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "lanes[0].debounce_ms" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("zone", ["America", "America/" + "N" * 300])
def test_a_time_zone_folder_or_too_long_name_is_a_config_error(zone):
    # found by the atheris config target: ZoneInfo raises IsADirectoryError / OSError for these
    text = _broken('timezone = "America/New_York"', f'timezone = "{zone}"')
    with pytest.raises(ConfigError, match="lot.timezone"):
        parse_config(text)

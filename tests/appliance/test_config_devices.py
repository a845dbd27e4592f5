"""Config of the drivers: sensor buses, signs and device timing; errors name key and line."""

from __future__ import annotations

import pytest

from appliance.config import load_config, parse_config
from appliance.errors import ConfigError
from tests.conftest import REPO

DEMO = REPO / "config" / "demo-lot.toml"


def _broken(old: str, new: str) -> str:
    text = DEMO.read_text()
    assert old in text
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_demo_lot_declares_its_sensor_buses_and_sign():
    cfg = load_config(DEMO)
    assert [b.id for b in cfg.sensor_buses] == ["bus1", "bus2", "bus3"]
    assert {s.sensor.split(":")[0] for s in cfg.spots} == {"bus1", "bus2", "bus3"}
    (sign,) = cfg.signs
    assert sign.fields == {"L1": "L1", "L2": "L2", "L3": "L3", "ALL": "ALL"}
    occ = cfg.devices.occupancy("L1-H001")
    assert (occ.occupied_below_cm, occ.hysteresis_cm, occ.debounce_s, occ.heartbeat_s) == (
        150, 20, 3.0, 1800.0)


def test_bus_speed_defaults_by_protocol():
    cfg = load_config(DEMO)
    assert cfg.sensor_buses[0].line_baud == 19200  # written in the file
    assert cfg.sensor_buses[1].baud is None and cfg.sensor_buses[1].line_baud == 19200
    from appliance.config import SensorBusSection

    assert SensorBusSection(id="m1", protocol="maxbotix").line_baud == 9600
    # a MaxBotix port is one sensor: the demo's bus2 ranges (many addresses) cannot sit on one
    text = _broken('id = "bus2"\nport = "sim"', 'id = "bus2"\nport = "sim"\nprotocol = "maxbotix"')
    with pytest.raises(ConfigError, match=r"bus2:2.*from 1 to 1 on a maxbotix bus"):
        parse_config(text)


def test_per_spot_threshold_override():
    text = _broken("spot_heartbeat_s = 1800", 'spot_heartbeat_s = 1800\n'
                   'spot_thresholds_cm = { L1-M001 = 90 }')
    cfg = parse_config(text)
    assert cfg.devices.occupancy("L1-M001").occupied_below_cm == 90
    assert cfg.devices.occupancy("L1-M002").occupied_below_cm == 150


def test_a_spot_naming_an_unknown_bus_is_rejected():
    text = _broken('id = "bus3"', 'id = "bus9"')
    with pytest.raises(ConfigError, match="sensor 'bus3:1' names no \\[\\[sensor_buses\\]\\] id"):
        parse_config(text, path="lot.toml")


@pytest.mark.parametrize(("old", "new", "key"), [
    ('protocol = "modbus" ', 'protocol = "rs485" ', "sensor_buses[0].protocol"),
    ('sensor_model = "dfrobot-urm14"', 'sensor_model = "acme-9000"', "sensor_buses[0].sensor_model"),
    ('request_timeout_ms = 100', 'request_timeout_ms = 1', "sensor_buses[0].request_timeout_ms"),
    ("spot_hysteresis_cm = 20", "spot_hysteresis_cm = -5", "devices.spot_hysteresis_cm"),
    ('L3 = "L3"', 'L3 = "L7"', "signs[0].fields.L3"),
])
def test_bad_device_settings_name_the_key_and_line(old, new, key):
    text = _broken(old, new)
    with pytest.raises(ConfigError) as err:
        parse_config(text, path="lot.toml")
    assert f": {key}: " in str(err.value)
    assert err.value.line == _line_of(text, new)


def test_two_devices_on_one_port_are_rejected():
    text = _broken('id = "bus2"\nport = "sim"', 'id = "bus2"\nport = "/dev/ttyUSB0"')
    text = text.replace('id = "bus3"\nport = "sim"', 'id = "bus3"\nport = "/dev/ttyUSB0"')
    with pytest.raises(ConfigError, match="already used by sensor bus bus2"):
        parse_config(text)


@pytest.mark.parametrize("old, new, match", [
    # found by the atheris config target: a huge count was expanded into memory (OOM)
    ("count = 4\nprefix = \"L1-H\"", "count = " + "9" * 60 + "\nprefix = \"L1-H\"",
     r"spot_ranges\[0\]\.count: .*between 1 and 10000"),
    ("count = 4\nprefix = \"L1-H\"", "count = 300\nprefix = \"L1-H\"",
     r"spot_ranges\[0\]\.count: addresses 1\.\.300 pass 247"),
    ("first_sensor_address = 5", "first_sensor_address = 0",
     r"first_sensor_address: must be between 1 and 247"),
    # two ranges on the same addresses of one bus: the second would never read its own car
    ("first_sensor_address = 5", "first_sensor_address = 3",
     r"sensor 'bus1:3' is already spot L1-H003's"),
])
def test_spot_range_bounds_and_bus_addresses_are_named_errors(old, new, match):
    text = _broken(old, new)
    with pytest.raises(ConfigError, match=match) as info:
        parse_config(text)
    assert info.value.line is None or info.value.line >= 1


def test_too_many_spots_in_all_is_refused_before_expanding():
    ranges = "".join(f'\n[[spot_ranges]]\nlevel = "L1"\ntype = "REGULAR"\ncount = 10000\n'
                     f'prefix = "X{i}-"\n' for i in range(6))
    with pytest.raises(ConfigError, match=r"spot_ranges: \d+ spots in all; .* at most 50000"):
        parse_config(DEMO.read_text() + ranges)


def test_a_spot_sensor_address_must_be_a_bus_number():
    for bad in ("bus1:abc", "bus1:0", "bus1:248", "bus1:²"):
        text = DEMO.read_text() + (f'\n[[spots]]\nid = "Z-1"\nlevel = "L1"\ntype = "REGULAR"\n'
                                   f'sensor = "{bad}"\n')
        with pytest.raises(ConfigError, match="the address after ':' must be a number from 1 to 247"):
            parse_config(text)

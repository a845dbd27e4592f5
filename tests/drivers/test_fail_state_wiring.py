"""The fail-state table of docs/hardware.md, row by row, with gpiozero's MockFactory watching the
relay pin: what the barrier does on power loss, process crash and service stop for each
`fail_state` x `relay_energise`; and the loop contact wiring (NO/NC, level, cut wire)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.config import parse_config
from appliance.errors import ConfigError
from appliance.service import Service
from drivers.gate import BarrierGate
from drivers.loops import LoopDetector, SimulatedLoop
from tests.drivers.helpers import settle

RELAY, ARMING, SAFETY = 27, 4, 17

LOT = """
[lot]
id = "t"
mode = "counter"
[[levels]]
id = "G"
capacity = {{ REGULAR = 10 }}
[[lanes]]
id = "in"
direction = "entry"
arming_loop_pin = 4
safety_loop_pin = 17
barrier_relay_pin = 27
{lane}
[storage]
data_dir = "{data}"
"""


def lot(tmp: Path, lane: str):
    return parse_config(LOT.format(lane=lane, data=tmp / "var"), path="lot.toml")


def barrier_up(coil_on: bool, energise: str) -> bool:
    """What the barrier controller does with the relay coil (the wiring of the row)."""
    return coil_on if energise == "open" else not coil_on


def coil(factory: MockFactory) -> bool:
    """The relay coil as the relay pin drives it (the last level the pin was driven to)."""
    return bool(factory.pin(RELAY).states[-1].state)


# fail_state, relay_energise -> barrier on (power loss, crash, service stop)
TABLE = [
    ("open", "close", ("up", "up", "up")),
    ("secure", "open", ("down", "down", "down")),
]


@pytest.mark.parametrize(("fail_state", "energise", "expected"), TABLE)
async def test_fail_state_row(tmp_path: Path, fail_state: str, energise: str,
                              expected: tuple[str, str, str]):
    cfg = lot(tmp_path, f'fail_state = "{fail_state}"\nrelay_energise = "{energise}"')
    factory = MockFactory()
    service = Service(cfg, pin_factory=factory, api=False)
    await service.start()
    gate = service.lanes["in"].gate
    # running: the barrier obeys commands through the wiring of this row
    gate.open("test")
    assert barrier_up(coil(factory), energise)
    gate.hold_open(False)
    gate.close("test")
    assert not barrier_up(coil(factory), energise)
    # power loss: no coil current whatever the pin says
    assert ("up" if barrier_up(False, energise) else "down") == expected[0]
    # crash while closed: nothing of lotedge runs; the kernel frees the line, which the relay
    # module's input pull-down takes to "off" ...
    relay = factory.pin(RELAY)
    relay.function = "input"
    relay.pull = "down"
    assert ("up" if barrier_up(bool(relay.state), energise) else "down") == expected[1]
    # ... and systemd's restart starts the gate in its fail state before any car is seen
    restarted_factory = MockFactory()
    restarted = BarrierGate("in", RELAY, safety_loop=LoopDetector(
        "in/safety", SAFETY, pin_factory=restarted_factory, debounce_ms=0),
        pin_factory=restarted_factory, fail_state=cfg.lanes[0].fail_state,
        energised_opens=cfg.lanes[0].relay_energised_opens)
    assert barrier_up(coil(restarted_factory), energise) == (expected[1] == "up")
    restarted.close_pin()
    relay.function = "output"
    # service stop from "closed": the service applies the fail state, then releases the pin
    gate.close("test") if gate.is_open else None
    await service.stop()
    assert ("up" if barrier_up(coil(factory), energise) else "down") == expected[2]
    assert relay.function == "input"  # released: from here on the wiring holds it


@pytest.mark.parametrize(("fail_state", "energise"), [("open", "open"), ("secure", "close")])
def test_a_fail_state_the_wiring_cannot_hold_is_refused(tmp_path: Path, fail_state: str,
                                                       energise: str):
    with pytest.raises(ConfigError) as err:
        lot(tmp_path, f'fail_state = "{fail_state}"\nrelay_energise = "{energise}"')
    assert "lanes[0].relay_energise" in str(err.value) and "\n" not in str(err.value)


def test_relay_wiring_defaults_to_what_the_fail_state_needs(tmp_path: Path):
    assert not lot(tmp_path, 'fail_state = "open"').lanes[0].relay_energised_opens
    assert lot(tmp_path, 'fail_state = "secure"').lanes[0].relay_energised_opens


async def test_an_open_lane_goes_up_at_stop_even_with_a_car_on_the_safety_loop(tmp_path: Path):
    cfg = lot(tmp_path, 'fail_state = "open"')
    factory = MockFactory()
    service = Service(cfg, pin_factory=factory, api=False)
    await service.start()
    gate = service.lanes["in"].gate
    gate.hold_open(False)
    gate.close("test")
    SimulatedLoop(factory, SAFETY).occupy()
    await settle()
    await service.stop()
    assert barrier_up(coil(factory), "close")


@pytest.mark.parametrize(("contact", "level", "car", "clear", "cut"), [
    ("no", "high", 1, 0, "clear"),
    ("no", "low", 0, 1, "clear"),
    ("nc", "low", 1, 0, "present"),
    ("nc", "high", 0, 1, "present"),
])
async def test_loop_contact_wiring(contact: str, level: str, car: int, clear: int, cut: str):
    factory = MockFactory()
    det = LoopDetector("in/safety", SAFETY, pin_factory=factory, debounce_ms=0,
                       contact=contact, closed_level=level)
    pin = factory.pin(SAFETY)
    pin.drive_high() if car else pin.drive_low()
    await settle()
    assert det.present
    pin.drive_high() if clear else pin.drive_low()
    await settle()
    assert not det.present
    SimulatedLoop(factory, SAFETY).cut()
    await settle()
    assert det.present == (cut == "present")
    det.close()


def test_loop_fail_safe_needs_the_normally_closed_contact(tmp_path: Path):
    with pytest.raises(ConfigError) as err:
        lot(tmp_path, 'loop_fail_safe = true')
    assert "lanes[0].loop_fail_safe" in str(err.value)
    lane = lot(tmp_path, 'loop_fail_safe = true\nloop_contact = "nc"\nloop_closed_level = "low"'
               ).lanes[0]
    assert (lane.loop_contact, lane.loop_closed_level) == ("nc", "low")

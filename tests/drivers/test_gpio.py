"""The simulated lot's pin factory: gpiozero MockFactory pins whose history stays bounded."""

from __future__ import annotations

import pytest
from gpiozero import DigitalOutputDevice

from appliance.errors import DeviceError
from drivers.gpio import BoundedMockPin, make_pin_factory
from drivers.loops import LoopDetector, SimulatedLoop
from tests.drivers.helpers import settle


async def test_a_long_simulation_keeps_only_recent_pin_history():
    factory = make_pin_factory("mock")
    relay = DigitalOutputDevice(27, pin_factory=factory)  # as the barrier relay is driven
    loop = LoopDetector("in/arming", 17, pin_factory=factory, debounce_ms=0)
    contact = SimulatedLoop(factory, 17)
    edges = []
    loop.on_edge(edges.append)
    limit = 2 * BoundedMockPin.history
    try:
        for i in range(3 * limit):
            relay.value = i % 2 == 0
            contact.occupy() if i % 2 == 0 else contact.clear()
            assert len(factory.pin(27).states) < limit
            assert len(factory.pin(17).states) < limit
        await settle()
    finally:
        loop.close()
        relay.close()
    # the kept history is the latest, and the devices still saw every change
    assert [s.state for s in factory.pin(27).states[-4:]] == [True, False, True, False]
    assert factory.pin(17).states[-1].state is False and not loop.present
    assert len(edges) == 3 * limit


def test_an_unknown_factory_is_a_named_error():
    with pytest.raises(DeviceError, match="nonesuch"):
        make_pin_factory("nonesuch")

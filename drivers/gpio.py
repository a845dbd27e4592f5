"""GPIO pin factories: the real ones on a Pi, gpiozero's MockFactory in simulation and tests."""

from __future__ import annotations

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory, MockPin

from appliance.errors import DeviceError


class BoundedMockPin(MockPin):
    """gpiozero's MockPin keeping only its recent state changes.

    MockPin records every change in `states` for `assert_states`; a simulated lot runs for
    days, and its relays, limit switches and loops change state ~17 times a car, so the
    history is cut back to the last `history` changes whenever it reaches twice that.
    """

    history = 100

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if len(self.states) >= 2 * self.history:
            del self.states[:-self.history]
        return changed


def mock_pin_factory() -> MockFactory:
    """The simulated lot's pins: gpiozero's MockFactory with bounded pin histories."""
    return MockFactory(pin_class=BoundedMockPin)


def make_pin_factory(name: str) -> Factory:
    """Build the pin factory named in config (`mock`, `lgpio`, `rpigpio`, `native`)."""
    if name == "mock":
        return mock_pin_factory()
    try:
        if name == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        if name == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            return RPiGPIOFactory()
        if name == "native":
            from gpiozero.pins.native import NativeFactory

            return NativeFactory()
    except Exception as err:  # library raises ImportError, OSError, or its own errors
        raise DeviceError(f"cannot open GPIO backend {name!r}: {err}", code="gpio_backend",
                          device="gpio") from err
    raise DeviceError(f"unknown pin factory {name!r}", code="gpio_backend", device="gpio")

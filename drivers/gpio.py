"""GPIO pin factories: the real ones on a Pi, gpiozero's MockFactory in simulation and tests."""

from __future__ import annotations

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory

from appliance.errors import DeviceError


def make_pin_factory(name: str) -> Factory:
    """Build the pin factory named in config (`mock`, `lgpio`, `rpigpio`, `native`)."""
    if name == "mock":
        return MockFactory()
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

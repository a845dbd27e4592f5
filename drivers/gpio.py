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


MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")


def board_model(model_files: tuple[str, ...] = MODEL_FILES) -> str | None:
    """The board's model string from the device tree ('Raspberry Pi 5 Model B Rev 1.0'), or None."""
    for path in model_files:
        try:
            with open(path, "rb") as f:
                return f.read().rstrip(b"\0\n").decode("ascii", "replace")
        except OSError:
            continue
    return None


def auto_backend(model: str | None, *, have_lgpio: bool) -> str:
    """What `pin_factory = "auto"` picks on a board: lgpio on a Pi 5 (the only backend that
    drives its RP1 chip) and wherever it is installed, gpiozero's own `native` on older Pis
    without it; anything else is a one-line DeviceError naming what is missing."""
    if model is None or "Raspberry Pi" not in model:
        raise DeviceError(
            'pin_factory = "auto": this machine is not a Raspberry Pi (no device-tree model '
            f"naming one in {MODEL_FILES[0]}); use --simulate or pin_factory = \"mock\"",
            code="gpio_backend", device="gpio")
    if have_lgpio:
        return "lgpio"
    if "Raspberry Pi 5" in model or "Compute Module 5" in model:
        raise DeviceError(
            f'pin_factory = "auto": {model} needs the lgpio backend, which is not installed '
            "(pip install 'lotedge[pi]'; deploy/install.sh does)", code="gpio_backend",
            device="gpio")
    return "native"


def _have_lgpio() -> bool:
    try:
        import lgpio  # noqa: F401
    except ImportError:
        return False
    return True


def make_pin_factory(name: str, *, model_files: tuple[str, ...] = MODEL_FILES) -> Factory:
    """Build the pin factory named in config (`auto`, `mock`, `lgpio`, `rpigpio`, `native`)."""
    if name == "mock":
        return mock_pin_factory()
    if name == "auto":
        name = auto_backend(board_model(model_files), have_lgpio=_have_lgpio())
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
    except ImportError as err:
        raise DeviceError(f"GPIO backend {name!r} is not installed ({err.name} missing; "
                          "pip install 'lotedge[pi]', as deploy/install.sh does)",
                          code="gpio_backend", device="gpio") from err
    except Exception as err:  # library raises OSError, or its own errors
        raise DeviceError(f"cannot open GPIO backend {name!r}: {err}", code="gpio_backend",
                          device="gpio") from err
    raise DeviceError(f"unknown pin factory {name!r}", code="gpio_backend", device="gpio")

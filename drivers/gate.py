"""Barrier gate on a GPIO relay, with the safety interlock inside the driver."""

from __future__ import annotations

from gpiozero import DigitalOutputDevice, Factory

from appliance.core.types import FailState
from appliance.errors import DeviceError
from drivers.loops import LoopDetector


class GateInterlockError(DeviceError):
    """The barrier was told to close while a vehicle is under it."""

    def __init__(self, lane: str):
        super().__init__("refusing to close: vehicle on the safety loop", code="interlock",
                         device=lane)


class BarrierGate:
    """Relay output: energised = barrier up (open).

    Args:
        lane: the lane id, for errors and health.
        relay_pin: GPIO driving the barrier controller's open input.
        safety_loop: the loop under the barrier; closing is refused while it is occupied.
        pin_factory: gpiozero pin factory.
        fail_state: state on start-up (and what the wiring should do on power loss).
    """

    def __init__(self, lane: str, relay_pin: int, *, safety_loop: LoopDetector,
                 pin_factory: Factory, fail_state: FailState = FailState.OPEN):
        self.lane = lane
        self._safety = safety_loop
        self.fail_state = fail_state
        self._relay = DigitalOutputDevice(
            relay_pin, initial_value=fail_state == FailState.OPEN, pin_factory=pin_factory
        )
        self.held_open = False
        self.commands = 0

    @property
    def is_open(self) -> bool:
        """True while the relay holds the barrier up."""
        return bool(self._relay.value)

    def open(self) -> None:
        """Raise the barrier."""
        self.commands += 1
        self._relay.on()

    def close(self) -> None:
        """Lower the barrier unless a vehicle is under it or the lane is held open."""
        if self._safety.present:
            raise GateInterlockError(self.lane)
        if self.held_open:
            return
        self.commands += 1
        self._relay.off()

    def hold_open(self, hold: bool) -> None:
        """Keep the barrier up (events, emergencies) until released."""
        self.held_open = hold
        if hold:
            self.open()

    def close_pin(self) -> None:
        """Release the GPIO."""
        self._relay.close()

"""Barrier gate on MockFactory pins: interlock (property test), auto-close, hold-open, fail state."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.core.types import FailState
from drivers.gate import BarrierGate, GateCommand, GateInterlockError, SimulatedBarrier
from drivers.health import HealthRegistry
from drivers.loops import LoopDetector, SimulatedLoop
from tests.drivers.helpers import settle

RELAY, SAFETY, FEEDBACK = 27, 17, 16



def make(factory: MockFactory, **kwargs) -> tuple[BarrierGate, LoopDetector, SimulatedLoop]:
    safety = LoopDetector("in/safety", SAFETY, pin_factory=factory,
                          debounce_ms=kwargs.pop("debounce_ms", 0))
    gate = BarrierGate("in", RELAY, safety_loop=safety, pin_factory=factory, **kwargs)
    return gate, safety, SimulatedLoop(factory, SAFETY)


async def test_close_is_refused_while_a_vehicle_is_under_the_barrier():
    factory = MockFactory()
    gate, _, contact = make(factory, fail_state=FailState.SECURE)
    commands: list[GateCommand] = []
    gate.on_command(commands.append)
    gate.open("ticket T1")
    contact.occupy()
    await settle()
    with pytest.raises(GateInterlockError) as err:
        gate.close()
    assert err.value.code == "interlock"
    assert gate.is_open and factory.pin(RELAY).state == 1
    contact.clear()
    await settle()
    gate.close("passed")
    assert not gate.is_open and factory.pin(RELAY).state == 0
    assert [(c.command, c.result) for c in commands] == [
        ("open", "done"), ("close", "refused"), ("close", "done")]
    assert commands[0].payload() == {"lane": "in", "command": "open", "result": "done",
                                     "reason": "ticket T1", "open": True}


async def test_interlock_uses_the_raw_contact_before_debounce():
    factory = MockFactory()
    gate, safety, contact = make(factory, debounce_ms=200)
    contact.occupy()
    await settle()
    assert safety.present is False  # not yet debounced
    with pytest.raises(GateInterlockError):
        gate.close()
    safety.close()


async def test_auto_close_after_the_vehicle_clears_the_safety_loop():
    factory = MockFactory()
    gate, _, contact = make(factory, auto_close_ms=100, fail_state=FailState.SECURE)
    gate.open()
    contact.occupy()
    await settle(0.15)
    assert gate.is_open  # never closes while occupied
    contact.clear()
    await settle(0.01)
    assert gate.is_open
    await settle(0.15)
    assert not gate.is_open
    assert gate.log[-1].command == "auto_close" and gate.log[-1].result == "done"


async def test_closing_barrier_reverses_when_the_safety_contact_becomes_active():
    factory = MockFactory()
    gate, _, contact = make(factory, closing_travel_ms=500, debounce_ms=100,
                            reversal_close_ms=300)
    gate.open()
    gate.close()
    contact.occupy()  # raw contact, before debounce
    await settle()
    assert gate.is_open and gate.reversals == 1
    assert gate.log[-1].command == "reverse"
    # no auto-close configured, yet the driver closes the reversed barrier once it is clear
    await settle(0.15)  # the vehicle is there (debounced)
    contact.clear()
    await settle(0.2)
    assert gate.is_open
    await settle(0.25)
    assert not gate.is_open and gate.log[-1].command == "auto_close"


async def test_a_reversal_from_a_blip_shorter_than_the_debounce_still_closes():
    factory = MockFactory()
    gate, _, contact = make(factory, closing_travel_ms=500, debounce_ms=100,
                            reversal_close_ms=200)
    gate.open()
    gate.close()
    contact.occupy()
    await settle(0.01)
    contact.clear()  # never debounced: no edge at all
    await settle(0.1)
    assert gate.is_open and gate.reversals == 1
    await settle(0.2)
    assert not gate.is_open


async def test_hold_open_and_fail_states():
    factory = MockFactory()
    gate, _, _ = make(factory, fail_state=FailState.SECURE, auto_close_ms=0)
    assert not gate.is_open  # fail-secure: closed on power-up
    gate.hold_open(True, "event")
    gate.close()
    assert gate.is_open and gate.log[-1].result == "ignored"
    gate.hold_open(False)
    gate.close()
    assert not gate.is_open
    gate.apply_fail_state("service stopping")
    assert not gate.is_open
    factory2 = MockFactory()
    gate2, _, _ = make(factory2, fail_state=FailState.OPEN)
    assert gate2.is_open  # fail-open: up on power-up
    gate2.close()
    gate2.apply_fail_state("watchdog")
    assert gate2.is_open and gate2.held_open


async def test_fail_open_wiring_energises_the_relay_to_close():
    factory = MockFactory()
    gate, _, _ = make(factory, fail_state=FailState.OPEN, energised_opens=False)
    assert gate.is_open and factory.pin(RELAY).state == 0  # de-energised = open
    gate.close()
    assert factory.pin(RELAY).state == 1
    gate.close_pin()


async def test_position_feedback_fault_when_the_boom_does_not_move():
    factory = MockFactory()
    health = HealthRegistry()
    gate, _, _ = make(factory, fail_state=FailState.SECURE, feedback_pin=FEEDBACK,
                      feedback_timeout_ms=60, health=health)
    barrier = SimulatedBarrier(factory, RELAY, FEEDBACK, travel_s=0.02)
    task = asyncio.create_task(barrier.run())
    try:
        gate.open()
        await settle(0.1)
        assert gate.position == "open"
        assert health.get("in/gate").faults == {}
        barrier.jammed = True
        gate.close()
        await settle(0.1)
        assert gate.position == "open"
        assert "position" in health.get("in/gate").faults
        barrier.jammed = False
        await settle(0.05)
        assert gate.check_feedback()
        assert health.get("in/gate").faults == {}
    finally:
        task.cancel()


ACTIONS = st.lists(
    st.one_of(
        st.sampled_from(["occupy", "clear", "open", "close", "hold", "release", "fail"]),
        st.integers(0, 6),  # wait this many ms
    ),
    max_size=25,
)


async def _scenario(actions, fail_state: FailState) -> None:
    factory = MockFactory()
    gate, safety, contact = make(factory, debounce_ms=2, auto_close_ms=3, closing_travel_ms=5,
                                 fail_state=fail_state)
    relay = factory.pin(RELAY)

    def at_command(cmd: GateCommand) -> None:
        closing = cmd.command in ("close", "auto_close", "fail_state")
        if closing and cmd.result == "done" and not cmd.relay_on:
            assert not safety.present and not safety.raw_active, cmd

    gate.on_command(at_command)
    for action in actions:
        before_relay, before_contact = relay.state, safety.raw_active
        if isinstance(action, int):
            await settle(action / 1000)
        elif action == "occupy":
            contact.occupy()
        elif action == "clear":
            contact.clear()
        elif action == "open":
            gate.open()
        elif action == "close":
            try:
                gate.close()
            except GateInterlockError:
                assert safety.present or safety.raw_active
        elif action == "hold":
            gate.hold_open(True)
        elif action == "release":
            gate.hold_open(False)
        else:
            gate.apply_fail_state()
        await settle()
        # the relay never goes from open to closed while a vehicle stays on the safety loop
        if before_contact and safety.raw_active:
            assert not (before_relay and not relay.state), action
    safety.close()
    gate.close_pin()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS, st.sampled_from([FailState.OPEN, FailState.SECURE]))
def test_gate_never_closes_while_the_safety_loop_is_occupied(actions, fail_state):
    asyncio.run(_scenario(actions, fail_state))

"""The attendant app driven with Textual's pilot against the service running on the simulator."""

from __future__ import annotations

import asyncio
import json

from appliance.client import ServiceClient
from drivers.loops import SimulatedLoop
from ui.app import AttendantApp
from ui.screens.dialogs import FormDialog
from ui.screens.signin import SignInScreen


async def _events(service, event_type):
    rows = await service.ledger.fetchall("SELECT payload FROM events WHERE type = ?", (event_type,))
    return [json.loads(r[0]) for r in rows]


async def _staff(running):
    client = ServiceClient(running.socket_path)
    await client.post("/attendants", {"id": "ann", "name": "Ann Lee", "role": "attendant",
                                      "pin": "1111"})
    await client.post("/attendants", {"id": "sue", "name": "Sue Ng", "role": "supervisor",
                                      "pin": "2222"})
    await client.aclose()


async def _type(pilot, text: str) -> None:
    await pilot.press(*list(text))


async def _sign_in(pilot, attendant: str, pin: str) -> None:
    assert isinstance(pilot.app.screen, SignInScreen)
    await _type(pilot, attendant)
    await pilot.press("enter")
    await _type(pilot, pin)
    await pilot.press("enter")
    for _ in range(100):
        if pilot.app.session is not None:
            break
        await pilot.pause(0.02)


async def _until(pilot, condition, what: str):
    for _ in range(200):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sign_in_then_open_gate_with_reason_is_audited(running_lot):
    await _staff(running_lot)
    client = ServiceClient(running_lot.socket_path)
    app = AttendantApp(client, poll_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await _type(pilot, "ann")
        await pilot.press("enter")
        await _type(pilot, "9999")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.session is None and isinstance(app.screen, SignInScreen)
        assert "refused" in str(app.screen.query_one("#form-error").render())
        await _type(pilot, "1111")
        await pilot.press("enter")
        await _until(pilot, lambda: app.session is not None, "sign-in")
        assert app.session["attendant"] == "ann"
        await _until(pilot, lambda: app.query_one("#lanes-table").has_focus, "lanes focus")
        await pilot.press("o")  # first lane: in-1
        assert isinstance(app.screen, FormDialog)
        await pilot.press("enter")  # empty reason is refused by the form
        assert isinstance(app.screen, FormDialog)
        await _type(pilot, "ticket jam")
        await pilot.press("enter")
        await _until(pilot, lambda: running_lot.service.pin_factory.pin(27).state, "relay")
    opened = await _events(running_lot.service, "gate.manual_open")
    assert opened == [{"lane": "in-1", "attendant": "ann", "reason": "ticket jam"}]
    signed = await _events(running_lot.service, "attendant.signed_in")
    assert [s["attendant"] for s in signed] == ["ann"]
    await client.aclose()

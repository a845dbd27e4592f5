"""The attendant app driven with Textual's pilot against the service running on the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta

from appliance.client import ServiceClient
from drivers.loops import SimulatedLoop
from ui.app import AttendantApp
from ui.screens.dialogs import FormDialog
from ui.screens.signin import SignInScreen


async def _events(service, event_type):
    rows = await service.ledger.fetchall("SELECT payload FROM events WHERE type = ?", (event_type,))
    return [json.loads(r[0]) for r in rows]


async def _staff(running):
    client = ServiceClient(running.socket_path, local_admin=True)  # as `lotedge attendants add`
    await client.post("/attendants", {"id": "ann", "name": "Ann Lee", "role": "attendant",
                                      "pin": "11111111"})
    await client.post("/attendants", {"id": "sue", "name": "Sue Ng", "role": "supervisor",
                                      "pin": "22222222"})
    await client.aclose()


async def _type(pilot, text: str) -> None:
    await pilot.press(*list(text))


async def _fill(pilot, text: str) -> None:
    """Put `text` into the focused input (faster than a key per character) and press Enter."""
    pilot.app.focused.value = text
    await pilot.press("enter")


async def _sign_in(pilot, attendant: str, pin: str) -> None:
    assert isinstance(pilot.app.screen, SignInScreen)
    await _fill(pilot, attendant)
    await _fill(pilot, pin)
    for _ in range(100):
        if pilot.app.session is not None:
            break
        await pilot.pause(0.02)


@contextlib.asynccontextmanager
async def _booth(running, attendant: str, pin: str):
    """The staff registered, the app at 80x24 against the running service, signed in."""
    await _staff(running)
    client = ServiceClient(running.socket_path)
    app = AttendantApp(client, poll_s=0.5)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await _sign_in(pilot, attendant, pin)
            yield app, pilot
    finally:
        await client.aclose()


def _visible(app) -> str:
    """The text on the terminal now (what a person at the booth reads)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def _until(pilot, condition, what: str):
    for _ in range(200):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sign_in_then_open_gate_with_reason_is_audited(running_lot):
    await _staff(running_lot)
    client = ServiceClient(running_lot.socket_path)
    app = AttendantApp(client, poll_s=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await _type(pilot, "ann")
        await pilot.press("enter")
        await _type(pilot, "99999999")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.session is None and isinstance(app.screen, SignInScreen)
        assert "refused" in str(app.screen.query_one("#form-error").render())
        await _type(pilot, "11111111")
        await pilot.press("enter")
        await _until(pilot, lambda: app.session is not None, "sign-in")
        assert app.session["attendant"] == "ann"
        await _until(pilot, lambda: app.query_one("#lanes-table").has_focus, "lanes focus")
        await pilot.press("o")  # first lane: in-1
        assert isinstance(app.screen, FormDialog)
        await pilot.press("enter")  # empty reason is refused by the form
        assert isinstance(app.screen, FormDialog)
        await _fill(pilot, "ticket jam")
        await _until(pilot, lambda: running_lot.service.lanes["in-1"].gate.is_open, "relay")
    opened = await _events(running_lot.service, "gate.manual_open")
    assert opened == [{"lane": "in-1", "attendant": "ann", "reason": "ticket jam"}]
    signed = await _events(running_lot.service, "attendant.signed_in")
    assert [s["attendant"] for s in signed] == ["ann"]
    await client.aclose()


async def test_close_refused_while_safety_loop_occupied_shows_reason(running_lot):
    service = running_lot.service
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("o")
        await _fill(pilot, "let the truck out")
        safety = SimulatedLoop(service.pin_factory, 17)
        safety.occupy()
        await _until(pilot, lambda: app.query_one("LanesView").lanes[0]["safety"], "safety")
        await pilot.press("c")
        await _until(pilot, lambda: "REFUSED" in str(
            app.query_one("#lane-message").render()), "refusal")
        message = str(app.query_one("#lane-message").render())
        assert "in-1" in message and "safety loop" in message
        assert service.lanes["in-1"].gate.is_open  # barrier still open over the car
        assert "OCCUPIED" in str(app.query_one("#lanes-table").get_row_at(0)[4])
        safety.clear()
        await asyncio.sleep(0.05)
    refused = await _events(service, "gate.close_refused")
    assert refused[0]["attendant"] == "ann" and refused[0]["reason"] == "safety loop occupied"


async def test_search_plate_and_override_fee_as_supervisor(running_lot):
    from appliance.lot.tickets import admit

    service = running_lot.service
    outcome = await admit(service.ledger, service.cfg, lane="in-1", plate="KXP4417",
                          confidence=0.93, at=service.clock.now())
    async with _booth(running_lot, "sue", "22222222") as (app, pilot):
        await pilot.press("3")
        assert app.query_one("#ticket-search").has_focus
        await _fill(pilot, "kxp-44")  # partial, lower case, with a dash
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "ticket loaded")
        assert view.ticket["id"] == outcome.ticket_id
        assert "DUE" in _visible(app)
        await pilot.press("f")
        assert isinstance(app.screen, FormDialog)
        await _fill(pilot, "4.50")
        await _fill(pilot, "regular customer")
        await _until(pilot, lambda: view.ticket.get("override_cents") == 450, "override shown")
        assert view.ticket["fee"]["due_cents"] == 450
        assert "OVERRIDE" in _visible(app) and "4.50" in _visible(app)
    overrides = await _events(service, "ticket.fee_overridden")
    assert overrides == [{"ticket_id": outcome.ticket_id, "fee_cents": 450, "attendant": "sue",
                          "reason": "regular customer"}]


async def test_attendant_role_cannot_override(running_lot):
    from appliance.lot.tickets import admit

    service = running_lot.service
    await admit(service.ledger, service.cfg, lane="in-1", plate="ROLE123", confidence=0.9,
                at=service.clock.now())
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("3")
        await _fill(pilot, "ROLE123")
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "ticket loaded")
        await pilot.press("f")  # hidden for the attendant role: no dialog opens
        assert not isinstance(app.screen, FormDialog)
        # The service refuses it too, whatever the UI shows.
        refused = await app.command(f"/tickets/{view.ticket['id']}/override",
                                    {"fee_cents": 0, "reason": "x"}, quiet=True)
        assert refused is None and "supervisor" in app.last_error
    assert await _events(service, "ticket.fee_overridden") == []


async def test_stale_sensor_alarm_appears_and_is_acknowledged(running_lot):
    from appliance.lot.alarms import raise_alarm

    service = running_lot.service
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("4")
        alarm_id = await raise_alarm(service.ledger, code="sensor_stale", source="RS485:12",
                                     detail="no reading for 120 s")
        view = app.query_one("AlarmsView")
        await _until(pilot, lambda: [a["id"] for a in view.alarms] == [alarm_id], "alarm shown")
        row = app.query_one("#alarms-table").get_row_at(0)
        assert "NEW" in str(row[0]) and row[2] == "sensor_stale" and row[3] == "RS485:12"
        await pilot.press("a")
        assert isinstance(app.screen, FormDialog)
        await _fill(pilot, "sensor 12 reseated")
        await _until(pilot, lambda: view.alarms and view.alarms[0].get("acked_by") == "ann",
                     "ack shown")
        assert "ACKED" in str(app.query_one("#alarms-table").get_row_at(0)[0])
    acks = await _events(service, "alarm.acknowledged")
    assert acks == [{"alarm_id": alarm_id, "attendant": "ann", "note": "sensor 12 reseated"}]


async def test_service_down_shows_banner_and_recovers(counter_lot, tmp_path):
    from tests.conftest import RunningService

    socket = counter_lot.data_path(counter_lot.api.socket)
    client = ServiceClient(socket)
    app = AttendantApp(client, poll_s=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        banner = app.query_one("#banner")
        assert banner.display and "SERVICE DOWN" in str(banner.render())
        assert "SERVICE DOWN" in str(app.query_one("#status").render())
        async with RunningService(counter_lot):
            await _until(pilot, lambda: not banner.display, "banner gone")
            assert app.health["lot_id"] == "test-lot"
            assert "cloud: n/a" in str(app.query_one("#status").render())
            # the rate new tickets lock (the test lot's config tariff: 3.00/h)
            assert "| 3.00/h |" in str(app.query_one("#status").render())
        await _until(pilot, lambda: banner.display, "banner back")
    await client.aclose()


async def test_supervisor_takes_cash_and_closes_shift_with_counted_amount(running_lot):
    from appliance.lot.tickets import admit

    service = running_lot.service
    outcome = await admit(service.ledger, service.cfg, lane="in-1", plate="CSH5150",
                          confidence=0.9, at=service.clock.now() - timedelta(hours=2))
    async with _booth(running_lot, "sue", "22222222") as (app, pilot):
        await pilot.press("3")
        await _fill(pilot, "CSH5150")
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "ticket loaded")
        due = view.ticket["fee"]["due_cents"]
        assert due > 0
        await pilot.press("p")  # the dialog offers the amount due
        assert isinstance(app.screen, FormDialog)
        await pilot.press("enter")
        await _until(pilot, lambda: view.ticket["status"] == "PAID", "paid")
        await pilot.press("5")
        await _until(pilot, lambda: (app.shift or {}).get("expected_cents") == due, "expected")
        await pilot.press("k")
        assert isinstance(app.screen, FormDialog)
        await _fill(pilot, "1.00")
        await pilot.press("enter", "enter")  # this shift: no shift id, no reason
        await _until(pilot, lambda: isinstance(app.screen, SignInScreen), "signed out")
        report = str(app.query_one("#shift-report").render())
        assert "SHIFT CLOSED" in report and "SHORT" in report
    closed = await _events(service, "shift.closed")
    assert len(closed) == 1 and closed[0]["closed_by"] == "sue"
    assert (closed[0]["expected_cents"], closed[0]["counted_cents"]) == (due, 100)
    assert closed[0]["difference_cents"] == 100 - due
    paid = await _events(service, "payment.recorded")
    assert paid[0]["attendant"] == "sue" and paid[0]["ticket_id"] == outcome.ticket_id


def test_tariff_text_shows_the_rate_in_force_and_its_source():
    from ui.app import tariff_text

    assert tariff_text(None) == "" and tariff_text({"ok": True}) == ""
    assert tariff_text({"tariff": {"source": "config", "hourly_cents": 300}}) == "3.00/h"
    assert tariff_text({"tariff": {"source": "bundle", "hourly_cents": 950}}) == "9.50/h cloud"


def test_cloud_state_words():
    from ui.app import cloud_state

    assert cloud_state(None) == ("SERVICE DOWN", "cloud: n/a")
    assert cloud_state({"ok": True}) == ("LOCAL", "cloud: n/a")
    assert cloud_state({"sync": {"online": True, "backlog": 0}}) == ("ONLINE", "sync backlog 0")
    assert cloud_state({"sync": {"online": False, "backlog": 37}}) == (
        "OFFLINE", "sync backlog 37")


async def test_a_poll_that_finds_the_views_gone_ends_quietly(running_lot):
    """Quitting while a poll waits for the service: the app closes its widgets, then the poll's
    answer comes. The poll never raises (a NoMatches from a view whose table is gone crashed
    the app with a traceback). Here the lanes table is removed while the poll waits."""
    from textual.widgets import DataTable

    from ui.screens.lanes import LanesView

    client = ServiceClient(running_lot.socket_path)
    waiting, release = asyncio.Event(), asyncio.Event()
    get = client.get

    async def slow_get(path, **params):
        if path == "/health" and not release.is_set():
            waiting.set()
            await release.wait()
        return await get(path, **params)

    app = AttendantApp(client, poll_s=3600, sign_in=False)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            client.get = slow_get
            poll = asyncio.ensure_future(app.poll())
            await asyncio.wait_for(waiting.wait(), 10)
            await app.query_one(LanesView).query_one(DataTable).remove()
            release.set()
            await asyncio.wait_for(poll, 10)
            await pilot.pause(0.1)
        assert app.return_code in (0, None)
    finally:
        await client.aclose()

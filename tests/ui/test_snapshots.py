"""Screen snapshots of the attendant app at 80x24 and 120x40, from a recorded service state."""

from __future__ import annotations

import pytest

from appliance.client import ServiceClient
from ui.app import AttendantApp
from ui.fixed import fixed_transport

# Both sizes run in CI's fast subset: syrupy counts a deselected snapshot as unused and fails.
SIZES = [(80, 24), (120, 40)]


def _app() -> AttendantApp:
    # poll_s is long: the first poll on mount draws the recorded state, nothing changes after.
    return AttendantApp(ServiceClient("fixed", transport=fixed_transport()), poll_s=3600)


def _signed_in_at(tab: str, *keys: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        app.screen.query_one("#signin-id").value = "sue"
        await pilot.press("enter")
        app.screen.query_one("#signin-pin").value = "22222222"
        await pilot.press("enter")
        await pilot.pause()
        app.clear_notifications()
        await pilot.press(tab, *keys)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_sign_in_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_lanes_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_signed_in_at("1"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_availability_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_signed_in_at("2"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_tickets_screen(snap_compare, size):
    async def run_before(pilot) -> None:
        await _signed_in_at("3")(pilot)
        pilot.app.focused.value = "kxp44"
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_alarms_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_signed_in_at("4"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_shift_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_signed_in_at("5"))


def _on_ticket(query: str, *keys: str):
    async def run_before(pilot) -> None:
        await _signed_in_at("3")(pilot)
        pilot.app.focused.value = query
        await pilot.press("enter")
        view = pilot.app.query_one("TicketsView")
        for _ in range(200):  # the ticket's fee is loaded before its keys are pressed
            if view.ticket is not None:
                break
            await pilot.pause(0.01)
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_cash_tendered_dialog(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_on_ticket("kxp4417", "p"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_validation_dialog_lists_the_codes(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_on_ticket("kxp4417", "v"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_lost_ticket_dialog(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_on_ticket("kxp4417", "l"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_no_plate_dialog(snap_compare, size):
    async def run_before(pilot) -> None:
        await _signed_in_at("3", "enter", "n")(pilot)

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_no_plate_results(snap_compare, size):
    async def run_before(pilot) -> None:
        await _signed_in_at("3", "enter", "n")(pilot)
        for value in ("09:00", "10:00", "in-1", "2026-03-14"):  # lot time (New York, EDT)
            pilot.app.focused.value = value
            await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_plate_crop_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_signed_in_at("1", "i"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_activity_screen(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_signed_in_at("6"))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_shift_close_dialog(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=_signed_in_at("5", "k"))

"""The booth, complete: its rough edges (each a test that failed before its fix) and its
flows (cash with change, lost ticket, a car with no plate read, plate crop, activity, the full
shift report), driven with Textual's pilot against the service on the simulator, or against
the recorded state where the screen is what is tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appliance.client import ServiceClient
from tests.conftest import RunningService
from tests.ui.test_attendant_app import _booth, _events, _fill, _sign_in, _staff, _until, _visible
from ui.app import AttendantApp
from ui.fixed import fixed_transport
from ui.screens.dialogs import FormDialog
from ui.screens.signin import SignInScreen


def _fixed_app() -> AttendantApp:
    return AttendantApp(ServiceClient("fixed", transport=fixed_transport()), poll_s=3600)


async def _fixed_sign_in(pilot, who: str = "sue", pin: str = "22222222") -> None:
    await _fill(pilot, who)
    await _fill(pilot, pin)
    await pilot.pause()
    pilot.app.clear_notifications()


def _notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def _admit(service, plate: str | None, *, hours_ago: float = 2.0, lane: str = "in-1"):
    from appliance.lot.tickets import admit

    return await admit(service.ledger, service.cfg, lane=lane, plate=plate, confidence=0.9,
                       at=service.clock.now() - timedelta(hours=hours_ago))


# -- rough edges -----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_fee_breakdown_labels_are_never_cut(size):
    app = _fixed_app()
    async with app.run_test(size=size) as pilot:
        await _fixed_sign_in(pilot)
        await pilot.press("3")
        await _fill(pilot, "KXP4417")
        await pilot.pause()
        text = _visible(app)
        if size == (120, 40):  # room for every label on one line
            assert "3 started hours x 3.00 (weekday day rate, Mon-Fri 07:00-19:00)" in text
            assert "4th hour at the evening rate after the day-rate cap" in text
        else:  # wrapped, every word still there
            for word in ("(weekday", "Mon-Fri", "07:00-19:00)", "day-rate", "cap"):
                assert word in text, word
        assert "12.00 USD" in text


@pytest.mark.parametrize("tab", ["1", "2", "3", "4", "5", "6"])
async def test_the_footer_fits_80_columns_on_every_tab(tab):
    app = _fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _fixed_sign_in(pilot)  # a supervisor: the most keys
        await pilot.press(tab)
        if tab == "3":  # a ticket in the list: every ticket key is live
            await _fill(pilot, "kxp44")
        await pilot.pause()
        footer = _visible(app).splitlines()[-2]
        assert footer.rstrip("┃ ").endswith("^q Quit"), footer


async def test_slash_in_the_search_box_is_not_typed_into_the_query():
    app = _fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _fixed_sign_in(pilot)
        await pilot.press("3")  # the search box has the focus
        await pilot.press("slash", "k", "x", "p")
        assert app.focused.value == "kxp"
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused.id == "tickets-table"
        await pilot.press("slash", "h", "j")  # from the table: back to the search box
        assert app.focused.id == "ticket-search" and app.focused.value == "hj"


async def test_a_paid_tickets_row_says_paid(running_lot):
    await _admit(running_lot.service, "PAY1234")
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("3")
        await _fill(pilot, "PAY1234")
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "ticket loaded")
        table = app.query_one("#tickets-table")
        assert table.get_row_at(0)[2] == "OPEN"
        await pilot.press("p")
        await pilot.press("enter")  # the exact amount due is offered
        await _until(pilot, lambda: view.ticket["status"] == "PAID", "paid")
        assert table.get_row_at(0)[2] == "PAID"


async def test_sign_out_and_shift_close_give_no_session_ended_warning(running_lot):
    async with _booth(running_lot, "sue", "22222222") as (app, pilot):
        await pilot.press("5")
        await pilot.press("s")
        await _until(pilot, lambda: isinstance(app.screen, SignInScreen), "sign-in form")
        await pilot.pause(1.2)  # polls go on meanwhile
        assert not [n for n in _notes(app) if "session ended" in n], _notes(app)
        assert str(app.screen.query_one("#form-error").render()) == ""
        await _sign_in(pilot, "sue", "22222222")
        await pilot.press("5", "k")
        await _fill(pilot, "0.00")
        await pilot.press("enter", "enter")
        await _until(pilot, lambda: isinstance(app.screen, SignInScreen), "signed out")
        await pilot.pause(1.2)
        assert not [n for n in _notes(app) if "session ended" in n], _notes(app)
    assert len(await _events(running_lot.service, "shift.closed")) == 1


async def test_a_key_the_role_cannot_use_says_why(running_lot):
    await _admit(running_lot.service, "ROLE777")
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("3")
        await _fill(pilot, "ROLE777")
        await _until(pilot, lambda: app.query_one("TicketsView").ticket is not None, "ticket")
        app.clear_notifications()
        await pilot.press("x")  # void: a supervisor's
        await pilot.pause()
        assert not isinstance(app.screen, FormDialog)
        assert any("Void: needs a supervisor; ann is attendant" in n for n in _notes(app))
        await pilot.press("1", "h")  # hold open: a supervisor's too
        await pilot.pause()
        assert any("Hold/release: needs a supervisor" in n for n in _notes(app))


async def test_after_a_service_restart_the_sign_in_form_says_why(counter_lot):
    client = ServiceClient(counter_lot.data_path(counter_lot.api.socket))
    app = AttendantApp(client, poll_s=0.1)
    first = RunningService(counter_lot)
    await first.__aenter__()
    try:
        await _staff(first)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.3)
            await _sign_in(pilot, "ann", "11111111")
            await pilot.press("1", "o")  # a dialog is open when the service goes
            assert isinstance(app.screen, FormDialog)
            await first.__aexit__(None, None, None)
            first = None
            await pilot.pause(0.3)
            async with RunningService(counter_lot):
                await _until(pilot, lambda: isinstance(app.screen, SignInScreen), "sign-in")
                assert len(app.screen_stack) == 2  # the ended session's dialog is gone
                assert "service restarted" in str(app.screen.query_one("#form-error").render())
                await _until(pilot, lambda: app.focused is not None, "the id field's focus")
                await _sign_in(pilot, "ann", "11111111")
                assert app.session is not None and app.session["attendant"] == "ann"
    finally:
        if first is not None:
            await first.__aexit__(None, None, None)
        await client.aclose()


async def test_a_supervisor_closes_another_attendants_shift_only_with_a_reason(running_lot):
    from appliance.client import ApiError

    await _staff(running_lot)
    ann = ServiceClient(running_lot.socket_path)
    sue = ServiceClient(running_lot.socket_path)
    try:
        ann_session = await ann.post("/auth/sign-in", {"attendant": "ann", "pin": "11111111"})
        ann.set_session(ann_session["token"])
        sue.set_session((await sue.post("/auth/sign-in", {"attendant": "sue",
                                                           "pin": "22222222"}))["token"])
        with pytest.raises(ApiError, match="closing another attendant's shift needs a reason"):
            await sue.post("/shift/close", {"shift_id": ann_session["shift_id"],
                                            "counted_cents": 0})
        with pytest.raises(ApiError, match="shift.close needs role supervisor"):
            await ann.post("/shift/close", {"counted_cents": 0})
        report = await sue.post("/shift/close", {"shift_id": ann_session["shift_id"],
                                                 "counted_cents": 0, "reason": "ann fell ill"})
        assert report["closed_by"] == "sue" and report["close_reason"] == "ann fell ill"
        with pytest.raises(ApiError) as ended:  # ann's session ended with her shift
            await ann.get("/shift")
        assert ended.value.status == 401
    finally:
        await ann.aclose()
        await sue.aclose()
    closed = await _events(running_lot.service, "shift.closed")
    assert closed[0]["attendant"] == "ann" and closed[0]["reason"] == "ann fell ill"


# -- flows -----------------------------------------------------------------------------------

async def test_cash_with_amount_tendered_gives_change_and_refuses_short_cash(running_lot):
    outcome = await _admit(running_lot.service, "CSH2020", hours_ago=1.5)
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("3")
        await _fill(pilot, "CSH2020")
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "ticket loaded")
        due = view.ticket["fee"]["due_cents"]
        assert due == 600  # 2 started hours at 3.00
        await pilot.press("p")
        await _fill(pilot, "5.00")  # short: refused before anything is sent
        message = str(app.query_one("#ticket-message").render())
        assert "less than the 6.00 due: refused" in message and view.ticket["status"] == "OPEN"
        refused = await app.command(f"/tickets/{outcome.ticket_id}/pay-cash",
                                    {"amount_cents": due, "tendered_cents": 500}, quiet=True)
        assert refused is None and "less than" in app.last_error  # the service refuses too
        await pilot.press("p")
        await _fill(pilot, "20.00")
        await _until(pilot, lambda: view.ticket["status"] == "PAID", "paid")
        message = str(app.query_one("#ticket-message").render())
        assert "tendered 20.00, CHANGE 14.00" in message
    paid = await _events(running_lot.service, "payment.recorded")
    assert [(p["amount_cents"], p["tendered_cents"], p["change_cents"]) for p in paid] == [
        (600, 2000, 1400)]


async def test_lost_ticket_charges_the_lost_ticket_fee_then_cash(running_lot):
    outcome = await _admit(running_lot.service, "LST4040", hours_ago=1)
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("3")
        await _fill(pilot, "LST4040")
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "ticket loaded")
        assert view.ticket["lost_fee_cents"] == 2400  # the test tariff: no lost fee, daily max
        await pilot.press("l")
        assert "lost-ticket fee for this car: 24.00" in _visible(app)
        await _fill(pilot, "lost")
        await _until(pilot, lambda: view.ticket["fee"]["due_cents"] == 2400, "lost fee due")
        await pilot.press("p")
        await _fill(pilot, "30.00")
        await _until(pilot, lambda: view.ticket["status"] == "PAID", "paid")
    lost = await _events(running_lot.service, "ticket.fee_overridden")
    assert lost == [{"ticket_id": outcome.ticket_id, "fee_cents": 2400, "attendant": "ann",
                     "reason": "lost ticket", "lost": True}]
    shift = await _events(running_lot.service, "payment.recorded")
    assert shift[0]["change_cents"] == 600


async def test_find_a_car_with_no_plate_read_by_entry_time_and_lane(running_lot):
    service = running_lot.service
    target = await _admit(service, None, hours_ago=1, lane="in-1")
    await _admit(service, None, hours_ago=1, lane="in-2")  # other lane
    await _admit(service, None, hours_ago=5, lane="in-1")  # outside the window
    await _admit(service, "PLT1111", hours_ago=1, lane="in-1")  # has a plate
    tz = service.cfg.lot.tz
    now = service.clock.now().astimezone(tz)
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("3", "enter", "n")  # Enter on an empty search: to the list
        assert isinstance(app.screen, FormDialog)
        await _fill(pilot, (now - timedelta(hours=2)).strftime("%H:%M"))
        await _fill(pilot, (now - timedelta(minutes=30)).strftime("%H:%M"))
        await _fill(pilot, "in-1")
        await _fill(pilot, "")  # the day left blank: the latest such window (also past 00:00)
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "found")
        assert [t["id"] for t in view.results] == [target.ticket_id]
        assert "1 car(s) without a plate read in in-1" in str(
            app.query_one("#ticket-message").render())


async def test_activity_feed_and_full_shift_report(running_lot):
    service = running_lot.service
    await _admit(service, "ACT5050", hours_ago=1.5)
    async with _booth(running_lot, "sue", "22222222") as (app, pilot):
        await pilot.press("1", "o")
        await _fill(pilot, "ticket jam")
        await pilot.press("3")
        await _fill(pilot, "ACT5050")
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "ticket")
        await pilot.press("p")
        await _fill(pilot, "10.00")
        await _until(pilot, lambda: view.ticket["status"] == "PAID", "paid")
        await pilot.press("6")
        feed = app.query_one("ActivityView")
        await _until(pilot, lambda: any("PAY  cash 6.00" in i["text"] for i in feed.items),
                     "payment in the feed")
        texts = [i["text"] for i in feed.items]
        assert any("GATE OPEN in-1 by sue (ticket jam)" in t for t in texts)
        assert any(t.startswith("IN   in-1: ACT5050") for t in texts)
        assert any("SIGN IN sue" in t for t in texts)
        await pilot.press("5")
        await _until(pilot, lambda: (app.shift or {}).get("cash_payments") == 1, "report")
        shift = app.shift
        assert (shift["cash_cents"], shift["manual_opens"], shift["voids"]) == (600, 1, 0)
        text = _visible(app)
        assert "manual gate opens        1" in text and "cash payments            1" in text


def test_times_are_shown_in_the_lot_zone_across_a_dst_change():
    from zoneinfo import ZoneInfo

    from ui.labels import short_time
    from ui.screens.tickets import entry_window

    ny = ZoneInfo("America/New_York")  # DST began 2026-03-08 02:00 local
    assert short_time("2026-03-08T06:59:00+00:00", ny) == "03-08 01:59"
    assert short_time("2026-03-08T07:00:00+00:00", ny) == "03-08 03:00"
    assert short_time("2026-11-01T05:30:00+00:00", ny) == "11-01 01:30"  # EDT, first 01:30
    assert short_time("2026-11-01T06:30:00+00:00", ny) == "11-01 01:30"  # EST, second one
    after, before = entry_window(datetime(2026, 3, 8).date(), "01:30", "03:30", ny)
    assert after.astimezone(UTC).isoformat() == "2026-03-08T06:30:00+00:00"
    assert before.astimezone(UTC).isoformat() == "2026-03-08T07:30:00+00:00"  # one real hour
    after, before = entry_window(datetime(2026, 3, 8).date(), "23:00", "01:00", ny)
    assert (before - after) == timedelta(hours=2)  # past midnight: the next day


def test_a_window_typed_without_a_day_is_the_latest_that_has_begun():
    from zoneinfo import ZoneInfo

    from ui.screens.tickets import entry_window

    ny = ZoneInfo("America/New_York")
    at_0105 = datetime(2026, 12, 3, 6, 5, tzinfo=UTC)  # 01:05 in New York
    after, before = entry_window(None, "23:05", "00:35", ny, now=at_0105)  # last night
    assert after.astimezone(UTC).isoformat() == "2026-12-03T04:05:00+00:00"
    assert before.astimezone(UTC).isoformat() == "2026-12-03T05:35:00+00:00"
    after, before = entry_window(None, "00:05", "01:05", ny, now=at_0105)  # tonight, begun
    assert after.astimezone(UTC).isoformat() == "2026-12-03T05:05:00+00:00"
    after, before = entry_window(None, "02:00", "03:00", ny, now=at_0105)  # not begun: yesterday
    assert after.astimezone(UTC).isoformat() == "2026-12-02T07:00:00+00:00"
    # a day given is taken as given
    after, _ = entry_window(datetime(2026, 12, 3).date(), "23:05", "00:35", ny, now=None)
    assert after.astimezone(UTC).isoformat() == "2026-12-04T04:05:00+00:00"


async def test_the_status_bar_and_lists_show_lot_time_not_utc():
    app = _fixed_app()  # the recorded lot is in America/New_York; its clock 14:32:05 UTC
    async with app.run_test(size=(80, 24)) as pilot:
        await _fixed_sign_in(pilot)
        text = _visible(app)
        assert "10:32:05 EDT" in text and "14:32" not in text
        await pilot.press("6")
        await pilot.pause()
        assert "10:32  IN   in-1" in _visible(app)


async def test_the_plate_crop_of_the_deciding_read(running_lot, tmp_path, monkeypatch):
    import ui.screens.crop as crop
    from lpr.source import PlateResult

    image = tmp_path / "crop.png"
    from PIL import Image

    Image.new("RGB", (60, 20), (200, 200, 40)).save(image)

    class Camera:
        async def read(self, lane_id):
            return PlateResult(plate="CRP1234", confidence=0.97, crop_path=str(image))

    service = running_lot.service
    controller = service.lanes["in-1"]
    controller.plates = Camera()
    from drivers.loops import SimulatedLoop

    lane = next(ln for ln in running_lot.cfg.lanes if ln.id == "in-1")
    arming = SimulatedLoop(service.pin_factory, lane.arming_loop_pin)
    opened: list[list[str]] = []
    monkeypatch.setattr(crop.shutil, "which", lambda name: "/usr/bin/xdg-open")
    monkeypatch.setattr(crop.subprocess, "Popen", lambda cmd, **kw: opened.append(cmd))
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        arming.occupy()
        await _until(pilot, lambda: controller.snapshot()["last_plate_crop"] == str(image),
                     "deciding read's crop")
        await pilot.press("1")
        await _until(pilot, lambda: app.query_one("LanesView").lanes[0].get(
            "last_plate_crop") == str(image), "crop in the lane snapshot")
        await pilot.press("i")
        assert type(app.screen).__name__ == "CropScreen"
        assert str(app.screen.query_one("#crop-path").render()) == f"crop: {image}"
        if crop.ImageWidget is not None:
            assert app.screen.query("#crop-image")
        await pilot.press("o")
        assert opened == [["/usr/bin/xdg-open", str(image)]]
        await pilot.press("escape")
        arming.clear()


async def test_receipt_reprint_and_shift_report_print_on_the_booth_printer(running_lot):
    outcome = await _admit(running_lot.service, "RCP3030", hours_ago=1.5)
    paper = running_lot.cfg.data_path("printer-booth.escpos")  # the default file printer
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("3")
        await _fill(pilot, "RCP3030")
        view = app.query_one("TicketsView")
        await _until(pilot, lambda: view.ticket is not None, "ticket loaded")
        await pilot.press("p")
        await _fill(pilot, "10.00")
        await _until(pilot, lambda: view.ticket["status"] == "PAID", "paid")
        await pilot.press("r")
        await _until(pilot, lambda: "receipt printed on booth" in str(
            app.query_one("#ticket-message").render()), "receipt printed")
        assert outcome.ticket_id.encode() in paper.read_bytes()
        await pilot.press("5", "P")
        await _until(pilot, lambda: "printed on booth" in str(
            app.query_one("#shift-message").render()), "shift report printed")
        assert app.shift["id"].encode() in paper.read_bytes()


async def test_a_ticket_scanned_at_the_booth_comes_up(running_lot):
    from appliance.core.receipts import ticket_payload

    service = running_lot.service
    outcome = await _admit(service, None, hours_ago=1)
    paper = service.runtime.paper

    class BoothScanner:  # a scanner that holds one code, as a serial or HID one does
        def __init__(self) -> None:
            self.code: str | None = None

        def read(self, lane: str) -> str | None:
            code, self.code = self.code, None
            return code

    scanner = BoothScanner()
    service.runtime.scanners.by_lane["booth"] = scanner
    async with _booth(running_lot, "ann", "11111111") as (app, pilot):
        await pilot.press("3")
        view = app.query_one("TicketsView")
        scanner.code = "https://example.invalid/not-a-ticket"
        await _until(pilot, lambda: "not a ticket of this lot" in str(
            app.query_one("#ticket-message").render()), "foreign code refused")
        scanner.code = ticket_payload(lot_id=service.cfg.lot.id, ticket_id=outcome.ticket_id,
                                      entry=datetime.fromisoformat("2026-01-01T00:00:00+00:00"),
                                      key=paper.key)
        await _until(pilot, lambda: view.ticket is not None, "scanned ticket shown")
        assert view.ticket["id"] == outcome.ticket_id


def test_a_terminal_probe_that_fails_leaves_the_crop_as_a_path(monkeypatch):
    import importlib
    import sys

    import textual_image._terminal as terminal

    import ui.screens.crop as crop

    def zero_by_zero_pty():
        raise ZeroDivisionError("division by zero")  # what a 0x0 pty gives its cell size

    monkeypatch.setattr(terminal, "get_cell_size", zero_by_zero_pty)
    monkeypatch.delitem(sys.modules, "textual_image.widget")
    try:
        assert importlib.reload(crop).ImageWidget is None
    finally:
        monkeypatch.undo()
        importlib.reload(crop)
    assert crop.ImageWidget is not None

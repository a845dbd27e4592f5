"""Shift: who is signed in, the shift report so far (card, cash, validations, manual opens,
holds, overrides, lost tickets, voids), shift close with the counted cash, and printing it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from ui.labels import money
from ui.screens.dialogs import Field, FormDialog
from ui.screens.gated import RoleKeys
from ui.screens.tickets import parse_amount_cents


def report_lines(shift: dict[str, Any], when: Callable[[str | None], str]) -> list[str]:
    """The shift report as the Shift tab shows it (40 columns; the service prints its own)."""
    closed = shift.get("closed_utc")
    lines = [f"SHIFT {shift['id']}", f"attendant {shift['attendant_id']}",
             f"opened    {when(shift.get('opened_utc'))}"]
    if closed:
        lines.append(f"closed    {when(closed)} by {shift.get('closed_by')}")
        if shift.get("close_reason"):
            lines.append(f"reason    {shift['close_reason']}")
    rows = [
        ("card payments", shift.get("card_payments", 0), money(shift.get("card_cents", 0))),
        ("cash payments", shift.get("cash_payments", 0), money(shift.get("cash_cents", 0))),
        ("validations", shift.get("validations", 0), ""),
        ("manual gate opens", shift.get("manual_opens", 0), ""),
        ("holds open", shift.get("holds", 0), ""),
        ("fee overrides", shift.get("overrides", 0), ""),
        ("lost tickets", shift.get("lost_tickets", 0), ""),
        ("voids", shift.get("voids", 0), ""),
    ]
    lines += [f"{label:<20}{count:>6}{amount:>14}" for label, count, amount in rows]
    if closed:
        diff = shift.get("difference_cents") or 0
        word = "OVER" if diff > 0 else ("SHORT" if diff < 0 else "EXACT")
        lines += [f"{'cash expected':<26}{money(shift.get('expected_cents')):>14}",
                  f"{'cash counted':<26}{money(shift.get('counted_cents')):>14}",
                  f"{'difference ' + word:<26}{money(diff):>14}"]
    else:
        lines.append(f"{'cash expected so far':<26}{money(shift.get('expected_cents')):>14}")
    return lines


class ShiftView(RoleKeys, VerticalScroll):
    """The session and shift; `k` closes a shift (supervisor), `s` signs out, `P` prints."""

    can_focus = True
    BINDINGS = [Binding("k", "close_shift", "Close shift"), Binding("s", "sign_out", "Sign out"),
                Binding("P", "print_report", "Print"), Binding("r", "refresh", "Refresh")]
    PERMISSION = {"close_shift": "shift.close", "print_report": "receipt.print"}

    def compose(self) -> ComposeResult:
        """Session, shift report, last close report, message."""
        yield Static("", id="shift-info")
        yield Static("", id="shift-report", markup=False)
        yield Static("", id="shift-message", markup=False)

    def show(self, session: dict[str, Any] | None, shift: dict[str, Any] | None) -> None:
        """Redraw from the session and its shift report."""
        text = Text()
        if session is None:
            text.append("Not signed in.")
        else:
            text.append(f"Signed in: {session['name']} ({session['attendant']})  "
                        f"role {session['role'].upper()}\n", style="bold")
        if shift is not None:
            text.append("\n" + "\n".join(report_lines(shift, self.app.when)))
        self.query_one("#shift-info", Static).update(text)

    def show_report(self, report: dict[str, Any]) -> None:
        """Show a shift close report: expected vs counted, and the rest of the shift."""
        self.query_one("#shift-report", Static).update(
            "SHIFT CLOSED\n" + "\n".join(report_lines(report, self.app.when)))

    def say(self, message: str) -> None:
        """Show a result line."""
        self.query_one("#shift-message", Static).update(message)

    async def action_refresh(self) -> None:
        """Reload the shift from the service."""
        await self.app.poll()

    def action_close_shift(self) -> None:
        """Close a shift with the cash counted: this session's, or (a supervisor) another
        attendant's, which needs a reason that is recorded."""
        shift = self.app.shift
        if shift is None:
            return
        expected = shift.get("expected_cents")

        async def done(values: dict[str, str] | None) -> None:
            if not values:
                return
            try:
                counted = parse_amount_cents(values["counted"])
            except ValueError as err:
                self.say(str(err))
                return
            body: dict[str, Any] = {"counted_cents": counted,
                                    "shift_id": values.get("shift") or shift["id"]}
            if values.get("reason"):
                body["reason"] = values["reason"]
            if body["shift_id"] != shift["id"]:  # another attendant's: this session goes on
                report = await self.app.command("/shift/close", body)
                if report is None:
                    self.say(f"close refused: {self.app.last_error}")
                else:
                    self.show_report(report)
                return
            report = await self.app.end_session("/shift/close", body)
            if report is not None:
                self.show_report(report)

        self.app.push_screen(FormDialog(f"Close shift {shift['id']}", [
            Field(name="counted", label="Cash counted in the drawer (e.g. 120.50)"),
            Field(name="shift", label="Shift id (blank: this one)", required=False),
            Field(name="reason", label="Reason (needed for another's shift)", required=False)],
            note=f"cash expected so far: {money(expected)}"), done)

    async def action_sign_out(self) -> None:
        """Sign out (the shift stays open until closed)."""
        await self.app.end_session("/auth/sign-out", {})

    async def action_print_report(self) -> None:
        """Print the shift report on the booth's receipt printer (the service prints it)."""
        shift = self.app.shift
        if shift is None:
            self.say("no shift to print: sign in first")
            return
        result = await self.app.command("/print/shift", {"shift_id": shift["id"]}, quiet=True)
        if result is None:
            self.say(f"not printed: {self.app.last_error or 'printer not configured'}")
        else:
            self.say(f"shift report {shift['id']} printed on {result.get('printer')}")

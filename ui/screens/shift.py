"""Shift: who is signed in, cash expected so far, shift close with the counted cash."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ui.labels import money, short_time
from ui.screens.dialogs import Field, FormDialog
from ui.screens.tickets import parse_amount_cents


class ShiftView(Vertical):
    """The session and shift; `k` closes the shift (supervisor), `s` signs out."""

    can_focus = True
    BINDINGS = [Binding("k", "close_shift", "Close shift"), Binding("s", "sign_out", "Sign out"),
                Binding("r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        """Session, shift and last close report."""
        yield Static("", id="shift-info")
        yield Static("", id="shift-report")
        yield Static("", id="shift-message", markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide shift close from roles that may not close shifts."""
        return self.app.can("shift.close") if action == "close_shift" else True

    def show(self, session: dict[str, Any] | None, shift: dict[str, Any] | None) -> None:
        """Redraw from the session and its shift report."""
        text = Text()
        if session is None:
            text.append("Not signed in.")
        else:
            text.append(f"Signed in: {session['name']} ({session['attendant']})  "
                        f"role {session['role'].upper()}\n", style="bold")
            text.append(f"May: {', '.join(session.get('permissions', []))}\n")
        if shift is not None:
            text.append(f"\nShift {shift['id']} of {shift['attendant_id']}, "
                        f"opened {short_time(shift['opened_utc'])}\n")
            text.append(f"Cash payments this shift: {shift.get('cash_payments', 0)}   "
                        f"cash expected: {money(shift.get('expected_cents'))}\n")
        self.query_one("#shift-info", Static).update(text)

    def show_report(self, report: dict[str, Any]) -> None:
        """Show a shift close report: expected vs counted."""
        diff = report.get("difference_cents") or 0
        text = Text()
        text.append(f"SHIFT CLOSED {report['id']}\n", style="bold")
        text.append(f"  cash expected  {money(report.get('expected_cents')):>10}\n")
        text.append(f"  cash counted   {money(report.get('counted_cents')):>10}\n")
        word = "OVER" if diff > 0 else ("SHORT" if diff < 0 else "EXACT")
        text.append(f"  difference     {money(diff):>10}  {word}",
                    style="bold" if diff == 0 else "bold black on yellow")
        self.query_one("#shift-report", Static).update(text)

    async def action_refresh(self) -> None:
        """Reload the shift from the service."""
        await self.app.poll()

    def action_close_shift(self) -> None:
        """Close the shift: type the cash counted; the service records the difference."""
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
                self.query_one("#shift-message", Static).update(str(err))
                return
            report = await self.app.command("/shift/close", {"counted_cents": counted,
                                                             "shift_id": shift["id"]})
            if report is not None:
                self.show_report(report)
                self.app.signed_out()

        self.app.push_screen(FormDialog(f"Close shift {shift['id']}", [
            Field(name="counted", label="Cash counted in the drawer (e.g. 120.50)")],
            note=f"cash expected so far: {money(expected)}"), done)

    async def action_sign_out(self) -> None:
        """Sign out (the shift stays open until closed)."""
        await self.app.command("/auth/sign-out", {}, quiet=True)
        self.app.signed_out()

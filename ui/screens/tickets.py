"""Tickets: search open tickets by plate or id, see the fee now, and act on a ticket."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Static

from ui.labels import duration, money, short_time
from ui.screens.dialogs import Field, FormDialog


def parse_amount_cents(text: str) -> int:
    """`12.50` (or `12`) typed by a person as integer cents; ValueError if it is not money."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"not an amount: {text!r} (use e.g. 12.50)")
    return int(amount * 100)


class TicketsView(Vertical):
    """Search box, results, and the selected ticket with its fee breakdown."""

    BINDINGS = [
        Binding("slash", "search", "Search"),
        Binding("v", "validate", "Validate"),
        Binding("p", "pay_cash", "Cash paid"),
        Binding("f", "override", "Override fee"),
        Binding("x", "void", "Void"),
        Binding("l", "lost", "Lost ticket"),
    ]
    PERMISSION = {"validate": "ticket.validate", "pay_cash": "ticket.cash",
                  "override": "ticket.override", "void": "ticket.void", "lost": "ticket.lost"}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.results: list[dict[str, Any]] = []
        self.ticket: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        """Search input, results table and detail side by side."""
        yield Input(placeholder="plate (partial ok) or ticket id, Enter to search",
                    id="ticket-search")
        with Horizontal(id="tickets-body"):
            table = DataTable(id="tickets-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("Ticket", "Plate", "Status", "In")
            yield table
            yield Static("", id="ticket-detail")
        yield Static("", id="ticket-message", markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide actions the signed-in role may not do."""
        need = self.PERMISSION.get(action)
        return True if need is None else self.app.can(need)

    def action_search(self) -> None:
        """Focus the search box."""
        self.query_one("#ticket-search", Input).focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        """Search the service and list the matches."""
        if event.input.id == "ticket-search":
            await self.search(event.value)

    async def search(self, query: str) -> list[dict[str, Any]]:
        """Ask the service for open tickets matching `query` and show them."""
        if not query.strip():
            return []
        found = await self.app.fetch("/tickets", q=query)
        self.results = found or []
        table = self.query_one(DataTable)
        table.clear()
        for t in self.results:
            table.add_row(t["id"], t.get("plate") or "(no plate)", t["status"],
                          short_time(t["entry_utc"])[6:], key=t["id"])
        self.say(f"{len(self.results)} open ticket(s) for {query!r}")
        if self.results:
            table.focus()
            table.move_cursor(row=0)
            await self.load(self.results[0]["id"])
        else:
            self.ticket = None
            self.query_one("#ticket-detail", Static).update("")
        return self.results

    async def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Load the highlighted ticket with its fee now."""
        if event.data_table.id == "tickets-table" and event.row_key.value:
            if self.ticket is None or self.ticket["id"] != event.row_key.value:
                await self.load(event.row_key.value)

    async def load(self, ticket_id: str, *, quiet: bool = False) -> None:
        """Fetch one ticket with its fee and breakdown and show it."""
        ticket = await self.app.fetch(f"/tickets/{ticket_id}", quiet=quiet)
        if ticket is not None:
            self.show_ticket(ticket)

    def show_ticket(self, ticket: dict[str, Any]) -> None:
        """Show a ticket and its fee as the service computed it."""
        self.ticket = ticket
        fee = ticket.get("fee") or {}
        cur = fee.get("currency", "")
        text = Text()
        text.append(f"{ticket['id']}  {ticket.get('plate') or '(no plate)'}\n", style="bold")
        text.append(f"{ticket['status']}  {ticket.get('level_id')} {ticket.get('spot_type')}"
                    f"{' spot ' + ticket['spot_id'] if ticket.get('spot_id') else ''}\n")
        text.append(f"in {short_time(ticket['entry_utc'])} lane {ticket.get('entry_lane') or '-'}"
                    f"  stay {duration(fee.get('duration_minutes'))}\n")
        for item in fee.get("breakdown", []):
            text.append(f"  {item['label'][:22]:<22} {money(item['amount_cents']):>9}\n")
        text.append(f"  {'fee now':<22} {money(fee.get('total_cents')):>9}\n")
        if fee.get("override_cents") is not None:
            text.append(f"  {'OVERRIDE':<22} {money(fee['override_cents']):>9}\n", style="bold")
        if ticket.get("validations"):
            text.append(f"  validations: {', '.join(ticket['validations'])}\n")
        text.append(f"  {'paid':<22} {money(ticket.get('paid_cents', 0)):>9}\n")
        text.append(f"  {'DUE':<22} {money(fee.get('due_cents'), cur):>13}", style="bold")
        self.query_one("#ticket-detail", Static).update(text)

    def say(self, message: str) -> None:
        """Show a result line."""
        self.query_one("#ticket-message", Static).update(message)

    def _act(self, title: str, fields: list[Field], path: str, body_of, done_text: str,
             note: str = "") -> None:
        ticket = self.ticket
        if ticket is None:
            self.say("search and select a ticket first")
            return
        ticket_id = ticket["id"]

        async def done(values: dict[str, str] | None) -> None:
            if not values:
                return
            try:
                body = body_of(values)
            except ValueError as err:
                self.say(str(err))
                return
            result = await self.app.command(f"/tickets/{ticket_id}/{path}", body)
            if result is not None:
                self.say(done_text.format(id=ticket_id, **values))
                if "fee" in result:
                    self.show_ticket(result)
                else:
                    await self.load(ticket_id)

        self.app.push_screen(FormDialog(f"{title} {ticket_id}", fields, note=note), done)

    def action_validate(self) -> None:
        """Apply a merchant validation code."""
        self._act("Validate", [Field(name="code", label="Validation code")], "validate",
                  lambda v: {"code": v["code"]}, "{id}: validation {code} applied")

    def action_override(self) -> None:
        """Override the fee (supervisor; reason required)."""
        self._act("Override fee of", [
            Field(name="amount", label="New fee (e.g. 5.00)"),
            Field(name="reason", label="Reason")], "override",
            lambda v: {"fee_cents": parse_amount_cents(v["amount"]), "reason": v["reason"]},
            "{id}: fee overridden to {amount} ({reason})")

    def action_pay_cash(self) -> None:
        """Record cash taken for the fee due."""
        due = (self.ticket or {}).get("fee", {}).get("due_cents")
        self._act("Cash paid for", [
            Field(name="amount", label="Cash taken", value=money(due) if due is not None else "")],
            "pay-cash", lambda v: {"amount_cents": parse_amount_cents(v["amount"])},
            "{id}: cash {amount} recorded", note=f"due now: {money(due)}")

    def action_void(self) -> None:
        """Void the ticket (supervisor; reason required)."""
        self._act("Void", [Field(name="reason", label="Reason")], "void",
                  lambda v: {"reason": v["reason"]}, "{id}: VOID ({reason})")

    def action_lost(self) -> None:
        """Lost ticket: find the car's ticket by plate; without one the exit charges the flat fee."""

        async def done(values: dict[str, str] | None) -> None:
            if not values:
                return
            found = await self.search(values["plate"])
            if found:
                self.say(f"LOST TICKET: {len(found)} ticket(s) match {values['plate']!r}; fee "
                         "from the recorded entry time - confirm the car, then take payment")
            else:
                self.say(f"LOST TICKET: no open ticket for {values['plate']!r}; the exit lane "
                         "charges the flat lost-ticket fee")

        self.app.push_screen(FormDialog("Lost ticket", [
            Field(name="plate", label="Plate of the car")]), done)

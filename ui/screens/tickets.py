"""Tickets: search open tickets by plate or id (or cars with no plate read by entry time and
lane), see the fee now, and act on a ticket: cash with change, validation, lost ticket,
override, void, receipt."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Static

from ui.labels import duration, money
from ui.screens.dialogs import Field, FormDialog
from ui.screens.gated import RoleKeys


def parse_amount_cents(text: str) -> int:
    """`12.50` (or `12`) typed by a person as integer cents; ValueError if it is not money."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"not an amount: {text!r} (use e.g. 12.50)")
    return int(amount * 100)


def parse_clock(text: str) -> time:
    """`14:05` (or `1405`, `9`) typed by a person as a time of day; ValueError otherwise."""
    raw = text.strip().replace(".", ":")
    if raw.isdigit() and len(raw) <= 2:
        raw += ":00"
    elif raw.isdigit() and len(raw) in (3, 4):
        raw = f"{raw[:-2]}:{raw[-2:]}"
    try:
        hours, minutes = (int(part) for part in raw.split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ValueError(f"not a time of day: {text!r} (use e.g. 14:05)") from None


def entry_window(day: date | None, start: str, end: str, tz, *,
                 now: datetime | None = None) -> tuple[datetime, datetime]:
    """[from, to) in the lot's zone from two typed times (`to` past midnight: the next day).

    `day` is the day of `from`; without one (`None`) the window is the latest that has begun by
    `now`: at 01:05, 23:00-00:30 means last night, not tonight. ValueError for a time that is
    not one."""
    if day is None:
        if now is None:
            raise ValueError("entry_window: a blank day needs now")
        after, before = entry_window(now.astimezone(tz).date(), start, end, tz)
        if after > now:  # not begun yet today: the one that began yesterday
            after, before = entry_window(after.date() - timedelta(days=1), start, end, tz)
        return after, before
    after = datetime.combine(day, parse_clock(start), tzinfo=tz)
    before = datetime.combine(day, parse_clock(end), tzinfo=tz)
    if before <= after:
        before += timedelta(days=1)
    return after, before


class SearchInput(Input):
    """The search box: `/` is the search key, never part of a plate or ticket id, so typed
    here it selects the query for a new one instead of becoming its first character."""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "slash":
            event.stop()
            event.prevent_default()
            self.select_all()
            return
        await super()._on_key(event)


class TicketsView(RoleKeys, Vertical):
    """Search box, results, and the selected ticket with its fee breakdown."""

    BINDINGS = [
        Binding("slash", "search", "Search"),
        Binding("n", "no_plate", "No plate"),
        Binding("p", "pay_cash", "Cash"),
        Binding("v", "validate", "Validate"),
        Binding("l", "lost", "Lost"),
        Binding("r", "receipt", "Receipt"),
        Binding("f", "override", "Fee"),
        Binding("x", "void", "Void"),
    ]
    PERMISSION = {"validate": "ticket.validate", "pay_cash": "ticket.cash",
                  "override": "ticket.override", "void": "ticket.void", "lost": "ticket.lost",
                  "receipt": "receipt.print"}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.results: list[dict[str, Any]] = []
        self.ticket: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        """Search input, results table and detail side by side."""
        yield SearchInput(placeholder="plate (partial ok) or ticket id, Enter to search",
                          id="ticket-search")
        with Horizontal(id="tickets-body"):
            table = DataTable(id="tickets-table", cursor_type="row", zebra_stripes=True)
            table.add_column("Ticket", key="id")
            table.add_column("Plate", key="plate")
            table.add_column("Status", key="status")
            table.add_column("In", key="in")
            yield table
            yield Static("", id="ticket-detail")
        yield Static("", id="ticket-message", markup=False)

    def action_search(self) -> None:
        """Focus the search box."""
        self.query_one("#ticket-search", Input).focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        """Search the service and list the matches."""
        if event.input.id != "ticket-search":
            return
        if not event.value.strip():  # nothing to search: on to the list and its keys
            self.query_one(DataTable).focus()
            return
        await self.search(event.value)

    async def search(self, query: str) -> list[dict[str, Any]]:
        """Ask the service for open tickets matching `query` and show them."""
        if not query.strip():
            return []
        found = await self.app.fetch("/tickets", q=query)
        return await self._list(found or [], f"{len(found or [])} open ticket(s) for {query!r}")

    async def _list(self, found: list[dict[str, Any]], message: str) -> list[dict[str, Any]]:
        self.results = found
        table = self.query_one(DataTable)
        table.clear()
        for t in self.results:
            table.add_row(t["id"], t.get("plate") or "(no plate)", t["status"],
                          self.app.when(t["entry_utc"])[6:], key=t["id"])
        self.say(message)
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
        """Show a ticket and its fee as the service computed it (labels wrap, never cut)."""
        self.ticket = ticket
        table = self.query_one(DataTable)
        if ticket["id"] in table.rows:  # the list says what the ticket is now (PAID, ...)
            table.update_cell(ticket["id"], "status", ticket["status"])
        fee = ticket.get("fee") or {}
        cur = fee.get("currency", "")
        head = Text()
        head.append(f"{ticket['id']}  {ticket.get('plate') or '(no plate)'}\n", style="bold")
        head.append(f"{ticket['status']}  {ticket.get('level_id')} {ticket.get('spot_type')}"
                    f"{' spot ' + ticket['spot_id'] if ticket.get('spot_id') else ''}\n")
        head.append(f"in {self.app.when(ticket['entry_utc'])} lane "
                    f"{ticket.get('entry_lane') or '-'}  stay "
                    f"{duration(fee.get('duration_minutes'))}")
        lines = Table.grid(padding=(0, 1), pad_edge=True, expand=True)
        lines.add_column(ratio=1, overflow="fold")
        lines.add_column(justify="right", no_wrap=True)
        for item in fee.get("breakdown", []):
            lines.add_row(f"{item['label']}", money(item["amount_cents"]))
        lines.add_row("fee now", money(fee.get("total_cents")))
        if fee.get("override_cents") is not None:
            lines.add_row(Text("OVERRIDE", style="bold"), Text(money(fee["override_cents"]),
                                                                 style="bold"))
        if ticket.get("validations"):
            lines.add_row(f"validations: {', '.join(ticket['validations'])}", "")
        lines.add_row("paid", money(ticket.get("paid_cents", 0)))
        lines.add_row(Text("DUE", style="bold"), Text(money(fee.get("due_cents"), cur),
                                                       style="bold"))
        outer = Table.grid(expand=True)
        outer.add_column()
        outer.add_row(head)
        outer.add_row(lines)
        self.query_one("#ticket-detail", Static).update(outer)

    def say(self, message: str) -> None:
        """Show a result line."""
        self.query_one("#ticket-message", Static).update(message)

    def _act(self, title: str, fields: list[Field], path: str, body_of, done_text,
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
            if result is None:
                self.say(f"{ticket_id}: refused - {self.app.last_error}")
                return
            self.say(done_text(result, values) if callable(done_text)
                     else done_text.format(id=ticket_id, **values))
            if "fee" in result:
                self.show_ticket(result)
            else:
                await self.load(ticket_id)

        self.app.push_screen(FormDialog(f"{title} {ticket_id}", fields, note=note), done)

    def action_validate(self) -> None:
        """Apply a merchant validation code (the codes this ticket's tariff takes are listed)."""
        codes = (self.ticket or {}).get("validation_codes") or []
        note = ("codes: " + "; ".join(c["label"].removeprefix("Validation ") for c in codes)
                if codes else "this lot has no validation codes")
        self._act("Validate", [Field(name="code", label="Validation code")], "validate",
                  lambda v: {"code": v["code"]},
                  "{id}: validation {code} applied", note=note)

    def action_override(self) -> None:
        """Override the fee (supervisor; reason required)."""
        self._act("Override fee of", [
            Field(name="amount", label="New fee (e.g. 5.00)"),
            Field(name="reason", label="Reason")], "override",
            lambda v: {"fee_cents": parse_amount_cents(v["amount"]), "reason": v["reason"]},
            "{id}: fee overridden to {amount} ({reason})")

    def action_pay_cash(self) -> None:
        """Take cash for the fee due: the amount tendered, the change computed by the service."""
        due = (self.ticket or {}).get("fee", {}).get("due_cents")

        def body(values: dict[str, str]) -> dict[str, int]:
            tendered = parse_amount_cents(values["tendered"])
            if due is not None and tendered < due:
                raise ValueError(f"cash tendered {money(tendered)} is less than the "
                                 f"{money(due)} due: refused")
            return {"amount_cents": due, "tendered_cents": tendered}

        def done(result: dict[str, Any], values: dict[str, str]) -> str:
            cash = result.get("cash") or {}
            return (f"{result['id']}: PAID {money(cash.get('amount_cents'))} cash, tendered "
                    f"{money(cash.get('tendered_cents'))}, CHANGE "
                    f"{money(cash.get('change_cents'))}")

        self._act("Cash for", [
            Field(name="tendered", label="Cash tendered (e.g. 20.00)",
                  value=money(due) if due is not None else "")],
            "pay-cash", body, done, note=f"due now: {money(due)}")

    def action_void(self) -> None:
        """Void the ticket (supervisor; reason required)."""
        self._act("Void", [Field(name="reason", label="Reason")], "void",
                  lambda v: {"reason": v["reason"]}, "{id}: VOID ({reason})")

    def action_lost(self) -> None:
        """Lost ticket: the selected car's fee becomes the lost-ticket fee (or its stay's fee if
        higher); without a selected ticket, find the car by plate first."""
        if self.ticket is None:
            async def found(values: dict[str, str] | None) -> None:
                if values:
                    hits = await self.search(values["plate"])
                    self.say(f"LOST TICKET: {len(hits)} ticket(s) match {values['plate']!r}: "
                             "select the car and press l again" if hits else
                             f"LOST TICKET: no ticket for {values['plate']!r}: try n (no "
                             "plate, by entry time and lane)")

            self.app.push_screen(FormDialog("Lost ticket: find the car", [
                Field(name="plate", label="Plate of the car")]), found)
            return
        lost = self.ticket.get("lost_fee_cents")
        self._act("Lost ticket", [Field(name="confirm", label="Type LOST to confirm")], "lost",
                  _confirm_lost, lambda r, v: (
                      f"{r['id']}: LOST TICKET fee {money(r['fee'].get('override_cents'))}; "
                      "now take the payment (p)"),
                  note=f"lost-ticket fee for this car: {money(lost)}")

    def action_no_plate(self) -> None:
        """Find a car with no plate read: entry time window (lot time, today) and lane."""
        now = self.app.service_now()
        since = (now - timedelta(hours=1)).strftime("%H:%M")

        async def done(values: dict[str, str] | None) -> None:
            if not values:
                return
            try:
                day = (date.fromisoformat(values["day"]) if values.get("day") else None)
                after, before = entry_window(day, values["from"], values["to"],
                                             now.tzinfo, now=None if day else now)
            except ValueError as err:
                self.say(str(err))
                return
            params = {"no_plate": "1", "from": after.isoformat(), "to": before.isoformat()}
            if values.get("lane"):
                params["lane"] = values["lane"]
            found = await self.app.fetch("/tickets", **params)
            await self._list(found or [], f"{len(found or [])} car(s) without a plate read in "
                             f"{values.get('lane') or 'any lane'} {after:%m-%d %H:%M}-"
                             f"{before:%H:%M}")

        self.app.push_screen(FormDialog("Find a car with no plate read", [
            Field(name="from", label="Entered from (HH:MM, lot time)", value=since),
            Field(name="to", label="Entered until (HH:MM)", value=now.strftime("%H:%M")),
            Field(name="lane", label="Entry lane (blank: any)", required=False),
            Field(name="day", label="Day (YYYY-MM-DD, blank: the latest)",
                  required=False)]), done)

    async def action_receipt(self) -> None:
        """Reprint the receipt of the selected ticket on the booth printer."""
        if self.ticket is None:
            self.say("search and select a ticket first")
            return
        ticket_id = self.ticket["id"]
        result = await self.app.command(f"/print/receipt/{ticket_id}", {"copy": True},
                                        quiet=True)
        if result is None:
            self.say(f"{ticket_id}: receipt not printed - {self.app.last_error}")
        else:
            self.say(f"{ticket_id}: receipt printed on {result.get('printer', 'the printer')}")

    async def check_scanner(self) -> None:
        """A ticket QR read by the booth's scanner brings its ticket up (the service tells
        a genuine ticket of this lot from any other code)."""
        scan = await self.app.fetch("/scan/booth", quiet=True)
        if not scan or not scan.get("scanned"):
            return
        if not scan.get("genuine"):
            self.say("scanned code is not a ticket of this lot")
            return
        found = await self.app.fetch("/tickets", q=scan["ticket_id"], quiet=True)
        await self._list(found or [], f"scanned ticket {scan['ticket_id']}")


def _confirm_lost(values: dict[str, str]) -> dict[str, Any]:
    if values["confirm"].strip().upper() != "LOST":
        raise ValueError("not confirmed: type LOST to charge the lost-ticket fee")
    return {}

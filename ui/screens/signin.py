"""Sign-in: attendant id and PIN, checked by the service (which opens the shift)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from appliance.client import ApiError, ServiceUnavailable


class SignInScreen(ModalScreen[dict[str, Any] | None]):
    """Asks for attendant id and PIN until the service accepts them; returns the session."""

    BINDINGS = [Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, *, reason: str = ""):
        super().__init__()
        self.reason = reason  # why a sign-in is asked for again (restart, expiry)

    def compose(self) -> ComposeResult:
        """Id, PIN (hidden), error line."""
        with Vertical(id="form"):
            yield Static("lotedge attendant - sign in", id="form-title")
            yield Label("Attendant id")
            yield Input(placeholder="e.g. ann", id="signin-id")
            yield Label("PIN")
            yield Input(password=True, placeholder="digits", id="signin-pin")
            yield Static(self.reason, id="form-error", markup=False)
            yield Static("Enter: next/sign in   Ctrl+Q: quit", id="form-help")

    async def on_mount(self) -> None:
        """Focus the id; say how to add the first attendant when the service has none."""
        self.query_one("#signin-id", Input).focus()
        try:
            staff = await self.app.client.get("/attendants")
        except (ApiError, ServiceUnavailable):
            return
        if staff == []:
            self.query_one("#form-error", Static).update(
                "no attendants registered yet: on the appliance run\n"
                "lotedge attendants add ID --name NAME --role supervisor -c LOT.toml")

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: move to the PIN, then ask the service."""
        if event.input.id == "signin-id":
            self.query_one("#signin-pin", Input).focus()
            return
        attendant = self.query_one("#signin-id", Input).value.strip()
        pin_input = self.query_one("#signin-pin", Input)
        error = self.query_one("#form-error", Static)
        if not attendant or not pin_input.value:
            error.update("attendant id and PIN are required")
            return
        try:
            session = await self.app.client.post(
                "/auth/sign-in", {"attendant": attendant, "pin": pin_input.value})
        except ApiError as err:
            pin_input.value = ""
            error.update(f"refused: {err}")
            return
        except ServiceUnavailable:
            error.update("service not reachable - is lotedge running?")
            return
        self.dismiss(session)

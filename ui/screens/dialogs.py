"""Modal forms: a reason, a note, an amount or a PIN, typed before a command is sent."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


@dataclass(frozen=True, kw_only=True)
class Field:
    """One input of a form."""

    name: str
    label: str
    password: bool = False
    placeholder: str = ""
    required: bool = True
    value: str = ""


class FormDialog(ModalScreen[dict[str, str] | None]):
    """A small modal form; Enter moves on / submits, Escape cancels; returns the values."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: list[Field], *, note: str = ""):
        super().__init__()
        self.form_title = title
        self.fields = fields
        self.note = note

    def compose(self) -> ComposeResult:
        """Title, note, one labelled input per field, error line, key help."""
        with Vertical(id="form"):
            yield Static(self.form_title, id="form-title", markup=False)
            if self.note:
                yield Static(self.note, id="form-note", markup=False)
            for f in self.fields:
                yield Label(f.label)
                yield Input(value=f.value, placeholder=f.placeholder, password=f.password,
                            id=f"field-{f.name}")
            yield Static("", id="form-error", markup=False)
            yield Static("Enter: next/submit   Esc: cancel", id="form-help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter on a field: next field, or submit from the last one."""
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            inputs[index + 1].focus()
            return
        values = {f.name: self.query_one(f"#field-{f.name}", Input).value.strip()
                  for f in self.fields}
        missing = [f.label for f in self.fields if f.required and not values[f.name]]
        if missing:
            self.query_one("#form-error", Static).update(f"required: {', '.join(missing)}")
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        """Close without a result."""
        self.dismiss(None)

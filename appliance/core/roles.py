"""Attendant roles and what each may do (cumulative: supervisor ⊃ attendant, technician ⊃ supervisor)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Role of a person signed in at the booth."""

    ATTENDANT = "attendant"
    SUPERVISOR = "supervisor"
    TECHNICIAN = "technician"


ATTENDANT_ACTIONS = frozenset({
    "gate.open", "gate.close", "ticket.validate", "ticket.cash", "ticket.lost", "alarm.ack",
    "receipt.print",
})
SUPERVISOR_ACTIONS = ATTENDANT_ACTIONS | {"gate.hold", "ticket.override", "ticket.void",
                                          "shift.close", "attendant.add", "counts.reset",
                                          "reservations.import", "events.read"}
TECHNICIAN_ACTIONS = SUPERVISOR_ACTIONS | {"diagnostics"}

PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ATTENDANT: ATTENDANT_ACTIONS,
    Role.SUPERVISOR: frozenset(SUPERVISOR_ACTIONS),
    Role.TECHNICIAN: frozenset(TECHNICIAN_ACTIONS),
}


def allowed(role: Role | str, action: str) -> bool:
    """Whether `role` may perform `action`."""
    return action in PERMISSIONS[Role(role)]


def least_role_for(action: str) -> Role | None:
    """The lowest role allowed to perform `action` (None if no role may)."""
    for role in (Role.ATTENDANT, Role.SUPERVISOR, Role.TECHNICIAN):
        if action in PERMISSIONS[role]:
            return role
    return None

"""Attendants, their PINs, sign-in sessions and shifts at the booth.

PINs are stored as salted `hashlib.scrypt` hashes (stdlib, memory-hard; no extra dependency).
Adding an attendant, signing in and opening/closing a shift are ledger events; sessions are
short-lived tokens kept in memory by the running service (a restart signs everyone out).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.core.events import NewEvent
from appliance.core.roles import Role
from appliance.errors import InputError, LotedgeError
from appliance.ledger import Ledger

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB, ~0.1 s on a Pi 4
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_PIN = re.compile(r"^[0-9]{4,12}$")
MAX_FAILURES = 5
LOCKOUT_S = 300.0
SESSION_IDLE_S = 12 * 3600.0


class SignInError(LotedgeError, PermissionError):
    """Unknown attendant, wrong PIN, locked out, or an expired session."""


class RoleError(LotedgeError, PermissionError):
    """The signed-in attendant's role does not allow the action."""


def check_pin(pin: str) -> str:
    """The PIN if it is 4-12 digits, else InputError."""
    if not isinstance(pin, str) or not _PIN.match(pin):
        raise InputError("pin: must be 4 to 12 digits")
    return pin


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of a PIN: `scrypt$n$r$p$salt_hex$hash_hex`."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(check_pin(pin).encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    """Whether `pin` matches a hash made by hash_pin (constant-time compare)."""
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(str(pin).encode(), salt=bytes.fromhex(salt_hex), n=int(n),
                                r=int(r), p=int(p), dklen=len(hash_hex) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


async def add_attendant(ledger: Ledger, *, attendant_id: str, name: str, role: str, pin: str,
                        by: str) -> dict[str, Any]:
    """Register an attendant (event `attendant.added`); the PIN is hashed before it is stored."""
    if not isinstance(attendant_id, str) or not _ID.match(attendant_id):
        raise InputError("id: 1-32 letters, digits, '.', '_' or '-'")
    if not isinstance(name, str) or not name.strip():
        raise InputError("name: required")
    try:
        role = Role(role)
    except ValueError:
        raise InputError(f"role: must be one of {', '.join(r.value for r in Role)}") from None
    pin_hash = await asyncio.to_thread(hash_pin, check_pin(pin))
    async with ledger.transaction() as tx:
        if await tx.fetchone("SELECT 1 FROM attendants WHERE id = ?", (attendant_id,)):
            raise InputError(f"attendant {attendant_id!r} already exists")
        await tx.append(NewEvent(type="attendant.added", payload={
            "attendant_id": attendant_id, "name": name.strip(), "role": role.value,
            "pin_hash": pin_hash, "by": by}))
    return {"id": attendant_id, "name": name.strip(), "role": role.value}


async def list_attendants(ledger: Ledger) -> list[dict[str, Any]]:
    """Registered attendants (without their PIN hashes)."""
    rows = await ledger.fetchall("SELECT id, name, role, added_utc FROM attendants ORDER BY id")
    return [dict(r) for r in rows]


async def any_attendants(ledger: Ledger) -> bool:
    """Whether at least one attendant is registered (then commands need a session)."""
    return await ledger.fetchone("SELECT 1 FROM attendants LIMIT 1") is not None


@dataclass
class Session:
    """A signed-in attendant at a terminal."""

    token: str
    attendant_id: str
    name: str
    role: Role
    shift_id: str
    last_used_s: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the token included: only its owner receives it)."""
        return {"token": self.token, "attendant": self.attendant_id, "name": self.name,
                "role": self.role.value, "shift_id": self.shift_id}


@dataclass
class Desk:
    """The service's sign-in desk: live sessions and failed-attempt counters."""

    monotonic: Callable[[], float] = time.monotonic
    sessions: dict[str, Session] = field(default_factory=dict)
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    async def sign_in(self, ledger: Ledger, *, attendant_id: str, pin: str) -> Session:
        """Check the PIN, open the attendant's shift if none is open, and start a session."""
        if not attendant_id or not pin:
            raise InputError("attendant and pin are required")
        now = self.monotonic()
        failures, since = self._failures.get(attendant_id, (0, now))
        if failures >= MAX_FAILURES and now - since < LOCKOUT_S:
            raise SignInError(f"{attendant_id}: locked after {failures} wrong PINs; "
                              f"try again in {int(LOCKOUT_S - (now - since))} s")
        row = await ledger.fetchone("SELECT * FROM attendants WHERE id = ?", (attendant_id,))
        ok = row is not None and await asyncio.to_thread(verify_pin, str(pin), row["pin_hash"])
        if not ok:
            self._failures[attendant_id] = (failures + 1, now)
            await ledger.append(NewEvent(type="attendant.sign_in_failed", payload={
                "attendant": attendant_id}))
            raise SignInError("unknown attendant or wrong PIN")
        self._failures.pop(attendant_id, None)
        async with ledger.transaction() as tx:
            shift = await tx.fetchone(
                "SELECT id FROM shifts WHERE attendant_id = ? AND closed_utc IS NULL",
                (attendant_id,))
            if shift is None:
                shift_id = "S" + uuid.uuid4().hex[:12].upper()
                await tx.append(NewEvent(type="shift.opened", payload={
                    "shift_id": shift_id, "attendant": attendant_id}))
            else:
                shift_id = shift["id"]
            await tx.append(NewEvent(type="attendant.signed_in", payload={
                "attendant": attendant_id, "role": row["role"], "shift_id": shift_id}))
        session = Session(token=secrets.token_urlsafe(24), attendant_id=attendant_id,
                          name=row["name"], role=Role(row["role"]), shift_id=shift_id,
                          last_used_s=now)
        self.sessions[session.token] = session
        return session

    def session(self, token: str | None) -> Session:
        """The live session of `token`, else SignInError."""
        session = self.sessions.get(token or "")
        now = self.monotonic()
        if session is None or now - session.last_used_s > SESSION_IDLE_S:
            self.sessions.pop(token or "", None)
            raise SignInError("not signed in (or the session expired): sign in again")
        session.last_used_s = now
        return session

    async def sign_out(self, ledger: Ledger, token: str) -> None:
        """End a session (the shift stays open until it is closed)."""
        session = self.session(token)
        del self.sessions[token]
        await ledger.append(NewEvent(type="attendant.signed_out", payload={
            "attendant": session.attendant_id, "shift_id": session.shift_id}))

    def end_shift_sessions(self, shift_id: str) -> None:
        """Sign out every session of a closed shift."""
        for token in [t for t, s in self.sessions.items() if s.shift_id == shift_id]:
            del self.sessions[token]


_CASH_SQL = (
    "SELECT COALESCE(SUM(json_extract(payload, '$.amount_cents')), 0) AS cents, COUNT(*) AS n "
    "FROM events WHERE type = 'payment.recorded' AND seq > ? AND seq <= ? "
    "AND json_extract(payload, '$.method') = 'cash' "
    "AND json_extract(payload, '$.status') = 'captured' "
    "AND json_extract(payload, '$.attendant') = ?")


async def shift_report(ledger: Ledger, shift_id: str) -> dict[str, Any]:
    """A shift with the cash expected from the ledger's cash payments taken during it."""
    row = await ledger.fetchone("SELECT * FROM shifts WHERE id = ?", (shift_id,))
    if row is None:
        raise InputError(f"no shift {shift_id!r}")
    until = row["closed_seq"] if row["closed_seq"] is not None else await ledger.last_seq()
    cash = await ledger.fetchone(_CASH_SQL, (row["opened_seq"], until, row["attendant_id"]))
    report = dict(row)
    report["cash_payments"] = cash["n"]
    if row["closed_seq"] is None:
        report["expected_cents"] = cash["cents"]
    return report


async def close_shift(ledger: Ledger, *, shift_id: str, counted_cents: int,
                      closed_by: str) -> dict[str, Any]:
    """Close a shift: record expected vs counted cash and the difference (`shift.closed`)."""
    if not isinstance(counted_cents, int) or isinstance(counted_cents, bool) or counted_cents < 0:
        raise InputError("counted_cents: must be a non-negative integer")
    async with ledger.transaction() as tx:
        row = await tx.fetchone("SELECT * FROM shifts WHERE id = ?", (shift_id,))
        if row is None:
            raise InputError(f"no shift {shift_id!r}")
        if row["closed_utc"] is not None:
            raise InputError(f"shift {shift_id} is already closed")
        head = await tx.fetchone("SELECT COALESCE(MAX(seq), 0) AS seq FROM events")
        cash = await tx.fetchone(_CASH_SQL, (row["opened_seq"], head["seq"],
                                             row["attendant_id"]))
        expected = int(cash["cents"])
        await tx.append(NewEvent(type="shift.closed", payload={
            "shift_id": shift_id, "attendant": row["attendant_id"], "closed_by": closed_by,
            "expected_cents": expected, "counted_cents": counted_cents,
            "difference_cents": counted_cents - expected, "cash_payments": cash["n"]}))
    return await shift_report(ledger, shift_id)

"""Attendants, their PINs, sign-in sessions and shifts at the booth.

PINs (6-12 digits, or a passphrase) are stored as salted `hashlib.scrypt` hashes (stdlib,
memory-hard) in the `credentials` table, which is never synced, served or exported: the
`attendant.added` / `attendant.pin_set` events say only who enrolled whom. Signing in and
opening/closing a shift are ledger events; sessions are short-lived tokens kept in memory by the
running service (a restart signs everyone out). Failed sign-ins are counted per source (the
terminal's OS user on the socket, the address over TCP) and attendant, in the ledger database,
so a restart forgets nothing and a stranger cannot lock an attendant out of the booth.
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
from datetime import UTC, datetime
from typing import Any

from appliance.core.events import NewEvent
from appliance.core.roles import Role
from appliance.errors import InputError, LotedgeError
from appliance.ledger import Ledger

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB of memory per check (see docs for times)
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_PIN = re.compile(r"^[0-9]{6,12}$")
PASSPHRASE_MIN, PASSPHRASE_MAX = 12, 128
MAX_FAILURES = 5  # wrong PINs for one attendant from one source, then that pair is locked
LOCKOUT_S = 300.0
SOURCE_FREE_FAILURES = 10  # wrong sign-ins from one source (any attendant) before it backs off
SOURCE_MAX_BACKOFF_S = 900.0
SOURCE_FORGET_S = 3600.0
SESSION_IDLE_S = 12 * 3600.0


class SignInError(LotedgeError, PermissionError):
    """Unknown attendant, wrong PIN, locked out, or an expired session."""


class RoleError(LotedgeError, PermissionError):
    """The signed-in attendant's role does not allow the action."""


def check_pin(pin: str) -> str:
    """The PIN if it is 6-12 digits or a passphrase of 12-128 characters, else InputError."""
    if isinstance(pin, str) and (_PIN.match(pin) or (
            not pin.isdigit() and PASSPHRASE_MIN <= len(pin) <= PASSPHRASE_MAX
            and pin.isprintable() and pin.strip() == pin)):
        return pin
    raise InputError(f"pin: must be 6 to 12 digits, or a passphrase of {PASSPHRASE_MIN} to "
                     f"{PASSPHRASE_MAX} characters")


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
        event = await tx.append(NewEvent(type="attendant.added", payload={
            "attendant_id": attendant_id, "name": name.strip(), "role": role.value, "by": by}))
        await _store_secret(tx, attendant_id, pin_hash, event.ts_utc)
    return {"id": attendant_id, "name": name.strip(), "role": role.value}


async def set_pin(ledger: Ledger, *, attendant_id: str, pin: str, by: str) -> dict[str, Any]:
    """Give an attendant a new PIN (event `attendant.pin_set`, without the PIN): after a
    forgotten PIN, or a ledger restored from a backup, which holds no credentials."""
    pin_hash = await asyncio.to_thread(hash_pin, check_pin(pin))
    async with ledger.transaction() as tx:
        if not await tx.fetchone("SELECT 1 FROM attendants WHERE id = ?", (attendant_id,)):
            raise InputError(f"no attendant {attendant_id!r}")
        event = await tx.append(NewEvent(type="attendant.pin_set", payload={
            "attendant_id": attendant_id, "by": by}))
        await _store_secret(tx, attendant_id, pin_hash, event.ts_utc)
    return {"id": attendant_id, "pin_set": True}


async def _store_secret(tx: Any, attendant_id: str, secret_hash: str, at: datetime) -> None:
    await tx.execute(
        "INSERT INTO credentials(attendant_id, secret_hash, updated_utc) VALUES (?,?,?) "
        "ON CONFLICT(attendant_id) DO UPDATE SET secret_hash = excluded.secret_hash, "
        "updated_utc = excluded.updated_utc", (attendant_id, secret_hash, at.isoformat()))


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
    """The service's sign-in desk: live sessions; failed attempts are kept in the ledger."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    sessions: dict[str, Session] = field(default_factory=dict)

    async def _check_not_locked(self, ledger: Ledger, source: str, attendant_id: str,
                                now: datetime) -> None:
        rows = {r["attendant_id"]: r for r in await ledger.fetchall(
            "SELECT attendant_id, failures, last_utc FROM signin_failures "
            "WHERE source = ? AND attendant_id IN (?, '*')", (source, attendant_id))}
        pair = rows.get(attendant_id)
        if pair is not None and pair["failures"] >= MAX_FAILURES:
            waited = (now - datetime.fromisoformat(pair["last_utc"])).total_seconds()
            if waited < LOCKOUT_S:
                raise SignInError(f"{attendant_id}: locked here after {pair['failures']} wrong "
                                  f"PINs; try again in {int(LOCKOUT_S - waited) + 1} s")
        whole = rows.get("*")
        if whole is not None and whole["failures"] >= SOURCE_FREE_FAILURES:
            backoff = min(SOURCE_MAX_BACKOFF_S,
                          2.0 ** (whole["failures"] - SOURCE_FREE_FAILURES + 1))
            waited = (now - datetime.fromisoformat(whole["last_utc"])).total_seconds()
            if waited < backoff:
                raise SignInError(f"{whole['failures']} wrong sign-ins from this terminal; "
                                  f"try again in {int(backoff - waited) + 1} s")

    async def _count_failure(self, ledger: Ledger, source: str, attendant_id: str,
                             now: datetime) -> None:
        async with ledger.transaction() as tx:
            for who, forget_s in ((attendant_id, LOCKOUT_S), ("*", SOURCE_FORGET_S)):
                row = await tx.fetchone(
                    "SELECT failures, last_utc FROM signin_failures WHERE source = ? AND "
                    "attendant_id = ?", (source, who))
                stale = row is None or (
                    now - datetime.fromisoformat(row["last_utc"])).total_seconds() > forget_s
                failures = 1 if stale else row["failures"] + 1
                await tx.execute(
                    "INSERT INTO signin_failures(source, attendant_id, failures, last_utc) "
                    "VALUES (?,?,?,?) ON CONFLICT(source, attendant_id) DO UPDATE SET "
                    "failures = excluded.failures, last_utc = excluded.last_utc",
                    (source, who, failures, now.isoformat()))
            await tx.append(NewEvent(type="attendant.sign_in_failed", payload={
                "attendant": attendant_id, "source": source}))

    async def sign_in(self, ledger: Ledger, *, attendant_id: str, pin: str,
                      source: str = "local") -> Session:
        """Check the PIN, open the attendant's shift if none is open, and start a session
        (`source`: where the attempt came from, for the lockout)."""
        if not attendant_id or not pin:
            raise InputError("attendant and pin are required")
        now = self.wall()
        await self._check_not_locked(ledger, source, attendant_id, now)
        row = await ledger.fetchone(
            "SELECT a.*, c.secret_hash FROM attendants a LEFT JOIN credentials c "
            "ON c.attendant_id = a.id WHERE a.id = ?", (attendant_id,))
        ok = row is not None and row["secret_hash"] is not None and await asyncio.to_thread(
            verify_pin, str(pin), row["secret_hash"])
        if not ok:
            await self._count_failure(ledger, source, attendant_id, now)
            raise SignInError("unknown attendant or wrong PIN")
        async with ledger.transaction() as tx:
            await tx.execute("DELETE FROM signin_failures WHERE source = ? AND "
                             "attendant_id IN (?, '*')", (source, attendant_id))
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
                          last_used_s=self.monotonic())
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


# What happened during a shift: card payments at the lanes (lot-wide: a card is taken by no
# attendant), and what this attendant did by hand. The type list lets the type index skip the
# lane facts that make up most of a shift's events (the Shift tab asks every poll).
_SUMMARY_SQL = """
SELECT
  SUM(type = 'payment.recorded' AND json_extract(payload, '$.method') = 'card'
      AND json_extract(payload, '$.status') = 'captured') AS card_payments,
  COALESCE(SUM(CASE WHEN type = 'payment.recorded' AND json_extract(payload, '$.method') = 'card'
      AND json_extract(payload, '$.status') = 'captured'
      THEN json_extract(payload, '$.amount_cents') END), 0) AS card_cents,
  SUM(type = 'ticket.validation_applied' AND json_extract(payload, '$.attendant') = ?3)
      AS validations,
  SUM(type = 'gate.manual_open' AND json_extract(payload, '$.attendant') = ?3) AS manual_opens,
  SUM(type = 'gate.hold_open' AND json_extract(payload, '$.attendant') = ?3
      AND json_extract(payload, '$.hold')) AS holds,
  SUM(type = 'ticket.fee_overridden' AND json_extract(payload, '$.attendant') = ?3
      AND json_extract(payload, '$.lost') IS NULL) AS overrides,
  SUM(type = 'ticket.fee_overridden' AND json_extract(payload, '$.attendant') = ?3
      AND json_extract(payload, '$.lost')) AS lost_tickets,
  SUM(type = 'ticket.voided' AND json_extract(payload, '$.attendant') = ?3) AS voids
FROM events WHERE seq > ?1 AND seq <= ?2 AND type IN (
  'payment.recorded', 'ticket.validation_applied', 'gate.manual_open', 'gate.hold_open',
  'ticket.fee_overridden', 'ticket.voided')
"""


async def shift_report(ledger: Ledger, shift_id: str) -> dict[str, Any]:
    """A shift with the cash expected from the ledger's cash payments taken during it, and
    what happened in it: card payments, validations, manual opens, holds, overrides, lost
    tickets and voids."""
    row = await ledger.fetchone("SELECT * FROM shifts WHERE id = ?", (shift_id,))
    if row is None:
        raise InputError(f"no shift {shift_id!r}")
    until = row["closed_seq"] if row["closed_seq"] is not None else await ledger.last_seq()
    cash = await ledger.fetchone(_CASH_SQL, (row["opened_seq"], until, row["attendant_id"]))
    report = dict(row)
    report["cash_payments"] = cash["n"]
    report["cash_cents"] = cash["cents"]
    if row["closed_seq"] is None:
        report["expected_cents"] = cash["cents"]
    summary = await ledger.fetchone(_SUMMARY_SQL,
                                   (row["opened_seq"], until, row["attendant_id"]))
    report.update({k: int(summary[k] or 0) for k in summary.keys()})
    closed = await ledger.fetchone(
        "SELECT json_extract(payload, '$.reason') AS reason FROM events "
        "WHERE seq = ? AND type = 'shift.closed'", (row["closed_seq"] or 0,))
    report["close_reason"] = closed["reason"] if closed is not None else None
    return report


async def close_shift(ledger: Ledger, *, shift_id: str, counted_cents: int,
                      closed_by: str, reason: str | None = None) -> dict[str, Any]:
    """Close a shift: record expected vs counted cash and the difference (`shift.closed`).
    Closing another attendant's shift needs a reason, recorded with it."""
    if not isinstance(counted_cents, int) or isinstance(counted_cents, bool) or counted_cents < 0:
        raise InputError("counted_cents: must be a non-negative integer")
    async with ledger.transaction() as tx:
        row = await tx.fetchone("SELECT * FROM shifts WHERE id = ?", (shift_id,))
        if row is None:
            raise InputError(f"no shift {shift_id!r}")
        if row["closed_utc"] is not None:
            raise InputError(f"shift {shift_id} is already closed")
        reason = (reason or "").strip() or None
        if row["attendant_id"] != closed_by and reason is None:
            raise InputError(f"shift {shift_id} is {row['attendant_id']}'s: closing another "
                             "attendant's shift needs a reason")
        head = await tx.fetchone("SELECT COALESCE(MAX(seq), 0) AS seq FROM events")
        cash = await tx.fetchone(_CASH_SQL, (row["opened_seq"], head["seq"],
                                             row["attendant_id"]))
        expected = int(cash["cents"])
        await tx.append(NewEvent(type="shift.closed", payload={
            "shift_id": shift_id, "attendant": row["attendant_id"], "closed_by": closed_by,
            "expected_cents": expected, "counted_cents": counted_cents,
            "difference_cents": counted_cents - expected, "cash_payments": cash["n"],
            **({"reason": reason} if reason is not None else {})}))
    return await shift_report(ledger, shift_id)

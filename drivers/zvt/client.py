"""A ZVT payment terminal behind the appliance's `PaymentTerminal` interface (ZVT over TCP).

The appliance is the ECR: it connects to the terminal (port 20007 by convention), sends one
command, acknowledges (80 00 00) each thing the terminal sends back (intermediate status,
receipt lines, Status-Information) and ends at the terminal's Completion (06 0F) or Abort
(06 1E). One connection per command, so nothing late from an earlier command reaches a later one.

Unattended exits authorise with a pre-authorisation (06 22) and capture with Book Total
(06 24); `flow="sale"` makes `authorize` a plain Authorisation (06 01), already booked.

Never charge twice: answers are kept per idempotency key (a retry gets the first answer, as the
simulator does). A command the terminal accepted but whose result never arrived (a dropped
link, a late answer, the lane giving up) is *in doubt*: the client asks the terminal for the
last transaction again (Repeat Receipt 06 20) until it knows; a booking that the appliance had
already recorded as failed is reversed (06 30, or 06 25 for a reservation), one for the same key
is taken as the answer. docs/payments.md walks through each case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from drivers.payment import PaymentResult, TerminalUnavailable
from drivers.zvt import messages as m
from drivers.zvt.apdu import ACK, Apdu, ProtocolError, split_apdu

log = logging.getLogger(__name__)

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@dataclass
class Exchange:
    """What the terminal sent back for one command."""

    accepted: bool = False
    status: m.StatusInfo | None = None
    completed: bool = False
    abort_code: int | None = None
    receipt: list[str] = field(default_factory=list)
    completion: Apdu | None = None


@dataclass(frozen=True, slots=True)
class InDoubt:
    """A command the terminal accepted whose result the appliance never got."""

    op: str  # authorize | capture | refund
    key: str
    amount_cents: int
    last_trace: int | None  # the last trace-number known before it
    started: datetime  # terminal-local time it was sent (to tell a stale last transaction)


class LinkDropped(TerminalUnavailable):
    """The link closed or went silent after the terminal accepted a command."""


class ZvtTerminal:
    """A ZVT terminal over TCP.

    Args:
        host, port: where the terminal listens.
        password: the terminal's 6-digit ECR password.
        currency: ISO 4217 numeric code (978 EUR, 840 USD).
        flow: 'preauth' (reserve, then book the fee) or 'sale' (one authorisation).
        answer_timeout_s: longest silence from the terminal during a command.
        connect_timeout_s: longest wait for the TCP connection.
        now_local: the lot's local time, naive (terminals keep local time): with no trace
            number seen yet, only a last transaction stamped within minutes of a command in
            doubt can be that command.
        opener: opens the connection (tests pass their own); default asyncio TCP.
        retain_keys: how many recent idempotency keys keep their answers.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 20007, password: str = "000000",
                 currency: int = 978, flow: str = "preauth", answer_timeout_s: float = 60.0,
                 connect_timeout_s: float = 5.0, opener: Opener | None = None,
                 retain_keys: int = 2000,
                 now_local: Callable[[], datetime] = datetime.now) -> None:
        if flow not in ("preauth", "sale"):
            raise ValueError("flow must be 'preauth' or 'sale'")
        self.host, self.port = host, port
        self.password = password
        self.currency = currency
        self.flow = flow
        self.answer_timeout_s = answer_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._opener = opener or self._tcp
        self._now_local = now_local
        self.retain_keys = retain_keys
        self._lock = asyncio.Lock()
        self._auth: dict[str, tuple[PaymentResult, m.StatusInfo | None]] = {}
        self._captured: dict[str, PaymentResult] = {}
        self._refunded: dict[str, PaymentResult] = {}
        self._unsettled: dict[str, PaymentResult] = {}  # offline bookings until end-of-day
        self._submitted: dict[str, PaymentResult] = {}  # ... submitted by an end-of-day
        self.in_doubt: InDoubt | None = None
        self.last_trace: int | None = None
        self.reversed_receipts: list[int] = []  # bookings undone by the in-doubt recovery
        self.registered = False
        self._adopted: dict[str, Exchange] = {}  # in-doubt results taken for their own key
        self.resolve_attempts = 3
        self.resolve_pause_s = 0.2

    async def _tcp(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    # --- one command -------------------------------------------------------------------------
    async def _exchange(self, command: Apdu) -> Exchange:
        """Send `command`, answer everything the terminal sends, until Completion or Abort."""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await self._opener()
        except (OSError, TimeoutError) as err:
            self.registered = False  # it may have restarted: register again once it answers
            raise TerminalUnavailable(f"cannot reach the terminal: {err or 'timeout'}") from err
        ex = Exchange()
        buf = b""
        try:
            writer.write(command.encode())
            await writer.drain()
            while not (ex.completed or ex.abort_code is not None):
                apdu, buf = split_apdu(buf)
                if apdu is None:
                    try:
                        async with asyncio.timeout(self.answer_timeout_s):
                            chunk = await reader.read(4096)
                    except TimeoutError as err:
                        raise self._dropped(ex, "no answer from the terminal") from err
                    if not chunk:
                        raise self._dropped(ex, "the terminal closed the link")
                    buf += chunk
                    continue
                if not ex.accepted:
                    if apdu.command == (0x80, 0x00):
                        ex.accepted = True
                        continue
                    if apdu.cls == 0x84:
                        ex.abort_code = apdu.instr
                        return ex
                    raise ProtocolError(f"expected an acknowledgement, got {apdu.cls:02X} "
                                        f"{apdu.instr:02X}")
                self._take(ex, apdu)
                writer.write(ACK.encode())
                await writer.drain()
            return ex
        except ProtocolError as err:
            if ex.accepted:
                raise self._dropped(ex, f"garbled answer ({err})") from err
            raise
        except OSError as err:
            if isinstance(err, TerminalUnavailable):
                raise
            raise self._dropped(ex, f"link failed: {err}") from err
        except asyncio.CancelledError:
            if ex.accepted and not ex.completed:
                with contextlib.suppress(Exception):  # ask it to stop; the result stays in doubt
                    writer.write(m.abort().encode())
            raise
        finally:
            writer.close()

    @staticmethod
    def _dropped(ex: Exchange, detail: str) -> TerminalUnavailable:
        if ex.accepted:
            return LinkDropped(detail + " after it accepted the command")
        return TerminalUnavailable(detail)

    @staticmethod
    def _take(ex: Exchange, apdu: Apdu) -> None:
        match apdu.command:
            case m.INTERMEDIATE_STATUS:
                pass
            case m.STATUS_INFORMATION:
                info = m.decode_status_info(apdu)
                if ex.status is None:  # a repeated Status-Information changes nothing
                    ex.status = info
            case m.PRINT_LINE:
                ex.receipt.extend(m.decode_print_line(apdu).lines)
            case m.PRINT_TEXT_BLOCK:
                ex.receipt.extend(m.decode_text_block(apdu).lines)
            case m.COMPLETION:
                ex.completed = True
                ex.completion = apdu
            case m.ABORT_FROM_PT:
                ex.abort_code = m.abort_result(apdu)
            case _:  # e.g. 04 01 set date and time, 06 E0 display text: acknowledged, unused
                log.debug("zvt: %02X %02X from the terminal acknowledged", apdu.cls, apdu.instr)

    # --- results -----------------------------------------------------------------------------
    def _result(self, ex: Exchange, amount_cents: int, status: str) -> PaymentResult:
        info = ex.status
        if info is None or not info.approved or ex.abort_code is not None:
            code = ex.abort_code if ex.abort_code is not None else (
                info.result_code if info is not None else 0xFF)
            return PaymentResult(approved=False, status="declined" if code == 0x05 else "error",
                                 amount_cents=amount_cents, reason=m.result_text(code),
                                 receipt_lines=tuple(ex.receipt))
        if info.trace_no is not None:
            self.last_trace = info.trace_no
        return PaymentResult(
            approved=True, status=status, amount_cents=info.amount_cents or amount_cents,
            processor_token=_reference(info), last4=info.last4, brand=info.brand,
            offline=info.offline, receipt_lines=tuple(ex.receipt))

    def _remember_auth(self, key: str, result: PaymentResult, info: m.StatusInfo | None) -> None:
        self._auth[key] = (result, info)
        while len(self._auth) > self.retain_keys:
            old = next(iter(self._auth))
            del self._auth[old]
            self._captured.pop(old, None)
            self._refunded.pop(old, None)

    async def _run(self, op: str, key: str, amount_cents: int, command: Apdu) -> Exchange:
        """Run a money command; a dropped link is resolved here when the terminal answers."""
        try:
            return await self._exchange(command)
        except LinkDropped:
            self.in_doubt = InDoubt(op, key, amount_cents, self.last_trace, self._now_local())
            for attempt in range(self.resolve_attempts):  # the link may take a moment back
                await self._resolve(current_key=key, current_op=op, quiet=True)
                if self.in_doubt is None:
                    break
                await asyncio.sleep(self.resolve_pause_s * (attempt + 1))
            adopted = self._adopted.pop(key, None)
            if adopted is not None:
                return adopted
            raise
        except asyncio.CancelledError:
            self.in_doubt = InDoubt(op, key, amount_cents, self.last_trace, self._now_local())
            raise

    async def _resolve(self, *, current_key: str | None, current_op: str | None,
                       quiet: bool = False) -> None:
        """Find out what became of the command in doubt: take it as the answer to the same
        key, or undo a booking the appliance has already recorded as failed."""
        doubt = self.in_doubt
        if doubt is None:
            return
        try:
            ex = await self._exchange(m.repeat_receipt(self.password))
        except TerminalUnavailable:
            if quiet:
                return
            raise
        info = ex.status
        happened = (info is not None and info.approved and info.trace_no is not None
                    and info.trace_no != doubt.last_trace
                    and info.amount_cents == doubt.amount_cents
                    and (doubt.last_trace is not None or _recent(info, doubt.started)))
        self.in_doubt = None
        if not happened:
            log.info("zvt: %s %s in doubt did not happen", doubt.op, doubt.key)
            return
        if doubt.key == current_key and doubt.op == current_op:
            self._adopted[doubt.key] = ex
            return
        # the appliance recorded this one as failed (invoice): undo the booking
        assert info is not None and info.receipt_no is not None
        undo = (m.pre_auth_reversal(info.receipt_no, doubt.amount_cents)
                if doubt.op == "authorize" and self.flow == "preauth"
                else m.reversal(self.password, info.receipt_no))
        if doubt.op == "refund":
            log.warning("zvt: refund %s went through after the appliance gave up", doubt.key)
            return
        result = await self._exchange(undo)
        if result.status is not None and result.status.approved:
            self.reversed_receipts.append(info.receipt_no)
            log.warning("zvt: reversed receipt %s (%s %s answered too late)",
                        info.receipt_no, doubt.op, doubt.key)
        else:
            self.in_doubt = doubt  # try again next time
            raise TerminalUnavailable(f"could not reverse receipt {info.receipt_no}")

    async def resolve_in_doubt(self) -> None:
        """Settle a command in doubt now (each command does it first anyway): a booking the
        appliance recorded as failed is reversed."""
        async with self._lock:
            await self._resolve(current_key=None, current_op=None)

    # --- the PaymentTerminal interface -------------------------------------------------------
    async def authorize(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult:
        """Reserve (pre-authorisation) or take (sale) `amount_cents`; once per key."""
        async with self._lock:
            if idempotency_key in self._auth:
                return self._auth[idempotency_key][0]
            await self._ready()
            await self._resolve(current_key=idempotency_key, current_op="authorize")
            command = (m.pre_authorisation(amount_cents, self.currency) if self.flow == "preauth"
                       else m.authorization(amount_cents, self.currency))
            ex = self._adopted.pop(idempotency_key, None) or await self._run(
                "authorize", idempotency_key, amount_cents, command)
            status = "authorized" if self.flow == "preauth" else "captured"
            result = self._result(ex, amount_cents, status)
            self._remember_auth(idempotency_key, replace(result, status="authorized")
                                if result.approved else result, ex.status)
            if result.approved and self.flow == "sale":
                self._booked(idempotency_key, result)
            return self._auth[idempotency_key][0]

    def _booked(self, key: str, result: PaymentResult) -> None:
        self._captured[key] = result
        if result.offline:
            self._unsettled[key] = result

    async def capture(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult:
        """Book the fee against the key's authorisation; a retry never books twice."""
        async with self._lock:
            if idempotency_key in self._captured:
                return self._captured[idempotency_key]
            auth, info = self._auth.get(idempotency_key, (None, None))
            if auth is None or not auth.approved or auth.amount_cents < amount_cents:
                return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                                     reason="no matching authorisation")
            if self.flow == "sale":  # the authorisation was the booking
                result = replace(auth, status="captured")
                self._booked(idempotency_key, result)
                return result
            await self._ready()
            await self._resolve(current_key=idempotency_key, current_op="capture")
            if info is None or info.receipt_no is None:
                return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                                     reason="authorisation without a receipt-number")
            ex = self._adopted.pop(idempotency_key, None) or await self._run(
                "capture", idempotency_key, amount_cents,
                m.book_total(info.receipt_no, amount_cents, self.currency))
            result = self._result(ex, amount_cents, "captured")
            if result.approved:
                result = replace(result, offline=result.offline or auth.offline,
                                 last4=result.last4 or auth.last4,
                                 brand=result.brand or auth.brand,
                                 receipt_lines=result.receipt_lines or auth.receipt_lines)
                self._booked(idempotency_key, result)
            return result

    async def refund(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult:
        """Reverse the key's booking (the whole amount) or refund part of it; once per key."""
        async with self._lock:
            if idempotency_key in self._refunded:
                return self._refunded[idempotency_key]
            cap = self._captured.get(idempotency_key)
            if cap is None or amount_cents > cap.amount_cents:
                return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                                     reason="nothing to refund")
            await self._ready()
            await self._resolve(current_key=idempotency_key, current_op="refund")
            receipt_no = _receipt_no(cap.processor_token)
            whole = amount_cents == cap.amount_cents and receipt_no is not None
            command = (m.reversal(self.password, receipt_no) if whole  # type: ignore[arg-type]
                       else m.refund(self.password, amount_cents))
            ex = self._adopted.pop(idempotency_key, None) or await self._run(
                "refund", idempotency_key, amount_cents, command)
            result = self._result(ex, amount_cents, "refunded")
            if result.approved:
                self._refunded[idempotency_key] = result
                self._unsettled.pop(idempotency_key, None)
            return result

    async def abort(self) -> bool:
        """Ask the terminal to abort what it runs (06 B0); True when it acknowledged."""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await self._opener()
        except (OSError, TimeoutError) as err:
            raise TerminalUnavailable(f"cannot reach the terminal: {err or 'timeout'}") from err
        try:
            writer.write(m.abort().encode())
            await writer.drain()
            async with asyncio.timeout(self.answer_timeout_s):
                data = await reader.read(3)
            return data[:2] == b"\x80\x00"
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def _ready(self) -> None:
        """Register (06 00) before the first command, and again after the terminal was out of
        reach: receipts and control of payments come to the ECR only after a Registration."""
        if self.registered:
            return
        ex = await self._exchange(m.registration(self.password, self.currency))
        if not ex.completed:
            raise TerminalUnavailable("the terminal refused the registration: "
                                      f"{m.result_text(ex.abort_code or 0xFF)}")
        self.registered = True

    async def register(self) -> dict:
        """Registration (06 00): receipts and control to the ECR; the terminal's id."""
        ex = await self._exchange(m.registration(self.password, self.currency))
        self.registered = ex.completed
        return {"registered": ex.completed, "result": m.result_text(ex.abort_code or 0)}

    async def status(self) -> dict:
        """Status Enquiry (05 01): the terminal's status byte and id."""
        ex = await self._exchange(m.status_enquiry(self.password))
        out: dict = {"ready": False, "in_doubt": self.in_doubt is not None}
        if ex.completion is not None:
            for number, raw in m.parse_bmps(ex.completion.data):
                if number == 0x19:
                    out["status_byte"] = raw[0]
                    out["ready"] = raw[0] == 0
                elif number == 0x29:
                    out["terminal_id"] = m.bcd_digits(raw)
        return out

    async def end_of_day(self) -> dict:
        """End-of-Day (06 50): the terminal submits its bookings (offline ones included) and
        reports the day's total; its receipt lines come back too."""
        async with self._lock:
            await self._ready()
            await self._resolve(current_key=None, current_op=None)
            ex = await self._exchange(m.end_of_day(self.password))
            ok = ex.status is not None and ex.status.approved and ex.abort_code is None
            if ok:
                self._submitted.update(self._unsettled)
                self._unsettled.clear()
            return {"ok": ok, "total_cents": ex.status.amount_cents if ex.status else None,
                    "result": m.result_text(ex.abort_code if ex.abort_code is not None else
                                            (ex.status.result_code if ex.status else 0xFF)),
                    "receipt_lines": list(ex.receipt)}

    def settle_offline(self) -> dict[str, bool]:
        """Offline bookings an end-of-day has submitted since the last call (key -> True).

        A card the processor refuses later is reported to the merchant by the acquirer, not
        to the ECR; the appliance counts a submitted booking as collected."""
        settled = {key: True for key in self._submitted}
        self._submitted.clear()
        return settled


RECENT = timedelta(minutes=15)


def _recent(info: m.StatusInfo, started: datetime) -> bool:
    """Whether a Status-Information's date (MMDD) and time (HHMMSS) fall within RECENT of
    `started` (the year is not sent: the nearest one is taken)."""
    if not (info.date and info.time and len(info.date) == 4 and len(info.time) == 6):
        return False
    try:
        month, day = int(info.date[:2]), int(info.date[2:])
        hour, minute, second = int(info.time[:2]), int(info.time[2:4]), int(info.time[4:])
        stamps = [datetime(started.year + dy, month, day, hour, minute, second)
                  for dy in (-1, 0, 1)]
    except ValueError:
        return False
    return min(abs(s - started) for s in stamps) <= RECENT


def _reference(info: m.StatusInfo) -> str:
    """The payment reference kept with the payment and printed on receipts."""
    return (f"zvt:{info.terminal_id or '-'}:{info.trace_no if info.trace_no is not None else '-'}"
            f":{info.receipt_no if info.receipt_no is not None else '-'}")


def _receipt_no(reference: str | None) -> int | None:
    if not reference or not reference.startswith("zvt:"):
        return None
    last = reference.rsplit(":", 1)[-1]
    return int(last) if last.isdigit() else None

"""A ZVT payment terminal emulator: an asyncio TCP server speaking the PT side of ZVT.

Written from the ZVT-Protocol specification, like the client, and checked against the same
published example frames (tests/drivers/test_zvt_codec.py). It keeps a journal of bookings so
tests can ask what money really left the cards (`charged_cents`), and has the faults a real
terminal shows: it answers late (`delay_s`), drops the link after approving
(`drop_after_approval`), repeats its answers (`repeat_answers`), or its processor is
unreachable (`mode="offline"`: approvals below the floor limit, payment-type 40).

`lotedge run --simulate` with `[payment] terminal = "zvt-emulator"` starts one in the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from drivers.zvt import messages as m
from drivers.zvt.apdu import (
    ACK,
    Apdu,
    ProtocolError,
    bcd_decode,
    encode_bmp,
    nack,
    parse_bmps,
    split_apdu,
)

log = logging.getLogger(__name__)


@dataclass
class Booking:
    """One transaction in the emulator's journal."""

    receipt_no: int
    trace_no: int
    kind: str  # sale | preauth | book | refund
    amount_cents: int
    offline: bool = False
    reversed: bool = False
    booked_cents: int = 0  # a reservation's booked part (Book Total)
    of_receipt: int | None = None  # the reservation a Book Total books
    at: datetime = field(default_factory=datetime.now)  # terminal-local time


class ZvtEmulator:
    """The terminal's side of ZVT over TCP.

    Args:
        password: the ECR password it accepts.
        terminal_id: its 8-digit terminal id.
        decline_rate: share of cards declined (with `seed`).
        decline_above_cents: decline every amount above this (deterministic tests).
        mode: 'online'; 'offline' (processor unreachable: approves up to
            `offline_floor_cents` offline, declines above).
        pan: the masked card number it reports (last four digits in clear).
        clock: its local time, stamped on each transaction (BMP 0C/0D).
    """

    def __init__(self, *, password: str = "000000", terminal_id: str = "52500001",
                 decline_rate: float = 0.0, seed: int | None = None,
                 decline_above_cents: int | None = None, mode: str = "online",
                 offline_floor_cents: int = 5000, pan: str = "EEEEEEEEEEEE4242",
                 card_type: int = 0x0A, card_name: str = "VISA",
                 clock: Callable[[], datetime] = datetime.now) -> None:
        self.password = password
        self.terminal_id = terminal_id
        self.decline_rate = decline_rate
        self.decline_above_cents = decline_above_cents
        self.mode = mode
        self.offline_floor_cents = offline_floor_cents
        self.pan, self.card_type, self.card_name = pan, card_type, card_name
        self._rng = random.Random(seed)
        self.clock = clock  # the terminal's local time
        self.delay_s = 0.0
        self.drop_after_approval = 0  # this many approvals lose their answer
        self.drop_after_ack = 0  # this many payments lose the link before the card is read
        self.repeat_answers = False
        self.journal: list[Booking] = []
        self.commands: list[tuple[int, int]] = []
        self._trace = 0
        self._receipt = 0
        self._day_start = 0  # journal index of the day's first booking
        self._last_status: Apdu | None = None
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self.port = 0

    # --- what the cards were charged ---------------------------------------------------------
    @property
    def charged_cents(self) -> int:
        """Money taken from cards: sales and booked reservations, less reversals and refunds."""
        total = 0
        for b in self.journal:
            if b.reversed:
                continue
            if b.kind in ("sale", "book"):
                total += b.amount_cents
            elif b.kind == "refund":
                total -= b.amount_cents
        return total

    @property
    def bookings(self) -> int:
        """How many charges stand (sales and Book Totals not reversed)."""
        return sum(1 for b in self.journal if b.kind in ("sale", "book") and not b.reversed)

    # --- server ------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening and end open connections."""
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def run_forever(self, host: str = "127.0.0.1", port: int = 20007) -> None:
        """Serve until cancelled (the simulated lot's task)."""
        await self.start(host, port)
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        link = _Link(reader, writer)
        try:
            while True:
                apdu = await link.read()
                if apdu is None:
                    return
                self.commands.append(apdu.command)
                await self._command(link, apdu)
        except (ProtocolError, ConnectionError, OSError, TimeoutError, _Dropped):
            pass
        except asyncio.CancelledError:  # stopped: end quietly (a cancelled stream handler
            pass                        # makes asyncio log the cancellation as an error)
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    # --- commands ----------------------------------------------------------------------------
    def _next(self) -> tuple[int, int]:
        self._trace = self._trace % 999999 + 1
        self._receipt = self._receipt % 9999 + 1
        return self._trace, self._receipt

    def _password_ok(self, data: bytes) -> bool:
        return data[:3] == bytes.fromhex(self.password)

    async def _command(self, link: _Link, apdu: Apdu) -> None:
        match apdu.command:
            case m.REGISTRATION | m.STATUS_ENQUIRY:
                if not self._password_ok(apdu.data):
                    await link.send(nack(0x83))
                    return
                await link.send(ACK)
                await link.exchange(Apdu(*m.COMPLETION, encode_bmp(0x19, b"\x00") + encode_bmp(
                    0x29, bytes.fromhex(self.terminal_id))))
            case m.AUTHORIZATION | m.PRE_AUTHORISATION:
                await link.send(ACK)
                amount = _amount(apdu.data[0:])
                kind = "sale" if apdu.command == m.AUTHORIZATION else "preauth"
                await self._payment(link, kind, amount)
            case m.BOOK_TOTAL:
                await link.send(ACK)
                fields = dict(parse_bmps(apdu.data))
                receipt = bcd_decode(fields.get(0x87, b"\x00\x00"))
                amount = bcd_decode(fields.get(0x04, b"\x00" * 6))
                await self._book_total(link, receipt, amount)
            case m.PRE_AUTH_REVERSAL:
                await link.send(ACK)
                fields = dict(parse_bmps(apdu.data))
                await self._reverse(link, bcd_decode(fields.get(0x87, b"\x00\x00")), "preauth")
            case m.REVERSAL:
                if not self._password_ok(apdu.data):
                    await link.send(nack(0x83))
                    return
                await link.send(ACK)
                fields = dict(parse_bmps(apdu.data[3:]))
                await self._reverse(link, bcd_decode(fields.get(0x87, b"\x00\x00")), None)
            case m.REFUND:
                if not self._password_ok(apdu.data):
                    await link.send(nack(0x83))
                    return
                await link.send(ACK)
                await self._payment(link, "refund", _amount(apdu.data[3:]))
            case m.END_OF_DAY:
                if not self._password_ok(apdu.data):
                    await link.send(nack(0x83))
                    return
                await link.send(ACK)
                await self._end_of_day(link)
            case m.REPEAT_RECEIPT:
                await link.send(ACK)
                if self._last_status is None:
                    await link.exchange(Apdu(*m.ABORT_FROM_PT, b"\x83"))
                    return
                await link.exchange(self._last_status)
                await link.exchange(Apdu(*m.COMPLETION))
            case m.ABORT:
                await link.send(ACK)
            case _:
                await link.send(nack(0x83))

    def _declines(self, amount: int) -> bool:
        if self.decline_above_cents is not None and amount > self.decline_above_cents:
            return True
        return self._rng.random() < self.decline_rate

    def _status(self, code: int, booking: Booking | None, amount: int) -> Apdu:
        if booking is None:
            return m.encode_status_info(m.StatusInfo(
                result_code=code, terminal_id=self.terminal_id, text=m.result_text(code)))
        return m.encode_status_info(m.StatusInfo(
            result_code=0, amount_cents=amount, trace_no=booking.trace_no,
            receipt_no=booking.receipt_no, turnover_no=booking.trace_no,
            payment_type=m.PAYMENT_TYPE_OFFLINE if booking.offline else m.PAYMENT_TYPE_ONLINE,
            card_type=self.card_type, card_name=self.card_name, pan=self.pan,
            terminal_id=self.terminal_id, currency=978, time=booking.at.strftime("%H%M%S"),
            date=booking.at.strftime("%m%d")))

    async def _refuse(self, link: _Link, code: int) -> None:
        await link.exchange(self._status(code, None, 0))
        await link.exchange(Apdu(*m.ABORT_FROM_PT, bytes((code,))))

    async def _payment(self, link: _Link, kind: str, amount: int) -> None:
        if self.drop_after_ack > 0:
            self.drop_after_ack -= 1
            raise _Dropped()
        await link.exchange(Apdu(*m.INTERMEDIATE_STATUS, b"\x0a"))  # "insert card"
        offline = self.mode == "offline"
        if amount <= 0 or self._declines(amount) or (
                offline and amount > self.offline_floor_cents):
            await self._refuse(link, 0x05)
            return
        trace, receipt = self._next()
        booking = Booking(receipt, trace, kind, amount, offline=offline, at=self.clock())
        self.journal.append(booking)
        await self._answer(link, booking, amount, kind)

    async def _answer(self, link: _Link, booking: Booking, amount: int, kind: str) -> None:
        status = self._status(0, booking, amount)
        self._last_status = status
        if self.drop_after_approval > 0:
            self.drop_after_approval -= 1
            raise _Dropped()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        for _ in range(2 if self.repeat_answers else 1):
            await link.exchange(status)
        lines = [f"{kind.upper():^24}", f"Terminal-ID {self.terminal_id}",
                 f"Trace {booking.trace_no:06d}  Beleg {booking.receipt_no:04d}",
                 f"Karte {self.card_name}  {self.pan[-4:]}",
                 f"Betrag EUR {amount // 100},{amount % 100:02d}"]
        await link.exchange(m.encode_text_block(lines, 2))
        for _ in range(2 if self.repeat_answers else 1):
            await link.exchange(Apdu(*m.COMPLETION))

    async def _book_total(self, link: _Link, receipt: int, amount: int) -> None:
        reservation = next((b for b in self.journal if b.kind == "preauth"
                            and b.receipt_no == receipt and not b.reversed), None)
        if reservation is None or reservation.booked_cents or amount > reservation.amount_cents:
            await self._refuse(link, 0x83)
            return
        reservation.booked_cents = amount
        trace, receipt_no = self._next()
        booking = Booking(receipt_no, trace, "book", amount, offline=reservation.offline,
                          at=self.clock(),
                          of_receipt=receipt)
        self.journal.append(booking)
        await self._answer(link, booking, amount, "book")

    async def _reverse(self, link: _Link, receipt: int, kind: str | None) -> None:
        target = next((b for b in self.journal if b.receipt_no == receipt and (
            kind is None or b.kind == kind)), None)
        if target is None or target.reversed:
            await self._refuse(link, 0xB4 if target is not None else 0xB5)
            return
        target.reversed = True
        trace, _ = self._next()
        status = m.encode_status_info(m.StatusInfo(
            result_code=0, amount_cents=target.amount_cents, trace_no=trace,
            receipt_no=target.receipt_no, terminal_id=self.terminal_id))
        await link.exchange(status)
        await link.exchange(Apdu(*m.COMPLETION))

    async def _end_of_day(self, link: _Link) -> None:
        day = self.journal[self._day_start:]
        total = sum(b.amount_cents for b in day if b.kind in ("sale", "book") and not b.reversed)
        count = sum(1 for b in day if b.kind in ("sale", "book") and not b.reversed)
        self._day_start = len(self.journal)
        trace, _ = self._next()
        await link.exchange(m.encode_status_info(m.StatusInfo(
            result_code=0, amount_cents=total, trace_no=trace, terminal_id=self.terminal_id)))
        await link.exchange(m.encode_text_block(
            ["END-OF-DAY", f"Terminal-ID {self.terminal_id}", f"Bookings {count}",
             f"Total EUR {total // 100},{total % 100:02d}"], 3))
        await link.exchange(Apdu(*m.COMPLETION))


class _Dropped(Exception):
    """The emulator drops the link (a fault switch)."""


class _Link:
    """One ECR connection: APDUs in and out, waiting for the ECR's acknowledgements."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""

    async def read(self, timeout_s: float | None = None) -> Apdu | None:
        while True:
            apdu, self.buf = split_apdu(self.buf)
            if apdu is not None:
                return apdu
            if timeout_s is None:
                chunk = await self.reader.read(4096)
            else:
                async with asyncio.timeout(timeout_s):
                    chunk = await self.reader.read(4096)
            if not chunk:
                return None
            self.buf += chunk

    async def send(self, apdu: Apdu) -> None:
        self.writer.write(apdu.encode())
        await self.writer.drain()

    async def exchange(self, apdu: Apdu) -> None:
        """Send and wait for the ECR's 80 00 00."""
        await self.send(apdu)
        answer = await self.read(timeout_s=10.0)
        if answer is None:
            raise _Dropped()


def _amount(data: bytes) -> int:
    fields = dict(parse_bmps(data))
    raw = fields.get(0x04)
    return bcd_decode(raw) if raw else 0


"""Payment terminal interface and its simulator. No card number ever reaches the appliance:
only a processor token, the last 4 digits and the brand."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from typing import Protocol

from appliance.errors import DeviceError


@dataclass(frozen=True, kw_only=True, slots=True)
class PaymentResult:
    """What the terminal reports for one operation."""

    approved: bool
    status: str  # authorized | captured | refunded | declined | error
    amount_cents: int
    processor_token: str | None = None
    last4: str | None = None
    brand: str | None = None
    offline: bool = False
    reason: str = ""
    receipt_lines: tuple[str, ...] = ()  # the terminal's own receipt text, when it sends one


class PaymentTerminal(Protocol):
    """A card terminal; every operation is idempotent on its `idempotency_key`."""

    async def authorize(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult: ...

    async def capture(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult: ...

    async def refund(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult: ...

    def settle_offline(self) -> dict[str, bool]:
        """Once the processor is reachable: settle offline approvals (key -> collected)."""
        ...

    async def abort(self) -> bool:
        """Ask the terminal to stop what it is doing; True when it acknowledged."""
        ...

    async def status(self) -> dict:
        """The terminal's state: at least `ready` (bool)."""
        ...

    async def end_of_day(self) -> dict:
        """Close the day: `ok`, `total_cents` booked since the last one, `receipt_lines`."""
        ...


class TerminalUnavailable(DeviceError):
    """The terminal or its processor cannot be reached."""

    def __init__(self, detail: str):
        super().__init__(detail, code="terminal_unavailable", device="payment")


class SimulatedTerminal:
    """A terminal with a decline rate and switchable faults.

    Like a real processor it remembers its answers per idempotency key for a window, here the
    last `retain_keys` keys (a processor keeps them about a day): a retry inside the window gets
    the first answer, an older key is a new operation. Offline approvals are kept outside the
    window until `settle_offline` has settled them, since they are money still owed. So its
    memory stays bounded however many cars pay (a 24 h soak makes ~22,000 payments).

    Args:
        decline_rate: share of cards declined.
        seed: for reproducible simulations.
        mode: 'online'; 'offline' (processor unreachable: approves offline up to
            `offline_floor_cents`, settled later by `settle_offline`); 'down' (terminal dead:
            raises TerminalUnavailable); 'hang' (never answers).
        retain_keys: how many recent idempotency keys keep their answers.
    """

    def __init__(self, *, decline_rate: float = 0.03, seed: int | None = None,
                 mode: str = "online", offline_floor_cents: int = 5000,
                 offline_failure_rate: float = 0.05, retain_keys: int = 2000) -> None:
        if retain_keys < 1:
            raise ValueError("retain_keys must be at least 1")
        self.decline_rate = decline_rate
        self.mode = mode
        self.offline_floor_cents = offline_floor_cents
        self.offline_failure_rate = offline_failure_rate
        self.retain_keys = retain_keys
        self._rng = random.Random(seed)
        # per key, oldest first (dicts keep insertion order); a key enters _auth first
        self._auth: dict[str, PaymentResult] = {}
        self._captured: dict[str, PaymentResult] = {}
        self._refunded: dict[str, PaymentResult] = {}
        self._unsettled: dict[str, PaymentResult] = {}  # offline captures, until settled
        self.captured_cents = 0
        self.capture_calls = 0
        self._day_start_cents = 0

    def _remember(self, key: str, result: PaymentResult) -> None:
        """Keep `result` as the key's authorisation; forget the oldest keys past the window."""
        self._auth[key] = result
        while len(self._auth) > self.retain_keys:
            old = next(iter(self._auth))
            del self._auth[old]
            self._captured.pop(old, None)
            self._refunded.pop(old, None)

    async def _fault(self) -> None:
        if self.mode == "down":
            raise TerminalUnavailable("terminal not responding")
        if self.mode == "hang":
            await asyncio.sleep(3600)

    async def authorize(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult:
        """Authorise once per key; a retry returns the first answer."""
        await self._fault()
        if idempotency_key in self._auth:
            return self._auth[idempotency_key]
        if self.mode == "offline":
            if amount_cents > self.offline_floor_cents:
                result = PaymentResult(approved=False, status="declined",
                                       amount_cents=amount_cents,
                                       reason="offline: above floor limit")
            else:
                result = PaymentResult(approved=True, status="authorized", offline=True,
                                       amount_cents=amount_cents,
                                       processor_token=f"off_{self._rng.getrandbits(48):012x}",
                                       last4=f"{self._rng.randrange(10000):04d}", brand="VISA")
        elif self._rng.random() < self.decline_rate:
            result = PaymentResult(approved=False, status="declined", amount_cents=amount_cents,
                                   reason="card declined")
        else:
            result = PaymentResult(approved=True, status="authorized", amount_cents=amount_cents,
                                   processor_token=f"tok_{self._rng.getrandbits(64):016x}",
                                   last4=f"{self._rng.randrange(10000):04d}",
                                   brand=self._rng.choice(["VISA", "MASTERCARD", "AMEX"]))
        self._remember(idempotency_key, result)
        return result

    async def capture(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult:
        """Capture an authorisation once; retries never charge twice."""
        await self._fault()
        if idempotency_key in self._captured:
            return self._captured[idempotency_key]
        auth = self._auth.get(idempotency_key)
        if auth is None or not auth.approved or auth.amount_cents < amount_cents:
            return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                                 reason="no matching authorisation")
        self.capture_calls += 1
        result = replace(auth, status="captured", amount_cents=amount_cents)
        self._captured[idempotency_key] = result
        if result.offline:
            self._unsettled[idempotency_key] = result
        self.captured_cents += amount_cents
        return result

    async def refund(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult:
        """Refund a capture once."""
        await self._fault()
        if idempotency_key in self._refunded:
            return self._refunded[idempotency_key]
        cap = self._captured.get(idempotency_key)
        if cap is None or amount_cents > cap.amount_cents:
            return PaymentResult(approved=False, status="error", amount_cents=amount_cents,
                                 reason="nothing to refund")
        result = replace(cap, status="refunded", amount_cents=amount_cents)
        self._refunded[idempotency_key] = result
        self.captured_cents -= amount_cents
        return result

    async def abort(self) -> bool:
        """Nothing runs between calls: acknowledged unless the terminal is down."""
        await self._fault()
        return True

    async def status(self) -> dict:
        """Ready unless down; says whether the processor is reachable."""
        return {"ready": self.mode != "down", "online": self.mode == "online",
                "unsettled_offline": len(self._unsettled)}

    async def end_of_day(self) -> dict:
        """The captures since the last end-of-day (offline ones stay for `settle_offline`)."""
        await self._fault()
        total = self.captured_cents - self._day_start_cents
        self._day_start_cents = self.captured_cents
        return {"ok": True, "total_cents": total, "result": "no error",
                "receipt_lines": [f"END-OF-DAY {total / 100:.2f}"]}

    def settle_offline(self) -> dict[str, bool]:
        """When the processor is back: settle offline approvals; some cards fail then."""
        settled: dict[str, bool] = {}
        if self.mode != "online":
            return settled
        for key in self._unsettled:
            settled[key] = self._rng.random() >= self.offline_failure_rate
        for key in settled:
            result = replace(self._unsettled.pop(key), offline=False)
            if key in self._captured:
                self._captured[key] = result
        return settled

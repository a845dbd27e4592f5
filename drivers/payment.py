"""Payment terminal interface and its simulator. No card number ever reaches the appliance."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True, slots=True)
class PaymentResult:
    """What the terminal reports: only a processor token, last 4 digits and brand."""

    approved: bool
    status: str  # captured | declined | error
    amount_cents: int
    processor_token: str | None = None
    last4: str | None = None
    brand: str | None = None
    offline: bool = False
    reason: str = ""


class PaymentTerminal(Protocol):
    """A card terminal: charges are idempotent on `idempotency_key`."""

    async def charge(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult: ...


class SimulatedTerminal:
    """A terminal that approves or declines at a configured rate; retries return the first result."""

    def __init__(self, *, decline_rate: float = 0.03, seed: int | None = None) -> None:
        self.decline_rate = decline_rate
        self._rng = random.Random(seed)
        self._done: dict[str, PaymentResult] = {}
        self.charges = 0

    async def charge(self, *, idempotency_key: str, amount_cents: int) -> PaymentResult:
        """Charge once per key; a retry with the same key returns the same result."""
        if idempotency_key in self._done:
            return self._done[idempotency_key]
        self.charges += 1
        if self._rng.random() < self.decline_rate:
            result = PaymentResult(approved=False, status="declined", amount_cents=amount_cents,
                                   reason="card declined")
        else:
            result = PaymentResult(
                approved=True, status="captured", amount_cents=amount_cents,
                processor_token=f"tok_{self._rng.getrandbits(64):016x}",
                last4=f"{self._rng.randrange(10000):04d}", brand="VISA",
            )
        self._done[idempotency_key] = result
        return result

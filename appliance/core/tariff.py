"""Tariff definition: the lot's prices as a frozen value, validated by the config loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from appliance.core.types import SpotType

_FORBID = {"extra": "forbid"}


@dataclass(frozen=True, kw_only=True)
class Tariff:
    """Prices in integer cents; multipliers as exact Decimals."""

    __pydantic_config__ = _FORBID

    grace_minutes: int = 10
    minimum_charge_cents: int = 200
    hourly_cents: int = 300
    daily_max_cents: int = 2400
    lost_ticket_cents: int | None = None
    spot_multipliers: dict[SpotType, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("grace_minutes", "minimum_charge_cents", "hourly_cents", "daily_max_cents"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        for spot_type, mult in self.spot_multipliers.items():
            if mult < 0:
                raise ValueError(f"spot_multipliers.{spot_type}: must not be negative")

    @property
    def lost_ticket_fee_cents(self) -> int:
        """The flat lost-ticket fee, or the daily max when none is configured."""
        return self.daily_max_cents if self.lost_ticket_cents is None else self.lost_ticket_cents

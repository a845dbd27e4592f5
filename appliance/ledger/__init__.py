"""The append-only, hash-chained ledger (the appliance's source of truth)."""

from appliance.ledger.store import Ledger, Tx, VerifyReport

__all__ = ["Ledger", "Tx", "VerifyReport"]

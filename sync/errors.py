"""Sync-specific leaves of the lotedge error tree."""

from __future__ import annotations

from appliance.errors import LotedgeError


class SyncError(LotedgeError, RuntimeError):
    """The link to the cloud failed (broker, HTTP or cloud store)."""


class BundleRejected(LotedgeError, ValueError):
    """A downlink bundle was refused; `reason` says why (one line)."""

    def __init__(self, reason: str, *, version: int | None = None):
        self.reason = reason
        self.version = version
        super().__init__(f"bundle{' v' + str(version) if version is not None else ''} "
                         f"rejected: {reason}")

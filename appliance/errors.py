"""The one error tree of lotedge: every error the appliance raises derives from LotedgeError."""

from __future__ import annotations


class LotedgeError(Exception):
    """Root of every lotedge error."""


class ConfigError(LotedgeError, ValueError):
    """A lot configuration file is missing, unreadable or invalid.

    Args:
        message: what is wrong, naming the key.
        path: the file, when known.
        line: the 1-based line in that file, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(f"{where}{message}")


class LedgerError(LotedgeError, RuntimeError):
    """The ledger database refused an operation or failed verification."""


class LedgerIntegrityError(LedgerError):
    """The ledger's sequence or hash chain does not verify."""


class DeviceError(LotedgeError, OSError):
    """A hardware device failed; `code` says which failure for alarms and diagnostics."""

    def __init__(self, message: str, *, code: str, device: str | None = None):
        self.code = code
        self.device = device
        super().__init__(f"[{code}] {device + ': ' if device else ''}{message}")


class InputError(LotedgeError, ValueError):
    """A request or command from a person or a peer was invalid."""


class FeeError(InputError):
    """Fee inputs are inconsistent: exit before entry, naive time, unknown spot type or code."""


class ListenError(LotedgeError, OSError):
    """The service cannot listen where it must: its API socket or HTTP port is taken."""

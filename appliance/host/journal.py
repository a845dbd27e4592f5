"""Structured logging to journald over its native protocol (no library needed).

Each record is one datagram of `FIELD=value` lines to /run/systemd/journal/socket; values with
a newline use the binary form `FIELD\\n<u64 little-endian length><value>\\n`. Fields: MESSAGE,
PRIORITY, SYSLOG_IDENTIFIER, LOGGER, CODE_FILE/LINE/FUNC, LOTEDGE_LOT and one LOTEDGE_<KEY> per
entry of `extra={"fields": {...}}` (e.g. `journalctl LOTEDGE_LANE=in-1`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import traceback
from collections.abc import Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_MAX_MESSAGE_BYTES = 48 * 1024
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}


def _field_name(key: str) -> str:
    name = re.sub(r"[^A-Z0-9_]", "_", key.upper()).lstrip("_")
    return name[:64] or "FIELD"


def encode_fields(fields: Mapping[str, object]) -> bytes:
    """One journald native-protocol datagram."""
    out = bytearray()
    for key, value in fields.items():
        data = str(value).encode("utf-8", "replace")
        name = key.encode("ascii")
        if b"\n" in data:
            out += name + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """logging handler that writes structured entries to journald.

    Args:
        identifier: SYSLOG_IDENTIFIER.
        static: fields added to every entry (e.g. {"LOTEDGE_LOT": "lot-7"}).
        socket_path: the journal socket (tests bind their own).
    """

    def __init__(self, *, identifier: str = "lotedge", static: Mapping[str, str] | None = None,
                 socket_path: str = JOURNAL_SOCKET, level: int = logging.NOTSET):
        super().__init__(level)
        self.identifier = identifier
        self.static = dict(static or {})
        self.socket_path = socket_path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        """The journal fields of one record."""
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        encoded = message.encode("utf-8", "replace")
        if len(encoded) > _MAX_MESSAGE_BYTES:
            message = encoded[:_MAX_MESSAGE_BYTES].decode("utf-8", "ignore") + " [truncated]"
        fields: dict[str, object] = {
            "MESSAGE": message,
            "PRIORITY": _PRIORITY.get(record.levelno, 6),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname, "CODE_LINE": record.lineno, "CODE_FUNC": record.funcName,
            "THREAD_NAME": record.threadName,
            **self.static,
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, Mapping):
            for key, value in extra.items():
                fields["LOTEDGE_" + _field_name(str(key))] = value
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        """Send one entry (errors go to logging's handleError, never to the caller)."""
        try:
            self._sock.sendto(encode_fields(self.fields(record)), self.socket_path)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()
        super().close()


def use_journal_if_under_systemd(lot_id: str, *, environ: Mapping[str, str] | None = None,
                                 socket_path: str = JOURNAL_SOCKET) -> bool:
    """When stderr goes to journald (systemd sets JOURNAL_STREAM), log structured entries
    instead of plain lines; return whether it did."""
    env = os.environ if environ is None else environ
    if not env.get("JOURNAL_STREAM") or not os.path.exists(socket_path):
        return False
    root = logging.getLogger()
    handler = JournalHandler(static={"LOTEDGE_LOT": lot_id}, socket_path=socket_path)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    return True

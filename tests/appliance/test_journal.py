"""Structured journald entries over a real AF_UNIX datagram socket, parsed back field by field."""

from __future__ import annotations

import logging
import socket
import struct
import tempfile
from pathlib import Path

import pytest

from appliance.host.journal import JournalHandler, use_journal_if_under_systemd


def parse(datagram: bytes) -> dict[str, str]:
    """Decode journald's native protocol (both the text and the binary-length form)."""
    fields, i = {}, 0
    while i < len(datagram):
        end = datagram.index(b"\n", i)
        line = datagram[i:end]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            fields[key.decode()] = value.decode()
            i = end + 1
        else:
            (size,) = struct.unpack("<Q", datagram[end + 1:end + 9])
            fields[line.decode()] = datagram[end + 9:end + 9 + size].decode()
            assert datagram[end + 9 + size:end + 10 + size] == b"\n"
            i = end + 10 + size
    return fields


@pytest.fixture
def journal_socket():
    path = str(Path(tempfile.mkdtemp(prefix="jnl")) / "socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_entries_carry_structured_fields(journal_socket):
    path, sock = journal_socket
    log = logging.getLogger("lotedge.test.journal")
    handler = JournalHandler(static={"LOTEDGE_LOT": "lot-7"}, socket_path=path)
    log.addHandler(handler)
    try:
        log.warning("gate %s stuck", "in-1", extra={"fields": {"lane": "in-1", "code": 42}})
        try:
            raise RuntimeError("relay\nfailed")
        except RuntimeError:
            log.exception("lane crashed")
    finally:
        log.removeHandler(handler)
        handler.close()
    first, second = parse(sock.recv(65536)), parse(sock.recv(65536))
    assert first["MESSAGE"] == "gate in-1 stuck" and first["PRIORITY"] == "4"
    assert first["LOTEDGE_LANE"] == "in-1" and first["LOTEDGE_CODE"] == "42"
    assert first["LOTEDGE_LOT"] == "lot-7" and first["SYSLOG_IDENTIFIER"] == "lotedge"
    assert first["LOGGER"] == "lotedge.test.journal" and first["CODE_FUNC"] == \
        "test_entries_carry_structured_fields"
    assert second["PRIORITY"] == "3"
    assert second["MESSAGE"].startswith("lane crashed\nTraceback")
    assert "RuntimeError: relay\nfailed" in second["MESSAGE"]


def test_only_used_when_stderr_goes_to_the_journal(journal_socket):
    path, sock = journal_socket
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        assert use_journal_if_under_systemd("lot-7", environ={}, socket_path=path) is False
        assert root.handlers == saved
        assert use_journal_if_under_systemd("lot-7", environ={"JOURNAL_STREAM": "8:1234"},
                                            socket_path=path) is True
        assert [type(h).__name__ for h in root.handlers] == ["JournalHandler"]
        logging.getLogger("lotedge.x").error("boom")
        assert parse(sock.recv(65536))["MESSAGE"] == "boom"
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved:
            root.addHandler(h)

"""Money and paper wired into the lot: config keys, entry tickets on the lane printer, the
plate-only fallback when it is out, scanned tickets at the exit, the print API, and the ZVT
emulator as the configured terminal."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from datetime import timedelta

import pytest

from appliance.client import ServiceClient
from appliance.config import load_config, parse_config
from appliance.core.receipts import ticket_payload
from appliance.errors import ConfigError
from appliance.lot.tickets import admit
from appliance.service import Service
from drivers.printer import PrinterFault
from drivers.zvt.client import ZvtTerminal
from lpr.source import PlateResult
from tests.conftest import write_lot


def _with(tmp_path, extra: str):
    path = write_lot(tmp_path, mode="counter")
    path.write_text(path.read_text() + "\n" + extra)
    return load_config(path)


async def _events(service, event_type):
    rows = await service.ledger.fetchall(
        "SELECT payload FROM events WHERE type = ? ORDER BY seq", (event_type,))
    return [json.loads(r[0]) for r in rows]


def test_payment_printer_scanner_and_receipt_keys(tmp_path):
    cfg = _with(tmp_path, """
[payment]
terminal = "zvt"
host = "192.0.2.10"
flow = "sale"
end_of_day_at = "02:30"

[[printers]]
id = "in-1"
backend = "network"
host = "192.0.2.20"

[[printers]]
id = "booth"
backend = "usb"
vendor_id = 0x04b8
product_id = 0x0202
width = 48

[[scanners]]
lane = "out-1"
kind = "serial"
port = "/dev/ttyACM0"

[receipts]
vat_rate = "0.19"
vat_label = "MwSt"
""")
    assert cfg.payment.terminal == "zvt" and cfg.payment.port == 20007
    assert cfg.printers[1].vendor_id == 0x04B8 and cfg.printers[1].width == 48
    assert cfg.scanners[0].lane == "out-1"
    assert str(cfg.receipts.vat_rate) == "0.19"


@pytest.mark.parametrize(("extra", "key"), [
    ('[[printers]]\nid = "nowhere"\n', "printers[0].id"),
    ('[[printers]]\nid = "in-1"\nbackend = "serial"\n', "printers[0]"),
    ('[[scanners]]\nlane = "x-9"\nport = "/dev/ttyACM0"\n', "scanners[0].lane"),
    ('[receipts]\nvat_rate = "1.5"\n', "receipts"),
    ('[payment]\nend_of_day_at = "25:00"\n', "payment"),
])
def test_bad_device_keys_name_the_key(tmp_path, extra, key):
    path = write_lot(tmp_path, mode="counter")
    with pytest.raises(ConfigError) as err:
        parse_config(path.read_text() + "\n" + extra, path=str(path))
    assert key in str(err.value)


@pytest.fixture
async def lot(tmp_path):
    service = Service(load_config(write_lot(tmp_path, mode="counter")), simulate=True,
                      api=False)
    await service.start()
    yield service
    await service.stop()


async def test_a_car_without_a_plate_read_gets_a_signed_printed_ticket(lot):
    out = await lot._decide_entry("in-1", PlateResult(plate=None))
    assert out.allow and out.print_ticket
    printer = lot.paper.printers["in-1"]
    assert printer.printed == 1 and lot.paper.take("in-1") == out.ticket_id
    printer.backend.flush()
    printed = (lot.data_dir / "printer-in-1.escpos").read_bytes()
    assert printed.startswith(b"\x1b@") and printed.endswith(b"\x1bd\x06\x1dV\x00")
    row = await lot.ledger.fetchone("SELECT entry_utc FROM tickets WHERE id = ?",
                                    (out.ticket_id,))
    assert out.ticket_id.encode() in printed and b"LE1:" in printed
    key_file = lot.data_dir / "ticket.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert row is not None


async def test_printer_out_of_paper_alarms_and_the_lane_admits_by_plate_only(lot):
    printer = lot.paper.printers["in-1"]

    def out_of_paper():
        raise PrinterFault("in-1", "out of paper", code="printer_paper_out")

    printer._check = out_of_paper
    printer.status_check = True
    first = await lot._decide_entry("in-1", PlateResult(plate=None))
    assert first.allow and "NO TICKET PRINTED" in first.message  # this car was let in
    assert not printer.ok
    refused = await lot._decide_entry("in-1", PlateResult(plate=None))
    assert not refused.allow and refused.kind == "printer_fault"
    assert (await _events(lot, "entry.refused"))[-1]["reason"] == "printer_fault"
    with_plate = await lot._decide_entry("in-1", PlateResult(plate="PLT0001", confidence=0.95))
    assert with_plate.allow and not with_plate.print_ticket
    for _ in range(50):  # the alarm is raised from a task
        alarms = await lot.ledger.fetchall("SELECT code, source FROM alarms")
        if alarms:
            break
        await asyncio.sleep(0.01)
    assert ("printer_paper_out", "in-1") in [tuple(a) for a in alarms]
    del printer._check  # paper refilled (a file backend has no status to ask)
    printer.status_check = False
    assert printer.probe()
    again = await lot._decide_entry("in-1", PlateResult(plate=None))
    assert again.allow and again.print_ticket


class _Held:
    """A lane scanner holding one code."""

    def __init__(self, text):
        self.text = text

    def read(self, lane):
        return self.text

    def leave(self, lane):
        self.text = None

    def close(self):
        pass


async def test_exit_reads_a_genuine_ticket_qr_and_refuses_a_forged_one(lot):
    now = lot.clock.now()
    entered = await admit(lot.ledger, lot.cfg, lane="in-1", plate=None, confidence=0, at=now)
    genuine = ticket_payload(lot_id=lot.cfg.lot.id, ticket_id=entered.ticket_id, entry=now,
                             key=lot.paper.key)
    lot.scanner.by_lane["out-1"] = _Held(genuine.replace(entered.ticket_id, "T000000000000"))
    forged = await lot._decide_exit("out-1", PlateResult(plate=None))
    assert forged.kind == "lost"  # no genuine ticket: the lost-ticket path, gate open
    lot.scanner.by_lane["out-1"] = _Held(genuine)
    out = await lot._decide_exit("out-1", PlateResult(plate=None))
    assert out.ticket_id == entered.ticket_id and out.kind == "exit"
    assert lot.scanner.by_lane["out-1"].text is None  # one scan serves one car
    for _ in range(50):
        codes = [r[0] for r in await lot.ledger.fetchall("SELECT code FROM alarms")]
        if codes:
            break
        await asyncio.sleep(0.01)
    assert "ticket_not_genuine" in codes


async def test_print_receipt_and_shift_report_over_the_api(running_lot):
    service = running_lot.service
    client = ServiceClient(running_lot.socket_path)
    admin = ServiceClient(running_lot.socket_path, local_admin=True)
    await admin.post("/attendants", {"id": "ann", "name": "Ann", "role": "attendant",
                                     "pin": "11111111"})
    await admin.aclose()
    session = await client.post("/auth/sign-in", {"attendant": "ann", "pin": "11111111"})
    client.set_session(session["token"])
    now = service.clock.now()
    entered = await admit(service.ledger, service.cfg, lane="in-1", plate="RCP0001",
                          confidence=1, at=now - timedelta(hours=2))
    ticket = await client.get(f"/tickets/{entered.ticket_id}")
    due = ticket["fee"]["due_cents"]
    await client.post(f"/tickets/{entered.ticket_id}/pay-cash", {"amount_cents": due})
    printed = await client.post(f"/print/receipt/{entered.ticket_id}", {"copy": True})
    assert printed["printer"] == "booth"
    text = "\n".join(printed["lines"])
    assert "RECEIPT (COPY)" in text and entered.ticket_id in text and "RCP0001" in text
    shift = await client.post("/print/shift", {"shift_id": session["shift_id"]})
    assert "SHIFT REPORT" in "\n".join(shift["lines"])
    assert any(ln.startswith("Cash payments") and ln.endswith("1") for ln in shift["lines"])
    booth = service.paper.printers["booth"]
    assert booth.printed == 2

    def out_of_paper():
        raise PrinterFault("booth", "out of paper", code="printer_paper_out")

    booth._check, booth.status_check = out_of_paper, True
    from appliance.client import ApiError

    with pytest.raises(ApiError) as fault:  # the device is at fault, not the request: 503
        await client.post(f"/print/receipt/{entered.ticket_id}", {"copy": True})
    assert fault.value.status == 503 and "out of paper" in str(fault.value)
    booth._check, booth.status_check = (lambda: None), False
    assert (await client.get("/print"))["printers"][0]["printer"] == "booth"
    await client.aclose()
    # without a session the print routes are refused like the other booth commands
    anon = ServiceClient(running_lot.socket_path)
    from appliance.client import ApiError

    with pytest.raises(ApiError) as err:
        await anon.post(f"/print/receipt/{entered.ticket_id}", {})
    assert err.value.status == 401
    await anon.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_configured_zvt_emulator_takes_the_exit_payment(tmp_path):
    cfg = _with(tmp_path, f'[payment]\nterminal = "zvt-emulator"\nport = {_free_port()}\n')
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    try:
        assert isinstance(service.terminal, ZvtTerminal)
        now = service.clock.now()
        await admit(service.ledger, cfg, lane="in-1", plate="ZVT0009", confidence=1,
                    at=now - timedelta(hours=2))
        out = await service._decide_exit("out-1", PlateResult(plate="ZVT0009", confidence=1))
        assert out.reason == "exit paid" and out.paid_cents > 0
        assert service.terminal_emulator.charged_cents == out.paid_cents
        day = await service.terminal.end_of_day()
        assert day["ok"] and day["total_cents"] == out.paid_cents
    finally:
        await service.stop()


async def test_a_zvt_emulator_on_port_0_takes_a_free_port_and_the_terminal_follows(tmp_path):
    cfg = _with(tmp_path, '[payment]\nterminal = "zvt-emulator"\nport = 0\n')
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    try:
        port = service.terminal_emulator.port
        assert port > 0 and service.terminal.port == port
        now = service.clock.now()
        await admit(service.ledger, cfg, lane="in-1", plate="ZVT0010", confidence=1,
                    at=now - timedelta(hours=2))
        out = await service._decide_exit("out-1", PlateResult(plate="ZVT0010", confidence=1))
        assert out.reason == "exit paid" and service.terminal_emulator.charged_cents == out.paid_cents
    finally:
        await service.stop()


def test_port_0_is_only_for_the_emulator(tmp_path):
    with pytest.raises(ConfigError, match="payment.port"):
        _with(tmp_path, '[payment]\nterminal = "zvt"\nport = 0\n')


async def test_end_of_day_runs_daily_at_the_local_time_and_is_recorded(tmp_path):
    from datetime import UTC, datetime

    from appliance.lot.money_devices import end_of_day_forever
    from drivers.payment import SimulatedTerminal

    cfg = _with(tmp_path, '[payment]\nend_of_day_at = "03:00"\n')
    cfg = cfg.__class__(**{**cfg.__dict__, "lot": cfg.lot.__class__(
        **{**cfg.lot.__dict__, "timezone": "Europe/Berlin"})})
    term = SimulatedTerminal(seed=1, decline_rate=0)
    await term.authorize(idempotency_key="k", amount_cents=700)
    await term.capture(idempotency_key="k", amount_cents=700)
    clock = [datetime(2026, 3, 2, 23, 30, tzinfo=UTC)]  # 00:30 in Berlin
    slept, results = [], []

    async def sleep(seconds):
        if len(slept) == 2:
            raise asyncio.CancelledError
        slept.append(seconds)
        clock[0] += timedelta(seconds=seconds)

    async def record(result):
        results.append(result)

    with pytest.raises(asyncio.CancelledError):
        await end_of_day_forever(term, cfg, now=lambda: clock[0], sleep=sleep,
                                 on_result=record)
    assert slept == [2.5 * 3600, 24 * 3600]  # 03:00 local, then the next day's
    assert [r["total_cents"] for r in results] == [700, 0] and results[0]["ok"]
    assert (await term.status())["ready"] and await term.abort()


async def test_the_booth_scanner_over_the_api(running_lot):
    service = running_lot.service
    client = ServiceClient(running_lot.socket_path)
    assert (await client.get("/scan/booth"))["scanned"] is False  # no scanner fitted
    now = service.clock.now()
    code = ticket_payload(lot_id=service.cfg.lot.id, ticket_id="T00000000000A", entry=now,
                          key=service.paper.key)
    service.scanner.by_lane["booth"] = _Held(code)
    got = await client.get("/scan/booth")
    assert got == {"lane": "booth", "scanned": True, "ticket_id": "T00000000000A",
                   "genuine": True}
    service.scanner.by_lane["booth"] = _Held("LE1:x:y:z:forged")
    got = await client.get("/scan/booth")
    assert got["scanned"] and not got["genuine"] and got["ticket_id"] is None
    await client.aclose()


async def test_a_paid_exit_prints_its_receipt_on_the_exit_lane_printer(tmp_path):
    cfg = _with(tmp_path, '[[printers]]\nid = "out-1"\nbackend = "dummy"\nwidth = 32\n\n'
                          '[receipts]\nvat_rate = "0.2"\n')
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    try:
        now = service.clock.now()
        entered = await admit(service.ledger, cfg, lane="in-1", plate="EXR0001", confidence=1,
                              at=now - timedelta(hours=2))
        out = await service._decide_exit("out-1", PlateResult(plate="EXR0001", confidence=1))
        assert out.reason == "exit paid"
        await asyncio.gather(*service._receipts)
        printed = service.paper.printers["out-1"].backend.output
        assert printed.startswith(b"\x1b@") and entered.ticket_id.encode() in printed
        assert b"incl. VAT 20%" in printed and b"Card" in printed
        assert "booth" not in service.paper.printers  # only the configured printers
    finally:
        await service.stop()


async def test_a_loose_ticket_key_or_a_taken_emulator_port_stops_the_start_early(tmp_path):
    from appliance.errors import ListenError

    cfg = _with(tmp_path, "")
    key = cfg.data_path(cfg.receipts.ticket_key_file)
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text("00" * 32 + "\n")
    key.chmod(0o644)
    service = Service(cfg, simulate=True, api=False)
    with pytest.raises(ConfigError, match="receipts.ticket_key_file"):
        await service.start()
    assert service.ledger is None  # refused before the ledger was opened
    key.chmod(0o600)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "b").mkdir()
        busy = _with(tmp_path / "b", f'[payment]\nterminal = "zvt-emulator"\nport = {port}\n')
        service = Service(busy, simulate=True, api=False)
        with pytest.raises(ListenError, match="payment.port"):
            await service.start()


async def test_a_scanner_that_cannot_be_opened_is_an_alarm_not_a_failed_start(tmp_path):
    cfg = _with(tmp_path, '[[scanners]]\nlane = "out-1"\nport = "/dev/no-such-scanner"\n')
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    try:
        assert "out-1" not in service.scanner.by_lane
        alarms = await service.ledger.fetchall("SELECT code, source FROM alarms")
        assert ("scanner_fault", "out-1") in [tuple(a) for a in alarms]
    finally:
        await service.stop()

"""ZVT codec against published frames, and a property test of the APDU/BMP/TLV codec.

The example frames are those published with the MIT-licensed Portalum.Zvt project's unit tests
(captured from real terminals: src/Portalum.Zvt.UnitTest/StatusInformationParserTest.cs,
ZvtClientTest.cs, PrintLineTest.cs, PrintTextBlockTest.cs, ApduHelperTest.cs); the expected
field values are read off by hand with the spec's BMP table, not produced by the code here.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.zvt import messages as m
from drivers.zvt.apdu import (
    Apdu,
    ProtocolError,
    Tlv,
    bcd_decode,
    bcd_encode,
    decode_apdu,
    encode_bmp,
    parse_bmps,
    parse_tlv,
    split_apdu,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace("-", " "))


# Status-Information of an approved 20.40 EUR payment (StatusInformationParserTest
# Parse_PaymentGood1_Successful)
PAYMENT_GOOD = h(
    "04 0F 77 27 00 04 00 00 00 00 20 40 0B 00 04 70 0C 22 39 53 0D 10 06 0E 25 12 17 00 01 19"
    " 70 22 F0 F8 EE EE EE EE EE EE 47 71 29 28 00 48 69 2A 31 30 30 34 36 31 37 36 33 20 20 20"
    " 20 20 20 3B 36 31 31 38 30 34 00 00 3C F0 F1 F4 47 45 4E 2E 4E 52 2E 3A 36 31 31 38 30 34"
    " 49 09 78 87 04 70 88 00 04 70 8A 2E 8B F1 F7 44 65 62 69 74 20 4D 61 73 74 65 72 63 61 72"
    " 64 00")
# ... with a TLV container, multi-byte tags and result-code-AS (Parse_TlvInfos1_Successful)
PAYMENT_TLV = h(
    "04-0F-65-27-00-0C-23-13-55-0D-10-29-0E-99-99-22-F0-F8-EE-EE-EE-EE-EE-EE-47-71-A0-01-29-00-00"
    "-00-06-87-00-08-0B-00-00-00-8A-06-8B-F1-F1-4D-41-53-54-45-52-43-41-52-44-00-06-2E-2F-08-1F-12"
    "-01-02-1F-10-01-00-60-1B-43-07-A0-00-00-00-04-10-10-44-10-44-65-62-69-74-20-4D-61-73-74-65-72"
    "-63-61-72-64-1F-2B-04-10-01-50-08")
# a declined card (ZvtClientTest PaymentAsync_CardRejected_Successful)
REJECTED = h("04-0F-25-27-05-29-29-00-02-74-3C-F0-F0-F9-41-62-67-65-6C-65-68-6E-74-8A-06-06-0D-24"
             "-0B-07-09-41-62-67-65-6C-65-68-6E-74")
# aborted at the terminal (Parse_AbortByKey_Successful)
ABORTED = h("04 0F 1E 27 6C 29 28 00 48 69 3C F0 F1 F9 41 62 62 72 75 63 68 20 64 75 72 63 68 20"
            " 4B 75 6E 64 65")


def test_authorisation_of_10_eur_is_the_published_frame():
    # ZvtClientTest PaymentAsync_SuccessfulPayment_Successful: PaymentAsync(10) sends this
    assert m.authorization(1000).encode() == h("06 01 07 04 00 00 00 00 10 00")
    assert m.authorization(3300).encode() == h("06 01 07 04 00 00 00 00 33 00")


def test_acknowledgements_completion_and_abort_frames():
    assert Apdu(0x80, 0x00).encode() == h("80 00 00")
    assert Apdu(0x84, 0x9C).encode() == h("84 9C 00")
    assert decode_apdu(h("06 0F 00")).command == m.COMPLETION
    abort = decode_apdu(h("06 1E 01 64"))
    assert abort.command == m.ABORT_FROM_PT and m.abort_result(abort) == 0x64


def test_approved_status_information_fields():
    info = m.decode_status_info(decode_apdu(PAYMENT_GOOD))
    assert info.approved and info.result_code == 0
    assert info.amount_cents == 2040 and info.currency == 978
    assert info.trace_no == 470 and info.receipt_no == 470 and info.turnover_no == 470
    assert info.time == "223953" and info.date == "1006"
    assert info.payment_type == 0x70 and not info.offline
    assert info.card_type == 0x2E and info.card_name == "Debit Mastercard"
    assert info.pan == "EEEEEEEEEEEE4771" and info.last4 == "4771"
    assert info.terminal_id == "28004869" and info.aid == "611804"
    assert info.text == "GEN.NR.:611804"


def test_status_information_with_tlv_container():
    info = m.decode_status_info(decode_apdu(PAYMENT_TLV))
    assert info.approved and info.receipt_no == 8 and info.card_name == "MASTERCARD"
    assert info.terminal_id == "00000006"
    app = next(t for t in info.tlv if t.tag == 0x60)
    assert app.find(0x44).value == b"Debit Mastercard"
    assert app.find(0x43).value == h("A0 00 00 00 04 10 10")
    tech = next(t for t in info.tlv if t.tag == 0x2F)
    assert tech.find(0x1F12).value == b"\x02" and tech.find(0x1F10).value == b"\x00"


def test_declined_and_aborted_status_information():
    rejected = m.decode_status_info(decode_apdu(REJECTED))
    assert not rejected.approved and rejected.result_code == 0x05
    assert rejected.text == "Abgelehnt" and rejected.card_type == 0x06
    assert rejected.tlv[0].tag == 0x24 and rejected.tlv[0].children[0].value == b"Abgelehnt"
    aborted = m.decode_status_info(decode_apdu(ABORTED))
    assert aborted.result_code == 0x6C and aborted.text == "Abbruch durch Kunde"
    assert m.result_text(aborted.result_code) == "abort via timeout or abort-key"


def test_print_lines_with_and_without_trailing_tlv():
    # PrintLineTest: a plain line, the end-of-receipt line, and one with a receipt-type TLV
    line = m.decode_print_line(decode_apdu(h(
        "06-D1-14-40-2A-2A-20-4B-41-53-53-45-4E-53-43-48-4E-49-54-54-20-2A-2A")))
    assert line.lines == ("** KASSENSCHNITT **",) and not line.last
    assert m.decode_print_line(decode_apdu(h("06-D1-01-81"))).last
    tagged = m.decode_print_line(decode_apdu(h(
        "06-D1-19-40-2A-2A-20-48-C4-4E-44-4C-45-52-42-45-4C-45-47-20-2A-2A-06-04-1F-07-01-01")))
    assert tagged.receipt_type == 1 and tagged.lines == ("** H\u2500NDLERBELEG **",)


def test_print_line_with_a_wrong_length_is_incomplete():
    # PrintLineTest ProcessData_LineReceived2: length 0x18 but fewer bytes follow
    apdu, rest = split_apdu(h("06-D1-18-40-2A-2A-20-4B-41-53-53-45-4E-53-43-48-4E-49-54-54-20-2A"
                              "-2A"))
    assert apdu is None
    with pytest.raises(ProtocolError):
        decode_apdu(h("06-D1-10-40-2A-2A-20-4B-41-53-53-45-4E-53-43-48-4E-49-54-54-20-2A-2A"))


ADMIN_BLOCK = h(
    "06-D3-AC-06-81-A9-1F-07-01-03-25-81-A2-07-1B-30-32-2E-31-31-2E-32-30-32-31-20-20-20-20-20-20"
    "-20-20-20-31-37-3A-30-35-3A-30-32-07-0C-54-49-44-3A-41-48-30-30-30-30-30-36-07-14-41-62-73-63"
    "-68-6C-75-73-73-20-2D-20-6B-65-69-6E-65-20-54-58-07-19-20-41-56-3A-20-2B-30-34-2E-30-37-20-28"
    "-4A-75-6E-20-31-31-20-32-30-32-31-29-07-1B-54-49-3A-20-45-20-44-54-3A-20-30-2F-30-2F-20-4F-46"
    "-3A-20-30-2F-30-2F-20-43-47-3A-07-0F-20-20-20-20-20-20-20-20-20-20-20-31-2F-30-2F-07-01-20-07"
    "-01-20-07-01-20-07-01-20-07-01-20-07-01-20-07-01-20-09-01-81")


def test_print_text_block_administration_receipt():
    # PrintTextBlockTest Parse_AdministrationReceipt_Successful: an end-of-day receipt
    block = m.decode_text_block(decode_apdu(ADMIN_BLOCK))
    assert block.receipt_type == 3 and block.last
    assert block.lines[1] == "TID:AH000006" and block.lines[2] == "Abschluss - keine TX"


def test_extended_length_field():
    # ApduHelperTest: FF then a little-endian length
    apdu, _ = split_apdu(h("04 0F FF 01 00 6C"))
    assert apdu is not None and apdu.data == b"\x6c"
    long = Apdu(0x06, 0xD3, bytes(300))
    assert long.encode()[:5] == h("06 D3 FF 2C 01")
    assert decode_apdu(long.encode()) == long


def test_emulator_frames_decode_back():
    info = m.StatusInfo(result_code=0, amount_cents=450, trace_no=12, receipt_no=7,
                        payment_type=m.PAYMENT_TYPE_OFFLINE, pan="EEEEEEEEEEEE4242",
                        card_type=0x0A, card_name="VISA", terminal_id="52500001", currency=978)
    back = m.decode_status_info(m.encode_status_info(info))
    assert back.offline and back.last4 == "4242" and back.amount_cents == 450
    assert back.receipt_no == 7 and back.brand == "VISA"
    block = m.decode_text_block(m.encode_text_block(["A", "B C"], 2))
    assert block.lines == ("A", "B C") and block.receipt_type == 2


def test_bcd():
    assert bcd_encode(2040, 6) == h("00 00 00 00 20 40") and bcd_decode(h("00 20 40")) == 2040
    with pytest.raises(ProtocolError):
        bcd_encode(10**12, 6)
    with pytest.raises(ProtocolError):
        bcd_decode(b"\x1a")


# --- properties ------------------------------------------------------------------------------
_fixed = [(n, k) for n, k in ((0x04, 6), (0x0B, 3), (0x27, 1), (0x29, 4), (0x49, 2), (0x87, 2),
                              (0x8A, 1), (0x19, 1), (0x3B, 8))]
bmp = st.one_of(
    st.sampled_from(_fixed).flatmap(lambda nk: st.tuples(st.just(nk[0]), st.binary(
        min_size=nk[1], max_size=nk[1]))),
    st.tuples(st.sampled_from([0x22, 0x8B, 0x2D]), st.binary(max_size=99)),
    st.tuples(st.sampled_from([0x3C, 0x60]), st.binary(max_size=400)),
)
tlv_leaf = st.builds(Tlv, st.sampled_from([0x07, 0x1F07, 0x1F10, 0x43, 0x44, 0x1F2B]),
                     st.binary(max_size=300))
tlv = st.recursive(tlv_leaf, lambda kids: st.builds(
    Tlv, st.sampled_from([0x25, 0x60, 0x2F, 0x24]), st.just(b""),
    st.lists(kids, max_size=4).map(tuple)), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(cls=st.integers(0, 255), instr=st.integers(0, 255), fields=st.lists(bmp, max_size=8),
       objects=st.lists(tlv, max_size=3))
def test_apdu_bmp_tlv_round_trip(cls, instr, fields, objects):
    data = b"".join(encode_bmp(n, v) for n, v in fields)
    if objects:
        data += encode_bmp(0x06, b"".join(o.encode() for o in objects))
    apdu = Apdu(cls, instr, data)
    back = decode_apdu(apdu.encode())
    assert back == apdu
    parsed = parse_bmps(back.data)
    assert parsed[:len(fields)] == [(n, v) for n, v in fields]
    if objects:
        assert parse_tlv(parsed[-1][1]) == tuple(objects)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_raises_only_protocol_error(raw):
    try:
        apdu = decode_apdu(raw)
    except ProtocolError:
        return
    for decoder in (parse_bmps, parse_tlv):
        try:
            decoder(apdu.data)
        except ProtocolError:
            pass
    for decode in (m.decode_status_info, m.decode_print_line, m.decode_text_block):
        try:
            decode(Apdu(*{m.decode_status_info: m.STATUS_INFORMATION,
                          m.decode_print_line: m.PRINT_LINE,
                          m.decode_text_block: m.PRINT_TEXT_BLOCK}[decode], apdu.data))
        except ProtocolError:
            pass


def test_a_terminal_specific_bmp_does_not_cost_the_result():
    # the approved frame with an unknown BMP (0xD9, not in the spec's table) added at the end
    data = decode_apdu(PAYMENT_GOOD).data + b"\xd9\x01\x02"
    info = m.decode_status_info(Apdu(0x04, 0x0F, data))
    assert info.approved and info.amount_cents == 2040 and info.last4 == "4771"
    with pytest.raises(ProtocolError):
        parse_bmps(data)  # strict parsing still refuses it
    with pytest.raises(ProtocolError):
        m.decode_status_info(Apdu(0x04, 0x0F, b"\xd9\x01\x02"))  # no result-code at all

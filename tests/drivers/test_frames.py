"""Serial frame parsers: MaxBotix ASCII and the RS-485 bus frame (pure, no IO)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.maxbotix import MaxBotixParser, encode_range
from drivers.rs485 import (
    FrameParser,
    crc16_modbus,
    encode_frame,
    error_reply,
    range_reply,
    read_request,
)


def test_crc16_modbus_check_value():
    # the catalogued check value of CRC-16/MODBUS
    assert crc16_modbus(b"123456789") == 0x4B37


def test_rs485_frames_are_the_documented_bytes():
    body = b"05R"
    assert read_request(5) == b":05R" + b"%04X" % crc16_modbus(body) + b"\r\n"
    assert range_reply(5, 123).startswith(b":05R0123")
    assert error_reply(0x1A, 1).startswith(b":1AE01")
    with pytest.raises(ValueError, match="^address: "):
        encode_frame(300, "R")
    with pytest.raises(ValueError, match="^data: "):
        encode_frame(1, "R", "a:b")


def test_maxbotix_parses_frames_split_anywhere():
    stream = b"".join(encode_range(d) for d in (123, 45, 765, 0))
    assert stream.startswith(b"R0123\r")
    p = MaxBotixParser()
    got = []
    for i in range(len(stream)):
        got += p.feed(stream[i:i + 1])
    assert got == [123, 45, 765, 0]
    assert p.errors == 0 and p.frames == 4


def test_maxbotix_counts_and_skips_malformed_lines():
    p = MaxBotixParser()
    got = p.feed(b"R01\rR12345\rxyz\r\x00\xffR0200\rR0300\n\rR02A0\r\r\n")
    assert got == [200, 300]
    # R01, R12345, xyz, R02A0 are malformed; the noise in front of R0200 is dropped, kept frame
    assert p.errors == 4
    assert p.noise_lines == 1


def test_maxbotix_drops_an_endless_partial_line():
    p = MaxBotixParser()
    assert p.feed(b"R" + b"9" * 100) == []
    assert p.errors == 1
    assert p.feed(b"\rR0042\r") == [42]


def test_rs485_parser_counts_bad_checksums_and_noise():
    good = range_reply(3, 250)
    bad = bytearray(range_reply(4, 250))
    bad[5] = ord("9")  # 0250 -> 0950, checksum no longer matches
    p = FrameParser()
    frames = p.feed(b"\x00\x13junk\r\n" + bytes(bad) + b"xx" + good + b":0\r\n")
    assert [(f.address, f.distance_cm) for f in frames] == [(3, 250)]
    assert p.bad_checksum == 1
    assert p.malformed == 2  # the junk line and ':0'
    assert p.noise == 1  # 'xx' before the good frame


@given(st.lists(st.integers(0, 9999), min_size=1, max_size=20), st.data())
def test_rs485_split_anywhere_yields_the_same_frames(distances, data):
    stream = b"".join(range_reply(i % 247 + 1, d) for i, d in enumerate(distances))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    p = FrameParser()
    got = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got += p.feed(stream[last:cut])
        last = cut
    assert [f.distance_cm for f in got] == distances
    assert p.errors == 0


@given(st.integers(1, 247), st.integers(0, 9999), st.data())
def test_rs485_a_single_corrupted_byte_is_never_accepted(address, distance, data):
    frame = bytearray(range_reply(address, distance))
    pos = data.draw(st.integers(1, len(frame) - 3))  # ADDR, CMD, DATA or CRC
    new = data.draw(st.integers(0, 255).filter(lambda b: b != frame[pos]))
    frame[pos] = new
    p = FrameParser()
    assert p.feed(bytes(frame)) == []
    assert p.errors >= 1


def _fuzz_stream(rng: random.Random, n_frames: int, make, max_len: int) -> bytes:
    out = bytearray()
    for _ in range(n_frames):
        roll = rng.random()
        if roll < 0.5:
            out += make(rng)
        elif roll < 0.7:
            frame = bytearray(make(rng))
            frame[rng.randrange(len(frame))] = rng.randrange(256)
            out += frame
        elif roll < 0.8:
            out += make(rng)[: rng.randrange(1, 6)]  # partial line
        else:
            out += rng.randbytes(rng.randrange(1, max_len))
    return bytes(out)


def test_serial_fuzz_100k_frames_maxbotix():
    rng = random.Random(1)
    stream = _fuzz_stream(rng, 100_000, lambda r: encode_range(r.randrange(10000)), 12)
    p = MaxBotixParser()
    got = 0
    for i in range(0, len(stream), 4096):
        for d in p.feed(stream[i:i + 4096]):
            assert 0 <= d <= 9999
            got += 1
    assert p.frames == got
    assert 40_000 < got < 100_000
    assert p.errors > 10_000


def test_serial_fuzz_100k_frames_rs485():
    rng = random.Random(2)
    sent: set[bytes] = set()

    def make(r: random.Random) -> bytes:
        frame = range_reply(r.randrange(1, 248), r.randrange(10000))
        sent.add(frame)
        return frame

    stream = _fuzz_stream(rng, 100_000, make, 24)
    p = FrameParser()
    got = []
    for i in range(0, len(stream), 4096):
        got += p.feed(stream[i:i + 4096])
    # every accepted frame is one the sensors really sent (no corrupted frame slips through)
    for f in got:
        assert encode_frame(f.address, f.command, f.data) in sent
    assert 40_000 < len(got) < 100_000
    assert p.bad_checksum > 1_000 and p.malformed > 1_000


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_either_parser(blob):
    m, r = MaxBotixParser(), FrameParser()
    for parser in (m, r):
        parser.feed(blob)
        parser.feed(blob[::-1])

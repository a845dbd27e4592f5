"""The MaxBotix serial frame parser (pure, no IO). Modbus RTU framing is pymodbus's own."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.maxbotix import MaxBotixParser, encode_range


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


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_either_parser(blob):
    for parser in (MaxBotixParser(),):
        parser.feed(blob)
        parser.feed(blob[::-1])

"""Coverage-guided fuzzing (atheris, libFuzzer) of the parsers that take bytes from outside.

    python -m tests.fuzz.atheris_targets TARGET [libFuzzer flags, e.g. -runs=100000]
    make fuzz    # every target for FUZZ_SECONDS (default 60) each

Targets (each an invariant, not just "does not crash"; any other exception is a finding):
- `maxbotix`: bytes split into fuzzer-chosen chunks on a MaxBotix serial line: every reading is
  0..9999 cm, the frame counter matches, the kept partial line never exceeds its bound.
- `registers`: Modbus register words as a spot sensor sends them, decoded by every register-map
  preset: a distance within the preset's range with "ok", or None with "no_target" or
  "out_of_range"; nothing else. (pymodbus owns the RTU framing and its CRC.)
- `control`: cloud control messages (`{"acked_through": N}`): a non-negative int or None.
- `config`: lot config text: a LotConfig, or a ConfigError with one clear line.
- `bundle`: cloud bundles: raw bytes are rejected with a reason (BundleRejected), and the same
  JSON signed with the right key is applied or rejected with a reason; nothing else.
- `selftest`: fails on inputs starting with b"LOTEDGE" (the tests use it to prove a finding
  makes the run fail).

Hypothesis tests (`tests/drivers/test_frames.py`, `tests/integration/test_fuzz.py`,
`tests/sync/test_fuzz_cloud_messages.py`) cover the same parsers from strategies; these find
what a strategy did not think of, guided by coverage.
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports(include=["drivers", "appliance", "sync"]):
    from appliance.config import LotConfig, parse_config
    from appliance.core.register_maps import PRESETS
    from appliance.errors import ConfigError
    from drivers.maxbotix import _MAX_PARTIAL, MaxBotixParser
    from sync.bundle import sign_bundle, verify_bundle
    from sync.errors import BundleRejected
    from sync.uplink import control_number

_KEYS: tuple[str, str] | None = None
_LOT = "fuzz-lot"


def _chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """The fuzzer's bytes as a stream (all but the first) and the chunks a serial read might
    return: the first byte's bits pick the chunk lengths (1-8, 1-64 bytes, cycling)."""
    if not data:
        return b"", []
    stream, out, at, i = data[1:], [], 0, 0
    sizes = (data[0] % 8 + 1, data[0] // 8 % 32 + 1, 64)
    while at < len(stream):
        n = sizes[i % 3]
        out.append(stream[at:at + n])
        at, i = at + n, i + 1
    return stream, out


def maxbotix(data: bytes) -> None:
    _, chunks = _chunks(data)
    parser, got = MaxBotixParser(), 0
    for chunk in chunks:
        for reading in parser.feed(chunk):
            assert type(reading) is int and 0 <= reading <= 9999, reading
            got += 1
        assert len(parser._partial) <= _MAX_PARTIAL, len(parser._partial)
    assert parser.frames == got


def registers(data: bytes) -> None:
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data) - 1, 2)]
    for preset in PRESETS.values():
        for at in range(0, max(1, len(words) - preset.count + 1)):
            chunk = words[at:at + preset.count]
            if len(chunk) != preset.count:
                break
            cm, outcome = preset.decode(chunk)
            if outcome == "ok":
                assert type(cm) is int and preset.min_cm <= cm <= preset.max_cm, (preset.id, cm)
            else:
                assert cm is None and outcome in ("no_target", "out_of_range"), (preset.id, outcome)


def control(data: bytes) -> None:
    for key in ("acked_through", "version"):
        value = control_number(data, key)
        assert value is None or (type(value) is int and value >= 0), value


def config(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        assert isinstance(parse_config(text, path="fuzz.toml"), LotConfig)
    except ConfigError as err:
        message = str(err).strip()
        assert message and "\n" not in message, message


def bundle(data: bytes) -> None:
    global _KEYS
    if _KEYS is None:
        from sync.bundle import generate_keypair

        _KEYS = generate_keypair()
    private, public = _KEYS
    try:
        verify_bundle(data, public_key_b64=public, lot_id=_LOT)
        raise AssertionError("unsigned bytes accepted as a bundle")
    except BundleRejected as err:
        assert str(err), "rejected without a reason"
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return
    if not isinstance(doc, dict):
        return
    doc.setdefault("lot_id", _LOT)
    try:
        signed = sign_bundle(doc, private)
    except (ValueError, TypeError, RecursionError):
        return  # the cloud could not sign it either (NaN, too deep)
    try:
        verify_bundle(json.dumps(signed).encode(), public_key_b64=public, lot_id=_LOT)
    except BundleRejected as err:
        assert str(err), "rejected without a reason"


def selftest(data: bytes) -> None:
    if data.startswith(b"LOTEDGE"):
        raise RuntimeError("selftest finding")


TARGETS = {f.__name__: f for f in (maxbotix, registers, control, config, bundle, selftest)}


def seeds(name: str) -> list[bytes]:
    """Valid inputs to start from: without them the fuzzer rarely gets past the first check."""
    from pathlib import Path

    from drivers.maxbotix import encode_range

    if name == "maxbotix":
        return [b"\x05" + b"".join(encode_range(d) for d in (0, 123, 9999)) + b"\nxxR12R0042\r"]
    if name == "registers":
        words = [w for m in PRESETS.values() for d in (None, 0, 123, 400) for w in m.encode(d)]
        return [b"".join(w.to_bytes(2, "big") for w in words)]
    if name == "control":
        return [b'{"acked_through": 42}', b'{"version": 3}']
    if name == "config":
        root = Path(__file__).resolve().parents[2]
        from tests.conftest import FAST_LOT

        fast = FAST_LOT.format(mode="counter", capacity_l1="capacity = { REGULAR = 40, EV = 5 }",
                               capacity_l2="capacity = { REGULAR = 40 }", spots="",
                               data_dir="/tmp/lotedge-fuzz")
        return [fast.encode()] + [p.read_bytes() for p in sorted((root / "config").glob("*.toml"))]
    if name == "bundle":
        from tests.sync.test_bundle import body

        return [json.dumps(dict(body(7), lot_id=_LOT)).encode()]
    return [b"LOTEDG"]


def main() -> None:
    """`TARGET [flags]`; without a corpus folder among the flags, `.fuzz/TARGET` (kept between
    runs, seeded with `seeds(TARGET)`) is the corpus and findings go to `.fuzz/TARGET-crash-*`."""
    import os
    from pathlib import Path

    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.atheris_targets {{{','.join(TARGETS)}}} "
                 "[libFuzzer flags]")
    name, flags = sys.argv[1], sys.argv[2:]
    if not any(not f.startswith("-") for f in flags):
        corpus = Path(os.environ.get("FUZZ_DIR", ".fuzz")) / name
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds(name)):
            (corpus / f"seed-{i}").write_bytes(seed)
        flags = [str(corpus), f"-artifact_prefix={corpus}-", *flags]
    atheris.Setup([sys.argv[0], *flags], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()

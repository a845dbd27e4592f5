"""The shipped model files are the ones their README describes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "lpr" / "models"


def test_every_shipped_model_file_has_the_checksum_its_readme_states():
    """A model replaced without its provenance (README: what it is, how it was made, its
    checksum) fails here: the README's table names every shipped model and list file."""
    table = dict(re.findall(r"^\| `([\w.]+)` \|.*\| ([0-9a-f]{64}) \|$",
                            (MODELS / "README.md").read_text(encoding="utf-8"), re.MULTILINE))
    shipped = {p.name for p in MODELS.iterdir() if p.suffix in (".onnx", ".txt")
               and not p.name.startswith("LICENSE")}
    assert set(table) == shipped
    for name, digest in table.items():
        assert hashlib.sha256((MODELS / name).read_bytes()).hexdigest() == digest, name


def test_the_text_detector_spells_no_activation_out():
    """The shipped text detector has its hard-swish activations as single operators (opset
    14 HardSwish; `lpr/training/hardswish_det.py`): spelt out as four operators each, the
    whole-frame search peaked ~6.5 MB higher. The operator types are read off the file's
    protobuf (field 7 graph, 1 node, 4 op_type) without onnx, which lotedge does not need."""
    ops = _op_types((MODELS / "ppocrv4_det.onnx").read_bytes())
    assert ops.count("HardSwish") == 24
    assert "Clip" not in ops and "Div" not in ops


def _fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message; value is bytes for
    length-delimited fields, an int otherwise."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        elif wire == 1:
            value, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        else:
            raise ValueError(f"wire type {wire}")
        yield field, wire, value


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _op_types(model: bytes) -> list[str]:
    graph = next(v for f, w, v in _fields(model) if f == 7 and w == 2)
    nodes = [v for f, w, v in _fields(graph) if f == 1 and w == 2]
    return [next((v.decode() for f, w, v in _fields(node) if f == 4 and w == 2), "")
            for node in nodes]

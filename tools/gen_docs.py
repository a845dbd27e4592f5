"""Generate the documentation pages that are written from the code or from data.

* `docs/configuration.md` from the config models (`appliance.config.LotConfig` and the frozen
  dataclasses it holds): every key, its type, its default and its meaning. The meaning is the
  field's attribute docstring (a string literal on the line after the field).
* `docs/performance.md` from `docs/bench/results.json`: the figures of one stated `make bench`
  run (`python -m bench` writes `bench/results.json`; copy it there to publish a run).

`python -m tools.gen_docs` writes both; `--check` exits 1 if a committed page differs from what
would be generated (tests/test_docs.py does the same).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import enum
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
BENCH_SNAPSHOT = DOCS / "bench" / "results.json"

# Fields of LotConfig that are not TOML keys (set by the loader; a TOML key of that name is refused).
_INTERNAL = {("source_path",), ("source_sha256",)}


@dataclasses.dataclass(frozen=True)
class Key:
    """One configuration key as the reference lists it."""

    section: str  # "[cloud]", "[[lanes]]", "" for top-level keys
    name: str
    type: str
    default: str
    doc: str
    owner: str  # "module.Class.field" where the description belongs


@cache
def attribute_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a class: field name -> the string literal after it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    node = ast.parse(source).body[0]
    docs: dict[str, str] = {}
    body = getattr(node, "body", [])
    for stmt, after in zip(body, body[1:], strict=False):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


@cache
def args_docs(cls: type) -> dict[str, str]:
    """The `Args:` section of a class docstring: field name -> its text (`a, b: text` names
    both)."""
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    if "Args:" not in [line.strip() for line in lines]:
        return {}
    start = [line.strip() for line in lines].index("Args:") + 1
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in lines[start:]:
        if not line.strip():
            break
        head = re.match(r"^    ([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): (.*)$", line)
        if head:
            names = head.group(1).split(", ")
            for name in names:
                docs[name] = head.group(2).strip()
        elif line.startswith("      ") and names:
            for name in names:
                docs[name] += " " + line.strip()
        else:
            break
    return docs


def _field_docs(cls: type) -> dict[str, str]:
    """Each field's description: its attribute docstring, else its line in the class's Args."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            docs.update(args_docs(base))
            docs.update(attribute_docs(base))
    return docs


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007
    return tp, False


def _table_item(tp: Any) -> tuple[type | None, bool]:
    """(dataclass, is_array) when `tp` is a dataclass or a tuple/list of dataclasses."""
    tp, _ = _strip_optional(tp)
    if dataclasses.is_dataclass(tp):
        return tp, False
    if typing.get_origin(tp) in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return args[0], True
        if len(args) == 1 and typing.get_origin(args[0]) in (typing.Union, types.UnionType):
            tables = [a for a in typing.get_args(args[0]) if dataclasses.is_dataclass(a)]
            if len(tables) == 1:  # tables, or names of built-in ones (see the field's text)
                return tables[0], True
    return None, False


def type_text(tp: Any) -> str:
    """A TOML reader's name for a Python type."""
    tp, optional = _strip_optional(tp)
    text = _type_text(tp)
    return f"{text} (optional)" if optional else text


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(_plain(a)) for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(json.dumps(_plain(m)) for m in tp)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"array of {_type_text(args[0])}" if len(args) == 1 else "array"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"table of {_type_text(k)} = {_type_text(v)}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in typing.get_args(tp))
    names = {bool: "boolean", int: "integer", float: "number", str: "string",
             Decimal: "decimal number", dt.time: "time (HH:MM)",
             dt.datetime: "date-time with a UTC offset", dt.date: "date"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral() else int(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def default_text(f: dataclasses.Field) -> str:
    """The default of a field as TOML-ish text, or "required"."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if value is None:
        return "(none)"
    if dataclasses.is_dataclass(value):
        return "(its section)"
    plain = _plain(value)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, dict) and not plain:
        return "{}"
    if isinstance(plain, list) and not plain:
        return "[]"
    if isinstance(plain, list) and isinstance(plain[0], dict):
        return f"{len(plain)} built-in entr{'y' if len(plain) == 1 else 'ies'}"
    return json.dumps(plain, ensure_ascii=False)


def config_keys() -> list[Key]:
    """Every key of a lot's TOML file, section by section, in declaration order."""
    from appliance.config import LotConfig

    keys: list[Key] = []
    _walk(LotConfig, (), "", keys)
    return keys


def _walk(cls: type, path: tuple[str, ...], section: str, keys: list[Key]) -> None:
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    nested: list[tuple[str, type, bool]] = []
    for f in dataclasses.fields(cls):
        if not f.init or (*path, f.name) in _INTERNAL:
            continue
        tp = hints[f.name]
        item, is_array = _table_item(tp)
        owner = f"{cls.__module__}.{cls.__qualname__}.{f.name}"
        if item is not None:
            nested.append((f.name, item, is_array))
            keys.append(Key(section, f.name, "array of tables" if is_array else "table",
                            default_text(f), docs.get(f.name, ""), owner))
            continue
        keys.append(Key(section, f.name, type_text(tp), default_text(f), docs.get(f.name, ""),
                        owner))
    for name, item, is_array in nested:
        dotted = ".".join((*path, name))
        _walk(item, (*path, name), f"[[{dotted}]]" if is_array else f"[{dotted}]", keys)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def configuration_page() -> str:
    """The text of docs/configuration.md."""
    from appliance.config import LotConfig

    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m tools.gen_docs` from the config models "
        "(appliance/config.py and the types it holds). Do not edit: edit the field's "
        "docstring and run `make docs`. -->",
        "",
        "A lot is one TOML file (`lotedge run --config FILE`; `lotedge config check FILE` "
        "validates it). It is validated once at start-up into frozen values: an unknown key, a "
        "wrong type or a bad value stops the start with one line naming the key and its line "
        "in the file, and exit code 2. Money is always integer cents (`*_cents`); a float there "
        "is refused. Examples: `config/demo-lot.toml` (per-spot, every feature), "
        "`config/counter-lot.toml` (counter mode), `deploy/lot.toml` (a production template).",
        "",
        "This page is generated from the code: each key's type and default are the config "
        "model's, and its meaning is the model's own description of the field.",
        "",
    ]
    docs = _field_docs(LotConfig)
    by_section: dict[str, list[Key]] = {}
    for key in config_keys():
        by_section.setdefault(key.section, []).append(key)
    for section, keys in by_section.items():
        if section:
            out += [f"## `{section}`", ""]
            top = section.strip("[]").split(".")
            if len(top) == 1 and docs.get(top[0]):
                out += [docs[top[0]], ""]
            elif len(top) > 1:
                parent = next((k for k in config_keys()
                               if k.section.strip("[]") == ".".join(top[:-1])
                               and k.name == top[-1]), None)
                if parent and parent.doc:
                    out += [parent.doc, ""]
        else:
            out += ["## Top level", "", "The file's sections. Each has its own table below.",
                    ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for k in keys:
            out.append(f"| `{k.name}` | {_cell(k.type)} | `{_cell(k.default)}` | "
                       f"{_cell(k.doc)} |")
        out.append("")
    return "\n".join(out)


# --- performance page ----------------------------------------------------------------------


def _value(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    return f"{v:,.1f}"


def performance_page(results: Path = BENCH_SNAPSHOT) -> str:
    """The text of docs/performance.md from a `bench/results.json` snapshot."""
    data = json.loads(results.read_text(encoding="utf-8"))
    machine = data["machine"]
    out = [
        "# Performance figures",
        "",
        f"<!-- Generated by `python -m tools.gen_docs` from "
        f"{results.relative_to(REPO).as_posix()}. Do not edit. -->",
        "",
        "Every figure below comes from **one** run of `make bench` (`python -m bench`), whose "
        "`bench/results.json` is kept in the repository as `docs/bench/results.json`:",
        "",
        f"* **host**: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}"
        + (f", {machine['system']}" if machine.get("system") else ""),
        f"* **date**: {data['when']}",
    ]
    if data.get("settings"):
        out.append("* **settings**: " + ", ".join(f"`{k}={v}`" for k, v in
                                                  sorted(data["settings"].items())))
    if data.get("note"):
        out.append(f"* **note**: {data['note']}")
    out += [
        "",
        "Figures move between runs and hosts (a disk's fsync rate moves the ledger and "
        "allocation figures more than code changes do); the goals are those of the benchmark "
        "modules in `bench/`. To publish a new run: `make bench`, then copy "
        "`bench/results.json` to `docs/bench/results.json` and run `make docs`.",
        "",
    ]
    areas: dict[str, list[dict]] = {}
    for fig in data["figures"]:
        areas.setdefault(fig.get("area", ""), []).append(fig)
    for area, figs in areas.items():
        out += [f"## {area or 'other'}", "", "| figure | value | goal |", "|---|---:|---|"]
        for fig in figs:
            value = f"{_value(fig['value'])} {fig.get('unit', '')}".strip()
            out.append(f"| {_cell(fig['name'])} | {_cell(value)} | {_cell(fig.get('goal', ''))} |")
        out.append("")
    return "\n".join(out)


PAGES = {"configuration.md": configuration_page, "performance.md": performance_page}


def main(argv: list[str]) -> int:
    """Write the generated pages (or with --check, say which differ)."""
    check = "--check" in argv
    stale = []
    for name, make in PAGES.items():
        path = DOCS / name
        text = make()
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale generated pages (run `make docs`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

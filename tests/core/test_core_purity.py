"""The functional core stays pure: no asyncio, no sqlite, no IO modules, no clock reads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

CORE = sorted((REPO / "appliance" / "core").glob("*.py"))
FORBIDDEN_MODULES = {"asyncio", "sqlite3", "aiosqlite", "socket", "subprocess", "httpx",
                     "aiomqtt", "serial", "gpiozero", "drivers", "lpr", "sync", "ui"}
CLOCK_READS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "localtime"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_is_pure(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func.value)
            assert not (node.func.attr in CLOCK_READS
                        and target.split(".")[-1] in {"datetime", "date", "time"}), (
                f"{path.name}:{node.lineno} reads the clock: {ast.unparse(node)}")


def test_the_check_catches_a_clock_read(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("from datetime import datetime\nx = datetime.now()\n")
    with pytest.raises(AssertionError, match="reads the clock"):
        test_core_module_is_pure(bad)

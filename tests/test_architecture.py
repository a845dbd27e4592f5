"""The tree shows the architecture: layers point one way, no import cycle anywhere (imports
inside functions and under TYPE_CHECKING count too), and few modules left flat in appliance/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("appliance", "drivers", "lpr", "sync", "ui")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


GRAPH_SCRIPT = (
    "import json, sys, grimp\n"
    "graph = grimp.build_graph(*sys.argv[1:], cache_dir=None)\n"
    "print(json.dumps({m: sorted(graph.find_modules_directly_imported_by(m))"
    " for m in graph.modules}))\n")


def import_graph(root: Path) -> dict[str, list[str]]:
    """Module -> modules it imports, for the packages under `root` (read in a fresh process,
    so that packages already imported here do not stand in for `root`'s)."""
    proc = subprocess.run([sys.executable, "-c", GRAPH_SCRIPT, *PACKAGES], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(proc.stdout)


def import_cycles(root: Path) -> list[list[str]]:
    """Every strongly connected group of modules (a cycle) under `root`'s packages."""
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter with the contracts in pyproject.toml, on the packages under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config",
                           str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def copy_tree(dest: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.onnx", "*.jpg", "*.png"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_import_contracts_hold():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 kept, 0 broken" in proc.stdout


def test_no_import_cycle_anywhere():
    assert import_cycles(REPO) == []


def test_few_modules_left_flat_in_appliance():
    flat = sorted(p.name for p in (REPO / "appliance").glob("*.py") if p.name != "__init__.py")
    assert len(flat) <= 10, flat


def test_contracts_fail_on_an_upward_import_and_a_cycle(tmp_path: Path):
    root = copy_tree(tmp_path)
    alarms = root / "appliance" / "lot" / "alarms.py"
    alarms.write_text(alarms.read_text() + "\n\ndef _wiring():\n"
                      "    from appliance.service import Service\n\n    return Service\n")
    gate = root / "drivers" / "gate.py"
    gate.write_text(gate.read_text() + "\n\ndef _ledger():\n"
                    "    from appliance.ledger import Ledger\n\n    return Ledger\n")
    proc = lint_imports(root)
    assert proc.returncode != 0
    assert "appliance layers point one way" in proc.stdout and "BROKEN" in proc.stdout
    assert "appliance.lot.alarms -> appliance.service" in proc.stdout
    assert "drivers.gate -> appliance.ledger" in proc.stdout
    assert any({"appliance.lot.alarms", "appliance.service"} <= set(group)
               for group in import_cycles(root))

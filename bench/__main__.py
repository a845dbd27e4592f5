"""Run every `bench/bench_*.py` module's `run()` and print one table; save bench/results.json.

Each module's `run()` returns a list of dicts: {"name", "value", "unit", "goal" (optional str)}.
`python -m bench fees ledger` runs only the named modules.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": platform.platform()}


def main(argv: list[str]) -> int:
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    if argv:
        names = [n for n in names if n in argv]
    rows: list[dict] = []
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.perf_counter()
        try:
            figures = module.run()
        except Exception as err:  # a broken benchmark is reported, the others still run
            figures = [{"name": f"{name}: FAILED", "value": str(err), "unit": "", "goal": ""}]
        for fig in figures:
            fig.setdefault("goal", "")
            fig["area"] = name
            rows.append(fig)
        print(f"  [{name}: {time.perf_counter() - started:.1f} s]", file=sys.stderr)
    width = max((len(r["name"]) for r in rows), default=10)
    print(f"{'figure':<{width}}  {'value':>14}  {'unit':<10}  goal")
    print("-" * (width + 40))
    for r in rows:
        value = r["value"]
        text = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(
            value, int) else str(value)
        print(f"{r['name']:<{width}}  {text:>14}  {r['unit']:<10}  {r['goal']}")
    settings = {k: v for k, v in os.environ.items() if k.startswith("LOTEDGE_")}
    out = {"machine": _machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "settings": settings, "figures": rows}
    (HERE / "results.json").write_text(json.dumps(out, indent=2))
    print(f"\nmachine: {out['machine']['cpu']} ({out['machine']['cores']} cores), "
          f"Python {out['machine']['python']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

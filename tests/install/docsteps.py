"""The install steps of docs/install.md: each fenced block after `<!-- step: NAME -->`, so the
tests run the page as written (only `<placeholders>` are filled in)."""

from __future__ import annotations

import re

from tests.conftest import REPO

PAGE = REPO / "docs" / "install.md"
_STEP = re.compile(r"<!-- step: ([a-z0-9-]+) -->\n```sh\n(.*?)\n```", re.S)


def steps() -> dict[str, str]:
    """Every marked step of the page, by name, in page order."""
    found = _STEP.findall(PAGE.read_text(encoding="utf-8"))
    names = [name for name, _ in found]
    assert len(names) == len(set(names)), f"duplicate step names in {PAGE}"
    return dict(found)


def step(name: str, **fill: str) -> str:
    """One step's commands with its `<placeholders>` filled in (all of them must be)."""
    text = steps()[name]
    for key, value in fill.items():
        text = text.replace(f"<{key}>", value)
    left = re.findall(r"<[a-z-]+>", text)
    assert not left, f"step {name}: unfilled {left}"
    return text

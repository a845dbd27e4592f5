"""Builds of lotedge for the install tests: a wheel of this checkout with another version, or
deliberately broken, made offline with build tools kept in .cache/test-wheels."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sync.bundle import generate_keypair
from tests.conftest import REPO

BUILD_TOOLS = REPO / ".cache" / "test-wheels"  # git-ignored; setuptools and wheel
PARTS = ("pyproject.toml", "README.md", "appliance", "drivers", "lpr", "sync", "ui")
# The broken build migrates the ledger (one more schema step) and then never reports healthy.
BREAK_HEALTH = ('"ok": True, "version": __version__', '"ok": False, "version": __version__')
EXTRA_MIGRATION = '\nMIGRATIONS.append("CREATE TABLE upgrade_probe (x INTEGER);")\n'


def build_tools() -> Path:
    """setuptools and wheel as wheels (fetched once from the package index)."""
    if not (list(BUILD_TOOLS.glob("setuptools-*.whl")) and list(BUILD_TOOLS.glob("wheel-*.whl"))):
        BUILD_TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
                        "-d", str(BUILD_TOOLS), "setuptools>=68", "wheel"], check=True,
                       timeout=600)
    return BUILD_TOOLS


def source_copy(into: Path, *, version: str | None = None, broken: bool = False,
                migrates: bool = False) -> Path:
    """A copy of this checkout's package sources, optionally re-versioned, with one more
    ledger migration, or broken (a migration and a /health that never says ok)."""
    into.mkdir(parents=True)
    for part in PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, into / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, into / part)
    if version is not None:
        py = into / "pyproject.toml"
        py.write_text(re.sub(r'^version = "[^"]+"', f'version = "{version}"', py.read_text(),
                             count=1, flags=re.M))
    if broken:
        status = into / "appliance/api/status.py"
        text = status.read_text()
        assert BREAK_HEALTH[0] in text
        status.write_text(text.replace(*BREAK_HEALTH))
    if broken or migrates:
        schema = into / "appliance/ledger/schema.py"
        schema.write_text(schema.read_text() + EXTRA_MIGRATION)
    return into


def build_wheel(src: Path, out: Path) -> Path:
    """The lotedge wheel of `src`, built with no package index."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--find-links", str(build_tools()), "-w", str(out), str(src)], check=True,
                   timeout=600, capture_output=True)
    return next(out.glob("lotedge-*.whl"))


def keypair(where: Path) -> tuple[Path, str]:
    """A bundle signing key file (0600) and its public key."""
    private, public = generate_keypair()
    key = where / "bundle-signing.key"
    key.write_text(private + "\n")
    os.chmod(key, 0o600)
    return key, public

"""lotedge: offline-first parking-lot edge appliance."""

from __future__ import annotations


def _version() -> str:
    """The declared version: pyproject.toml in a source checkout, else the installed metadata."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:  # a checkout's metadata goes stale when the version is bumped: its pyproject rules
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == "lotedge":
            return str(project["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        return version("lotedge")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()

"""Every `lotedge ... --help`: renders, shows no `<bool>` beside a flag, swallows no `[word]`
as markup, documents every option, types numbers as numbers, and says what `--duration`
counts."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from appliance.cli.main import app

_NUMERIC_NAME = re.compile(r"(_s|_ms|_cents|_bytes|_days|_hours|_px|port|baud|count|keep|frames|"
                           r"rounds|seconds|threads|limit|since|after|from_seq|duration)$")


def _commands():
    def walk(command, path):
        yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


COMMANDS = _commands()


def _help(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize(("path", "command"), COMMANDS,
                         ids=[" ".join(p) or "lotedge" for p, _ in COMMANDS])
def test_help_is_complete_and_plain(path, command):
    text = _help(path)
    assert "<bool>" not in text
    options = [p for p in command.params if getattr(p, "param_type_name", "") == "option"]
    for param in options:
        assert param.help, f"{' '.join(path)} {param.opts}: no help text"
        if _NUMERIC_NAME.search(param.name or ""):
            annotation = str(param.type_descriptor.annotation)
            assert "int" in annotation or "float" in annotation, (
                f"{' '.join(path)} {param.opts} is a number typed as {annotation}")
    for source in [command.help or "", *(getattr(p, "help", "") or "" for p in command.params)]:
        for word in re.findall(r"(?<!\\)\[[a-z_.]+\]", source):  # `[x]` would be rich markup
            pytest.fail(f"{' '.join(path)}: {word} is swallowed as markup (write \\{word})")
        for word in re.findall(r"\\(\[[a-z_.]+\])", source):
            assert word in text, f"{' '.join(path)}: {word} missing from the help"


def test_duration_says_real_or_lot_time():
    assert "real seconds (not lot time)" in _help(["run"])


def test_decimal_options_say_so():
    text = _help(["quote"])
    assert "<decimal 0-1>" in text and "<decimal>" in text

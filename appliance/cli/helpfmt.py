"""How `lotedge ... --help` shows options (typer's rich help, adjusted once for every command).

typer's rich help prints a value type beside every option, `<bool>` included: a flag takes no
value, so it shows none. Help texts are rich markup: write a literal `[section]` as `\\[section]`
(tests/appliance/test_cli_help.py renders every command's help and checks both).
"""

from __future__ import annotations

from typer.core import TyperOption

_display_type_rich = TyperOption.display_type_rich


def _no_type_for_flags(self: TyperOption, ctx) -> str | None:
    if self.is_flag and not self.count:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _no_type_for_flags  # type: ignore[method-assign]

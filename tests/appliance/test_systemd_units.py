"""The systemd units: `systemd-analyze verify` clean, exposure within budget, the directives the
appliance relies on, and their command lines accepted by the CLI.

systemd-analyze is required (the Makefile's setup step installs Debian's `systemd` package when
it is missing); its absence fails these tests rather than skipping them.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
EXPOSURE_GOAL = 2.5
LOTEDGE = str(Path(sys.executable).with_name("lotedge"))


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: install Debian's 'systemd' package (make setup does)"
    return tool


def directives(unit: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if re.match(r"^[A-Za-z]+=", line):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def _rewritten(tmp_path: Path) -> list[Path]:
    """The units with /opt/lotedge/current/venv/bin/lotedge pointing at this checkout's lotedge."""
    out = []
    for unit in sorted(UNITS.glob("lotedge*.service")) + sorted(UNITS.glob("lotedge*.timer")):
        target = tmp_path / unit.name
        target.write_text(unit.read_text().replace("/opt/lotedge/current/venv/bin/lotedge",
                                                   LOTEDGE))
        out.append(target)
    return out


def test_units_verify_without_warnings(tmp_path):
    units = _rewritten(tmp_path)
    assert [u.name for u in units] == ["lotedge-backup.service", "lotedge.service",
                                       "lotedge-backup.timer"]
    proc = subprocess.run([_analyze(), "verify", *map(str, units)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_a_broken_unit_is_reported(tmp_path):
    unit = tmp_path / "lotedge.service"
    unit.write_text((UNITS / "lotedge.service").read_text().replace(
        "/opt/lotedge/current/venv/bin/lotedge", "/nonexistent/lotedge"))
    proc = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "/nonexistent/lotedge" in proc.stderr


@pytest.mark.parametrize("unit", ["lotedge.service", "lotedge-backup.service"])
def test_exposure_is_within_the_goal(unit):
    proc = subprocess.run([_analyze(), "security", "--offline=yes", str(UNITS / unit)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert match, proc.stdout[-500:] + proc.stderr
    assert float(match.group(1)) <= EXPOSURE_GOAL


def test_service_directives():
    d = directives(UNITS / "lotedge.service")
    assert d["Type"] == ["notify"] and d["Restart"] == ["always"]
    assert d["WatchdogSec"] == ["20s"] and d["NotifyAccess"] == ["main"]
    assert d["User"] == ["lotedge"] and d["SupplementaryGroups"] == ["gpio dialout video"]
    assert d["ProtectSystem"] == ["strict"] and d["ReadWritePaths"] == ["/var/lib/lotedge"]
    for key in ("PrivateTmp", "NoNewPrivileges", "ProtectHome", "RestrictSUIDSGID"):
        assert d[key] == ["yes"], key
    assert d["CapabilityBoundingSet"] == [""] and "@system-service" in d["SystemCallFilter"]
    assert d["DevicePolicy"] == ["closed"]
    timer = directives(UNITS / "lotedge-backup.timer")
    assert timer["OnCalendar"] == ["*-*-* 03:15:00"] and timer["Persistent"] == ["true"]


def test_exec_start_is_accepted_by_the_cli():
    (cmd,) = directives(UNITS / "lotedge.service")["ExecStart"]
    argv = shlex.split(cmd)[1:]
    assert argv[:3] == ["run", "--config", "/etc/lotedge/lot.toml"]
    proc = subprocess.run([LOTEDGE, *argv[:1], "--help"], capture_output=True, text=True,
                          timeout=60)
    for option in argv[1:]:
        if option.startswith("--"):
            assert option in proc.stdout, option


def test_backup_unit_command_makes_a_verified_backup(tmp_path, counter_lot):
    import asyncio

    from appliance.ledger import Ledger

    async def make_ledger():
        ledger = await Ledger.open(counter_lot.db_path(), lot_id="test-lot", tz=counter_lot.lot.tz)
        await ledger.close()

    asyncio.run(make_ledger())
    (cmd,) = directives(UNITS / "lotedge-backup.service")["ExecStart"]
    argv = [a.replace("/etc/lotedge/lot.toml", counter_lot.source_path)
            .replace("/var/lib/lotedge/backups", str(tmp_path / "backups"))
            for a in shlex.split(cmd)[1:]]
    (tmp_path / "backups").mkdir()
    proc = subprocess.run([LOTEDGE, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (backup,) = (tmp_path / "backups").glob("ledger-*.sqlite3")
    assert "verified" in proc.stdout and backup.stat().st_mode & 0o777 == 0o600

"""One declared version (pyproject.toml) everywhere: `lotedge --version`, the package, and the
header of every batch sent to the cloud (validated against docs/schemas/batch.schema.json)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from jsonschema import Draft202012Validator

import appliance
from sync.mqtt import MqttSettings
from sync.uplink import Uplink
from tests.conftest import REPO
from tests.sync.helpers import open_filled
from tests.sync.test_protocol_docs import REGISTRY

DECLARED = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_the_declared_version_is_a_real_release_number():
    assert DECLARED != "0.1.0" and appliance.__version__ == DECLARED
    assert f"## [{DECLARED}]" in (REPO / "CHANGELOG.md").read_text() or \
        "## [Unreleased]" in (REPO / "CHANGELOG.md").read_text()


def test_lotedge_version_prints_it():
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "--version"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout == f"lotedge {DECLARED}\n", proc.stderr


async def test_every_batch_names_the_release_that_sent_it(tmp_path):
    ledger = await open_filled(tmp_path / "ledger.sqlite3", 5)
    uplink = Uplink(ledger, MqttSettings.from_url("mqtt://127.0.0.1:1"), batch_max_events=500)
    try:
        _, message = await uplink.read_batch(0)
    finally:
        await uplink._reader.close()
        await ledger.close()
    batch = json.loads(message)
    assert batch["lotedge_version"] == DECLARED
    schema = json.loads((REPO / "docs/schemas/batch.schema.json").read_text())
    assert "lotedge_version" in schema["properties"]
    validator = Draft202012Validator(schema, registry=REGISTRY)
    validator.validate(batch)
    assert list(validator.iter_errors(dict(batch, lotedge_version="")))  # the schema checks the field

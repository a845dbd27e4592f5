"""`lotedge cloud keygen/sign-bundle` and the [cloud] config keys."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from appliance.cli.main import app
from appliance.config import load_config
from appliance.errors import ConfigError
from sync.bundle import verify_bundle
from tests.conftest import write_lot

runner = CliRunner()


def test_keygen_then_sign_then_verify(tmp_path):
    key = tmp_path / "bundle.key"
    result = runner.invoke(app, ["cloud", "keygen", "--private", str(key)])
    assert result.exit_code == 0, result.output
    public = result.output.strip().rsplit(" ", 1)[-1]
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    unsigned = tmp_path / "b.json"
    unsigned.write_text(json.dumps({"lot_id": "lot-a", "version": 2,
                                    "issued_utc": "2026-11-01T00:00:00+00:00",
                                    "deny": [{"plate": "X1"}]}))
    out = tmp_path / "signed.json"
    result = runner.invoke(app, ["cloud", "sign-bundle", str(unsigned), "--key", str(key),
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    bundle = verify_bundle(out.read_text(), public_key_b64=public, lot_id="lot-a")
    assert bundle.version == 2 and bundle.counts()["deny"] == 1
    assert bundle.body["expires_utc"] == "2026-12-01T00:00:00+00:00"  # --valid-days 30
    # keygen never overwrites a key
    again = runner.invoke(app, ["cloud", "keygen", "--private", str(key)])
    assert again.exit_code != 0


def test_sign_bundle_refuses_an_invalid_bundle(tmp_path):
    key = tmp_path / "k"
    runner.invoke(app, ["cloud", "keygen", "--private", str(key)])
    unsigned = tmp_path / "b.json"
    unsigned.write_text(json.dumps({"lot_id": "lot-a", "version": 0,
                                    "issued_utc": "2026-11-01T00:00:00+00:00"}))
    result = runner.invoke(app, ["cloud", "sign-bundle", str(unsigned), "--key", str(key),
                                 "-o", str(tmp_path / "s.json")])
    assert result.exit_code != 0
    assert "version: must be a positive integer" in str(result.exception)
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("line, key", [
    ('mqtt_url = "http://x"', "cloud.mqtt_url"),
    ("batch_max_events = 0", "cloud.batch_max_events"),
    ("retention_alarm_ratio = 1.5", "cloud.retention_alarm_ratio"),
    ('tls_cert_file = "c.pem"', "cloud.tls_cert_file"),
    ("batch_size = 3", "cloud.batch_size"),
    ("backoff_max_s = 0", "cloud.backoff_max_s"),
    ('api_url = "http://127.0.0.1:8080"', "cloud.bundle_public_key"),
])
def test_bad_cloud_keys_name_the_key_and_line(tmp_path, line, key):
    path = write_lot(tmp_path)
    text = path.read_text() + f"\n[cloud]\nenabled = true\n{line}\n"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith(key + ":"), info.value.message
    lines = text.splitlines()
    # A wrong key points at its own line; a missing one at its [cloud] section.
    expected = lines.index("[cloud]") + 1 if key.endswith("public_key") else len(lines)
    assert info.value.line == expected


def test_cloud_defaults_are_offline(tmp_path):
    cloud = load_config(write_lot(tmp_path)).cloud
    assert cloud.enabled is False
    assert (cloud.batch_max_events, cloud.batch_max_bytes) == (500, 256 * 1024)

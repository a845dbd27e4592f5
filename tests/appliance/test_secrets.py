"""Secret files: read only when no one but the owner can read them; errors name key and file."""

from __future__ import annotations

import os

import pytest

from appliance.errors import ConfigError
from appliance.host.secrets import read_secret_file


def _write(path, text, mode):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_owner_only_file_is_read_and_stripped(tmp_path):
    p = _write(tmp_path / "broker.pw", "s3cret\n", 0o600)
    assert read_secret_file(p, key="cloud.password_file") == "s3cret"
    q = _write(tmp_path / "ro.pw", "x", 0o400)
    assert read_secret_file(q, key="cloud.password_file") == "x"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610])
def test_group_or_world_access_is_refused_naming_key_and_file(tmp_path, mode):
    p = _write(tmp_path / "broker.pw", "s3cret", mode)
    with pytest.raises(ConfigError) as info:
        read_secret_file(p, key="cloud.password_file")
    message = str(info.value)
    assert "cloud.password_file" in message and str(p) in message
    assert f"{mode:04o}" in message and "s3cret" not in message


def test_missing_empty_and_directory_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cloud.client_key_file: .* does not exist"):
        read_secret_file(tmp_path / "nope.key", key="cloud.client_key_file")
    empty = _write(tmp_path / "empty.pw", "  \n", 0o600)
    with pytest.raises(ConfigError, match="is empty"):
        read_secret_file(empty, key="cloud.password_file")
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_secret_file(d, key="cloud.password_file")


def test_binary_key_is_returned_as_bytes(tmp_path):
    p = tmp_path / "client.key"
    p.write_bytes(b"\x00\x01key")
    os.chmod(p, 0o600)
    assert read_secret_file(p, key="cloud.client_key_file", binary=True) == b"\x00\x01key"


def test_api_token_file_is_created_owner_only_and_checked_when_read(tmp_path):
    from appliance.api.app import load_or_create_token

    path = tmp_path / "data" / "api.token"
    token = load_or_create_token(path)
    assert os.stat(path).st_mode & 0o777 == 0o600 and len(token) >= 40
    assert load_or_create_token(path) == token
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="api.token_file: .* mode 0644"):
        load_or_create_token(path)

"""Secrets (broker password, client key, API token) read from files that only their owner can read.

A secret never lives in the lot TOML: the TOML names a file (`cloud.password_file = ...`) and
start-up refuses a file that its group or others could read, naming the key and the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from appliance.errors import ConfigError

_MAX_SECRET_BYTES = 64 * 1024


def check_secret_file(path: str | Path, *, key: str) -> Path:
    """Refuse a secret file that is missing, not a regular file, or group/world accessible."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError as err:
        raise ConfigError(f"{key}: secret file {p} does not exist") from err
    except OSError as err:
        raise ConfigError(f"{key}: cannot stat secret file {p}: {err.strerror}") from err
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{key}: secret file {p} is not a regular file")
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose:
        raise ConfigError(
            f"{key}: secret file {p} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be "
            f"readable by group or others (chmod 600 {p})")
    if st.st_size > _MAX_SECRET_BYTES:
        raise ConfigError(f"{key}: secret file {p} is {st.st_size} bytes; a secret is at most "
                          f"{_MAX_SECRET_BYTES}")
    return p


def read_secret_file(path: str | Path, *, key: str, binary: bool = False) -> str | bytes:
    """The contents of a mode-0600 (or stricter) secret file; text is stripped of whitespace."""
    p = check_secret_file(path, key=key)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ConfigError(f"{key}: cannot read secret file {p}: {err.strerror}") from err
    if binary:
        if not data:
            raise ConfigError(f"{key}: secret file {p} is empty")
        return data
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{key}: secret file {p} is not UTF-8 text") from err
    if not text:
        raise ConfigError(f"{key}: secret file {p} is empty")
    return text

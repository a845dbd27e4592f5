"""Redaction of secrets from text that leaves the appliance (support bundles, diagnostics)."""

from __future__ import annotations

import re

_SECRET_KEY = re.compile(r"(password|passwd|secret|token|psk|credential|private_key)", re.I)
_LINE = re.compile(r"^(\s*)([A-Za-z0-9_.\-\"']+)(\s*=\s*)(.*)$")
_URL_USERINFO = re.compile(r"([a-z][a-z0-9+.\-]*://)([^/@\s:\"']+)(:[^/@\s\"']*)?@", re.I)


def redact_url(text: str) -> str:
    """Replace the user:password part of every URL in `text`."""
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}REDACTED@", text)


def redact_config(text: str) -> str:
    """Lot TOML with secret values and URL credentials replaced (paths of *_file keys kept)."""
    out = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            key = match.group(2).strip("\"'").rsplit(".", 1)[-1]
            if _SECRET_KEY.search(key) and not key.endswith("_file"):
                line = f'{match.group(1)}{match.group(2)}{match.group(3)}"REDACTED"'
        out.append(redact_url(line))
    return "\n".join(out) + "\n"

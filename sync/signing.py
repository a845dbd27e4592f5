"""Signed cloud messages: event batches signed by the lot, acks signed by the cloud.

A signed message (a "sealed" message) is a JSON object whose bytes are exactly

    {"v":1,"sig":"<88 base64 characters>","<kind>":<BODY>}

where `<kind>` is `batch` (appliance -> cloud) or `ack` (cloud -> appliance) and `<BODY>` is
the body's JSON bytes as sent. The Ed25519 signature covers `"lotedge-<kind>-v1\\n"` followed
by exactly those BODY bytes (no re-serialisation, so any language can verify it: check the
fixed prefix, cut the BODY out, verify, then parse the very bytes that were verified). The
`lotedge-<kind>-v1` context keeps a signature of one kind from being valid as another (or as a
bundle, whose signature covers canonical JSON, which never starts with `lotedge-`).

Keys are raw Ed25519 keys in base64 (32 bytes), as `sync.bundle.generate_keypair` makes them;
private keys live in owner-only files read with `read_secret_file`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import ConfigError, LotedgeError
from appliance.host.secrets import read_secret_file
from sync.bundle import decode_key, decode_signature

KINDS = ("batch", "ack")
_LOT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class SignatureRefused(LotedgeError, ValueError):
    """A sealed message is unsigned, malformed or not signed by the expected key."""


def context(kind: str) -> bytes:
    """The bytes prepended to a body before signing (domain separation per kind)."""
    if kind not in KINDS:
        raise ValueError(f"unknown sealed message kind {kind!r}")
    return f"lotedge-{kind}-v1\n".encode("ascii")


def _prefix(kind: str) -> tuple[bytes, bytes]:
    return b'{"v":1,"sig":"', f'","{kind}":'.encode("ascii")


def seal(kind: str, body: bytes, key: Ed25519PrivateKey) -> bytes:
    """The sealed message carrying `body` (JSON bytes) signed with `key`."""
    signature = base64.b64encode(key.sign(context(kind) + body))
    head, mid = _prefix(kind)
    return head + signature + mid + body + b"}"


def is_sealed(kind: str, payload: bytes) -> bool:
    """Whether `payload` has the shape of a sealed message of `kind` (not whether it verifies)."""
    head, mid = _prefix(kind)
    return (payload.startswith(head) and payload[len(head) + 88:len(head) + 88 + len(mid)] == mid
            and payload.endswith(b"}"))


def unseal(kind: str, payload: bytes, key: Ed25519PublicKey) -> bytes:
    """The verified body bytes of a sealed message; SignatureRefused says why not."""
    if not isinstance(payload, bytes | bytearray):
        raise SignatureRefused("payload is not bytes")
    payload = bytes(payload)
    if not is_sealed(kind, payload):
        raise SignatureRefused(f"not a signed {kind} message (unsigned or malformed envelope)")
    head, mid = _prefix(kind)
    sig_text = payload[len(head):len(head) + 88]
    body = payload[len(head) + 88 + len(mid):-1]
    try:
        signature = decode_signature(sig_text)
        key.verify(signature, context(kind) + body)
    except (binascii.Error, ValueError, InvalidSignature) as err:
        raise SignatureRefused(f"bad {kind} signature") from err
    return body


def private_key(text: str, *, what: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from its base64 text (ValueError naming `what`)."""
    return Ed25519PrivateKey.from_private_bytes(decode_key(text, what))


def public_key(text: str, *, what: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its base64 text (ValueError naming `what`)."""
    return Ed25519PublicKey.from_public_bytes(decode_key(text, what))


def load_private_key(path: str | Path, *, key: str) -> Ed25519PrivateKey:
    """The private key in an owner-only file; ConfigError naming `key` otherwise."""
    text = str(read_secret_file(path, key=key))
    try:
        return private_key(text, what=f"{key}: {path}")
    except ValueError as err:
        raise ConfigError(str(err)) from err


def load_public_key(text_or_path: str, *, key: str) -> Ed25519PublicKey:
    """A public key given as base64 text or as the path of a file holding it."""
    text = text_or_path.strip()
    if len(text) != 44 and Path(text).is_file():
        try:
            text = Path(text).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"{key}: cannot read {text_or_path}: {err.strerror}") from err
    try:
        return public_key(text, what=key)
    except ValueError as err:
        raise ConfigError(str(err)) from err


@dataclass
class LotKeys:
    """The lots' registered public keys: `<directory>/<lot_id>.pub`, each one base64 line.

    Read when first needed and again when the file changes, so registering a new lot needs no
    restart of the ingest.
    """

    directory: Path
    _cache: dict[str, tuple[float, Ed25519PublicKey]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if not self.directory.is_dir():
            raise ConfigError(f"--lot-keys: {self.directory} is not a directory")

    def get(self, lot_id: str) -> Ed25519PublicKey | None:
        """The lot's public key, or None when it has none registered (or an unreadable one)."""
        if not _LOT_ID.fullmatch(lot_id):
            return None
        path = self.directory / f"{lot_id}.pub"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            self._cache.pop(lot_id, None)
            return None
        cached = self._cache.get(lot_id)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            key = public_key(path.read_text(encoding="utf-8").strip(), what=str(path))
        except (OSError, ValueError):
            return None
        self._cache[lot_id] = (mtime, key)
        return key

"""Downlink bundles: canonical JSON signed with Ed25519, and validation of their records.

A signed bundle file is `{"bundle": {...}, "signature": "<base64 Ed25519 over canonical JSON of
bundle>"}`. The bundle holds `lot_id`, `version` (integer, increasing), `issued_utc`,
`expires_utc` (after which the bundle is refused; optional for bundles signed before it
existed), and the record lists `permits`, `reservations`, `allow`, `deny`, `calendar`, plus an
optional `tariff`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import TypeAdapter, ValidationError

from appliance.core.events import canonical_json
from appliance.core.plates import normalise_plate
from appliance.core.tariff import Tariff
from appliance.core.types import SpotType
from sync.errors import BundleRejected

RECORD_LISTS = ("permits", "reservations", "allow", "deny", "calendar")
_TARIFF = TypeAdapter(Tariff)


def generate_keypair() -> tuple[str, str]:
    """A new (private, public) Ed25519 key pair, each as base64 of the raw 32 bytes."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def public_key_of(private_key_b64: str) -> str:
    """The base64 public key that belongs to a base64 private key."""
    key = Ed25519PrivateKey.from_private_bytes(_raw_key(private_key_b64, "private key"))
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def decode_signature(text: str | bytes) -> bytes:
    """The bytes of a base64 signature, only in its one canonical spelling (ValueError or
    binascii.Error otherwise).

    base64 decoding ignores the 4 unused low bits of the last character, so without the check
    16 spellings of one signature would all verify: an altered message that still passes."""
    raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    signature = base64.b64decode(raw, validate=True)
    if base64.b64encode(signature) != raw:
        raise ValueError("signature is not canonical base64")
    return signature


def decode_key(text: str, what: str) -> bytes:
    """The raw 32 bytes of a base64 Ed25519 key (ValueError naming `what` if it is not one)."""
    return _raw_key(text, what)


def _raw_key(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"{what}: not valid base64") from err
    if len(raw) != 32:
        raise ValueError(f"{what}: must be 32 bytes (got {len(raw)})")
    return raw


def sign_bundle(bundle: dict[str, Any], private_key_b64: str) -> dict[str, Any]:
    """Wrap `bundle` with its Ed25519 signature over the canonical JSON."""
    key = Ed25519PrivateKey.from_private_bytes(_raw_key(private_key_b64, "private key"))
    signature = key.sign(canonical_json(bundle).encode("utf-8"))
    return {"bundle": bundle, "signature": base64.b64encode(signature).decode()}


@dataclass(frozen=True, kw_only=True)
class Bundle:
    """A verified, validated bundle ready to apply."""

    lot_id: str
    version: int
    issued_utc: str
    tariff: Tariff | None
    records: dict[str, list[dict[str, Any]]]
    body: dict[str, Any]
    sha256: str

    def counts(self) -> dict[str, int]:
        """How many records of each kind the bundle holds."""
        return {name: len(rows) for name, rows in self.records.items()}


def _utc(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BundleRejected(f"{where}: must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise BundleRejected(f"{where}: not an ISO 8601 timestamp ({value!r})") from err
    if parsed.tzinfo is None:
        raise BundleRejected(f"{where}: timestamp needs a UTC offset ({value!r})")
    return parsed.isoformat()


def _text(record: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise BundleRejected(f"{where}.{key}: must be a non-empty string")
    return value


def _plate(record: dict[str, Any], where: str, *, required: bool = True) -> str | None:
    plate = _text(record, "plate", where, required=required)
    if not plate:
        return None
    normal = normalise_plate(plate)
    if not normal:
        raise BundleRejected(f"{where}.plate: no letters or digits in {plate!r}")
    return normal


def _check_window(rec: dict[str, Any], start: str, end: str, where: str) -> tuple[str, str]:
    a, b = _utc(rec.get(start), f"{where}.{start}"), _utc(rec.get(end), f"{where}.{end}")
    if datetime.fromisoformat(b) <= datetime.fromisoformat(a):
        raise BundleRejected(f"{where}.{end}: must be after {start}")
    return a, b


def _validate_records(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name in RECORD_LISTS:
        rows = body.get(name, [])
        if not isinstance(rows, list):
            raise BundleRejected(f"{name}: must be a list")
        clean: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, rec in enumerate(rows):
            where = f"{name}[{i}]"
            if not isinstance(rec, dict):
                raise BundleRejected(f"{where}: must be an object")
            if name == "permits":
                start, end = _check_window(rec, "valid_from_utc", "valid_to_utc", where)
                row = {"id": _text(rec, "id", where), "plate": _plate(rec, where),
                       "kind": _text(rec, "kind", where, required=False) or "permit",
                       "valid_from_utc": start, "valid_to_utc": end}
            elif name == "reservations":
                start, end = _check_window(rec, "start_utc", "end_utc", where)
                spot_type = rec.get("spot_type", "REGULAR")
                try:
                    spot_type = str(SpotType(spot_type))
                except ValueError as err:
                    raise BundleRejected(f"{where}.spot_type: unknown type {spot_type!r}") from err
                status = rec.get("status", "CONFIRMED")
                if status not in ("CONFIRMED", "CANCELLED"):
                    raise BundleRejected(f"{where}.status: must be CONFIRMED or CANCELLED")
                row = {"id": _text(rec, "id", where), "plate": _plate(rec, where, required=False),
                       "code": _text(rec, "code", where, required=False),
                       "spot_type": spot_type,
                       "level_id": _text(rec, "level_id", where, required=False),
                       "spot_id": _text(rec, "spot_id", where, required=False),
                       "start_utc": start, "end_utc": end, "status": status}
                if row["plate"] is None and row["code"] is None:
                    raise BundleRejected(f"{where}: needs a plate or a code")
            elif name in ("allow", "deny"):
                row = {"plate": _plate(rec, where),
                       "reason": _text(rec, "reason", where, required=False) or ""}
            else:
                start, end = _check_window(rec, "start_utc", "end_utc", where)
                row = {"id": _text(rec, "id", where), "name": _text(rec, "name", where),
                       "start_utc": start, "end_utc": end}
            key = row.get("id") or row["plate"]
            if key in seen:
                raise BundleRejected(f"{where}: duplicate {'id' if 'id' in row else 'plate'} "
                                     f"{key!r}")
            seen.add(key)
            clean.append(row)
        out[name] = clean
    both = {r["plate"] for r in out["allow"]} & {r["plate"] for r in out["deny"]}
    if both:
        raise BundleRejected(f"allow/deny: plate {sorted(both)[0]!r} is on both lists")
    return out


def verify_bundle(document: bytes | str | dict[str, Any], *, public_key_b64: str,
                  lot_id: str, now: datetime | None = None) -> Bundle:
    """Check the signature, the lot, the expiry (at `now`, if given) and every record; raise
    BundleRejected with the reason."""
    if isinstance(document, bytes | str):
        try:
            document = json.loads(document)
        except (ValueError, UnicodeDecodeError) as err:
            raise BundleRejected(f"not valid JSON ({err})") from err
    if not isinstance(document, dict) or set(document) != {"bundle", "signature"}:
        raise BundleRejected("must be an object with exactly 'bundle' and 'signature'")
    body, signature_b64 = document["bundle"], document["signature"]
    if not isinstance(body, dict):
        raise BundleRejected("'bundle' must be an object")
    version = body.get("version")
    shown_version = version if isinstance(version, int) else None
    try:
        public = Ed25519PublicKey.from_public_bytes(_raw_key(public_key_b64, "public key"))
    except ValueError as err:
        raise BundleRejected(f"bad public key in config: {err}", version=shown_version) from err
    try:
        signature = decode_signature(str(signature_b64))
        canonical = canonical_json(body).encode("utf-8")
        public.verify(signature, canonical)
    except (binascii.Error, ValueError, InvalidSignature) as err:
        raise BundleRejected("bad signature", version=shown_version) from err
    try:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleRejected("version: must be a positive integer")
        if body.get("lot_id") != lot_id:
            raise BundleRejected(f"lot_id: bundle is for {body.get('lot_id')!r}, not {lot_id!r}")
        issued = _utc(body.get("issued_utc"), "issued_utc")
        if body.get("expires_utc") is not None:
            expires = _utc(body["expires_utc"], "expires_utc")
            if datetime.fromisoformat(expires) <= datetime.fromisoformat(issued):
                raise BundleRejected("expires_utc: must be after issued_utc")
            if now is not None and datetime.fromisoformat(expires) <= now:
                raise BundleRejected(f"expires_utc: bundle expired at {expires}")
        unknown = set(body) - {"lot_id", "version", "issued_utc", "expires_utc", "tariff",
                               *RECORD_LISTS}
        if unknown:
            raise BundleRejected(f"{sorted(unknown)[0]}: unknown key")
        tariff = None
        if body.get("tariff") is not None:
            try:
                tariff = _TARIFF.validate_python(body["tariff"])
            except ValidationError as err:
                first = err.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise BundleRejected(f"tariff.{loc}: {first['msg']}") from None
        records = _validate_records(body)
    except BundleRejected as err:
        raise BundleRejected(err.reason, version=shown_version) from None
    return Bundle(lot_id=lot_id, version=version, issued_utc=issued, tariff=tariff,
                  records=records, body=body,
                  sha256=hashlib.sha256(canonical).hexdigest())

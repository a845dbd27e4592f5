"""Tariffs by content id, and the one in force: what a ticket locks at entry.

A tariff's id is the first 16 hex digits of the sha256 of its canonical JSON, so the same rates
get the same id whether they come from the config file or a cloud bundle. The tariff in force
is the one carried by the newest applied cloud bundle, or the config file's when that bundle
carries none (a bundle is a full snapshot: no tariff means the cloud does not manage rates).

Every tariff a ticket may lock is recorded once as `tariff.adopted {tariff_id, source, tariff}`
(projected into `tariffs`), and `ticket.issued` carries the `tariff_id` it locked. A ticket is
priced at exit, in the attendant's views and for validations with its own tariff, so new rates
from the cloud, or an edited config after a restart, never reprice a car already inside.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from appliance.core.events import Event, NewEvent, canonical_json
from appliance.core.tariff import Tariff
from appliance.errors import LotedgeError

log = logging.getLogger(__name__)

_ADAPTER = TypeAdapter(Tariff)
CLOUD_TARIFF_KEY = "cloud_tariff_id"  # meta: id of the tariff the newest bundle carries


def tariff_document(tariff: Tariff) -> dict:
    """The tariff as plain JSON data (what `tariff.adopted` carries; parses back equal)."""
    return _ADAPTER.dump_python(tariff, mode="json")


def parse_tariff(document: dict) -> Tariff:
    """A tariff from its JSON data (raises pydantic.ValidationError when invalid)."""
    return _ADAPTER.validate_python(document)


def tariff_id(tariff: Tariff) -> str:
    """The content id of a tariff."""
    return hashlib.sha256(canonical_json(tariff_document(tariff)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LockedTariff:
    """A tariff and its id, as a ticket locks it."""

    id: str
    tariff: Tariff


async def adopt_in(tx, tariff: Tariff, *, source: str) -> str:
    """Record `tariff` in this transaction unless it is already known; returns its id."""
    tid = tariff_id(tariff)
    if await tx.fetchone("SELECT 1 FROM tariffs WHERE id = ?", (tid,)) is None:
        await tx.append(NewEvent(type="tariff.adopted", payload={
            "tariff_id": tid, "source": source, "tariff": tariff_document(tariff)}))
    return tid


async def set_cloud_tariff(tx, tid: str | None) -> None:
    """Remember (or forget) the tariff the newest bundle carries."""
    if tid is None:
        await tx.execute("DELETE FROM meta WHERE key IN (?, 'cloud_tariff')", (CLOUD_TARIFF_KEY,))
    else:
        await tx.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                         "DO UPDATE SET value = excluded.value", (CLOUD_TARIFF_KEY, tid))
        await tx.execute("DELETE FROM meta WHERE key = 'cloud_tariff'")


def in_force_on_disk(db_path: Path, config_tariff: Tariff) -> tuple[LockedTariff, str]:
    """The tariff new tickets lock, read from a ledger file without writing to it (for tools
    such as `lotedge quote` while the service runs): (tariff, "bundle" | "config").

    No ledger yet, or no bundle tariff in it: the config file's tariff.
    """
    config = LockedTariff(tariff_id(config_tariff), config_tariff)
    if not Path(db_path).is_file():
        return config, "config"
    conn = sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, 'cloud_tariff')",
                                 (CLOUD_TARIFF_KEY,)).fetchall())
        if CLOUD_TARIFF_KEY in meta:
            body = conn.execute("SELECT body FROM tariffs WHERE id = ?",
                                (meta[CLOUD_TARIFF_KEY],)).fetchone()
            if body is not None:
                return (LockedTariff(meta[CLOUD_TARIFF_KEY], parse_tariff(json.loads(body[0]))),
                        "bundle")
        if "cloud_tariff" in meta:  # a ledger from before tariff locks kept the body itself
            tariff = parse_tariff(json.loads(meta["cloud_tariff"]))
            return LockedTariff(tariff_id(tariff), tariff), "bundle"
        return config, "config"
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):  # not a ledger yet
            return config, "config"
        raise LotedgeError(f"{db_path}: cannot read the tariff in force ({err}); "
                           "--config-tariff prices with the config file's") from err
    except (sqlite3.DatabaseError, ValueError) as err:  # damaged file or tariff body
        raise LotedgeError(f"{db_path}: cannot read the tariff in force ({err}); "
                           "--config-tariff prices with the config file's") from err
    finally:
        conn.close()


class TariffBook:
    """The tariffs a ticket may be priced with, and the one new tickets lock (kept in memory).

    Args:
        config_tariff: the config file's tariff (in force unless a bundle carries one).
    """

    def __init__(self, config_tariff: Tariff) -> None:
        self.config = LockedTariff(tariff_id(config_tariff), config_tariff)
        self._known: dict[str, Tariff] = {self.config.id: config_tariff}
        self.in_force = self.config

    def get(self, tid: str | None) -> Tariff:
        """The tariff with id `tid`; the config tariff for tickets from before tariff locks."""
        if tid is None:
            return self.config.tariff
        tariff = self._known.get(tid)
        if tariff is None:  # cannot happen with a loaded book: price rather than trap the car
            log.warning("tariff %s is not known; pricing with the config tariff", tid)
            return self.config.tariff
        return tariff

    def describe(self) -> dict:
        """The tariff in force, for `/health` and the attendant: id, source and base rates."""
        tariff = self.in_force.tariff
        return {"id": self.in_force.id,
                "source": "config" if self.in_force.id == self.config.id else "bundle",
                "hourly_cents": tariff.hourly_cents, "daily_max_cents": tariff.daily_max_cents}

    async def load(self, ledger) -> None:
        """Read the known tariffs and the one in force; record the config tariff if it is new."""
        async with ledger.transaction() as tx:
            await adopt_in(tx, self.config.tariff, source="config")
            for row in await tx.fetchall("SELECT id, body FROM tariffs"):
                self._known.setdefault(row["id"], parse_tariff(json.loads(row["body"])))
            row = await tx.fetchone("SELECT value FROM meta WHERE key = ?", (CLOUD_TARIFF_KEY,))
            cloud = row["value"] if row else None
            if cloud is None:  # a ledger from before tariff locks kept the bundle's tariff body
                old = await tx.fetchone("SELECT value FROM meta WHERE key = 'cloud_tariff'")
                if old is not None:
                    legacy = parse_tariff(json.loads(old["value"]))
                    cloud = await adopt_in(tx, legacy, source="bundle")
                    self._known.setdefault(cloud, legacy)
                    await set_cloud_tariff(tx, cloud)
        self.in_force = (LockedTariff(cloud, self._known[cloud]) if cloud in self._known
                         else self.config)

    def follow(self, events: list[Event]) -> None:
        """Ledger listener: learn adopted tariffs; a bundle switches the tariff in force."""
        for ev in events:
            if ev.type == "tariff.adopted":
                self._known.setdefault(ev.payload["tariff_id"],
                                       parse_tariff(ev.payload["tariff"]))
            elif ev.type == "bundle.applied":
                tid = ev.payload.get("tariff_id")
                self.in_force = (LockedTariff(tid, self._known[tid]) if tid in self._known
                                 else self.config)



"""Downlink: fetch signed bundles from the cloud and apply them in one ledger transaction.

`GET {api_url}/v1/lots/{lot_id}/bundle?since=VERSION` answers 200 with a signed bundle newer than
VERSION, or 204 when there is none. A retained MQTT notice `{"version": N}` on
`lotedge/{lot_id}/bundle` triggers a fetch at once; otherwise the appliance polls. A bundle is a
full snapshot of the lists it carries. A bad signature, an old version or an invalid record is
refused with `bundle.rejected {version, reason}` and the bundle in force stays in force, as is
one whose `expires_utc` has passed. With `stale_after_s`, a lot whose newest applied bundle was
issued longer ago than that raises the alarm `bundle_stale` (source `downlink`), cleared when a
fresh one arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.core.events import NewEvent, canonical_json
from appliance.ledger import Ledger
from appliance.lot.alarms import clear_alarm, raise_alarm
from appliance.lot.tariffs import adopt_in, set_cloud_tariff
from sync.bundle import Bundle, verify_bundle
from sync.errors import BundleRejected, SyncError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


async def current_version(ledger: Ledger) -> int:
    """Version of the bundle in force (0 when none was ever applied)."""
    row = await ledger.fetchone("SELECT MAX(version) AS v FROM bundles")
    return (row["v"] or 0) if row else 0


async def apply_bundle(ledger: Ledger, bundle: Bundle) -> None:
    """Replace the cloud plate lists and calendar, upsert reservations: one transaction."""
    async with ledger.transaction() as tx:
        row = await tx.fetchone("SELECT MAX(version) AS v FROM bundles")
        in_force = (row["v"] or 0) if row else 0
        if bundle.version <= in_force:
            raise BundleRejected(f"version {bundle.version} is not newer than {in_force} in "
                                 "force", version=bundle.version)
        # The bundle's tariff is in force for new tickets; none means the config's tariff.
        tid = (await adopt_in(tx, bundle.tariff, source=f"bundle v{bundle.version}")
               if bundle.tariff is not None else None)
        await set_cloud_tariff(tx, tid)
        event = await tx.append(NewEvent(type="bundle.applied", payload={
            "version": bundle.version, "sha256": bundle.sha256, "counts": bundle.counts(),
            "tariff": bundle.tariff is not None, "tariff_id": tid}))
        await tx.execute("INSERT INTO bundles(version, sha256, issued_utc, applied_seq, body) "
                         "VALUES (?,?,?,?,?)", (bundle.version, bundle.sha256, bundle.issued_utc,
                                                event.seq, canonical_json(bundle.body)))
        rec = bundle.records
        # Cloud entries are replaced as a whole; entries made locally (source 'local') stay,
        # and win over a cloud entry for the same plate and list.
        await tx.execute("DELETE FROM plate_lists WHERE source = 'cloud'")
        listed = [(p["plate"], "permit", f"{p['kind']} {p['id']}", p["valid_from_utc"],
                   p["valid_to_utc"]) for p in rec["permits"]]
        listed += [(p["plate"], "permit", p["reason"] or "allow list", None, None)
                   for p in rec["allow"]]
        listed += [(p["plate"], "blocked", p["reason"] or "deny list", None, None)
                   for p in rec["deny"]]
        for plate, name, note, valid_from, valid_to in listed:
            await tx.execute(
                "INSERT INTO plate_lists(plate, list, source, note, valid_from_utc, "
                "valid_to_utc) VALUES (?,?,'cloud',?,?,?) ON CONFLICT(plate, list) DO NOTHING",
                (plate, name, note, valid_from, valid_to))
        await tx.execute("DELETE FROM calendar_events")
        for c in rec["calendar"]:
            await tx.execute("INSERT INTO calendar_events(id, name, start_utc, end_utc) "
                             "VALUES (?,?,?,?)", (c["id"], c["name"], c["start_utc"],
                                                  c["end_utc"]))
        for r in rec["reservations"]:
            # A reservation the lot already acted on (arrived, no-show...) keeps its status.
            await tx.execute(
                "INSERT INTO reservations(id, plate, code, spot_type, level_id, spot_id, "
                "start_utc, end_utc, status, created_utc) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET plate=excluded.plate, code=excluded.code, "
                "spot_type=excluded.spot_type, level_id=excluded.level_id, "
                "spot_id=excluded.spot_id, start_utc=excluded.start_utc, "
                "end_utc=excluded.end_utc, status=CASE WHEN reservations.status IN "
                "('CONFIRMED', 'CANCELLED') THEN excluded.status ELSE reservations.status END",
                (r["id"], r["plate"], r["code"], r["spot_type"], r["level_id"], r["spot_id"],
                 r["start_utc"], r["end_utc"], r["status"], bundle.issued_utc))


class Downlink:
    """Pulls and applies bundles for one lot.

    Args:
        ledger: the open ledger.
        api_url: base URL of the cloud API.
        public_key_b64: the Ed25519 public key bundles must be signed with.
        poll_interval_s: how often to ask when no notice arrives.
        transport: httpx transport (tests pass httpx.MockTransport; default is the network).
        stale_after_s: newest bundle issued longer ago than this: alarm `bundle_stale`.
    """

    def __init__(self, ledger: Ledger, *, api_url: str, public_key_b64: str,
                 poll_interval_s: float = 300.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = 15.0, stale_after_s: float | None = None) -> None:
        self.ledger = ledger
        self.api_url = api_url.rstrip("/")
        self.public_key_b64 = public_key_b64
        self.poll_interval_s = poll_interval_s
        self.transport = transport
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self.applied: list[int] = []
        self.rejections: list[str] = []
        self._notice = asyncio.Event()
        self._noticed_version = 0
        self._last_rejected: tuple[int | None, str] | None = None
        self.ok: bool | None = None  # did the last fetch reach the API? (None: not tried yet)
        self.last_error = ""

    def notice(self, version: int) -> None:
        """A retained MQTT notice said `version` exists: fetch soon."""
        if version > self._noticed_version:
            self._noticed_version = version
            self._notice.set()

    async def run(self) -> None:
        """Fetch on start, on every notice and every poll interval (cancel to stop)."""
        while True:
            try:
                await self.fetch_once()
                self.ok, self.last_error = True, ""
            except SyncError as err:
                log.warning("downlink: %s", err)
                self.ok, self.last_error = False, str(err)
            if self.stale_after_s is not None:
                await self.check_stale(self.ledger.clock.now())
            self._notice.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval_s):  # not wait_for: see lanes.py
                    await self._notice.wait()

    async def fetch_once(self) -> int | None:
        """Ask for a newer bundle and apply it; return the version applied, if any."""
        since = await current_version(self.ledger)
        url = f"{self.api_url}/v1/lots/{self.ledger.lot_id}/bundle"
        # imported here: a lot without api_url never loads httpx, and with it its command-line
        # half (click, rich, pygments: ~12 MB of the service's memory)
        import httpx

        try:
            async with httpx.AsyncClient(transport=self.transport,
                                         timeout=self.timeout_s) as client:
                response = await client.get(url, params={"since": since})
        except httpx.HTTPError as err:
            raise SyncError(f"bundle fetch failed: {err!r}") from err
        if response.status_code in (204, 304):
            return None
        if response.status_code != 200:
            raise SyncError(f"bundle fetch: HTTP {response.status_code} from {url}")
        return await self.apply_document(response.content)

    async def check_stale(self, now: datetime) -> bool:
        """Raise `bundle_stale` when the newest applied bundle is older than `stale_after_s`
        (clear it otherwise); return whether it is stale. No bundle yet: not stale."""
        if self.stale_after_s is None:
            return False
        row = await self.ledger.fetchone(
            "SELECT version, issued_utc FROM bundles ORDER BY version DESC LIMIT 1")
        stale = row is not None and (
            now - datetime.fromisoformat(row["issued_utc"]) > timedelta(seconds=self.stale_after_s))
        if stale:
            detail = (f"newest bundle v{row['version']} was issued {row['issued_utc']}, more "
                      f"than {self.stale_after_s / 3600:g} h ago; permits and lists may be out "
                      "of date")
            if await raise_alarm(self.ledger, code="bundle_stale", source="downlink",
                                 detail=detail):
                log.warning("downlink: %s", detail)
        else:
            await clear_alarm(self.ledger, code="bundle_stale", source="downlink")
        return stale

    async def apply_document(self, document: bytes | str) -> int | None:
        """Verify and apply a signed bundle; on rejection record why and keep the old one."""
        try:
            bundle = verify_bundle(document, public_key_b64=self.public_key_b64,
                                   lot_id=self.ledger.lot_id, now=self.ledger.clock.now())
            await apply_bundle(self.ledger, bundle)
        except BundleRejected as err:
            await self._reject(err, document)
            return None
        log.info("downlink: bundle v%d applied %s", bundle.version, bundle.counts())
        self.applied.append(bundle.version)
        return bundle.version

    async def _reject(self, err: BundleRejected, document: bytes | str) -> None:
        raw = document.encode() if isinstance(document, str) else document
        key = (err.version, hashlib.sha256(raw).hexdigest())
        log.warning("downlink: %s", err)
        self.rejections.append(err.reason)
        if key == self._last_rejected:
            return  # the same bad document polled again: already recorded
        self._last_rejected = key
        await self.ledger.append(NewEvent(type="bundle.rejected", payload={
            "version": err.version, "reason": err.reason, "sha256": key[1]}))


def parse_public_key(text: str | None) -> str:
    """The configured public key (base64 text, or a path to a file holding it)."""
    if not text:
        raise SyncError("cloud.bundle_public_key: required for the downlink")
    path = Path(text)
    if len(text) != 44 and path.exists():
        return path.read_text(encoding="utf-8").strip()
    return text.strip()

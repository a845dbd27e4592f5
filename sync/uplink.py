"""Uplink: publish the ledger's events to the cloud in seq order until the cloud acks them.

Batches go to `lotedge/{lot_id}/events` with QoS 1; the cloud answers `{"acked_through": N}`
(retained) on `lotedge/{lot_id}/ack` once the events are durably stored. Only then is
`acked_through` written to the ledger's meta table (a plain meta write, not an event), which
is what allows retention to prune them. Events are read over a separate read-only connection,
so a gate transaction is never waited on and uncommitted rows are never sent.

Signed mode (`signing_key` and `ack_key` given; `[cloud] signing_key_file` and
`ack_public_key`): every batch is a sealed message signed with the lot's key, and only an ack
sealed by the cloud's key, for this lot, in the current sync epoch and naming the hash this
ledger holds at the acked seq advances `acked_through`; anything else on the ack topic is
ignored, logged and counted (`refused_acks`). Without keys the legacy unsigned protocol is
spoken and a warning says so at start. The sync epoch (meta `sync_epoch`) rises with each
`lotedge cloud resync` (see `sync.resync`); the uplink notices it and resends from there.

Flow control is `sync.flow.AckWindow`: the ack timeout comes from measured round trips (RFC
6298), a timeout resends only the oldest unacknowledged batch and backs off (doubling, with
jitter), a lot whose acks keep coming never resends, and the cloud's retained pace hints
(`lotedge-cloud/pace/+` from each ingest worker, `lotedge/{lot_id}/pace` for this lot) lengthen
the timeout and narrow the window while the cloud is catching up with a fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import aiosqlite
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance import __version__
from appliance.core.events import GENESIS_HASH, SECRET_FIELDS, canonical_json, redact_payload
from appliance.ledger import Ledger
from sync.errors import SyncError
from sync.flow import AckWindow, Backoff, PaceHint, RtoEstimator
from sync.mqtt import (
    INGEST_PRESENCE_FILTER,
    PACE_FILTER,
    MqttSettings,
    ack_topic,
    availability_topic,
    backoff_s,
    bundle_topic,
    events_topic,
    health_topic,
    lot_pace_topic,
)
from sync.signing import SignatureRefused, load_private_key, load_public_key, seal, unseal

log = logging.getLogger(__name__)

_FETCH_CHUNK = 100  # rows per read of a batch
_SELECT = ("SELECT seq, event_id, lot_id, type, ts_utc, ts_local, mono_ns, payload, prev_hash, "
           "hash FROM events WHERE seq > ? ORDER BY seq LIMIT ?")


def encode_event(row: Any) -> str:
    """One event row as batch JSON (its stored canonical payload spliced in unchanged, but
    for the secrets older ledgers' events carried: redacted, as every reader does)."""
    head = json.dumps({"seq": row[0], "event_id": row[1], "lot_id": row[2], "type": row[3],
                       "ts_utc": row[4], "ts_local": row[5], "mono_ns": row[6],
                       "prev_hash": row[8], "hash": row[9]}, separators=(",", ":"),
                      ensure_ascii=False)
    payload = row[7]
    if row[3] in SECRET_FIELDS:
        data = json.loads(payload)
        redacted = redact_payload(row[3], data)
        if redacted is not data:
            payload = canonical_json(redacted)
    return head[:-1] + ',"payload":' + payload + "}"


async def read_acked_through(ledger: Ledger) -> int:
    """The last seq the cloud has acknowledged (0 if none)."""
    value = await ledger.get_meta("acked_through")
    return int(value) if value else 0


async def write_acked_through(ledger: Ledger, seq: int, *, epoch: int | None = None) -> None:
    """Persist acked_through (monotonic: a lower value never overwrites a higher one; with
    `epoch`, only while the ledger's sync epoch is still that one, so an ack that raced a
    resync cannot undo it). Lowering it is `sync.resync.resync_from`, an audited event."""
    guard, params = "", [str(seq)]
    if epoch is not None:
        guard = (" AND COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = "
                 "'sync_epoch'), 0) = ?")
        params.append(epoch)
    async with ledger.transaction() as tx:
        await tx.execute(
            "INSERT INTO meta(key, value) SELECT 'acked_through', ? WHERE 1" + guard +
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE CAST(value AS INTEGER) "
            "< CAST(excluded.value AS INTEGER)", params)


async def read_sync_epoch(ledger: Ledger) -> int:
    """The sync epoch (0 until the first `lotedge cloud resync`)."""
    value = await ledger.get_meta("sync_epoch")
    return int(value) if value else 0


def control_number(payload: object, key: str) -> int | None:
    """The non-negative integer `key` of a cloud control message (`{"acked_through": N}`,
    `{"version": N}`), or None when the payload is anything else: not JSON, not an object,
    nested too deep, a bool, a float, a string, negative. Never raises."""
    try:
        data = json.loads(payload)  # bytes, bytearray or str
    except (ValueError, TypeError, RecursionError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


class Uplink:
    """Store-and-forward publisher of one lot's ledger.

    Args:
        ledger: the open ledger (acked_through is written through it).
        settings: broker address and credentials.
        batch_max_events: most events in one MQTT message.
        batch_max_bytes: most bytes in one MQTT message (one event always fits).
        max_inflight_batches: batches published but not yet acked before waiting.
        ack_timeout_s: the ack timeout until round trips are measured (each session starts
            with it); then RTO = SRTT + 4 RTTVAR, at least ack_timeout_min_s.
        ack_timeout_min_s: the smallest ack timeout (never above ack_timeout_s).
        ack_timeout_max_s: the largest ack timeout, backoff included.
        backoff_max_s: ceiling of the jittered reconnect backoff.
        on_bundle_notice: called with the version of a retained bundle notice.
        signing_key: this lot's private key; batches are sealed with it (None: unsigned).
        ack_key: the cloud's public key; only acks sealed with it count (None: legacy acks).
    """

    def __init__(self, ledger: Ledger, settings: MqttSettings, *, batch_max_events: int = 500,
                 batch_max_bytes: int = 256 * 1024, max_inflight_batches: int = 8,
                 ack_timeout_s: float = 30.0, ack_timeout_min_s: float = 2.0,
                 ack_timeout_max_s: float = 600.0, backoff_max_s: float = 60.0,
                 on_bundle_notice: Callable[[int], None] | None = None,
                 signing_key: Ed25519PrivateKey | None = None,
                 ack_key: Ed25519PublicKey | None = None) -> None:
        self.ledger = ledger
        self.lot_id = ledger.lot_id
        self.settings = settings
        self.batch_max_events = batch_max_events
        self.batch_max_bytes = batch_max_bytes
        self.max_inflight_batches = max_inflight_batches
        self.ack_timeout_s = ack_timeout_s
        self.backoff_max_s = backoff_max_s
        self.on_bundle_notice = on_bundle_notice
        self.idle_poll_s = 1.0  # picks up events written by another process
        self.acked_through = 0
        cap = max(ack_timeout_s, ack_timeout_max_s)
        self.window = AckWindow(
            max_inflight=max_inflight_batches,
            rto=RtoEstimator(initial_s=ack_timeout_s, min_s=min(ack_timeout_min_s, ack_timeout_s),
                             max_s=cap),
            backoff=Backoff(cap_s=cap), rng=random.random)
        self.connected = asyncio.Event()
        self.link_since_utc = datetime.now(UTC).isoformat()  # when the link last went up/down
        self.published_batches = 0
        self.resends = 0  # resend decisions: timeouts, and an ingest (re)connecting
        self.resent_events = 0  # events published more than once
        self.bogus_acks = 0
        self.refused_acks = 0  # unsigned, badly signed, another lot's, or another chain's acks
        self.stale_acks = 0  # validly signed acks of an earlier sync epoch
        self.signing_key = signing_key
        self.ack_key = ack_key
        self.epoch = 0
        self._persisted = 0
        self._progress = asyncio.Event()
        self._new_events = asyncio.Event()
        self._acked_changed = asyncio.Event()
        self._resend_now = False  # an ingest (re)connected: batches in flight may be lost
        self.quick_retry_s = 5.0  # first ack wait of a session (a restarted broker lost them?)
        self.ingest_announcements = 0
        self._ingests_seen = False  # an ingest's presence (retained or live) this session
        self._acked_this_session = False
        self._last_progress_s = time.monotonic()
        self._pace: dict[str, PaceHint] = {}  # by topic
        self._gone_ingests: set[str] = set()  # pace topics of workers whose will said offline
        self.pace = PaceHint()
        self._availability: dict[str, Any] | None = None
        self._availability_dirty = asyncio.Event()
        self._reader: aiosqlite.Connection | None = None
        self.writer_waits = 0  # 1 ms pauses of the drain for a ledger write in flight
        ledger.subscribe(lambda _events: self._new_events.set())

    @property
    def sent_through(self) -> int:
        """The last seq published in this session (acked_through after a resend decision)."""
        return self.window.sent_through

    async def _read_conn(self) -> aiosqlite.Connection:
        if self._reader is None:
            uri = f"file:{self.ledger.path}?mode=ro"
            conn = await aiosqlite.connect(uri, uri=True, timeout=10)
            await conn.execute("PRAGMA busy_timeout = 10000")
            self._reader = conn
        return self._reader

    async def read_batch(self, after_seq: int, *,
                         through: int | None = None) -> tuple[int, str] | None:
        """(last seq, message JSON) of the next batch after `after_seq` (ending at `through`
        at the latest), or None if none."""
        conn = await self._read_conn()
        rows: list = []
        most = self.batch_max_events if through is None else min(self.batch_max_events,
                                                                  through - after_seq)
        while len(rows) < most:  # in chunks: a gate write never waits long
            await self._yield_to_writers()
            want = min(_FETCH_CHUNK, most - len(rows))
            chunk = await conn.execute_fetchall(_SELECT, (rows[-1][0] if rows else after_seq,
                                                          want))
            rows.extend(chunk)
            if len(chunk) < want:
                break
        if not rows:
            return None
        parts: list[str] = []
        size = 0
        last = after_seq
        for i, row in enumerate(rows):
            if i and i % 50 == 0:
                await self._yield_to_writers()  # let the lanes run between chunks of a batch
            text = encode_event(row)
            if parts and size + len(text) + 1 > self.batch_max_bytes - 200:
                break
            parts.append(text)
            size += len(text) + 1
            last = row[0]
        first = rows[0][0]
        message = (f'{{"lot_id":{json.dumps(self.lot_id)},"epoch":{self.epoch},'
                   f'"lotedge_version":{json.dumps(__version__)},'
                   f'"first_seq":{first},"last_seq":{last},"count":{len(parts)},"events":['
                   + ",".join(parts) + "]}")
        return last, message

    def envelope(self, message: str) -> bytes:
        """The MQTT payload of a batch: sealed with the lot's key, or the bare batch."""
        body = message.encode("utf-8")
        return seal("batch", body, self.signing_key) if self.signing_key is not None else body

    async def _yield_to_writers(self) -> None:
        """Wait while a ledger write (a gate decision) is in flight: a drain's CPU work would
        otherwise compete with it for the interpreter and the cores."""
        await asyncio.sleep(0)
        for _ in range(10):  # at most ~10 ms: a stream of writes must not stall the drain
            if not self.ledger.writing:
                return
            self.writer_waits += 1
            await asyncio.sleep(0.001)

    def publish_availability(self, snapshot: dict[str, Any]) -> None:
        """Queue a retained availability update (sent when connected; latest wins), stamped
        with the time it was taken (`as_of_utc`)."""
        self._availability = {**snapshot, "as_of_utc": datetime.now(UTC).isoformat()}
        self._availability_dirty.set()

    def _offline(self, online_since: str, *, stopped: bool = False) -> str:
        """The offline health message: as the will (the link was lost; the broker sends it)
        it says since when this session was online, a clean stop also says when it stopped."""
        message = {"online": False, "lot_id": self.lot_id, "online_since_utc": online_since}
        if stopped:
            message["since_utc"] = datetime.now(UTC).isoformat()
        return json.dumps(message)

    async def run(self) -> None:
        """Connect, publish, resend and reconnect forever (cancel to stop)."""
        self.acked_through = await read_acked_through(self.ledger)
        self._persisted = self.acked_through
        self.epoch = await read_sync_epoch(self.ledger)
        if self.signing_key is None or self.ack_key is None:
            log.warning("uplink: INSECURE: %s; set [cloud] signing_key_file and ack_public_key",
                        "batches are unsigned and acks unverified" if self.ack_key is None
                        else "batches are unsigned")
        await self._read_conn()  # opened once, here: concurrent first uses would open two
        attempt = 0
        try:
            while True:
                try:
                    await self._session()
                except* aiomqtt.MqttError as group:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError from None  # a stop raced a link error
                    log.warning("uplink: broker link lost (%s); retrying", group.exceptions[0])
                finally:
                    attempt = 0 if self.connected.is_set() else attempt + 1
                    if self.connected.is_set():
                        self.link_since_utc = datetime.now(UTC).isoformat()
                    self.connected.clear()
                await asyncio.sleep(backoff_s(attempt, max_s=self.backoff_max_s))
        finally:
            with contextlib.suppress(Exception):
                await self._persist_now()
            if self._reader is not None:
                reader, self._reader = self._reader, None
                with contextlib.suppress(Exception):
                    await reader.close()

    async def _session(self) -> None:
        online_since = datetime.now(UTC).isoformat()
        client = self.settings.client(
            identifier=f"lotedge-{self.lot_id}-uplink", clean_session=True,
            will=aiomqtt.Will(health_topic(self.lot_id), self._offline(online_since), qos=1,
                              retain=True))
        async with client:
            self.link_since_utc = online_since
            self.connected.set()
            await client.subscribe(ack_topic(self.lot_id), qos=1)
            await client.subscribe(bundle_topic(self.lot_id), qos=1)
            await client.subscribe(INGEST_PRESENCE_FILTER, qos=1)
            await client.subscribe(PACE_FILTER, qos=1)
            await client.subscribe(lot_pace_topic(self.lot_id), qos=1)
            await client.publish(health_topic(self.lot_id), json.dumps(
                {"online": True, "lot_id": self.lot_id, "since_utc": online_since}), qos=1,
                retain=True)
            # Resume from what the cloud holds for sure; round trips measured before this
            # session (before an outage) say nothing about the cloud's load now.
            self.window.restart(self.acked_through)
            self.window.rto.reset()
            self._ingests_seen = self._acked_this_session = False
            self._pace.clear()
            self._gone_ingests.clear()
            self._apply_pace()
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._receive(client)),
                         tg.create_task(self._persist_loop()),
                         tg.create_task(self._availability_loop(client))]
                try:
                    await self._send_loop(client)
                except asyncio.CancelledError:
                    # A clean stop says so itself (the will covers only unexpected loss).
                    with contextlib.suppress(Exception):
                        await client.publish(health_topic(self.lot_id),
                                             self._offline(online_since, stopped=True),
                                             qos=1, retain=True, timeout=2.0)
                    raise
                finally:
                    for task in tasks:
                        task.cancel()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            if message.topic.matches(INGEST_PRESENCE_FILTER):
                self._on_ingest_presence(message)
                continue
            if message.topic.matches(PACE_FILTER) or topic == lot_pace_topic(self.lot_id):
                self._on_pace(topic, message.payload)
                continue
            if topic == ack_topic(self.lot_id):
                if self.ack_key is not None:
                    await self._on_signed_ack(message.payload)
                    continue
                key = "acked_through"
            elif topic == bundle_topic(self.lot_id) and self.on_bundle_notice is not None:
                key = "version"
            else:
                continue
            value = control_number(message.payload, key)
            if value is None:
                log.warning("uplink: ignoring malformed message on %s", topic)
            elif key == "acked_through":
                await self._on_ack(value)
            else:
                self.on_bundle_notice(value)

    def _on_ingest_presence(self, message: aiomqtt.Message) -> None:
        """An ingest announced it (re)subscribed: resend what is in flight at once (Mosquitto
        drops a shared group's QoS 1 messages while no member is connected) unless acks are
        flowing (a worker joining a busy group loses nothing). A retained announcement
        delivered on subscribe is old news: this session sends from the ack. A worker that
        went away takes its pace hint with it."""
        try:
            online = json.loads(message.payload).get("online") is True
        except (ValueError, TypeError, AttributeError, RecursionError):
            return
        pace = PACE_FILTER[:-1] + str(message.topic).rsplit("/", 1)[-1]
        if not online:
            self._gone_ingests.add(pace)
            if self._pace.pop(pace, None) is not None:
                self._apply_pace()
            return
        self._gone_ingests.discard(pace)
        self._ingests_seen = True
        if message.retain:
            return
        self.ingest_announcements += 1
        srtt = self.window.rto.srtt_s
        stalled = (not self._acked_this_session or srtt is None
                   or time.monotonic() - self._last_progress_s > max(1.0, 2 * srtt))
        if stalled:
            self._resend_now = True
            self._progress.set()

    def _on_pace(self, topic: str, payload: object) -> None:
        """A pace hint (retained): remember it by topic; an empty payload clears it, and a
        worker whose presence says it is gone has no say."""
        raw = payload if isinstance(payload, bytes | bytearray | str) else b""
        hint = PaceHint.parse(bytes(raw) if not isinstance(raw, str) else raw)
        if hint is None or topic in self._gone_ingests:
            if raw and hint is None:
                log.warning("uplink: ignoring malformed pace hint on %s", topic)
            self._pace.pop(topic, None)
        else:
            self._pace[topic] = hint
        self._apply_pace()

    def _apply_pace(self) -> None:
        self.pace = PaceHint.combine(list(self._pace.values()))
        self.window.set_pace(self.pace, time.monotonic())
        self._progress.set()

    def _refuse_ack(self, why: str) -> None:
        self.refused_acks += 1
        log.error("uplink: ack ignored (%s); acked_through stays %d", why, self.acked_through)

    async def _on_signed_ack(self, payload: object) -> None:
        """Verify a sealed ack and advance on it; anything else is refused and counted."""
        assert self.ack_key is not None
        try:
            raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
            body = json.loads(unseal("ack", bytes(raw), self.ack_key))
        except SignatureRefused as err:
            return self._refuse_ack(str(err))
        except (ValueError, RecursionError):
            return self._refuse_ack("signed, but not a JSON ack")
        if not isinstance(body, dict):
            return self._refuse_ack("signed, but not a JSON object")
        value, digest, epoch = body.get("acked_through"), body.get("hash"), body.get("epoch")
        if body.get("lot_id") != self.lot_id:
            return self._refuse_ack(f"for lot {body.get('lot_id')!r}, not {self.lot_id!r}")
        if (not isinstance(value, int) or isinstance(value, bool) or value < 0
                or not isinstance(digest, str) or not isinstance(epoch, int)):
            return self._refuse_ack("signed, but fields missing or of the wrong type")
        if epoch != self.epoch:
            self.stale_acks += 1
            log.info("uplink: ack of sync epoch %s ignored (now %d)", epoch, self.epoch)
            return
        await self._on_ack(value, digest=digest)

    async def _on_ack(self, value: int, *, digest: str | None = None) -> None:
        if value <= self.acked_through:
            return
        conn = await self._read_conn()
        row = await (await conn.execute("SELECT MAX(seq) FROM events")).fetchone()
        last = row[0] or 0
        if value > last:
            # Another ledger with this lot id, or a restored backup: what the cloud holds is not
            # this chain, so nothing here counts as synced (retention keeps it all).
            log.error("uplink: cloud acked seq %d beyond this ledger's last seq %d (another "
                      "ledger with the same lot id?); ignored", value, last)
            self.bogus_acks += 1
            return
        if digest is not None:
            if value == 0:
                mine = GENESIS_HASH
            else:
                found = await (await conn.execute("SELECT hash FROM events WHERE seq = ?",
                                                  (value,))).fetchone()
                mine = found[0] if found else None
            if digest != mine:
                # A replayed ack of another chain (a restored ledger, another lot's ledger).
                self.bogus_acks += 1
                return self._refuse_ack(f"seq {value} has hash {digest[:12]}... in the cloud, "
                                        f"not this ledger's {str(mine)[:12]}...")
        self.acked_through = value
        now = time.monotonic()
        self.window.on_ack(value, now)
        self._acked_this_session = True
        self._last_progress_s = now
        self._progress.set()
        self._acked_changed.set()

    async def _persist_now(self) -> None:
        if self.acked_through > self._persisted:
            value = self.acked_through
            await write_acked_through(self.ledger, value, epoch=self.epoch)
            self._persisted = value

    async def _check_resync(self) -> bool:
        """Adopt a resync done by `lotedge cloud resync` (maybe by another process)."""
        conn = await self._read_conn()
        row = await (await conn.execute(
            "SELECT (SELECT value FROM meta WHERE key = 'sync_epoch'), "
            "(SELECT value FROM meta WHERE key = 'acked_through')")).fetchone()
        epoch = int(row[0]) if row and row[0] else 0
        if epoch == self.epoch:
            return False
        acked = int(row[1]) if row and row[1] else 0
        log.warning("uplink: resync (epoch %d -> %d): resending from seq %d", self.epoch, epoch,
                    acked + 1)
        self.epoch = epoch
        self.acked_through = self._persisted = acked
        self.window.restart(acked)
        return True

    async def _persist_loop(self) -> None:
        while True:
            await self._acked_changed.wait()
            self._acked_changed.clear()
            await self._persist_now()
            await asyncio.sleep(0.2)  # coalesce: one small meta write per 200 ms at most

    async def _availability_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await self._availability_dirty.wait()
            self._availability_dirty.clear()
            if self._availability is not None:
                await client.publish(availability_topic(self.lot_id),
                                     json.dumps(self._availability), qos=1, retain=True,
                                     timeout=5.0)

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        w = self.window
        self._resend_now = False
        # Until the first ack of this session, and only when no ingest has shown its presence,
        # wait only quick_retry_s once: after a broker restart the first batches may have gone
        # to a shared group with no member yet, and an ingest that does not announce itself
        # will not say when it is back.
        quick_until: float | None = time.monotonic() + self.quick_retry_s
        while True:
            # Clear first, then look: a change after this point sets the flag again.
            self._progress.clear()
            self._new_events.clear()
            await self._check_resync()
            now = time.monotonic()
            if quick_until is not None and (self._acked_this_session or self._ingests_seen
                                            or w.attempt or w.timeout_s() <= self.quick_retry_s):
                quick_until = None  # not needed: the ack timer is as quick, or acks flow
            if w.batches and (self._resend_now or (quick_until is not None
                                                   and now >= quick_until)):
                log.warning("uplink: %s; resending from seq %d",
                            "an ingest (re)connected" if self._resend_now
                            else f"no ack for {self.quick_retry_s:.0f} s", self.acked_through + 1)
                self.resends += 1
                self.resent_events += w.sent_through - w.acked_through
                w.restart(self.acked_through)
                self._resend_now, quick_until = False, None
                continue
            self._resend_now = False
            late = w.due(now)
            if late is not None:
                log.warning("uplink: no ack for seq %d-%d; resending that batch (timeout now "
                            "%.1f s)", late.first_seq, late.last_seq, w.timeout_s())
                batch = await self.read_batch(late.first_seq - 1, through=late.last_seq)
                if batch is not None:
                    self.resends += 1
                    self.resent_events += batch[0] - late.first_seq + 1
                    await self._publish(client, batch[1])
                continue
            waits = [w.seconds_until_due(now)]
            if quick_until is not None and w.batches:
                waits.append(max(0.0, quick_until - now))
            timer = min((x for x in waits if x is not None), default=None)
            if not w.can_send():
                await self._wait_any(max(0.01, timer if timer is not None else 1.0),
                                     new_events=False)
                continue
            batch = await self.read_batch(w.sent_through)
            if batch is None:
                await self._wait_any(max(0.01, min(timer, self.idle_poll_s) if timer is not None
                                         else self.idle_poll_s))
                continue
            last, message = batch
            first = w.sent_through + 1
            await self._publish(client, message)
            w.on_sent(first, last, time.monotonic())

    async def _publish(self, client: aiomqtt.Client, message: str) -> None:
        await client.publish(events_topic(self.lot_id), self.envelope(message), qos=1,
                             timeout=min(self.window.rto.initial_s, 5.0))
        self.published_batches += 1

    async def _wait_any(self, timeout_s: float, *, new_events: bool = True) -> None:
        waits = [asyncio.ensure_future(self._progress.wait())]
        if new_events:
            waits.append(asyncio.ensure_future(self._new_events.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


def uplink_from_config(ledger: Ledger, cloud: Any, **kwargs: Any) -> Uplink:
    """An Uplink configured from the [cloud] section."""
    if not cloud.mqtt_url:
        raise SyncError("cloud.mqtt_url: required when cloud sync is enabled")
    signing_key = ack_key = None
    if cloud.signing_key_file:
        signing_key = load_private_key(cloud.signing_key_file, key="cloud.signing_key_file")
    if cloud.ack_public_key:
        ack_key = load_public_key(cloud.ack_public_key, key="cloud.ack_public_key")
    return Uplink(ledger, MqttSettings.from_config(cloud), batch_max_events=cloud.batch_max_events,
                  batch_max_bytes=cloud.batch_max_bytes,
                  max_inflight_batches=cloud.max_inflight_batches,
                  ack_timeout_s=cloud.ack_timeout_s, backoff_max_s=cloud.backoff_max_s,
                  signing_key=signing_key, ack_key=ack_key, **kwargs)

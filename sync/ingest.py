"""Reference cloud ingest: consume event batches, store them idempotently, publish the ack.

Subscribes with a persistent session (fixed client id, clean_session=False) so QoS 1 batches
published while it is down are queued by the broker, optionally through an MQTT shared
subscription (`$share/{group}/lotedge/+/events`) so several workers split the load. The ack
`{"acked_through": N}` is published retained on `lotedge/{lot_id}/ack` only after the batch's
transaction committed; N is the lot's contiguous, chain-verified frontier.

With `lot_keys` (a directory of `<lot_id>.pub`) every batch must be a sealed message signed by
its lot's key (see `sync.signing`): an unsigned or badly signed batch, or one for a lot with no
registered key, is refused, counted (`refused`), logged and never stored. With `ack_key` the ack
is sealed too: `{"lot_id", "acked_through", "hash", "epoch"}` signed by the cloud, `hash` being
the stored hash of event `acked_through` (which binds the ack to this lot's chain) and `epoch`
the sync epoch of the batch it answers. Without either, the old unsigned protocol is spoken and
a warning says so at start.

Group commit: the batches already waiting in the client's queue (up to `group_max_batches`) are
verified, stored in one database transaction and acked together (one ack per lot, the acks
published concurrently). Pace: every `pace_interval_s` the worker publishes, retained on
`lotedge-cloud/pace/{client_id}`, how long a batch arriving now waits here at its measured rate
and the window that keeps that wait near `pace_target_s` (`sync.flow.pace_for`); the lots
lengthen their ack timeout and narrow their window accordingly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.core.events import canonical_json
from sync.cloud_store import CloudStore, StoreResult
from sync.flow import PaceHint, pace_for
from sync.mqtt import MqttSettings, ack_topic, backoff_s, ingest_presence_topic, pace_topic
from sync.signing import LotKeys, SignatureRefused, is_sealed, seal, unseal

try:
    import orjson as _orjson
except ImportError:  # optional speed-up
    _orjson = None

log = logging.getLogger(__name__)


def _loads(body: bytes) -> Any:
    """json.loads, through orjson when it is there; what orjson refuses (lone surrogates,
    integers past 64 bits, NaN) is parsed by the standard module, so nothing parses
    differently, only faster."""
    if _orjson is not None:
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(body)


class Ingest:
    """One ingest worker.

    Args:
        store: where events go (SQLite or PostgreSQL).
        settings: broker address and credentials.
        client_id: persistent-session identity; keep it stable across restarts.
        group: shared-subscription group name, or None for a plain subscription.
        lot_keys: the lots' registered public keys; None accepts unsigned batches (legacy).
        ack_key: the cloud's private key acks are signed with; None sends unsigned acks.
        group_max_batches: most batches stored in one transaction.
        pace_interval_s: how often the pace hint is reconsidered (0: never published).
        pace_target_s: the wait the hint's window aims at.
        lot_window: the lots' `max_inflight_batches` (what each may have in flight).
    """

    def __init__(self, store: CloudStore, settings: MqttSettings, *,
                 client_id: str | None = None, group: str | None = "lotedge-ingest",
                 backoff_max_s: float = 30.0, lot_keys: LotKeys | None = None,
                 ack_key: Ed25519PrivateKey | None = None, group_max_batches: int = 16,
                 pace_interval_s: float = 1.0, pace_target_s: float = 10.0,
                 lot_window: int = 8) -> None:
        self.store = store
        self.settings = settings
        self.client_id = client_id or f"lotedge-ingest-{uuid.uuid4().hex[:8]}"
        self.group = group
        self.backoff_max_s = backoff_max_s
        self.batches = 0
        self.events = 0
        self.acked: dict[str, int] = {}
        self.store_errors = 0
        self.lot_keys = lot_keys
        self.ack_key = ack_key
        self.refused = 0  # batches refused: unsigned, badly signed, unknown lot, malformed
        self.quarantined = 0  # events quarantined as a second version of a stored seq
        # aiomqtt waits out the timeout for a PUBACK when the link drops; keep it short.
        self.publish_timeout_s = 3.0
        self.connected = asyncio.Event()
        self.group_max_batches = max(1, group_max_batches)
        self.transactions = 0  # database transactions (groups) committed
        self.pace_interval_s = pace_interval_s
        self.pace_target_s = pace_target_s
        self.lot_window = max(1, lot_window)
        self.pace = PaceHint()  # the hint last published
        self.rate_events_s = 0.0  # measured storing rate while busy (events per busy second)
        self._batch_events = 500.0  # running mean of events per batch
        self._lots_seen: dict[str, float] = {}  # lot -> when its last batch arrived

    @property
    def subscription(self) -> str:
        """The topic filter this worker subscribes to."""
        topic = "lotedge/+/events"
        return f"$share/{self.group}/{topic}" if self.group else topic

    async def run(self) -> None:
        """Consume forever, reconnecting with jittered backoff (cancel to stop)."""
        if self.lot_keys is None or self.ack_key is None:
            log.warning("ingest: INSECURE: %s; anyone who can publish to the broker can forge "
                        "batches or acks (give --lot-keys and --ack-key-file)",
                        "batches are not verified" if self.lot_keys is None
                        else "acks are not signed")
        attempt = 0
        while True:
            try:
                presence = ingest_presence_topic(self.client_id)
                will = aiomqtt.Will(presence, json.dumps({"online": False,
                                                          "client_id": self.client_id}),
                                    qos=1, retain=True)
                client = self.settings.client(identifier=self.client_id, clean_session=False,
                                              will=will)
                async with client:
                    self.connected.set()
                    attempt = 0
                    if self.group:
                        # Mosquitto 2.0.11 stopped routing to a persistent session's shared
                        # subscription after a broker restart until it was renewed.
                        await client.unsubscribe(self.subscription)
                    await client.subscribe(self.subscription, qos=1)
                    # A hint left retained by this worker's previous life (a crash) is stale.
                    await client.publish(pace_topic(self.client_id), b"", qos=1, retain=True,
                                         timeout=self.publish_timeout_s)
                    self.pace = PaceHint()
                    # Batches published while no member of the shared group was connected
                    # were dropped by the broker: tell the lots to resend now, not after their
                    # ack timeout.
                    await client.publish(presence, json.dumps(
                        {"online": True, "client_id": self.client_id,
                         "since_utc": datetime.now(UTC).isoformat()}), qos=1, retain=True,
                        timeout=self.publish_timeout_s)
                    pacer = (asyncio.create_task(self._pace_loop(client))
                             if self.pace_interval_s > 0 else None)
                    try:
                        async for message in client.messages:
                            group = [message]
                            while len(group) < self.group_max_batches and len(client.messages):
                                group.append(await anext(aiter(client.messages)))
                            await self._handle_group(client, group)
                    finally:
                        if pacer is not None:
                            pacer.cancel()
                            with contextlib.suppress(asyncio.CancelledError, Exception):
                                await pacer
                        if self.pace.wait_s or self.pace.max_inflight_batches is not None:
                            with contextlib.suppress(Exception):  # a clean stop clears it
                                await client.publish(pace_topic(self.client_id), b"", qos=1,
                                                     retain=True, timeout=1.0)
            except aiomqtt.MqttError as err:
                log.warning("ingest: broker link lost (%s); retrying", err)
            finally:
                self.connected.clear()
            await asyncio.sleep(backoff_s(attempt, max_s=self.backoff_max_s))
            attempt += 1

    def _parse(self, message: aiomqtt.Message) -> tuple[str, list, int] | None:
        """(lot, events, epoch) of a verified batch, or None (refused and counted)."""
        parts = str(message.topic).split("/")
        if len(parts) != 3 or parts[0] != "lotedge" or parts[2] != "events":
            return None
        lot_id = parts[1]
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) \
            else str(message.payload).encode("utf-8")
        try:
            body = self._verified_body(lot_id, payload)
            batch: Any = _loads(body)
            events = batch["events"]
            if not isinstance(events, list):
                raise TypeError("events is not a list")
            if batch.get("lot_id", lot_id) != lot_id:
                raise ValueError(f"batch is for lot {batch.get('lot_id')!r}")
            epoch = batch.get("epoch", 0)
            if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
                raise TypeError("epoch is not a non-negative integer")
        except SignatureRefused as err:
            self.refused += 1
            log.error("ingest: lot %s: batch refused, not stored: %s", lot_id, err)
            return None
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
            self.refused += 1
            log.error("ingest: lot %s: malformed batch dropped (%s)", lot_id, err)
            return None
        return lot_id, events, epoch

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Store and ack one batch."""
        await self._handle_group(client, [message])

    async def _handle_group(self, client: aiomqtt.Client,
                            messages: list[aiomqtt.Message]) -> None:
        """Verify, store in one transaction and ack a group of batches."""
        started = time.monotonic()
        batches = [b for b in (self._parse(m) for m in messages) if b is not None]
        if not batches:
            return
        for lot_id, events, _ in batches:
            self._lots_seen[lot_id] = started
            self._batch_events += (len(events) - self._batch_events) / 16
        items = [(lot_id, events) for lot_id, events, _ in batches]
        results = await asyncio.to_thread(self._store_group, items)
        if all(r is None for r in results):
            await asyncio.sleep(1.0)  # the database is down or failing: do not spin
            return
        acks: dict[str, tuple[StoreResult, int]] = {}
        stored = 0
        for (lot_id, _, epoch), result in zip(batches, results, strict=True):
            if result is None:  # this batch failed on its own (see _store_group)
                continue
            for reason in result.rejected[:5]:
                log.error("ingest: lot %s: refused event: %s", lot_id, reason)
            self.batches += 1
            self.quarantined += result.quarantined
            self.acked[lot_id] = max(self.acked.get(lot_id, 0), result.acked_through)
            self.events += result.inserted
            stored += len(result.rejected) + result.inserted
            acks[lot_id] = (result, epoch)  # the lot's latest frontier answers all its batches
        await asyncio.gather(*(client.publish(
            ack_topic(lot_id), self.ack_message(lot_id, r.acked_through, r.head_hash, epoch),
            qos=1, retain=True, timeout=self.publish_timeout_s)
            for lot_id, (r, epoch) in acks.items()))
        busy = time.monotonic() - started
        events = sum(len(e) for _, e in items)
        if busy > 0 and events:
            rate = events / busy
            self.rate_events_s = rate if not self.rate_events_s else (
                0.8 * self.rate_events_s + 0.2 * rate)

    def _store_group(self, items: list[tuple[str, list]]) -> list[StoreResult | None]:
        """One transaction for the group; should it fail, each batch on its own (one bad
        batch must not hold the others' acks back). None for a batch that failed alone."""
        store_batches = getattr(self.store, "store_batches", None)
        if store_batches is not None and len(items) > 1:
            try:
                results: list[StoreResult | None] = list(store_batches(items))
                self.transactions += 1
                return results
            except Exception:
                log.warning("ingest: a group of %d batches failed; storing them one by one",
                            len(items), exc_info=True)
        out: list[StoreResult | None] = []
        for lot_id, events in items:
            try:
                out.append(self.store.store_batch(lot_id, events))
                self.transactions += 1
            except Exception:
                # Not stored, so not acked: the appliance resends after its ack timeout.
                log.exception("ingest: lot %s: storing a batch failed; no ack sent", lot_id)
                self.store_errors += 1
                out.append(None)
        return out

    def current_pace(self, queued_batches: int, now_s: float) -> PaceHint:
        """The pace hint for `queued_batches` waiting in this worker's queue, or for what the
        active lots may have in flight (their window each) if that is more: a backlog still in
        the broker or the socket is not in the queue yet, and a hint that undercounts it lets
        lots time out."""
        active = sum(1 for t in self._lots_seen.values() if now_s - t < 60)
        window = min(self.lot_window, self.pace.max_inflight_batches or self.lot_window)
        queued = max(queued_batches, active * window) * self._batch_events
        return pace_for(queued_events=int(queued), rate_events_s=self.rate_events_s,
                        active_lots=active, batch_events=self._batch_events,
                        target_wait_s=self.pace_target_s)

    async def _pace_loop(self, client: aiomqtt.Client) -> None:
        """Publish the pace hint (retained) when it changed enough to matter."""
        while True:
            await asyncio.sleep(self.pace_interval_s)
            now = time.monotonic()
            self._lots_seen = {k: t for k, t in self._lots_seen.items() if now - t < 60}
            hint = self.current_pace(len(client.messages), now)
            if hint.wait_s < 1.0:  # not behind: no hint (the lots' own timers suffice)
                hint = PaceHint()
            old = self.pace
            if (abs(hint.wait_s - old.wait_s) <= max(1.0, 0.2 * old.wait_s)
                    and hint.max_inflight_batches == old.max_inflight_batches):
                continue
            await client.publish(pace_topic(self.client_id), self.pace_message(hint), qos=1,
                                 retain=True, timeout=self.publish_timeout_s)
            self.pace = hint

    def pace_message(self, hint: PaceHint) -> bytes:
        """The retained pace payload (docs/schemas/pace-hint); empty (clears it) for none."""
        if hint == PaceHint():
            return b""
        return json.dumps({"wait_s": hint.wait_s,
                           "max_inflight_batches": hint.max_inflight_batches,
                           "client_id": self.client_id}).encode()

    def _verified_body(self, lot_id: str, payload: bytes) -> bytes:
        """The batch bytes, verified against the lot's key when keys are configured."""
        if self.lot_keys is None:
            if is_sealed("batch", payload):  # a signing lot, an ingest without keys
                return payload[len(b'{"v":1,"sig":"') + 88 + len(b'","batch":'):-1]
            return payload
        key = self.lot_keys.get(lot_id)
        if key is None:
            raise SignatureRefused(f"no public key registered for lot {lot_id!r}")
        return unseal("batch", payload, key)

    def ack_message(self, lot_id: str, acked_through: int, head_hash: str, epoch: int) -> bytes:
        """The ack payload: sealed with the cloud's key, or the legacy unsigned form."""
        if self.ack_key is None:
            return json.dumps({"acked_through": acked_through}).encode()
        body = canonical_json({"lot_id": lot_id, "acked_through": acked_through,
                               "hash": head_hash, "epoch": epoch}).encode("utf-8")
        return seal("ack", body, self.ack_key)

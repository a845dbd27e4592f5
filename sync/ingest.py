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
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.core.events import canonical_json
from sync.cloud_store import CloudStore
from sync.mqtt import MqttSettings, ack_topic, backoff_s, ingest_presence_topic
from sync.signing import LotKeys, SignatureRefused, is_sealed, seal, unseal

log = logging.getLogger(__name__)


class Ingest:
    """One ingest worker.

    Args:
        store: where events go (SQLite or PostgreSQL).
        settings: broker address and credentials.
        client_id: persistent-session identity; keep it stable across restarts.
        group: shared-subscription group name, or None for a plain subscription.
        lot_keys: the lots' registered public keys; None accepts unsigned batches (legacy).
        ack_key: the cloud's private key acks are signed with; None sends unsigned acks.
    """

    def __init__(self, store: CloudStore, settings: MqttSettings, *,
                 client_id: str | None = None, group: str | None = "lotedge-ingest",
                 backoff_max_s: float = 30.0, lot_keys: LotKeys | None = None,
                 ack_key: Ed25519PrivateKey | None = None) -> None:
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
                    # Batches published while no member of the shared group was connected
                    # were dropped by the broker: tell the lots to resend now, not after their
                    # ack timeout.
                    await client.publish(presence, json.dumps(
                        {"online": True, "client_id": self.client_id,
                         "since_utc": datetime.now(UTC).isoformat()}), qos=1, retain=True,
                        timeout=self.publish_timeout_s)
                    async for message in client.messages:
                        await self._handle(client, message)
            except aiomqtt.MqttError as err:
                log.warning("ingest: broker link lost (%s); retrying", err)
            finally:
                self.connected.clear()
            await asyncio.sleep(backoff_s(attempt, max_s=self.backoff_max_s))
            attempt += 1

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        parts = str(message.topic).split("/")
        if len(parts) != 3 or parts[0] != "lotedge" or parts[2] != "events":
            return
        lot_id = parts[1]
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) \
            else str(message.payload).encode("utf-8")
        try:
            body = self._verified_body(lot_id, payload)
            batch: Any = json.loads(body)
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
            return
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
            self.refused += 1
            log.error("ingest: lot %s: malformed batch dropped (%s)", lot_id, err)
            return
        try:
            result = await asyncio.to_thread(self.store.store_batch, lot_id, events)
        except Exception:
            # Not stored, so not acked: the appliance resends after its ack timeout.
            log.exception("ingest: lot %s: storing a batch failed; no ack sent", lot_id)
            self.store_errors += 1
            await asyncio.sleep(1.0)
            return
        for reason in result.rejected[:5]:
            log.error("ingest: lot %s: refused event: %s", lot_id, reason)
        self.batches += 1
        self.quarantined += result.quarantined
        self.acked[lot_id] = max(self.acked.get(lot_id, 0), result.acked_through)
        self.events += result.inserted
        await client.publish(ack_topic(lot_id), self.ack_message(
            lot_id, result.acked_through, result.head_hash, epoch), qos=1, retain=True,
            timeout=self.publish_timeout_s)

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

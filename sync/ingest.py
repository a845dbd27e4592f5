"""Reference cloud ingest: consume event batches, store them idempotently, publish the ack.

Subscribes with a persistent session (fixed client id, clean_session=False) so QoS 1 batches
published while it is down are queued by the broker, optionally through an MQTT shared
subscription (`$share/{group}/lotedge/+/events`) so several workers split the load. The ack
`{"acked_through": N}` is published retained on `lotedge/{lot_id}/ack` only after the batch's
transaction committed; N is the lot's contiguous, chain-verified frontier.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import aiomqtt

from sync.cloud_store import CloudStore
from sync.mqtt import MqttSettings, ack_topic, backoff_s

log = logging.getLogger(__name__)


class Ingest:
    """One ingest worker.

    Args:
        store: where events go (SQLite or PostgreSQL).
        settings: broker address and credentials.
        client_id: persistent-session identity; keep it stable across restarts.
        group: shared-subscription group name, or None for a plain subscription.
    """

    def __init__(self, store: CloudStore, settings: MqttSettings, *,
                 client_id: str | None = None, group: str | None = "lotedge-ingest",
                 backoff_max_s: float = 30.0) -> None:
        self.store = store
        self.settings = settings
        self.client_id = client_id or f"lotedge-ingest-{uuid.uuid4().hex[:8]}"
        self.group = group
        self.backoff_max_s = backoff_max_s
        self.batches = 0
        self.events = 0
        self.acked: dict[str, int] = {}
        self.store_errors = 0
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
        attempt = 0
        while True:
            try:
                client = self.settings.client(identifier=self.client_id, clean_session=False)
                async with client:
                    self.connected.set()
                    attempt = 0
                    if self.group:
                        # Mosquitto 2.0.11 stopped routing to a persistent session's shared
                        # subscription after a broker restart until it was renewed.
                        await client.unsubscribe(self.subscription)
                    await client.subscribe(self.subscription, qos=1)
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
        try:
            batch: Any = json.loads(message.payload)
            events = batch["events"]
            if not isinstance(events, list):
                raise TypeError("events is not a list")
        except (ValueError, TypeError, KeyError) as err:
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
        self.acked[lot_id] = max(self.acked.get(lot_id, 0), result.acked_through)
        self.events += result.inserted
        await client.publish(ack_topic(lot_id), json.dumps({"acked_through": result.acked_through}),
                             qos=1, retain=True, timeout=self.publish_timeout_s)

"""MQTT connection settings from config or a URL, and the topic names."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from appliance.config import CloudSection
from appliance.host.secrets import read_secret_file
from sync.errors import SyncError


def keep_cancellation() -> None:
    """Raise CancelledError if this task was cancelled and the cancellation was swallowed.

    On Python 3.11 `asyncio.wait_for`, which aiomqtt awaits every broker round trip with,
    returns the result when a cancellation lands just as that result arrives (a PUBACK with
    the stop): the task goes on as if never cancelled, and whoever awaits its end (a service
    stop) waits forever while it keeps publishing. The task's cancel count still says so.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Client(aiomqtt.Client):
    """aiomqtt's client whose calls never swallow the caller's cancellation (see above)."""

    async def __aenter__(self) -> Client:
        await super().__aenter__()
        try:
            keep_cancellation()
        except asyncio.CancelledError:  # connected as the stop came: leave no session open
            with contextlib.suppress(Exception):
                await super().__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await super().__aexit__(*exc_info)
        keep_cancellation()

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        await super().publish(*args, **kwargs)
        keep_cancellation()

    async def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        granted = await super().subscribe(*args, **kwargs)
        keep_cancellation()
        return granted

    async def unsubscribe(self, *args: Any, **kwargs: Any) -> None:
        await super().unsubscribe(*args, **kwargs)
        keep_cancellation()


def events_topic(lot_id: str) -> str:
    """Where the appliance publishes event batches."""
    return f"lotedge/{lot_id}/events"


def ack_topic(lot_id: str) -> str:
    """Where the cloud publishes `{"acked_through": N}` (retained)."""
    return f"lotedge/{lot_id}/ack"


def bundle_topic(lot_id: str) -> str:
    """Retained notice `{"version": N}` that a newer bundle exists."""
    return f"lotedge/{lot_id}/bundle"


def availability_topic(lot_id: str) -> str:
    """Retained live availability."""
    return f"lotedge/{lot_id}/availability"


def health_topic(lot_id: str) -> str:
    """Retained health; the last will sets it offline."""
    return f"lotedge/{lot_id}/health"


INGEST_PRESENCE_FILTER = "lotedge-cloud/ingest/+"
PACE_FILTER = "lotedge-cloud/pace/+"

# paho leaves Nagle's algorithm on: a small publish (an ack, a PUBACK) then waits for the
# peer's delayed ACK (~40 ms on Linux) whenever an earlier segment is unacknowledged. Every
# client we run turns it off (aiomqtt applies these right after the TCP connect).
SOCKET_OPTIONS = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def ingest_presence_topic(client_id: str) -> str:
    """Where an ingest worker announces itself (retained `{"online": true, ...}` when it has
    subscribed; its will sets `{"online": false}`); lots resend unacked batches on it."""
    return "lotedge-cloud/ingest/" + re.sub(r"[^A-Za-z0-9_.-]", "_", client_id)[:100]


def pace_topic(client_id: str) -> str:
    """Where an ingest worker publishes its pace hint (retained; see `sync.flow.PaceHint`)."""
    return "lotedge-cloud/pace/" + re.sub(r"[^A-Za-z0-9_.-]", "_", client_id)[:100]


def lot_pace_topic(lot_id: str) -> str:
    """A per-lot pace hint (retained), set by an operator or a cloud service for one lot."""
    return f"lotedge/{lot_id}/pace"


@dataclass(frozen=True, kw_only=True)
class MqttSettings:
    """How to reach the broker."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_url(cls, url: str, **extra: Any) -> MqttSettings:
        """Parse mqtt://[user:pass@]host[:port] or mqtts://..."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise SyncError(f"bad MQTT URL {url!r} (expected mqtt://host:port)")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as err:
            raise SyncError(f"bad MQTT URL {url!r}: {err}") from err
        username = unquote(parts.username) if parts.username else extra.pop("username", None)
        password = unquote(parts.password) if parts.password else extra.pop("password", None)
        extra.pop("username", None)
        extra.pop("password", None)
        return cls(host=parts.hostname, port=port, tls=tls, username=username,
                   password=password, **extra)

    @classmethod
    def from_config(cls, cloud: CloudSection) -> MqttSettings:
        """Settings from the [cloud] section (password read from password_file, which must be
        owner-only: a ConfigError naming the key otherwise)."""
        password = None
        if cloud.password_file:
            password = str(read_secret_file(cloud.password_file, key="cloud.password_file"))
        return cls.from_url(cloud.mqtt_url, username=cloud.username, password=password,
                            ca_file=cloud.tls_ca_file, cert_file=cloud.tls_cert_file,
                            key_file=cloud.tls_key_file)

    def client(self, *, identifier: str, clean_session: bool = True,
               will: aiomqtt.Will | None = None, timeout_s: float = 10.0) -> Client:
        """An aiomqtt client for these settings (not yet connected; see `Client`)."""
        tls_params = None
        if self.tls or self.ca_file or self.cert_file:
            tls_params = aiomqtt.TLSParameters(ca_certs=self.ca_file, certfile=self.cert_file,
                                               keyfile=self.key_file,
                                               cert_reqs=ssl.CERT_REQUIRED)
        return Client(self.host, self.port, username=self.username, password=self.password,
                      identifier=identifier, clean_session=clean_session, will=will,
                      tls_params=tls_params, timeout=timeout_s, keepalive=30,
                      socket_options=SOCKET_OPTIONS)


def backoff_s(attempt: int, *, base_s: float = 0.5, max_s: float = 60.0) -> float:
    """Exponential backoff with full jitter for reconnect attempt `attempt` (0-based)."""
    return random.uniform(base_s / 2, min(max_s, base_s * 2 ** min(attempt, 20)))

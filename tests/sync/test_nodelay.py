"""Every MQTT client we run has Nagle's algorithm off (TCP_NODELAY on the real connection):
with it on, an ack publish waited for the broker's delayed ACK, ~35 ms per batch."""

from __future__ import annotations

import asyncio
import socket

from sync.cloud_store import open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings
from sync.uplink import Uplink
from tests.sync.helpers import open_filled, running, wait_for


def nodelay(client) -> int:
    sock = client._client.socket()  # paho's socket of the live connection
    assert isinstance(sock, socket.socket)
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_settings_clients_connect_with_tcp_nodelay(broker):
    async with MqttSettings.from_url(broker.url).client(identifier="nodelay-check") as client:
        assert nodelay(client) == 1


async def test_the_uplink_and_the_ingest_run_with_tcp_nodelay(tmp_path, broker, monkeypatch):
    clients = []
    original = MqttSettings.client

    def spy(self, **kwargs):
        made = original(self, **kwargs)
        clients.append(made)
        return made

    monkeypatch.setattr(MqttSettings, "client", spy)
    ledger = await open_filled(tmp_path / "l.sqlite3", 20)
    settings = MqttSettings.from_url(broker.url)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    uplink = Uplink(ledger, settings, ack_timeout_s=5)
    ingest = Ingest(store, settings, client_id="nodelay-ingest")
    async with running(ingest.run(), uplink.run()):
        await wait_for(lambda: uplink.acked_through == 20, 20, "20 acked")
        assert len(clients) == 2
        assert [nodelay(c) for c in clients] == [1, 1]
        await asyncio.sleep(0)
    await ledger.close()
    store.close()

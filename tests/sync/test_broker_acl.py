"""The shipped broker config (deploy/mosquitto/lotedge.conf + acl.conf) on a real Mosquitto:
TLS and passwords on, a lot can publish and read only its own topics, the ingest only acks and
bundle notices, and the real uplink and ingest still sync through it."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import subprocess

import aiomqtt
import pytest

from sync.cloud_store import open_store
from sync.devbroker import Broker
from sync.mqtt import MqttSettings, ack_topic, events_topic
from tests.conftest import REPO
from tests.sync.helpers import LOT, assert_exact_chain, open_filled, wait_for
from tests.sync.test_signed_sync import Keys, running
from tests.sync.test_tls import make_pki

USERS = {"lotedge-ingest": "ingest-pw", LOT: "lot-pw", "lot-b": "lot-b-pw"}


@pytest.fixture
def acl_broker(tmp_path):
    """Mosquitto started with deploy/mosquitto/lotedge.conf (paths and port adapted) and the
    shipped acl.conf as it is."""
    pki = make_pki(tmp_path / "pki")
    broker = Broker(tmp_path / "broker")
    passwd = broker.workdir / "passwd"
    passwd.touch(mode=0o600)
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                       capture_output=True)
    text = (REPO / "deploy/mosquitto/lotedge.conf").read_text()
    text = (text.replace("/etc/mosquitto/lotedge.passwd", str(passwd))
            .replace("/etc/mosquitto/lotedge.acl", str(REPO / "deploy/mosquitto/acl.conf"))
            .replace("/etc/mosquitto/certs/ca.crt", str(pki["ca"]))
            .replace("/etc/mosquitto/certs/server.crt", str(pki["server_cert"]))
            .replace("/etc/mosquitto/certs/server.key", str(pki["server_key"]))
            .replace("listener 8883", f"listener {broker.port} 127.0.0.1"))
    assert "/etc/" not in "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    broker.config.write_text(text + f"user {getpass.getuser()}\npersistence_location "
                             f"{broker.workdir}/\nlog_dest file {broker.workdir}/mosquitto.log\n")
    broker.start()
    broker.pki = pki
    yield broker
    broker.stop()


def settings_for(broker, user: str | None) -> MqttSettings:
    return MqttSettings(host="127.0.0.1", port=broker.port, tls=True, username=user,
                        password=USERS.get(user or ""), ca_file=str(broker.pki["ca"]))


async def collect(broker, user: str, topic: str, into: list, ready: asyncio.Event) -> None:
    async with settings_for(broker, user).client(identifier=f"watch-{user}-{len(into)}") as c:
        await c.subscribe(topic, qos=1)
        ready.set()
        async for message in c.messages:
            into.append((str(message.topic), bytes(message.payload)))


async def test_a_lot_cannot_publish_another_lots_ack_or_events(acl_broker):
    ingest_seen: list = []
    lot_b_acks: list = []
    lot_a_peek: list = []
    ready = [asyncio.Event() for _ in range(3)]
    async with running(collect(acl_broker, "lotedge-ingest", "lotedge/+/events", ingest_seen,
                               ready[0]),
                       collect(acl_broker, "lot-b", ack_topic("lot-b"), lot_b_acks, ready[1]),
                       collect(acl_broker, LOT, ack_topic("lot-b"), lot_a_peek, ready[2])):
        for r in ready:
            await asyncio.wait_for(r.wait(), 10)
        async with settings_for(acl_broker, LOT).client(identifier="lot-a-attacker") as lot_a:
            await lot_a.publish(ack_topic("lot-b"), json.dumps({"acked_through": 99}), qos=1,
                                retain=True)
            await lot_a.publish(events_topic("lot-b"), b'{"forged": true}', qos=1)
            await lot_a.publish(ack_topic(LOT), b'{"acked_through": 99}', qos=1)  # not even own
            await lot_a.publish(events_topic(LOT), b'{"own": true}', qos=1)  # allowed
        async with settings_for(acl_broker, "lotedge-ingest").client(identifier="ing") as ing:
            await ing.publish(events_topic("lot-b"), b'{"ingest forging": true}', qos=1)
            await ing.publish(ack_topic("lot-b"), b'{"genuine": true}', qos=1)  # allowed
        await wait_for(lambda: ingest_seen and lot_b_acks, 10, "the allowed messages")
        await asyncio.sleep(0.5)  # anything refused would have arrived by now
    assert ingest_seen == [(events_topic(LOT), b'{"own": true}')]
    assert lot_b_acks == [(ack_topic("lot-b"), b'{"genuine": true}')]
    assert lot_a_peek == []  # a lot cannot read another lot's ack either
    # Without a password, or with another user's, the broker refuses the connection.
    for user, password in ((None, None), (LOT, "lot-b-pw")):
        s = MqttSettings(host="127.0.0.1", port=acl_broker.port, tls=True, username=user,
                         password=password, ca_file=str(acl_broker.pki["ca"]))
        with pytest.raises(aiomqtt.MqttError):
            async with s.client(identifier="intruder", timeout_s=3):
                pass


async def test_the_real_uplink_and_ingest_sync_through_the_acl(tmp_path, acl_broker):
    keys = Keys(tmp_path / "keys")
    ledger = await open_filled(tmp_path / "l.sqlite3", 200)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    uplink = keys.uplink(ledger, settings_for(acl_broker, LOT), batch_max_events=50,
                         ack_timeout_s=5)
    ingest = keys.ingest(store, settings_for(acl_broker, "lotedge-ingest"), client_id="acl-in")
    async with running(ingest.run(), uplink.run()):
        await wait_for(lambda: uplink.acked_through == 200, 20, "200 acked through the ACL")
    assert_exact_chain(store.events(LOT), 200)
    assert uplink.refused_acks == 0 and ingest.refused == 0
    with contextlib.suppress(Exception):
        await ledger.close()
    store.close()


async def test_only_the_ingest_sets_pace_hints_and_every_lot_reads_them(acl_broker):
    """A lot cannot slow the fleet down (or speed it up) with a forged pace hint."""
    from sync.mqtt import PACE_FILTER, lot_pace_topic, pace_topic

    lot_b_sees: list = []
    ready = asyncio.Event()
    async with running(collect(acl_broker, "lot-b", PACE_FILTER, lot_b_sees, ready)):
        await asyncio.wait_for(ready.wait(), 10)
        async with settings_for(acl_broker, LOT).client(identifier="lot-a-pacer") as lot_a:
            await lot_a.publish(pace_topic("forged"), b'{"wait_s": 99999}', qos=1)
            await lot_a.publish(lot_pace_topic("lot-b"), b'{"wait_s": 99999}', qos=1)
        async with settings_for(acl_broker, "lotedge-ingest").client(identifier="ing") as ing:
            await ing.publish(pace_topic("ing"), b'{"wait_s": 12}', qos=1)
        await wait_for(lambda: lot_b_sees, 10, "the ingest's hint")
        await asyncio.sleep(0.5)
    assert lot_b_sees == [(pace_topic("ing"), b'{"wait_s": 12}')]
    own: list = []
    ready = asyncio.Event()
    async with running(collect(acl_broker, "lot-b", lot_pace_topic("lot-b"), own, ready)):
        await asyncio.wait_for(ready.wait(), 10)
        async with settings_for(acl_broker, "lotedge-ingest").client(identifier="ing") as ing:
            await ing.publish(lot_pace_topic("lot-b"), b'{"wait_s": 5}', qos=1)
        await wait_for(lambda: own, 10, "the per-lot hint")
    assert own == [(lot_pace_topic("lot-b"), b'{"wait_s": 5}')]

"""docs/cloud-protocol.md and docs/schemas/ cannot drift from the code: messages the code
really produces (on a real Mosquitto) validate against the schemas, the worked hash example is
recomputed with appliance/core/events.py, and every topic the code uses is documented."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource

from appliance.core.allocation import Pool
from appliance.core.events import GENESIS_HASH, canonical_json, chain_hash, event_body
from appliance.core.types import SpotType
from appliance.lot.availability import Availability
from sync import mqtt
from sync.bundle import sign_bundle
from sync.cloud_store import open_store
from sync.mqtt import MqttSettings
from sync.resync import resync_from
from tests.conftest import REPO
from tests.sync.helpers import LOT, open_filled, retained, wait_for
from tests.sync.test_bundle import PRIVATE, body
from tests.sync.test_signed_sync import Keys, running

DOC = REPO / "docs" / "cloud-protocol.md"
SCHEMAS = REPO / "docs" / "schemas"


def _registry() -> Registry:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def validate(name: str, instance: object) -> None:
    """Raise jsonschema's ValidationError unless `instance` fits docs/schemas/NAME."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator(schema, registry=REGISTRY).validate(instance)


def doc_block(name: str) -> str:
    match = re.search(rf"<!-- example:{name} -->\n```[a-z]*\n(.*?)\n```", DOC.read_text(),
                      re.DOTALL)
    assert match, f"no example {name} in {DOC.name}"
    return match.group(1)


def test_every_schema_is_a_valid_json_schema_and_documented():
    text = DOC.read_text()
    names = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    assert len(names) >= 10
    for name in names:
        Draft202012Validator.check_schema(json.loads((SCHEMAS / name).read_text()))
        assert f"schemas/{name}" in text, f"{name} is not linked from the protocol doc"


def test_the_worked_hash_example_is_what_the_code_computes():
    prev = GENESIS_HASH
    for n in (1, 2):
        event = json.loads(doc_block(f"event-{n}"))
        validate("event", event)
        body_text = event_body(seq=event["seq"], event_id=event["event_id"],
                               lot_id=event["lot_id"], type=event["type"],
                               ts_utc=event["ts_utc"], ts_local=event["ts_local"],
                               mono_ns=event["mono_ns"],
                               payload_json=canonical_json(event["payload"]))
        if n == 1:
            assert doc_block("body-1") == body_text
            assert f"= SHA-256(`\"0\" * 64` + body) =\n`{event['hash']}`" in DOC.read_text()
        assert event["prev_hash"] == prev
        assert chain_hash(prev, body_text) == event["hash"]
        prev = event["hash"]


def test_every_topic_the_code_uses_is_documented():
    text = DOC.read_text()
    for fn in (mqtt.events_topic, mqtt.ack_topic, mqtt.availability_topic, mqtt.health_topic,
               mqtt.bundle_topic):
        assert f"`{fn('{lot_id}')}`" in text, fn.__name__
    assert mqtt.ingest_presence_topic("ingest-1") == "lotedge-cloud/ingest/ingest-1"
    assert "`lotedge-cloud/ingest/{client_id}`" in text
    assert mqtt.pace_topic("ingest-1") == "lotedge-cloud/pace/ingest-1"
    assert "`lotedge-cloud/pace/{client_id}`" in text
    assert f"`{mqtt.lot_pace_topic('{lot_id}')}`" in text
    assert mqtt.PACE_FILTER in text
    assert mqtt.INGEST_PRESENCE_FILTER in text


async def test_real_messages_on_the_wire_fit_the_schemas(tmp_path, broker):
    keys = Keys(tmp_path / "keys")
    settings = MqttSettings.from_url(broker.url)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ledger = await open_filled(tmp_path / "l.sqlite3", 30)
    await resync_from(ledger, 1, by="test", reason="schema check")  # epoch 1, another type
    uplink = keys.uplink(ledger, settings, batch_max_events=10, ack_timeout_s=5)
    ingest = keys.ingest(store, settings, client_id="schema-ingest")
    seen: list[tuple[str, bytes]] = []

    async def sniff():
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="sniffer") as c:
            await c.subscribe("lotedge/#", qos=1)
            await c.subscribe("lotedge-cloud/#", qos=1)
            async for message in c.messages:
                seen.append((str(message.topic), bytes(message.payload)))

    availability = Availability(lot_id=LOT, as_of_seq=31, pools=(
        Pool(level="L1", spot_type=SpotType.REGULAR, capacity=40, occupied=12),
        Pool(level="L1", spot_type=SpotType.EV, capacity=4, occupied=4)))
    async with running(sniff()):
        async with running(ingest.run(), uplink.run()):
            await wait_for(lambda: uplink.acked_through == 31, 20, "31 acked")
            uplink.publish_availability(availability.as_dict())
            await wait_for(lambda: any(t.endswith("/availability") for t, _ in seen), 5,
                           "availability")
    by_topic: dict[str, list[bytes]] = {}
    for topic, payload in seen:
        by_topic.setdefault(topic, []).append(payload)
    batches = by_topic[mqtt.events_topic(LOT)]
    assert len(batches) >= 4
    for payload in batches:
        envelope = json.loads(payload)
        validate("batch-envelope", envelope)
        for event in envelope["batch"]["events"]:
            validate("event", event)
    acks = by_topic[mqtt.ack_topic(LOT)]
    for payload in acks:
        validate("ack-envelope", json.loads(payload))
    validate("ack-unsigned", json.loads(ingest.__class__(store, settings).ack_message(
        LOT, 5, GENESIS_HASH, 0)))
    for payload in by_topic[mqtt.health_topic(LOT)]:
        validate("health", json.loads(payload))
    assert {json.loads(p)["online"] for p in by_topic[mqtt.health_topic(LOT)]} == {True, False}
    for payload in by_topic[mqtt.health_topic(LOT)]:  # every health message carries a time
        message = json.loads(payload)
        assert message["since_utc" if message["online"] else "online_since_utc"]
        if not message["online"]:  # a clean stop: when it stopped, too
            assert message["since_utc"] >= message["online_since_utc"]
    for payload in by_topic[mqtt.availability_topic(LOT)]:
        validate("availability", json.loads(payload))
        assert json.loads(payload)["as_of_utc"]
    presence = [p for t, ps in by_topic.items() if t.startswith("lotedge-cloud/ingest/")
                for p in ps]
    assert presence
    for payload in presence:
        validate("ingest-presence", json.loads(payload))
    # The retained ack a reconnecting lot gets first, and the ingest's will.
    validate("ack-envelope", await retained(broker.port, mqtt.ack_topic(LOT)))
    validate("bundle", sign_bundle(body(3, expires_utc="2026-12-20T08:00:00+00:00"), PRIVATE))
    validate("bundle-notice", {"version": 3})
    from sync.flow import PaceHint

    pace = ingest.pace_message(PaceHint(wait_s=12.5, max_inflight_batches=2))
    validate("pace-hint", json.loads(pace))
    assert PaceHint.parse(pace) == PaceHint(wait_s=12.5, max_inflight_batches=2)
    validate("pace-hint", {"wait_s": 3})  # a per-lot hint: no client_id
    assert ingest.pace_message(PaceHint()) == b""  # clears the retained hint
    with pytest.raises(ValidationError, match="is a required property"):
        validate("ack", {"acked_through": 5})  # the unsigned form is not a signed ack body
    await ledger.close()
    store.close()

"""Signed bundles: served by the reference cloud, pulled with httpx, applied or rejected."""

from __future__ import annotations

import asyncio
import base64
import copy
import json

import aiomqtt
import pytest

from appliance.ledger import Ledger
from sync.bundle import generate_keypair, sign_bundle, verify_bundle
from sync.cloud_api import BundleServer
from sync.downlink import Downlink, current_version
from sync.errors import BundleRejected
from sync.mqtt import MqttSettings, bundle_topic
from sync.uplink import Uplink
from tests.sync.helpers import LOT, TZ, wait_for

PRIVATE, PUBLIC = generate_keypair()


def body(version: int, **changes) -> dict:
    b = {
        "lot_id": LOT, "version": version, "issued_utc": "2026-11-20T08:00:00+00:00",
        "tariff": {"grace_minutes": 15, "minimum_charge_cents": 250, "hourly_cents": 400,
                   "daily_max_cents": 3000},
        "permits": [{"id": "P1", "plate": "b-xy 123", "kind": "resident",
                     "valid_from_utc": "2026-11-01T00:00:00+00:00",
                     "valid_to_utc": "2026-12-01T00:00:00+00:00"}],
        "reservations": [{"id": "R1", "plate": "M-AA1", "spot_type": "EV",
                          "start_utc": "2026-11-21T09:00:00+00:00",
                          "end_utc": "2026-11-21T12:00:00+00:00"}],
        "allow": [{"plate": "HH-FD-1", "reason": "fire brigade"}],
        "deny": [{"plate": "K-BAD-9", "reason": "unpaid invoices"}],
        "calendar": [{"id": "C1", "name": "Christmas market",
                      "start_utc": "2026-11-27T10:00:00+00:00",
                      "end_utc": "2026-12-23T22:00:00+00:00"}],
    }
    b.update(changes)
    return b


def write_signed(directory, doc, name) -> None:
    lot_dir = directory / LOT
    lot_dir.mkdir(parents=True, exist_ok=True)
    (lot_dir / name).write_text(json.dumps(doc))


async def events_of(ledger: Ledger, type_: str) -> list[dict]:
    rows = await ledger.fetchall("SELECT payload FROM events WHERE type = ? ORDER BY seq",
                                 (type_,))
    return [json.loads(r["payload"]) for r in rows]


@pytest.fixture
async def ledger(tmp_path):
    led = await Ledger.open(tmp_path / "ledger.sqlite3", lot_id=LOT, tz=TZ)
    yield led
    await led.close()


@pytest.fixture
async def server(tmp_path):
    srv = BundleServer(tmp_path / "bundles", port=0)
    (tmp_path / "bundles").mkdir()
    await srv.start()
    yield srv
    await srv.close()


async def test_bundle_is_fetched_over_http_and_applied_in_one_transaction(ledger, server):
    write_signed(server.bundle_dir, sign_bundle(body(3), PRIVATE), "v3.json")
    down = Downlink(ledger, api_url=f"http://127.0.0.1:{server.port}", public_key_b64=PUBLIC)
    assert await down.fetch_once() == 3
    assert await current_version(ledger) == 3
    lists = await ledger.fetchall("SELECT plate, list, source, note, valid_to_utc "
                                  "FROM plate_lists ORDER BY plate")
    assert [tuple(r) for r in lists] == [
        ("BXY123", "permit", "cloud", "resident P1", "2026-12-01T00:00:00+00:00"),
        ("HHFD1", "permit", "cloud", "fire brigade", None),
        ("KBAD9", "blocked", "cloud", "unpaid invoices", None)]
    res = await ledger.fetchone("SELECT plate, spot_type, status FROM reservations")
    assert tuple(res) == ("MAA1", "EV", "CONFIRMED")
    cal = await ledger.fetchone("SELECT name FROM calendar_events")
    assert cal["name"] == "Christmas market"
    tid = await ledger.get_meta("cloud_tariff_id")
    stored = await ledger.fetchone("SELECT source, body FROM tariffs WHERE id = ?", (tid,))
    assert stored["source"] == "bundle v3"
    assert json.loads(stored["body"])["hourly_cents"] == 400
    applied = await events_of(ledger, "bundle.applied")
    assert applied == [{"version": 3, "sha256": applied[0]["sha256"], "tariff": True,
                        "tariff_id": tid,
                        "counts": {"permits": 1, "reservations": 1, "allow": 1, "deny": 1,
                                   "calendar": 1}}]
    adopted = await events_of(ledger, "tariff.adopted")
    assert [(a["tariff_id"], a["tariff"]["hourly_cents"]) for a in adopted] == [(tid, 400)]
    # Nothing newer: 204, nothing applied again.
    assert await down.fetch_once() is None
    assert len(await events_of(ledger, "bundle.applied")) == 1


@pytest.mark.parametrize("tamper, reason", [
    ("forged", "bad signature"),
    ("edited", "bad signature"),
    ("invalid_record", "permits[0].valid_to_utc: must be after valid_from_utc"),
    ("other_lot", "lot_id: bundle is for 'other', not 'sync-lot'"),
    ("older", "version 2 is not newer than 3 in force"),
    ("garbage", "not valid JSON"),
    ("expired", "expires_utc: bundle expired at 2026-01-01T00:00:00+00:00"),
])
async def test_bad_bundles_are_rejected_and_the_previous_one_stays(ledger, tamper, reason):
    down = Downlink(ledger, api_url="http://127.0.0.1:9", public_key_b64=PUBLIC)
    assert await down.apply_document(json.dumps(sign_bundle(body(3), PRIVATE))) == 3
    if tamper == "forged":
        other_private, _ = generate_keypair()
        doc = json.dumps(sign_bundle(body(4, deny=[]), other_private))
    elif tamper == "edited":
        signed = sign_bundle(body(4), PRIVATE)
        signed["bundle"]["deny"] = []  # e.g. someone removing a plate from the deny list
        doc = json.dumps(signed)
    elif tamper == "invalid_record":
        bad = body(4)
        bad["permits"][0]["valid_to_utc"] = "2026-10-01T00:00:00+00:00"
        doc = json.dumps(sign_bundle(bad, PRIVATE))
    elif tamper == "other_lot":
        doc = json.dumps(sign_bundle(body(4, lot_id="other"), PRIVATE))
    elif tamper == "older":
        doc = json.dumps(sign_bundle(body(2, deny=[]), PRIVATE))
    elif tamper == "expired":  # a genuine bundle, replayed after its expiry
        doc = json.dumps(sign_bundle(body(4, deny=[], issued_utc="2025-12-01T00:00:00+00:00",
                                          expires_utc="2026-01-01T00:00:00+00:00"), PRIVATE))
    else:
        doc = b"\x00not json"
    assert await down.apply_document(doc) is None
    assert await current_version(ledger) == 3
    deny = await ledger.fetchall("SELECT plate FROM plate_lists WHERE list = 'blocked'")
    assert [r["plate"] for r in deny] == ["KBAD9"]
    rejected = await events_of(ledger, "bundle.rejected")
    assert len(rejected) == 1 and rejected[0]["reason"].startswith(reason), rejected
    # The same bad document polled again is not recorded twice.
    assert await down.apply_document(doc) is None
    assert len(await events_of(ledger, "bundle.rejected")) == 1


def test_signature_covers_canonical_json_not_formatting():
    signed = sign_bundle(body(5), PRIVATE)
    reformatted = json.dumps(signed, indent=4, sort_keys=False)
    assert verify_bundle(reformatted, public_key_b64=PUBLIC, lot_id=LOT).version == 5
    sig = bytearray(base64.b64decode(signed["signature"]))
    sig[0] ^= 1
    tampered = copy.deepcopy(signed)
    tampered["signature"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(BundleRejected, match="bad signature"):
        verify_bundle(tampered, public_key_b64=PUBLIC, lot_id=LOT)


def test_server_routes(tmp_path):
    srv = BundleServer(tmp_path)
    write_signed(tmp_path, sign_bundle(body(2), PRIVATE), "a.json")
    write_signed(tmp_path, sign_bundle(body(7), PRIVATE), "b.json")
    status, raw = srv.respond("GET", f"/v1/lots/{LOT}/bundle?since=3")
    assert status == 200 and json.loads(raw)["bundle"]["version"] == 7
    assert srv.respond("GET", f"/v1/lots/{LOT}/bundle?since=7")[0] == 204
    assert srv.respond("GET", f"/v1/lots/{LOT}/bundle?since=x")[0] == 400
    assert srv.respond("GET", "/v1/lots/nope/bundle")[0] == 204  # no bundle yet: nothing new
    assert srv.respond("GET", "/v1/nothing/here")[0] == 404
    assert srv.respond("POST", f"/v1/lots/{LOT}/bundle")[0] == 405


async def test_retained_mqtt_notice_triggers_a_fetch(ledger, server, broker):
    settings = MqttSettings.from_url(broker.url)
    down = Downlink(ledger, api_url=f"http://127.0.0.1:{server.port}", public_key_b64=PUBLIC,
                    poll_interval_s=3600)
    uplink = Uplink(ledger, settings, on_bundle_notice=down.notice)
    tasks = [asyncio.create_task(down.run()), asyncio.create_task(uplink.run())]
    try:
        await wait_for(lambda: server.requests >= 1, 10, "the start-up fetch")
        assert down.applied == []
        write_signed(server.bundle_dir, sign_bundle(body(9), PRIVATE), "v9.json")
        async with aiomqtt.Client("127.0.0.1", broker.port) as cloud:
            await cloud.publish(bundle_topic(LOT), json.dumps({"version": 9}), qos=1, retain=True)
        await wait_for(lambda: down.applied == [9], 10, "bundle v9 applied after the notice")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_new_bundle_replaces_cloud_lists_but_keeps_local_entries(ledger):
    from appliance.core.events import NewEvent

    await ledger.append(NewEvent(type="plate.listed", payload={
        "plate": "LOCAL1", "list": "blocked", "source": "local", "note": "attendant"}))
    down = Downlink(ledger, api_url="http://127.0.0.1:9", public_key_b64=PUBLIC)
    assert await down.apply_document(json.dumps(sign_bundle(body(3), PRIVATE))) == 3
    newer = body(4, deny=[{"plate": "NEW-2", "reason": "stolen"}], permits=[], allow=[])
    assert await down.apply_document(json.dumps(sign_bundle(newer, PRIVATE))) == 4
    rows = await ledger.fetchall("SELECT plate, list, source FROM plate_lists ORDER BY plate")
    assert [tuple(r) for r in rows] == [("LOCAL1", "blocked", "local"),
                                        ("NEW2", "blocked", "cloud")]


async def test_a_lot_without_any_bundle_yet_gets_204_and_the_downlink_is_content(ledger, server):
    down = Downlink(ledger, api_url=f"http://127.0.0.1:{server.port}", public_key_b64=PUBLIC)
    assert await down.fetch_once() is None  # 204 over real HTTP: nothing new, not an error
    assert await current_version(ledger) == 0
    assert await events_of(ledger, "bundle.rejected") == []


async def test_a_bundle_with_a_future_expiry_is_applied(ledger):
    down = Downlink(ledger, api_url="http://127.0.0.1:9", public_key_b64=PUBLIC)
    doc = sign_bundle(body(3, expires_utc="2099-01-01T00:00:00+00:00"), PRIVATE)
    assert await down.apply_document(json.dumps(doc)) == 3
    backwards = sign_bundle(body(4, expires_utc="2026-11-19T00:00:00+00:00"), PRIVATE)
    assert await down.apply_document(json.dumps(backwards)) is None
    assert down.rejections[-1] == "expires_utc: must be after issued_utc"


async def test_a_stale_newest_bundle_raises_bundle_stale_and_a_fresh_one_clears_it(ledger):
    from datetime import UTC, datetime, timedelta

    down = Downlink(ledger, api_url="http://127.0.0.1:9", public_key_b64=PUBLIC,
                    stale_after_s=48 * 3600)
    issued = datetime(2026, 11, 20, 8, tzinfo=UTC)  # body()'s issued_utc
    assert await down.check_stale(issued + timedelta(days=5)) is False  # no bundle yet
    assert await down.apply_document(json.dumps(sign_bundle(body(3), PRIVATE))) == 3
    assert await down.check_stale(issued + timedelta(hours=47)) is False
    assert await down.check_stale(issued + timedelta(days=5)) is True
    assert await down.check_stale(issued + timedelta(days=6)) is True  # raised once
    raised = await events_of(ledger, "alarm.raised")
    assert [(a["code"], a["source"]) for a in raised] == [("bundle_stale", "downlink")]
    assert "v3" in raised[0]["detail"]
    fresh = body(4, issued_utc=(issued + timedelta(days=6)).isoformat())
    assert await down.apply_document(json.dumps(sign_bundle(fresh, PRIVATE))) == 4
    assert await down.check_stale(issued + timedelta(days=6, hours=1)) is False
    cleared = await events_of(ledger, "alarm.cleared")
    assert [a["code"] for a in cleared] == ["bundle_stale"]


def test_a_lot_without_the_cloud_api_never_loads_httpx():
    """The downlink imports httpx when it fetches: httpx loads its command line (click, rich,
    pygments) with it, about 12 MB of a service that never fetches a bundle."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, sync.wiring, sync.downlink; "
            "print(sorted(m for m in ('httpx', 'rich', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"

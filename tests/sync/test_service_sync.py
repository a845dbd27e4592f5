"""The service with [cloud] enabled: simulated traffic syncs while the lanes run."""

from __future__ import annotations

import asyncio
import contextlib
import json

from appliance.clock import SimClock
from appliance.config import load_config
from appliance.service import Service
from appliance.simulate import TrafficGenerator
from sync.bundle import sign_bundle
from sync.cloud_store import open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings, availability_topic, health_topic
from tests.conftest import write_lot
from tests.sync.helpers import assert_exact_chain, retained, wait_for


async def test_service_syncs_events_and_publishes_availability_and_health(tmp_path, broker):
    path = write_lot(tmp_path, mode="counter")
    path.write_text(path.read_text() + f'\n[cloud]\nenabled = true\nmqtt_url = "{broker.url}"\n'
                    "ack_timeout_s = 5\n")
    cfg = load_config(path)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ingest = Ingest(store, MqttSettings.from_url(broker.url), client_id="svc-ingest")
    ingest_task = asyncio.create_task(ingest.run())
    clock = SimClock(speed=cfg.simulation.speed)
    service = Service(cfg, simulate=True, clock=clock)
    await service.start()
    traffic = TrafficGenerator(service, cfg.simulation, clock, max_cars=60)
    stop = asyncio.Event()
    lot = cfg.lot.id
    synced: dict[str, int] = {}

    async def drive():
        await traffic.run()
        await wait_for(lambda: ingest.acked.get(lot, 0) >= service.sync["uplink"].sent_through
                       > 0, 30, "cloud caught up")
        synced["last"] = await service.ledger.last_seq()
        await wait_for(lambda: ingest.acked.get(lot, 0) >= synced["last"], 30, "every event acked")
        stop.set()

    try:
        await asyncio.wait_for(service.run(stop, extra=[drive]), 120)
        assert traffic.stats.trapped == 0
        availability = await retained(broker.port, availability_topic(lot))
        assert availability is not None and availability["lot_id"] == lot
        assert availability["capacity"] == service.availability.capacity
        assert availability["free"] == service.availability.free
        await service.stop()
    finally:
        ingest_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest_task
    assert_exact_chain(store.events(lot)[:synced["last"]], synced["last"])
    assert store.events(lot)[-1]["seq"] == store.acked_through(lot)
    # A clean stop marks the appliance offline (the will covers a crash).
    assert (await retained(broker.port, health_topic(lot)))["online"] is False
    store.close()


async def test_cloud_api_down_raises_an_alarm_gates_work_and_it_clears_when_the_api_is_back(
        tmp_path, broker):
    import socket

    from appliance.lot.tickets import admit
    from sync.cloud_api import BundleServer
    from sync.downlink import current_version
    from tests.sync.test_bundle import PRIVATE, PUBLIC, body

    with socket.socket() as s:  # a loopback port nothing listens on (yet)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_lot(tmp_path, mode="counter")
    path.write_text(path.read_text() + f'\n[cloud]\nenabled = true\nmqtt_url = "{broker.url}"\n'
                    f'api_url = "http://127.0.0.1:{port}"\nbundle_public_key = "{PUBLIC}"\n'
                    "bundle_poll_interval_s = 0.2\noffline_alarm_s = 1.0\n")
    cfg = load_config(path)
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    stop = asyncio.Event()
    seen: dict[str, object] = {}

    async def alarm_active() -> bool | None:
        row = await service.ledger.fetchone(
            "SELECT cleared_utc FROM alarms WHERE code = 'cloud_api_unreachable' "
            "AND source = 'downlink' ORDER BY raised_seq DESC LIMIT 1")
        return None if row is None else row["cleared_utc"] is None

    async def drive():
        for _ in range(100):
            if await alarm_active():
                break
            await asyncio.sleep(0.1)
        seen["raised"] = await alarm_active()
        seen["entry"] = await admit(service.ledger, service.cfg, lane="in-1", plate="API0001",
                                    confidence=0.9, at=service.clock.now())
        lot_dir = tmp_path / "bundles" / cfg.lot.id
        lot_dir.mkdir(parents=True)
        (lot_dir / "v1.json").write_text(json.dumps(
            sign_bundle(body(1, lot_id=cfg.lot.id), PRIVATE)))
        server = BundleServer(tmp_path / "bundles", port=port)  # the API comes back
        await server.start()
        try:
            for _ in range(100):
                if await alarm_active() is False:
                    break
                await asyncio.sleep(0.1)
            seen["cleared"] = await alarm_active() is False
            seen["version"] = await current_version(service.ledger)
        finally:
            await server.close()
        stop.set()

    await asyncio.wait_for(service.run(stop, extra=[drive]), 60)
    await service.stop()
    assert seen["raised"] is True  # the attendant is told the cloud API is unreachable
    assert seen["entry"].allow  # gates do not wait on the cloud
    assert seen["cleared"] and seen["version"] == 1  # cleared and caught up by itself

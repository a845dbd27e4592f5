"""The service with [cloud] enabled: simulated traffic syncs while the lanes run."""

from __future__ import annotations

import asyncio
import contextlib

from appliance.clock import SimClock
from appliance.config import load_config
from appliance.service import Service
from appliance.simulate import TrafficGenerator
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

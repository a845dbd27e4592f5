"""Broker down while the lot is busy: gates keep working, sync reports offline, then catches up.

(The uplink alone across a week offline, and SIGKILL with a killed broker, are in tests/sync.)
"""

from __future__ import annotations

import asyncio
import contextlib

from appliance.clock import SimClock
from appliance.config import load_config
from appliance.service import Service
from appliance.simulate import TrafficGenerator
from sync.cloud_store import open_store
from sync.ingest import Ingest
from sync.mqtt import MqttSettings
from tests.conftest import write_lot
from tests.sync.conftest import broker  # noqa: F401  (the real Mosquitto fixture)
from tests.sync.helpers import assert_exact_chain, wait_for


async def test_broker_down_mid_traffic_gates_work_and_sync_recovers_by_itself(tmp_path, broker):  # noqa: F811
    path = write_lot(tmp_path, mode="counter")
    path.write_text(path.read_text() + f'\n[cloud]\nenabled = true\nmqtt_url = "{broker.url}"\n'
                    "ack_timeout_s = 2\nbackoff_max_s = 2\noffline_alarm_s = 1\n")
    cfg = load_config(path)
    store = open_store(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    ingest = Ingest(store, MqttSettings.from_url(broker.url), client_id="outage-ingest",
                    backoff_max_s=2.0)
    ingest_task = asyncio.create_task(ingest.run())
    clock = SimClock(speed=cfg.simulation.speed)
    service = Service(cfg, simulate=True, clock=clock)
    await service.start()
    traffic = TrafficGenerator(service, cfg.simulation, clock, max_cars=120)
    stop = asyncio.Event()
    lot = cfg.lot.id
    seen: dict = {}

    async def drive():
        cars = asyncio.create_task(traffic.run())
        await wait_for(lambda: service.sync_status()["online"] and traffic.stats.entered >= 20,
                       60, "online with traffic")
        broker.stop()
        entered = traffic.stats.entered
        await wait_for(lambda: not service.sync_status()["online"], 30, "sync reports offline")
        seen["offline_status"] = service.sync_status()
        await wait_for(lambda: traffic.stats.entered >= entered + 20, 60, "cars during outage")
        seen["entered_during_outage"] = traffic.stats.entered - entered
        seen["alarm"] = await _wait_alarm(service, active=True)  # the attendant is told
        broker.start()  # no manual step: the uplink reconnects on its own
        await cars
        seen["last"] = await service.ledger.last_seq()
        await wait_for(lambda: ingest.acked.get(lot, 0) >= seen["last"], 60, "backlog drained")
        await _wait_alarm(service, active=False)  # and the alarm clears by itself
        stop.set()

    try:
        await asyncio.wait_for(service.run(stop, extra=[drive]), 180)
    finally:
        await service.stop()
        ingest_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest_task
    assert traffic.stats.trapped == 0
    assert seen["entered_during_outage"] >= 20
    assert seen["offline_status"]["state"] == "offline"
    assert seen["alarm"]["source"] == "uplink" and "events waiting" in seen["alarm"]["detail"]
    assert_exact_chain(store.events(lot)[:seen["last"]], seen["last"])
    store.close()


async def _wait_alarm(service, *, active: bool) -> dict:
    from appliance.lot.alarms import list_alarms

    for _ in range(300):
        rows = [a for a in await list_alarms(service.ledger, active_only=False)
                if a["code"] == "sync_offline"]
        if rows and (rows[0]["cleared_utc"] is None) == active:
            return rows[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"sync_offline alarm never became {'active' if active else 'cleared'}")

"""Diagnostics routes of the local API (`/diag/...`), used by `lotedge diag`.

Each route returns what the running service knows: the lot's ledger and lanes, and the
`ServiceProbes` read-outs (device health, sync state, serial monitor, plate source). A plate
source without camera frames answers a snapshot with "not available" (HTTP 501).
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.api.probes import ServiceProbes
from appliance.api.requests import int_param, json_body, required_text
from appliance.core.events import NewEvent
from appliance.core.layout import sensor_key
from appliance.errors import InputError
from appliance.host.redact import redact_url
from appliance.lot import alarms
from appliance.lot.commands import NotFoundError
from appliance.lot.edgelog import loop_state
from appliance.lot.runtime import LotRuntime

# Event types shown as "last errors" by `lotedge diag status`.
ERROR_EVENTS = ("lane.decision_failed", "gate.close_refused", "device.fault", "alarm.raised",
                "sync.failed")
# Technician actions that the CLI records in the ledger through POST /diag/audit.
AUDITED_ACTIONS = {"db.backup", "db.vacuum", "bundle", "serial.sniff", "camera.snapshot"}


def not_available(what: str) -> JSONResponse:
    """HTTP 501: this service build does not provide `what` yet."""
    return JSONResponse({"error": f"{what} is not available in this service",
                         "not_available": what}, status_code=501)


async def sync_backlog(lot: LotRuntime) -> dict[str, Any]:
    """Events not yet acknowledged by the cloud: count, oldest seq and its age."""
    ledger = lot.ledger
    acked = int(await ledger.get_meta("acked_through") or 0)
    row = await ledger.fetchone(
        "SELECT COUNT(*) AS n, MIN(seq) AS first FROM events WHERE seq > ?", (acked,))
    oldest_age_s = None
    if row["first"] is not None:
        first = await ledger.fetchone("SELECT ts_utc FROM events WHERE seq = ?", (row["first"],))
        oldest_age_s = round(
            (lot.clock.now() - datetime.fromisoformat(first["ts_utc"])).total_seconds(), 1)
    return {"acked_through": acked, "unsynced_events": row["n"],
            "oldest_unsynced_seq": row["first"], "oldest_unsynced_age_s": oldest_age_s}


def sync_state(lot: LotRuntime, probes: ServiceProbes) -> dict[str, Any]:
    """What the sync component reports, or why there is none."""
    status = probes.sync_status()
    if status.get("state") != "disabled":
        return {"available": True, **status}
    cloud = lot.cfg.cloud
    return {"available": False, "enabled": cloud.enabled,
            "state": "disabled" if not cloud.enabled else "no sync component running",
            "mqtt_url": redact_url(cloud.mqtt_url),
            "api_url": redact_url(cloud.api_url) if cloud.api_url else None}


def disk_usage(lot: LotRuntime) -> dict[str, Any]:
    """Free space where the ledger lives and the ledger's own size (with WAL and SHM)."""
    data_dir = lot.data_dir
    usage = shutil.disk_usage(data_dir)
    db = lot.db_path
    ledger_bytes = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal"),
                                                  db.with_name(db.name + "-shm")) if p.exists())
    return {"data_dir": str(data_dir), "total_bytes": usage.total, "free_bytes": usage.free,
            "free_percent": round(100 * usage.free / usage.total, 1) if usage.total else None,
            "ledger_bytes": ledger_bytes}


def _lane(lot: LotRuntime, lane_id: str):
    try:
        return lot.lanes[lane_id]
    except KeyError:
        raise NotFoundError(f"no lane {lane_id!r}") from None


def routes(lot: LotRuntime, probes: ServiceProbes, handler: Callable) -> list[Route]:
    """The /diag routes, wrapped by the API's auth and error handler."""

    async def status(request: Request):
        last_errors = await lot.ledger.fetchall(
            f"SELECT seq, type, ts_utc, payload FROM events WHERE type IN "
            f"({','.join('?' * len(ERROR_EVENTS))}) ORDER BY seq DESC LIMIT 10", ERROR_EVENTS)
        active = await alarms.list_alarms(lot.ledger, active_only=True)
        return {
            "sync": sync_state(lot, probes), "backlog": await sync_backlog(lot),
            "disk": disk_usage(lot), "active_alarms": active[:20],
            "last_errors": [dict(r) for r in last_errors],
        }

    async def loops(request: Request):
        controller = _lane(lot, request.path_params["lane"])
        after = int_param(request, "after", 0, low=0, high=2**63 - 1)
        now = time.monotonic_ns()
        return {
            "lane": controller.lane.id, "state": str(controller.machine.state),
            "gate_open": controller.gate.is_open, "seq": controller.edge_log.seq,
            "loops": [loop_state(controller.arming, now_ns=now),
                      loop_state(controller.safety, now_ns=now)],
            "edges": controller.edge_log.after(after, now_ns=now),
        }

    async def devices(request: Request):
        return probes.device_health()

    async def sensors(request: Request):
        level = request.query_params.get("level")
        if level is not None and level not in {lv.id for lv in lot.cfg.levels}:
            raise InputError(f"no level {level!r}")
        rows = await lot.ledger.fetchall("SELECT * FROM spots ORDER BY level_id, id")
        health = probes.device_health()
        by_device = {d["device"]: d for d in (health or {}).get("devices", [])}
        spots = []
        for r in rows:
            if level is not None and r["level_id"] != level:
                continue
            reading = ((by_device.get(sensor_key(r["sensor"])) if r["sensor"] else None)
                       or by_device.get(r["id"]))
            spots.append({"spot": r["id"], "level": r["level_id"], "type": r["type"],
                          "sensor": r["sensor"], "state": r["state"], "ticket_id": r["ticket_id"],
                          "sensor_state": r["sensor_state"],
                          "sensor_health": reading})
        return {"mode": str(lot.cfg.lot.mode), "sensor_readings": health is not None,
                "spots": spots}

    async def camera_read(request: Request):
        lane_id = _lane(lot, request.path_params["lane"]).lane.id
        plates = probes.plates()
        started = time.monotonic()
        result = await plates.read(lane_id)
        return {"lane": lane_id, "plate": result.plate, "confidence": result.confidence,
                "vehicle_type": result.vehicle_type, "is_ev": result.is_ev,
                "crop_path": result.crop_path,
                "read_ms": round((time.monotonic() - started) * 1000, 1),
                "source": type(plates).__name__}

    async def camera_snapshot(request: Request):
        lane_id = _lane(lot, request.path_params["lane"]).lane.id
        plates = probes.plates()
        snapshot = getattr(plates, "snapshot", None)
        if not callable(snapshot):
            return not_available(f"camera snapshot ({type(plates).__name__})")
        jpeg = await snapshot(lane_id)
        return {"lane": lane_id, "jpeg_base64": base64.b64encode(jpeg).decode("ascii")}

    async def serial(request: Request):
        port = request.query_params.get("port")
        if not port:
            raise InputError("port is required")
        return probes.serial_monitor(port)

    async def sync(request: Request):
        return {"sync": sync_state(lot, probes), "backlog": await sync_backlog(lot)}

    async def sync_push(request: Request):
        body = await json_body(request)
        await lot.ledger.append(NewEvent(type="diag.sync.push", payload={
            "technician": required_text(body.get("technician"), "technician")}))
        return await probes.sync_push_now()

    async def audit(request: Request):
        body = await json_body(request)
        action = required_text(body.get("action"), "action")
        if action not in AUDITED_ACTIONS:
            raise InputError(f"unknown audited action {action!r}")
        technician = required_text(body.get("technician"), "technician")
        detail = body.get("detail") or {}
        if not isinstance(detail, dict) or len(json.dumps(detail)) > 4096:
            raise InputError("detail must be an object of at most 4096 bytes of JSON")
        event = await lot.ledger.append(NewEvent(
            type=f"diag.{action}", payload={**detail, "technician": technician}))
        return {"seq": event.seq, "type": event.type}

    return [
        Route("/diag/status", handler(status)),
        Route("/diag/lanes/{lane}/loops", handler(loops)),
        Route("/diag/devices", handler(devices)),
        Route("/diag/sensors", handler(sensors)),
        Route("/diag/lanes/{lane}/camera/read", handler(camera_read), methods=["POST"]),
        Route("/diag/lanes/{lane}/camera/snapshot", handler(camera_snapshot)),
        Route("/diag/serial", handler(serial)),
        Route("/diag/sync", handler(sync)),
        Route("/diag/sync/push", handler(sync_push), methods=["POST"]),
        Route("/diag/audit", handler(audit), methods=["POST"]),
    ]

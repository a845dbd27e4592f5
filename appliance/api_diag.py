"""Diagnostics routes of the local API (`/diag/...`), used by `lotedge diag`.

Each route returns what the running service knows. Areas that are not part of every build
plug in through small, documented seams on the Service object and are reported as
"not available" (HTTP 501) until they do:

- `service.device_health()` -> `{"devices": [...], "faults": n}` (the shape of
  `drivers.health.HealthRegistry.snapshot()`; a `service.health` registry is used too);
  `/diag/devices` and the sensor readings in `/diag/sensors` come from it.
- `service.sync_status()` -> dict (state, last ack, ...); `await service.sync_push_now()` -> dict.
- `service.serial_monitor(port)` (port as given, e.g. /dev/ttyUSB0) -> dict of decoded frames and error counters of a port the
  service owns.
- `await service.plates.snapshot(lane)` -> JPEG bytes (camera frame).
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance import alarms
from appliance.core.events import NewEvent
from appliance.edgelog import loop_state
from appliance.errors import InputError
from appliance.redact import redact_url

if TYPE_CHECKING:
    from appliance.service import Service

# Event types shown as "last errors" by `lotedge diag status`.
ERROR_EVENTS = ("lane.decision_failed", "gate.close_refused", "device.fault", "alarm.raised",
                "sync.failed")
# Technician actions that the CLI records in the ledger through POST /diag/audit.
AUDITED_ACTIONS = {"db.backup", "db.vacuum", "bundle", "serial.sniff", "camera.snapshot"}


def not_available(what: str) -> JSONResponse:
    """HTTP 501: this service build does not provide `what` yet."""
    return JSONResponse({"error": f"{what} is not available in this service",
                         "not_available": what}, status_code=501)


def device_health(service: Service) -> dict[str, Any] | None:
    """The drivers' health snapshot, or None when the service exposes none."""
    method = getattr(service, "device_health", None)
    if callable(method):
        return method()
    registry = getattr(service, "health", None)
    if registry is not None and callable(getattr(registry, "snapshot", None)):
        return registry.snapshot()
    return None


async def sync_backlog(service: Service) -> dict[str, Any]:
    """Events not yet acknowledged by the cloud: count, oldest seq and its age."""
    ledger = service.ledger
    acked = int(await ledger.get_meta("acked_through") or 0)
    row = await ledger.fetchone(
        "SELECT COUNT(*) AS n, MIN(seq) AS first FROM events WHERE seq > ?", (acked,))
    oldest_age_s = None
    if row["first"] is not None:
        first = await ledger.fetchone("SELECT ts_utc FROM events WHERE seq = ?", (row["first"],))
        oldest_age_s = round(
            (service.clock.now() - datetime.fromisoformat(first["ts_utc"])).total_seconds(), 1)
    return {"acked_through": acked, "unsynced_events": row["n"],
            "oldest_unsynced_seq": row["first"], "oldest_unsynced_age_s": oldest_age_s}


def sync_state(service: Service) -> dict[str, Any]:
    """What the sync component reports, or why there is none."""
    method = getattr(service, "sync_status", None)
    if callable(method):
        return {"available": True, **method()}
    cloud = service.cfg.cloud
    return {"available": False, "enabled": cloud.enabled,
            "state": "disabled" if not cloud.enabled else "no sync component running",
            "mqtt_url": redact_url(cloud.mqtt_url),
            "api_url": redact_url(cloud.api_url) if cloud.api_url else None}


def disk_usage(service: Service) -> dict[str, Any]:
    """Free space where the ledger lives and the ledger's own size (with WAL and SHM)."""
    data_dir = service.data_dir
    usage = shutil.disk_usage(data_dir)
    db = service.cfg.db_path(service.base_dir)
    ledger_bytes = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal"),
                                                  db.with_name(db.name + "-shm")) if p.exists())
    return {"data_dir": str(data_dir), "total_bytes": usage.total, "free_bytes": usage.free,
            "free_percent": round(100 * usage.free / usage.total, 1) if usage.total else None,
            "ledger_bytes": ledger_bytes}


def _lane(service: Service, lane_id: str):
    from appliance.commands import NotFoundError

    try:
        return service.lanes[lane_id]
    except KeyError:
        raise NotFoundError(f"no lane {lane_id!r}") from None


def diag_routes(service: Service, handler: Callable) -> list[Route]:
    """The /diag routes, wrapped by the API's auth and error handler."""
    from appliance.api import _body
    from appliance.commands import _need

    async def status(request: Request):
        last_errors = await service.ledger.fetchall(
            f"SELECT seq, type, ts_utc, payload FROM events WHERE type IN "
            f"({','.join('?' * len(ERROR_EVENTS))}) ORDER BY seq DESC LIMIT 10", ERROR_EVENTS)
        active = await alarms.list_alarms(service.ledger, active_only=True)
        return {
            "sync": sync_state(service), "backlog": await sync_backlog(service),
            "disk": disk_usage(service), "active_alarms": active[:20],
            "last_errors": [dict(r) for r in last_errors],
        }

    async def loops(request: Request):
        controller = _lane(service, request.path_params["lane"])
        after = int(request.query_params.get("after", "0"))
        now = time.monotonic_ns()
        return {
            "lane": controller.lane.id, "state": str(controller.machine.state),
            "gate_open": controller.gate.is_open, "seq": controller.edge_log.seq,
            "loops": [loop_state(controller.arming, now_ns=now),
                      loop_state(controller.safety, now_ns=now)],
            "edges": controller.edge_log.after(after, now_ns=now),
        }

    async def devices(request: Request):
        health = device_health(service)
        return health if health is not None else not_available("device health")

    async def sensors(request: Request):
        level = request.query_params.get("level")
        if level is not None and level not in {lv.id for lv in service.cfg.levels}:
            raise InputError(f"no level {level!r}")
        rows = await service.ledger.fetchall("SELECT * FROM spots ORDER BY level_id, id")
        health = device_health(service)
        by_device = {d["device"]: d for d in (health or {}).get("devices", [])}
        spots = []
        for r in rows:
            if level is not None and r["level_id"] != level:
                continue
            reading = by_device.get(r["sensor"] or "") or by_device.get(r["id"])
            spots.append({"spot": r["id"], "level": r["level_id"], "type": r["type"],
                          "sensor": r["sensor"], "state": r["state"], "ticket_id": r["ticket_id"],
                          "sensor_state": r["sensor_state"],
                          "sensor_health": reading})
        return {"mode": str(service.cfg.lot.mode), "sensor_readings": health is not None,
                "spots": spots}

    async def camera_read(request: Request):
        lane_id = _lane(service, request.path_params["lane"]).lane.id
        started = time.monotonic()
        result = await service.plates.read(lane_id)
        return {"lane": lane_id, "plate": result.plate, "confidence": result.confidence,
                "vehicle_type": result.vehicle_type, "is_ev": result.is_ev,
                "crop_path": result.crop_path,
                "read_ms": round((time.monotonic() - started) * 1000, 1),
                "source": type(service.plates).__name__}

    async def camera_snapshot(request: Request):
        lane_id = _lane(service, request.path_params["lane"]).lane.id
        snapshot = getattr(service.plates, "snapshot", None)
        if not callable(snapshot):
            return not_available(f"camera snapshot ({type(service.plates).__name__})")
        jpeg = await snapshot(lane_id)
        return {"lane": lane_id, "jpeg_base64": base64.b64encode(jpeg).decode("ascii")}

    async def serial(request: Request):
        monitor = getattr(service, "serial_monitor", None)
        if not callable(monitor):
            return not_available("serial port monitor")
        port = request.query_params.get("port")
        if not port:
            raise InputError("port is required")
        return monitor(port)

    async def sync(request: Request):
        return {"sync": sync_state(service), "backlog": await sync_backlog(service)}

    async def sync_push(request: Request):
        push = getattr(service, "sync_push_now", None)
        if not callable(push):
            return not_available("sync push")
        body = await _body(request)
        await service.ledger.append(NewEvent(type="diag.sync.push", payload={
            "technician": _need(body.get("technician"), "technician")}))
        return await push()

    async def audit(request: Request):
        body = await _body(request)
        action = _need(body.get("action"), "action")
        if action not in AUDITED_ACTIONS:
            raise InputError(f"unknown audited action {action!r}")
        technician = _need(body.get("technician"), "technician")
        detail = body.get("detail") or {}
        if not isinstance(detail, dict) or len(json.dumps(detail)) > 4096:
            raise InputError("detail must be an object of at most 4096 bytes of JSON")
        event = await service.ledger.append(NewEvent(
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

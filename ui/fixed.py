"""A recorded service state served through httpx.MockTransport: the attendant UI without a lot.

Used by the screen snapshot tests (the same pixels every run) and to try the UI offline
(`lotedge attendant --demo`). Commands are refused: a recording cannot act.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import httpx

from appliance.core.roles import PERMISSIONS, Role

T0 = "2026-03-14T14:32:05+00:00"


def _ticket(tid: str, plate: str | None, entry: str, minutes: int, lines: list[tuple[str, int]],
            *, spot: str | None = None, override: int | None = None, paid: int = 0,
            status: str = "OPEN", validations: tuple[str, ...] = ()) -> dict[str, Any]:
    total = sum(amount for _, amount in lines)
    due = (total if override is None else override) - paid
    return {
        "id": tid, "plate": plate, "vehicle_type": "REGULAR", "is_ev": 0, "level_id": "L1",
        "spot_type": "REGULAR", "spot_id": spot, "entry_lane": "in-1", "entry_utc": entry,
        "status": status, "rate_multiplier": "1", "paid_cents": paid, "override_cents": override,
        "validations": list(validations),
        "validation_codes": [{"code": "CINEMA", "label": "Validation CINEMA (Roxy): 2 free hours"},
                             {"code": "MALL10", "label": "Validation MALL10: 10% off"}],
        "lost_fee_cents": max(total, 2500),
        "fee": {"total_cents": total, "due_cents": max(0, due), "override_cents": override,
                "duration_minutes": minutes, "currency": "USD",
                "breakdown": [{"label": label, "amount_cents": a} for label, a in lines]},
    }


def demo_state() -> dict[str, Any]:
    """A busy afternoon at a two-level lot, frozen at 14:32:05 UTC on 2026-03-14."""
    lanes = [
        {"lane": "in-1", "direction": "entry", "state": "VEHICLE_PASSING", "arming": False,
         "safety": True, "gate_open": True, "held_open": False, "last_plate": "KXP4417",
         "last_confidence": 0.93, "last_plate_crop": "var/crops/in-1/000412.jpg",
         "last_decision": "entry L1 REGULAR", "passed": 212, "refused": 3},
        {"lane": "in-2", "direction": "entry", "state": "IDLE", "arming": False,
         "safety": False, "gate_open": False, "held_open": False, "last_plate": None,
         "last_confidence": 0.0, "last_decision": "entry no read: ticket printed",
         "passed": 187, "refused": 0},
        {"lane": "out-1", "direction": "exit", "state": "IDLE", "arming": False,
         "safety": False, "gate_open": True, "held_open": True, "last_plate": "HJB2201",
         "last_confidence": 0.88, "last_decision": "exit paid", "passed": 175, "refused": 0},
        {"lane": "out-2", "direction": "exit", "state": "AWAIT_DECISION", "arming": True,
         "safety": False, "gate_open": False, "held_open": False, "last_plate": "TRK9O31",
         "last_confidence": 0.61, "last_decision": "exit blocked plate: supervisor",
         "passed": 160, "refused": 1},
    ]
    pools = [("L1", "COMPACT", 10, 10), ("L1", "EV", 5, 2), ("L1", "REGULAR", 40, 33),
             ("L2", "LARGE", 5, 1), ("L2", "REGULAR", 40, 12)]
    availability = {
        "lot_id": "demo-lot", "as_of_seq": 40211,
        "capacity": sum(p[2] for p in pools), "occupied": sum(p[3] for p in pools),
        "free": sum(p[2] - p[3] for p in pools),
        "levels": {"L1": {"capacity": 55, "occupied": 45, "free": 10},
                   "L2": {"capacity": 45, "occupied": 13, "free": 32}},
        "pools": [{"level": lv, "spot_type": t, "capacity": c, "occupied": o, "free": c - o}
                  for lv, t, c, o in pools],
    }
    alarms = [
        {"id": "A3F0C2E91B7D4", "code": "sensor_stale", "source": "RS485:12",
         "severity": "warning", "detail": "no reading for 120 s",
         "raised_utc": "2026-03-14T14:20:11+00:00", "raised_seq": 40190, "cleared_utc": None,
         "acked_by": None, "acked_note": None, "acked_utc": None},
        {"id": "A77B21D0C4E58", "code": "counter_drift", "source": "L1/REGULAR",
         "severity": "warning", "detail": "counter 33 vs sensors 35",
         "raised_utc": "2026-03-14T13:58:40+00:00", "raised_seq": 40102, "cleared_utc": None,
         "acked_by": "ann", "acked_note": "recount at 15:00", "acked_utc": T0},
        {"id": "A0D94E3B2A161", "code": "blocked_plate", "source": "out-2",
         "severity": "critical", "detail": "TRK9O31 on the block list",
         "raised_utc": "2026-03-14T14:31:50+00:00", "raised_seq": 40209, "cleared_utc": None,
         "acked_by": None, "acked_note": None, "acked_utc": None},
    ]
    tickets = [
        _ticket("T8K2M4Q7", "KXP4417", "2026-03-14T11:02:00+00:00", 210,
                [("3 started hours x 3.00 (weekday day rate, Mon-Fri 07:00-19:00)", 900),
                 ("4th hour at the evening rate after the day-rate cap", 300)], spot="L1-R017"),
        _ticket("T5J9W1Z3", "KXP4471", "2026-03-14T13:40:00+00:00", 52,
                [("minimum charge", 200)], override=0, validations=("CINEMA",)),
        _ticket("T2B6C8D0", None, "2026-03-14T09:15:00+00:00", 317,
                [("6 started hours x 3.00", 1800)], paid=1800, status="PAID"),
        _ticket("T7N3P5R1", None, "2026-03-14T13:51:00+00:00", 41,
                [("1 started hour x 3.00", 300)]),
    ]
    return {
        "health": {"ok": True, "version": "0.1.0", "lot_id": "demo-lot", "simulate": True,
                   "uptime_s": 8123.0, "last_seq": 40211, "lanes": lanes, "time_utc": T0,
                   "timezone": "America/New_York", "currency": "USD",
                   "sync": {"online": False, "backlog": 37}},
        "availability": availability, "alarms": alarms, "tickets": tickets,
        "availability/sensors": [
            {"level": lv, "spot_type": t, "spots": c, "sensor_occupied": o,
             "unknown": 2 if (lv, t) == ("L1", "REGULAR") else 0} for lv, t, c, o in pools],
        "attendants": {"ann": ("Ann Lee", "attendant", "11111111"),
                       "sue": ("Sue Ng", "supervisor", "22222222")},
        "shift": {"id": "S4C1E0A9D7B2F", "attendant_id": "sue",
                  "opened_utc": "2026-03-14T06:00:12+00:00", "opened_seq": 38001,
                  "closed_utc": None, "closed_seq": None, "closed_by": None,
                  "expected_cents": 14250, "counted_cents": None, "difference_cents": None,
                  "cash_payments": 23, "cash_cents": 14250, "card_payments": 311,
                  "card_cents": 198450, "validations": 17, "manual_opens": 4, "holds": 1,
                  "overrides": 2, "lost_tickets": 1, "voids": 1, "close_reason": None},
        "activity": [
            {"seq": 40211, "ts_utc": "2026-03-14T14:32:01+00:00", "type": "ticket.issued",
             "text": "IN   in-1: KXP4417 ticket T9Q4L2M8 L1 REGULAR"},
            {"seq": 40209, "ts_utc": "2026-03-14T14:31:50+00:00", "type": "alarm.raised",
             "text": "ALARM CRITICAL blocked_plate out-2: TRK9O31 on the block list"},
            {"seq": 40204, "ts_utc": "2026-03-14T14:30:12+00:00", "type": "payment.recorded",
             "text": "PAY  cash 12.00 captured ticket T4H8J2K6 by sue"},
            {"seq": 40198, "ts_utc": "2026-03-14T14:28:40+00:00", "type": "ticket.closed",
             "text": "OUT  out-1: ticket T1F5G9H3 paid 6.00"},
            {"seq": 40190, "ts_utc": "2026-03-14T14:20:11+00:00", "type": "alarm.raised",
             "text": "ALARM WARNING sensor_stale RS485:12: no reading for 120 s"},
            {"seq": 40187, "ts_utc": "2026-03-14T14:18:02+00:00", "type": "gate.manual_open",
             "text": "GATE OPEN in-2 by sue (ticket jam)"},
        ],
    }


def _norm(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def fixed_transport(state: dict[str, Any] | None = None) -> httpx.MockTransport:
    """An httpx transport answering the service API's GETs from `state` (demo_state by default)."""
    state = copy.deepcopy(state or demo_state())

    def reply(data: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(status, content=json.dumps(data).encode(),
                              headers={"content-type": "application/json"})

    def handle(request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if method == "POST" and path == "/auth/sign-in":
            body = json.loads(request.content or b"{}")
            person = state["attendants"].get(body.get("attendant"))
            if person is None or person[2] != body.get("pin"):
                return reply({"error": "unknown attendant or wrong PIN"}, 401)
            name, role, _ = person
            return reply({"token": f"fixed-{body['attendant']}", "attendant": body["attendant"],
                          "name": name, "role": role, "shift_id": state["shift"]["id"],
                          "permissions": sorted(PERMISSIONS[Role(role)])})
        if method == "POST":
            return reply({"error": "refused: this is a recorded state (read-only)"}, 409)
        if path in ("/health", "/availability", "/availability/sensors", "/shift", "/activity"):
            return reply(state[path[1:]])
        if path == "/lanes":
            return reply(state["health"]["lanes"])
        if path == "/alarms":
            everything = "all" in request.url.params
            return reply([a for a in state["alarms"] if everything or not a["cleared_utc"]])
        if path == "/tickets" and request.url.params.get("no_plate"):
            params = request.url.params
            after, before = (datetime.fromisoformat(params[k]) for k in ("from", "to"))
            return reply([t for t in state["tickets"] if t["plate"] is None
                          and t["status"] in ("OPEN", "PAID")
                          and after <= datetime.fromisoformat(t["entry_utc"]) < before
                          and params.get("lane", t["entry_lane"]) == t["entry_lane"]])
        if path == "/tickets":
            q = _norm(request.url.params.get("q", ""))
            return reply([t for t in state["tickets"]
                          if t["id"] == q or q in (t["plate"] or "")])
        if path.startswith("/tickets/"):
            for t in state["tickets"]:
                if t["id"] == path.split("/")[2]:
                    return reply(t)
        return reply({"error": f"not found: {path}"}, 404)

    return httpx.MockTransport(handle)

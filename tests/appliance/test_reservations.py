"""Reservations: validated import, overbooking limit, no-show release, overstay alarm;
count resets and drift alarms."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from appliance.config import load_config
from appliance.errors import InputError
from appliance.lot import housekeeping
from appliance.lot.reservations import import_records, parse_records, release_no_shows
from appliance.lot.tickets import admit
from appliance.service import Service
from tests.conftest import write_lot

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _rec(i, **kw):
    base = {"id": f"R{i}", "spot_type": "LARGE", "plate": f"ab-c{i:03d}",
            "start": (T0 + timedelta(hours=1)).isoformat(),
            "end": (T0 + timedelta(hours=4)).isoformat()}
    base.update(kw)
    return base


@pytest.mark.parametrize(("bad", "message"), [
    ({"start": "2026-06-01T10:00:00"}, "[0].start: must carry a UTC offset"),
    ({"end": (T0 - timedelta(hours=1)).isoformat()}, "end must be after start"),
    ({"spot_type": "BUS"}, "[0].spot_type"),
    ({"plate": None}, "needs a plate or a code"),
    ({"level": "L9"}, "[0].level: unknown level"),
    ({"surprise": 1}, "[0].surprise"),
])
def test_invalid_records_are_named(lot, bad, message):
    with pytest.raises(InputError) as info:
        parse_records([_rec(0, **bad)], lot.cfg)
    assert message in str(info.value)


def test_plate_is_normalised(lot):
    assert parse_records([_rec(7)], lot.cfg)[0].plate == "ABC007"


async def test_overbooking_limit(lot):
    large = sum(p.capacity for p in lot.availability.pools if str(p.spot_type) == "LARGE")
    cfg = dataclasses.replace(lot.cfg, policy=dataclasses.replace(
        lot.cfg.policy, overbooking_factor=Decimal("1.2")))
    records = parse_records([_rec(i) for i in range(large * 2)], cfg)
    result = await import_records(lot.ledger, cfg, records, source="test")
    assert result == {"accepted": int(large * Decimal("1.2")),
                      "rejected": large * 2 - int(large * Decimal("1.2"))}
    # a reservation in a window that does not overlap is still accepted
    later = parse_records([_rec(99, start=(T0 + timedelta(days=1)).isoformat(),
                                end=(T0 + timedelta(days=1, hours=2)).isoformat())], cfg)
    assert (await import_records(lot.ledger, cfg, later, source="t"))["accepted"] == 1


async def test_no_show_releases_held_capacity(lot):
    await import_records(lot.ledger, lot.cfg, parse_records([_rec(1)], lot.cfg), source="t")
    assert await release_no_shows(lot.ledger, lot.cfg, now=T0 + timedelta(hours=1, minutes=29)) == []
    assert await release_no_shows(lot.ledger, lot.cfg, now=T0 + timedelta(hours=1, minutes=31)) == ["R1"]
    row = await lot.ledger.fetchone("SELECT status FROM reservations WHERE id = 'R1'")
    assert row[0] == "NO_SHOW"


async def test_overstay_into_a_reservation_raises_alarm(lot):
    large = sum(p.capacity for p in lot.availability.pools if str(p.spot_type) == "LARGE")
    for i in range(large):  # LARGE vehicles fill every LARGE space
        assert (await admit(lot.ledger, lot.cfg, lane="in-1", plate=f"BIG{i:03d}",
                            confidence=1, at=T0, vehicle_type="LARGE")).allow
    await import_records(lot.ledger, lot.cfg, parse_records([_rec(5)], lot.cfg), source="t")
    assert await housekeeping.check_reservation_conflicts(lot.runtime, now=T0) == 0  # starts in 1 h
    raised = await housekeeping.check_reservation_conflicts(lot.runtime, now=T0 + timedelta(minutes=50))
    assert raised == 1
    alarm = await lot.ledger.fetchone("SELECT code, source FROM alarms")
    assert tuple(alarm) == ("reservation_overstay", "R5")


async def test_counts_reset_is_audited_and_validated(lot):
    with pytest.raises(InputError):
        await housekeeping.reset_counts(lot.runtime, level="L1", counts={"REGULAR": -1},
                                        attendant="ann", reason="walk")
    with pytest.raises(InputError):
        await housekeeping.reset_counts(lot.runtime, level="L1", counts={"REGULAR": 3},
                                        attendant="ann", reason=" ")
    out = await housekeeping.reset_counts(lot.runtime, level="L1", counts={"REGULAR": 7},
                                          attendant="ann", reason="walk-through")
    assert out["after"] == {"REGULAR": 7}
    row = await lot.ledger.fetchone(
        "SELECT occupied FROM capacity WHERE level_id = 'L1' AND spot_type = 'REGULAR'")
    assert row[0] == 7
    ev = await lot.ledger.fetchone("SELECT payload FROM events WHERE type = 'counts.reset'")
    assert json.loads(ev[0])["attendant"] == "ann"


async def test_loop_drift_raises_and_clears_alarm(lot):
    entry = next(c for c in lot.lanes.values() if c.lane.direction == "entry")
    entry.stats.vehicles_passed = lot.cfg.policy.drift_tolerance + 1  # loops saw cars, no tickets
    assert await housekeeping.check_drift(lot.runtime) == 1
    assert (await lot.ledger.fetchone("SELECT COUNT(*) FROM alarms WHERE cleared_utc IS NULL"))[0] == 1
    entry.stats.vehicles_passed = 0
    await housekeeping.check_drift(lot.runtime)
    assert (await lot.ledger.fetchone("SELECT COUNT(*) FROM alarms WHERE cleared_utc IS NULL"))[0] == 0


def test_cli_import_rejects_bad_file_without_writing(tmp_path):
    cfg_path = write_lot(tmp_path)
    bad = tmp_path / "res.json"
    bad.write_text(json.dumps([_rec(1), _rec(2, end="yesterday")]))
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "reservations", "import",
                           str(bad), "--config", str(cfg_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "[1].end" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    good = tmp_path / "ok.json"
    good.write_text(json.dumps([_rec(1)]))
    proc = subprocess.run([sys.executable, "-m", "appliance.cli", "reservations", "import",
                           str(good), "--config", str(cfg_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"accepted": 1, "rejected": 0}


async def test_nightly_recount_from_sensors_once_at_three(tmp_path):
    from appliance.core.events import NewEvent

    cfg = load_config(write_lot(tmp_path, mode="per_spot", per_level=20))
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    for spot in cfg.spots:  # every sensor reports; L1's first 4 spots see cars
        occupied = spot.level == "L1" and spot.id in {s.id for s in cfg.spots[:4]}
        await service.ledger.append(NewEvent(type="spot.state_changed", payload={
            "spot_id": spot.id, "state": "OCCUPIED" if occupied else "AVAILABLE"}))
    ny = cfg.lot.tz
    two = datetime(2026, 6, 2, 2, 30, tzinfo=ny).astimezone(UTC)
    three = datetime(2026, 6, 2, 3, 5, tzinfo=ny).astimezone(UTC)
    assert await housekeeping.nightly_recount(service.runtime, now=two) == 0
    assert await housekeeping.nightly_recount(service.runtime, now=three) == 2  # both levels
    assert await housekeeping.nightly_recount(service.runtime, now=three) == 0  # once a night
    occ = await service.ledger.fetchall(
        "SELECT level_id, SUM(occupied) FROM capacity GROUP BY level_id ORDER BY level_id")
    assert [tuple(r) for r in occ] == [("L1", 4), ("L2", 0)]
    await service.stop()

"""The tariff a ticket locks at entry: cloud tariffs apply to new tickets only, across restarts."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from datetime import UTC, datetime, timedelta

from appliance.lot import commands
from appliance.lot.tariffs import TariffBook, parse_tariff, tariff_document, tariff_id
from appliance.lot.tickets import admit, release
from appliance.service import Service
from drivers.payment import SimulatedTerminal
from sync.bundle import generate_keypair, sign_bundle, verify_bundle
from sync.downlink import apply_bundle

PRIVATE, PUBLIC = generate_keypair()
TUESDAY = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # no bands or events in the test lot


def bundle(lot_id: str, version: int, tariff: dict | None):
    body = {"lot_id": lot_id, "version": version, "issued_utc": "2026-03-10T08:00:00+00:00",
            "permits": [], "reservations": [], "allow": [], "deny": [], "calendar": []}
    if tariff is not None:
        body["tariff"] = tariff
    return verify_bundle(sign_bundle(body, PRIVATE), public_key_b64=PUBLIC, lot_id=lot_id)


@contextlib.asynccontextmanager
async def started(cfg):
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def enter(service: Service, plate: str, at: datetime):
    outcome = await admit(service.ledger, service.cfg, lane="in-1", plate=plate,
                          confidence=0.95, at=at, tariffs=service.tariffs)
    assert outcome.allow, outcome.reason
    return outcome


async def due_at(service: Service, ticket_id: str, at: datetime) -> int:
    return (await commands.ticket_with_fee(service.runtime, ticket_id, at=at))["fee"]["due_cents"]


async def adopted(service: Service) -> list[tuple[str, int]]:
    rows = await service.ledger.fetchall(
        "SELECT json_extract(payload, '$.source'), "
        "json_extract(payload, '$.tariff.hourly_cents') FROM events "
        "WHERE type = 'tariff.adopted' ORDER BY seq")
    return [tuple(r) for r in rows]


def test_tariff_document_round_trips_and_ids_are_content_addressed(counter_lot):
    tariff = counter_lot.tariff
    assert parse_tariff(tariff_document(tariff)) == tariff
    dearer = dataclasses.replace(tariff, hourly_cents=tariff.hourly_cents + 1)
    assert tariff_id(dearer) != tariff_id(tariff)
    assert tariff_id(parse_tariff(tariff_document(dearer))) == tariff_id(dearer)


async def test_cloud_tariff_prices_new_tickets_only_and_survives_a_restart(counter_lot):
    cfg = counter_lot
    async with started(cfg) as service:
        before = await enter(service, "OLD1", TUESDAY)
        assert "3.00 USD/h" in before.message  # the config's 3.00/h
        cloud = {"grace_minutes": 10, "minimum_charge_cents": 200, "hourly_cents": 900,
                 "daily_max_cents": 5000}
        await apply_bundle(service.ledger, bundle(cfg.lot.id, 1, cloud))
        assert service.tariffs.in_force.tariff.hourly_cents == 900
        assert service.tariffs.describe() == {"id": service.tariffs.in_force.id,
                                              "source": "bundle", "hourly_cents": 900,
                                              "daily_max_cents": 5000}
        after = await enter(service, "NEW1", TUESDAY + timedelta(minutes=1))
        assert "9.00 USD/h" in after.message
        locks = {r["plate"]: r["tariff_id"] for r in await service.ledger.fetchall(
            "SELECT plate, tariff_id FROM tickets")}
        assert locks["OLD1"] == tariff_id(cfg.tariff)
        assert locks["NEW1"] == service.tariffs.in_force.id != locks["OLD1"]

    # A restart keeps the cloud tariff in force and each ticket's own tariff.
    async with started(cfg) as service:
        assert service.tariffs.in_force.tariff.hourly_cents == 900
        two_hours = TUESDAY + timedelta(hours=2, minutes=1)
        assert await due_at(service, before.ticket_id, two_hours) == 3 * 300  # 3 started hours
        assert await due_at(service, after.ticket_id, two_hours) == 2 * 900   # 2 h exactly
        terminal = SimulatedTerminal(decline_rate=0.0, seed=1)
        old_exit = await release(service.ledger, cfg, lane="out-1", plate="OLD1",
                                 scanned_ticket=None, terminal=terminal, at=two_hours,
                                 tariffs=service.tariffs)
        new_exit = await release(service.ledger, cfg, lane="out-1", plate="NEW1",
                                 scanned_ticket=None, terminal=terminal, at=two_hours,
                                 tariffs=service.tariffs)
        assert (old_exit.fee_cents, new_exit.fee_cents) == (900, 1800)
        # The next bundle carries no tariff: the config's tariff is in force again.
        await apply_bundle(service.ledger, bundle(cfg.lot.id, 2, None))
        again = await enter(service, "THIRD1", two_hours)
        assert "3.00 USD/h" in again.message
        assert await due_at(service, again.ticket_id, two_hours + timedelta(hours=1)) == 300
        # Each distinct tariff was recorded once, however often it was seen.
        assert await adopted(service) == [("config", 300), ("bundle v1", 900)]


async def test_an_edited_config_tariff_does_not_reprice_cars_inside(counter_lot):
    cfg = counter_lot
    async with started(cfg) as service:
        inside = await enter(service, "INSIDE1", TUESDAY)
    dearer = dataclasses.replace(cfg, tariff=dataclasses.replace(cfg.tariff, hourly_cents=500))
    async with started(dearer) as service:
        later = await enter(service, "LATER1", TUESDAY + timedelta(minutes=5))
        assert "5.00 USD/h" in later.message
        at = TUESDAY + timedelta(hours=1, minutes=5)
        assert await due_at(service, inside.ticket_id, at) == 2 * 300  # its own 3.00/h
        assert await due_at(service, later.ticket_id, at) == 500
        assert await adopted(service) == [("config", 300), ("config", 500)]


async def test_an_unknown_tariff_id_prices_with_the_config_tariff_rather_than_failing(counter_lot):
    book = TariffBook(counter_lot.tariff)
    assert book.get("0123456789abcdef") is counter_lot.tariff
    assert book.get(None) is counter_lot.tariff


async def test_quote_prices_with_the_tariff_in_force_read_from_the_ledger(
        tmp_path, capsys, monkeypatch):
    from appliance.config import load_config
    from tests.appliance.test_quote_cli import run
    from tests.conftest import write_lot

    path = write_lot(tmp_path, mode="counter")
    cfg = load_config(path)
    stay = ["--entry", TUESDAY.isoformat(), "--exit", (TUESDAY + timedelta(hours=2)).isoformat(),
            "--json"]

    def quote(*extra: str) -> dict:
        code, out, err = run(["quote", "--config", str(path), *stay, *extra], capsys, monkeypatch)
        assert code == 0, err
        return json.loads(out)

    assert quote()["tariff_source"] == "config"  # no ledger yet
    assert quote()["total_cents"] == 2 * 300
    async with started(cfg) as service:
        cloud = {"grace_minutes": 10, "minimum_charge_cents": 200, "hourly_cents": 900,
                 "daily_max_cents": 5000}
        await apply_bundle(service.ledger, bundle(cfg.lot.id, 1, cloud))
        in_force = service.tariffs.in_force.id
        got = quote()  # read-only, beside the running service
    assert (got["tariff_source"], got["tariff_id"], got["total_cents"]) == ("bundle", in_force,
                                                                           2 * 900)
    assert quote()["total_cents"] == 2 * 900  # and after it stopped
    forced = quote("--config-tariff")
    assert (forced["tariff_source"], forced["total_cents"]) == ("config", 2 * 300)
    async with started(cfg) as service:  # a bundle without tariff puts the file's back
        await apply_bundle(service.ledger, bundle(cfg.lot.id, 2, None))
    assert quote()["tariff_source"] == "config"


def test_quote_on_a_damaged_ledger_is_a_one_line_error_and_writes_nothing(
        tmp_path, capsys, monkeypatch):
    from appliance.config import load_config
    from tests.appliance.test_quote_cli import run
    from tests.conftest import write_lot

    path = write_lot(tmp_path, mode="counter")
    db = load_config(path).db_path()
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"not a sqlite file at all" * 100)
    before = db.read_bytes()
    stay = ["--entry", TUESDAY.isoformat(), "--exit", (TUESDAY + timedelta(hours=2)).isoformat()]
    code, out, err = run(["quote", "--config", str(path), *stay], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot read the tariff in force" in err
    assert db.read_bytes() == before
    code, out, _ = run(["quote", "--config", str(path), *stay, "--config-tariff", "--json"],
                       capsys, monkeypatch)
    assert code == 0 and json.loads(out)["total_cents"] == 2 * 300

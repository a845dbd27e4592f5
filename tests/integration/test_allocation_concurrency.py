"""Two lanes (tasks) or two processes allocating at the same instant never share a spot and
never drive a count below zero or above capacity."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

from appliance.config import load_config
from appliance.ledger import Ledger
from appliance.lot.tickets import admit
from appliance.service import Service
from tests.conftest import REPO, write_lot

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _check(db_path, capacity_regular_like: int, admitted: int):
    db = sqlite3.connect(db_path)
    spots = [r[0] for r in db.execute(
        "SELECT spot_id FROM tickets WHERE status = 'OPEN' AND spot_id IS NOT NULL")]
    assert len(spots) == len(set(spots)), "a spot was given twice"
    assert db.execute("SELECT COUNT(*) FROM capacity WHERE occupied > capacity OR occupied < 0"
                      ).fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == admitted
    occupied_spots = db.execute("SELECT COUNT(*) FROM spots WHERE state = 'OCCUPIED'").fetchone()[0]
    assert occupied_spots == admitted == capacity_regular_like
    seqs = [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    db.close()


async def test_thousand_concurrent_requests_in_one_process(tmp_path):
    cfg = load_config(write_lot(tmp_path, mode="per_spot", per_level=60))
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    results = await asyncio.gather(*(
        admit(service.ledger, cfg, lane=f"in-{1 + i % 2}", plate=f"C{i:05d}", confidence=1, at=T0)
        for i in range(1000)))
    admitted = sum(r.allow for r in results)
    assert admitted == len(cfg.spots)  # every spot fits a REGULAR car; the rest were refused
    assert sum(r.reason == "FULL" for r in results) == 1000 - admitted
    assert (await service.ledger.verify()).ok
    path = cfg.db_path()
    await service.stop()
    _check(path, len(cfg.spots), admitted)


WORKER = textwrap.dedent("""
    import asyncio, sys
    from datetime import datetime, UTC
    from appliance.config import load_config
    from appliance.ledger import Ledger
    from appliance.lot.tickets import admit

    async def main(cfg_path, prefix, n):
        cfg = load_config(cfg_path)
        ledger = await Ledger.open(cfg.db_path(), lot_id=cfg.lot.id, tz=cfg.lot.tz)
        at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        results = await asyncio.gather(*(admit(ledger, cfg, lane="in-1", plate=f"{prefix}{i:05d}",
                                               confidence=1, at=at) for i in range(n)))
        await ledger.close()
        print(sum(r.allow for r in results))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")


async def test_two_processes_on_the_same_database(tmp_path):
    cfg_path = write_lot(tmp_path, mode="per_spot", per_level=60)
    cfg = load_config(cfg_path)
    service = Service(cfg, simulate=True, api=False)
    await service.start()  # creates the ledger and records the layout
    await service.stop()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(cfg_path), prefix, "150"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for prefix in ("P", "Q")]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    admitted = sum(int(out.strip()) for out, _ in outs)
    assert admitted == len(cfg.spots)
    ledger = await Ledger.open(cfg.db_path(), lot_id=cfg.lot.id, tz=cfg.lot.tz)
    assert (await ledger.verify()).ok
    await ledger.close()
    _check(cfg.db_path(), len(cfg.spots), admitted)

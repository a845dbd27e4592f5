"""`spot.state_changed` events update the spots table through a real ledger."""

from __future__ import annotations

import pytest

from appliance.config import LotConfig
from appliance.core.events import NewEvent
from appliance.core.occupancy import OccupancySettings, SpotOccupancyFilter
from appliance.ledger import Ledger
from appliance.lot.layout import layout_payload


async def spot_state(ledger: Ledger, spot_id: str) -> str:
    return (await ledger.fetchone("SELECT sensor_state FROM spots WHERE id = ?",
                                  (spot_id,)))["sensor_state"]


async def allocation_state(ledger: Ledger, spot_id: str) -> str:
    return (await ledger.fetchone("SELECT state FROM spots WHERE id = ?", (spot_id,)))["state"]


async def test_sensor_changes_are_projected_onto_spots(spot_lot: LotConfig, tmp_path):
    ledger = await Ledger.open(tmp_path / "l.sqlite3", lot_id=spot_lot.lot.id, tz=spot_lot.lot.tz)
    try:
        await ledger.append(NewEvent(type="lot.configured", payload=layout_payload(spot_lot)))
        spot_id = spot_lot.spots[0].id
        assert await spot_state(ledger, spot_id) == "UNKNOWN"  # no reading yet
        f = SpotOccupancyFilter(spot_id, OccupancySettings(debounce_s=1.0))
        f.observe(80, 0.0)
        change = f.observe(80, 1.0)
        assert change is not None
        await ledger.append(NewEvent(type="spot.state_changed", payload=change.payload()))
        assert await spot_state(ledger, spot_id) == "OCCUPIED"
        # the sensor's view never changes the allocation (a car may sit in the wrong spot)
        assert await allocation_state(ledger, spot_id) == "AVAILABLE"
        stale = f.tick(1.0 + 1800.0)
        await ledger.append(NewEvent(type="spot.state_changed", payload=stale.payload()))
        assert await spot_state(ledger, spot_id) == "UNKNOWN"
        # a sensor never overrides maintenance set by an attendant
        async with ledger.transaction() as tx:
            await tx.execute("UPDATE spots SET state = 'MAINTENANCE' WHERE id = ?", (spot_id,))
        await ledger.append(NewEvent(type="spot.state_changed", payload={
            "spot_id": spot_id, "state": "AVAILABLE", "previous": "UNKNOWN",
            "distance_cm": 400, "confidence": 1.0, "reason": "reading"}))
        assert await allocation_state(ledger, spot_id) == "MAINTENANCE"
        assert await spot_state(ledger, spot_id) == "AVAILABLE"
        with pytest.raises(ValueError, match="not a sensor state"):
            await ledger.append(NewEvent(type="spot.state_changed", payload={
                "spot_id": spot_id, "state": "RESERVED"}))
        assert (await ledger.verify()).ok
    finally:
        await ledger.close()

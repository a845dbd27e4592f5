"""The lot's layout in the ledger: a `lot.configured` event whenever the configured levels,
capacities or spots change (the same layout twice records nothing)."""

from __future__ import annotations

import hashlib
from typing import Any

from appliance.config import LotConfig
from appliance.core.events import NewEvent, canonical_json
from appliance.ledger import Ledger


def layout_payload(cfg: LotConfig) -> dict[str, Any]:
    """The lot layout as recorded in a lot.configured event."""
    capacity: dict[tuple[str, str], int] = {}
    if cfg.spots:
        for spot in cfg.spots:
            key = (spot.level, str(spot.type))
            capacity[key] = capacity.get(key, 0) + 1
    else:
        for level in cfg.levels:
            for spot_type, n in level.capacity.items():
                capacity[(level.id, str(spot_type))] = n
    return {
        "lot": {"id": cfg.lot.id, "name": cfg.lot.name, "timezone": cfg.lot.timezone,
                "currency": cfg.lot.currency, "mode": str(cfg.lot.mode)},
        "levels": [{"id": lvl.id, "name": lvl.name or lvl.id} for lvl in cfg.levels],
        "capacity": [{"level": lv, "spot_type": t, "capacity": n}
                     for (lv, t), n in sorted(capacity.items())],
        "spots": [{"id": s.id, "level": s.level, "type": str(s.type),
                   "distance_cm": s.distance_cm, "sensor": s.sensor} for s in cfg.spots],
    }


async def record_layout(ledger: Ledger, cfg: LotConfig) -> None:
    """Append `lot.configured` unless the ledger already holds this layout."""
    layout = layout_payload(cfg)
    digest = hashlib.sha256(canonical_json(layout).encode()).hexdigest()
    async with ledger.transaction() as tx:
        row = await tx.fetchone("SELECT value FROM meta WHERE key = 'layout_sha256'")
        if row is not None and row["value"] == digest:
            return
        layout["layout_sha256"] = digest
        await tx.append(NewEvent(type="lot.configured", payload=layout))
        await tx.execute(
            "INSERT INTO meta(key, value) VALUES ('layout_sha256', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (digest,))

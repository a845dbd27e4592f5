"""Live availability per lot, level and spot type, read from ledger state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.core.allocation import Pool
from appliance.core.types import SpotType
from appliance.ledger import Ledger


@dataclass(frozen=True, kw_only=True, slots=True)
class Availability:
    """A snapshot of free capacity."""

    lot_id: str
    pools: tuple[Pool, ...]
    as_of_seq: int

    @property
    def capacity(self) -> int:
        """Total spaces."""
        return sum(p.capacity for p in self.pools)

    @property
    def occupied(self) -> int:
        """Spaces taken."""
        return sum(p.occupied for p in self.pools)

    @property
    def free(self) -> int:
        """Spaces left."""
        return sum(p.free for p in self.pools)

    def by_level(self) -> dict[str, dict[str, int]]:
        """{level: {capacity, occupied, free}}."""
        out: dict[str, dict[str, int]] = {}
        for p in self.pools:
            row = out.setdefault(p.level, {"capacity": 0, "occupied": 0, "free": 0})
            row["capacity"] += p.capacity
            row["occupied"] += p.occupied
            row["free"] += p.free
        return out

    def by_type(self) -> dict[str, dict[str, int]]:
        """{spot type: {capacity, occupied, free}}."""
        out: dict[str, dict[str, int]] = {}
        for p in self.pools:
            row = out.setdefault(str(p.spot_type), {"capacity": 0, "occupied": 0, "free": 0})
            row["capacity"] += p.capacity
            row["occupied"] += p.occupied
            row["free"] += p.free
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON form, as served to display boards and the cloud."""
        return {
            "lot_id": self.lot_id,
            "as_of_seq": self.as_of_seq,
            "capacity": self.capacity,
            "occupied": self.occupied,
            "free": self.free,
            "levels": self.by_level(),
            "types": self.by_type(),
            "pools": [
                {"level": p.level, "spot_type": str(p.spot_type), "capacity": p.capacity,
                 "occupied": p.occupied, "free": p.free}
                for p in self.pools
            ],
        }


POOLS_SQL = (
    "SELECT c.level_id, c.spot_type, c.capacity, c.occupied, l.position "
    "FROM capacity c JOIN levels l ON l.id = c.level_id "
    "WHERE c.capacity > 0 OR c.occupied > 0 ORDER BY l.position, c.spot_type"
)


def pools_from_rows(rows: list[Any]) -> tuple[Pool, ...]:
    """Pools from rows of POOLS_SQL."""
    return tuple(
        Pool(level=r[0], spot_type=SpotType(r[1]), capacity=r[2], occupied=r[3],
             level_position=r[4])
        for r in rows
    )


async def read_availability(ledger: Ledger) -> Availability:
    """Current availability from the ledger's tables."""
    rows = await ledger.fetchall(POOLS_SQL)
    return Availability(lot_id=ledger.lot_id, pools=pools_from_rows(rows),
                        as_of_seq=await ledger.last_seq())

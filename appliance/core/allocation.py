"""Which spot (or level/type pool) a vehicle gets: pure functions over a snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from appliance.core.types import AllocationStrategy, SpotType, VehicleType

# Size classes each physical spot type accepts (before the EV/permit rules).
_SIZE_FITS: dict[SpotType, frozenset[VehicleType]] = {
    SpotType.MOTORCYCLE: frozenset({VehicleType.MOTORCYCLE}),
    SpotType.COMPACT: frozenset({VehicleType.MOTORCYCLE, VehicleType.COMPACT}),
    SpotType.REGULAR: frozenset(
        {VehicleType.MOTORCYCLE, VehicleType.COMPACT, VehicleType.REGULAR}
    ),
    SpotType.LARGE: frozenset(VehicleType),
    SpotType.EV: frozenset({VehicleType.MOTORCYCLE, VehicleType.COMPACT, VehicleType.REGULAR}),
    SpotType.HANDICAP: frozenset(
        {VehicleType.MOTORCYCLE, VehicleType.COMPACT, VehicleType.REGULAR}
    ),
}

# Smallest first: preserve larger spots for larger vehicles.
_SIZE_ORDER = [SpotType.MOTORCYCLE, SpotType.COMPACT, SpotType.REGULAR, SpotType.LARGE]


def fits(spot_type: SpotType, vehicle: VehicleType, *, is_ev: bool = False,
         has_permit: bool = False) -> bool:
    """Whether a vehicle may use a spot of this type."""
    if spot_type == SpotType.EV and not is_ev:
        return False
    if spot_type == SpotType.HANDICAP and not has_permit:
        return False
    return vehicle in _SIZE_FITS[spot_type]


def preference(vehicle: VehicleType, *, is_ev: bool = False,
               has_permit: bool = False) -> list[SpotType]:
    """Spot types a vehicle fits, most appropriate first (special spots first if entitled)."""
    order: list[SpotType] = []
    if has_permit:
        order.append(SpotType.HANDICAP)
    if is_ev:
        order.append(SpotType.EV)
    order.extend(_SIZE_ORDER)
    return [t for t in order if fits(t, vehicle, is_ev=is_ev, has_permit=has_permit)]


@dataclass(frozen=True, kw_only=True, slots=True)
class Pool:
    """Capacity of one spot type on one level (counter arithmetic)."""

    level: str
    spot_type: SpotType
    capacity: int
    occupied: int
    level_position: int = 0

    @property
    def free(self) -> int:
        """Spaces left (never negative)."""
        return max(0, self.capacity - self.occupied)


@dataclass(frozen=True, kw_only=True, slots=True)
class FreeSpot:
    """A spot currently available in per-spot mode."""

    id: str
    level: str
    spot_type: SpotType
    distance_cm: int
    level_position: int = 0


def choose_pool(
    pools: Iterable[Pool],
    vehicle: VehicleType,
    *,
    strategy: AllocationStrategy = AllocationStrategy.NEAREST,
    is_ev: bool = False,
    has_permit: bool = False,
) -> Pool | None:
    """The level/type pool a vehicle is counted against, or None when full for it."""
    prefs = preference(vehicle, is_ev=is_ev, has_permit=has_permit)
    usable = [p for p in pools if p.free > 0 and p.spot_type in prefs]
    if not usable:
        return None
    if strategy == AllocationStrategy.SPREAD:
        level_load = _level_load(pools)
        return min(usable, key=lambda p: (level_load[p.level], prefs.index(p.spot_type),
                                          p.level_position))
    return min(usable, key=lambda p: (prefs.index(p.spot_type), p.level_position))


def choose_spot(
    spots: Sequence[FreeSpot],
    vehicle: VehicleType,
    *,
    strategy: AllocationStrategy = AllocationStrategy.NEAREST,
    is_ev: bool = False,
    has_permit: bool = False,
    pools: Iterable[Pool] = (),
) -> FreeSpot | None:
    """The spot a vehicle is sent to, or None when none fits."""
    prefs = preference(vehicle, is_ev=is_ev, has_permit=has_permit)
    usable = [s for s in spots if s.spot_type in prefs]
    if not usable:
        return None
    if strategy == AllocationStrategy.SPREAD:
        level_load = _level_load(pools)
        return min(usable, key=lambda s: (level_load.get(s.level, 0.0), prefs.index(s.spot_type),
                                          s.distance_cm, s.id))
    if strategy == AllocationStrategy.PRESERVE_LARGER:
        return min(usable, key=lambda s: (prefs.index(s.spot_type), s.distance_cm, s.id))
    return min(usable, key=lambda s: (s.distance_cm, prefs.index(s.spot_type), s.id))


def _level_load(pools: Iterable[Pool]) -> dict[str, float]:
    totals: dict[str, list[int]] = {}
    for p in pools:
        cap_occ = totals.setdefault(p.level, [0, 0])
        cap_occ[0] += p.capacity
        cap_occ[1] += p.occupied
    return {lvl: (occ / cap if cap else 1.0) for lvl, (cap, occ) in totals.items()}

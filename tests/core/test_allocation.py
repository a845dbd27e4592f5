"""Compatibility matrix and strategy choices of the pure allocator."""

from __future__ import annotations

import pytest

from appliance.core.allocation import FreeSpot, Pool, choose_pool, choose_spot, fits
from appliance.core.types import AllocationStrategy, SpotType, VehicleType

V, S = VehicleType, SpotType

MATRIX = {
    V.MOTORCYCLE: {S.MOTORCYCLE, S.COMPACT, S.REGULAR, S.LARGE},
    V.COMPACT: {S.COMPACT, S.REGULAR, S.LARGE},
    V.REGULAR: {S.REGULAR, S.LARGE},
    V.LARGE: {S.LARGE},
}


@pytest.mark.parametrize("vehicle", list(V))
@pytest.mark.parametrize("spot", list(S))
def test_compatibility_matrix(vehicle, spot):
    assert fits(spot, vehicle) == (spot in MATRIX[vehicle])


def test_ev_and_handicap_need_entitlement():
    assert not fits(S.EV, V.REGULAR)
    assert fits(S.EV, V.REGULAR, is_ev=True)
    assert not fits(S.HANDICAP, V.COMPACT)
    assert fits(S.HANDICAP, V.COMPACT, has_permit=True)


def test_nearest_picks_closest_compatible_spot():
    spots = [FreeSpot(id="far", level="L1", spot_type=S.REGULAR, distance_cm=900),
             FreeSpot(id="near-small", level="L1", spot_type=S.COMPACT, distance_cm=10),
             FreeSpot(id="near", level="L1", spot_type=S.LARGE, distance_cm=100)]
    assert choose_spot(spots, V.REGULAR).id == "near"


def test_preserve_larger_takes_exact_type_first():
    spots = [FreeSpot(id="large", level="L1", spot_type=S.LARGE, distance_cm=1),
             FreeSpot(id="regular", level="L1", spot_type=S.REGULAR, distance_cm=999)]
    chosen = choose_spot(spots, V.REGULAR, strategy=AllocationStrategy.PRESERVE_LARGER)
    assert chosen.id == "regular"


def test_spread_prefers_least_occupied_level():
    pools = [Pool(level="L1", spot_type=S.REGULAR, capacity=10, occupied=8, level_position=0),
             Pool(level="L2", spot_type=S.REGULAR, capacity=10, occupied=2, level_position=1)]
    assert choose_pool(pools, V.REGULAR, strategy=AllocationStrategy.SPREAD).level == "L2"
    assert choose_pool(pools, V.REGULAR).level == "L1"


def test_full_for_type_returns_none():
    pools = [Pool(level="L1", spot_type=S.REGULAR, capacity=5, occupied=5),
             Pool(level="L1", spot_type=S.COMPACT, capacity=5, occupied=0)]
    assert choose_pool(pools, V.REGULAR) is None
    assert choose_pool(pools, V.COMPACT).spot_type == S.COMPACT

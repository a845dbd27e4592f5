"""Fixtures for the shell tests: a started (not running) service on a small counter lot."""

from __future__ import annotations

import pytest

from appliance.config import load_config
from appliance.service import Service
from tests.conftest import write_lot


@pytest.fixture
async def lot(tmp_path):
    """A started service on a 2-level counter lot (ledger open, lanes built, nothing running)."""
    async for service in _started(tmp_path, mode="counter", per_level=30):
        yield service


@pytest.fixture
async def spot_lot_service(tmp_path):
    """The same on a 2-level per-spot lot (20 spots a level, simulated spot sensors)."""
    async for service in _started(tmp_path, mode="per_spot", per_level=20):
        yield service


async def _started(tmp_path, *, mode: str, per_level: int):
    service = Service(load_config(write_lot(tmp_path, mode=mode, per_level=per_level)),
                      simulate=True, api=False)
    await service.start()
    yield service
    await service.stop()

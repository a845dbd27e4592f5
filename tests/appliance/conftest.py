"""Fixtures for the shell tests: a started (not running) service on a small counter lot."""

from __future__ import annotations

import pytest

from appliance.config import load_config
from appliance.service import Service
from tests.conftest import write_lot


@pytest.fixture
async def lot(tmp_path):
    """A started service on a 2-level counter lot (ledger open, lanes built, nothing running)."""
    cfg = load_config(write_lot(tmp_path, mode="counter", per_level=30))
    service = Service(cfg, simulate=True, api=False)
    await service.start()
    yield service
    await service.stop()

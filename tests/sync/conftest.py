"""Fixtures of the sync tests: a real Mosquitto started per test on a free loopback port."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.devbroker import MOSQUITTO, Broker


@pytest.fixture
def broker(tmp_path: Path):
    """A running private Mosquitto for one test (stop/kill/restart it to simulate outages)."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed (make setup installs it)")
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()

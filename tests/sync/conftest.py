"""Fixtures of the sync tests: a real Mosquitto started per test on a free loopback port, and a
private PostgreSQL cluster per session (never the machine's own servers)."""

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


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL on a free loopback port for the whole session."""
    from tests.sync.pgserver import PgServer, pg_bin

    if pg_bin("initdb") is None:
        pytest.fail("PostgreSQL server programs are not installed (make setup installs them)")
    server = PgServer()
    try:
        server.init()
        server.start()
        server.wait_ready()
        yield server
        server.stop("immediate")
    finally:
        server.remove()

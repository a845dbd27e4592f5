"""LED availability sign: pure write policy, and the driver against a simulated sign on a pty."""

from __future__ import annotations

from pathlib import Path

from drivers.health import HealthRegistry
from drivers.serial_sim import SimulatedSign
from drivers.sign import LedSign, SignPolicy, encode_sign, sign_text
from tests.drivers.helpers import wait_until


def test_sign_text_and_frame():
    assert sign_text(45) == "045"
    assert sign_text(0) == "FULL"
    assert sign_text(3, full_at=3) == "FULL"
    assert sign_text(1500) == "999"
    assert encode_sign({"L1": "045", "ALL": "FULL"}) == b"L1:045\r\nALL:FULL\r\n"


def test_policy_sends_on_threshold_crossings_and_on_refresh():
    p = SignPolicy(thresholds=(0, 10), refresh_s=30)
    assert p.decide({"L1": 40}, 0.0) == {"L1": "040"}
    assert p.decide({"L1": 39}, 1.0) is None  # same band: wait for the refresh
    assert p.decide({"L1": 10}, 2.0) == {"L1": "010"}  # crossed 10
    assert p.decide({"L1": 0}, 3.0) == {"L1": "FULL"}  # crossed 0
    assert p.decide({"L1": 0}, 4.0) is None
    assert p.decide({"L1": 0}, 33.0) == {"L1": "FULL"}  # refresh / keep-alive



async def test_sign_driver_speaks_the_protocol_over_a_pty(tmp_path: Path):
    sim = SimulatedSign(tmp_path / "ttySign").start()
    sign = LedSign("sign-entry", sim.path, fields={"L1": "L1", "L2": "L2", "ALL": "ALL"},
                   policy=SignPolicy(thresholds=(0, 10), refresh_s=60), health=HealthRegistry())
    try:
        assert await sign.show({"L1": 45, "L2": 3}, now_s=0.0)
        assert await wait_until(lambda: sim.shown == {"L1": "045", "L2": "003", "ALL": "048"})
        assert not await sign.show({"L1": 44, "L2": 3}, now_s=1.0)
        assert await sign.show({"L1": 44, "L2": 0}, now_s=2.0)
        assert await wait_until(lambda: sim.shown["L2"] == "FULL")
        assert sim.lines == ["L1:045", "L2:003", "ALL:048", "L1:044", "L2:FULL", "ALL:044"]
        # the sign is unplugged: the write fails, is counted, and is retried when it is back
        sim.device.unplug()
        assert not await sign.show({"L1": 0, "L2": 0}, now_s=3.0)
        sim.device.plug()
        assert await sign.show({"L1": 0, "L2": 0}, now_s=4.0)
        assert await wait_until(lambda: sim.shown["ALL"] == "FULL")
    finally:
        sign.link.close()
        sim.stop()
    assert sign.health.counters["port_lost"] + sign.health.counters.get("open_failures", 0) >= 1
    assert sign.writes == 3

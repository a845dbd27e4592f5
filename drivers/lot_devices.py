"""Building a lot's serial devices from its configuration, and their simulators for `--simulate`.

`SimulatedPorts.start(cfg, run_dir)` creates a pty simulator for every bus or sign whose
`port = "sim"`; `spot_sensor_array(...)` and `led_signs(...)` build the real drivers on the
resulting paths (or on the configured device paths on a Pi).
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from appliance.config import LotConfig
from drivers.health import HealthRegistry
from drivers.serial_sim import SimulatedMaxBotix, SimulatedRs485Bus, SimulatedSign
from drivers.sign import LedSign, SignPolicy
from drivers.spot_sensors import BusSpec, SpotSensorArray, sensor_key

FREE_CM = 400
OCCUPIED_CM = 60


class SimulatedPorts:
    """Pty simulators standing in for every `port = "sim"` bus and sign of a lot."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        self.buses: dict[str, SimulatedRs485Bus] = {}
        self.maxbotix: dict[str, SimulatedMaxBotix] = {}
        self.signs: dict[str, SimulatedSign] = {}
        self._spot_sensor: dict[str, tuple[str, int]] = {}

    @classmethod
    def start(cls, cfg: LotConfig, run_dir: Path, *, seed: int | None = None) -> SimulatedPorts:
        """Create and start the simulators (device links live in `run_dir`)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        sims = cls()
        rng = random.Random(seed)
        addresses: dict[str, list[int]] = defaultdict(list)
        for spot in cfg.spots:
            if spot.sensor:
                bus, _, addr = sensor_key(spot.sensor).partition(":")
                addresses[bus].append(int(addr))
                sims._spot_sensor[spot.id] = (bus, int(addr))
        for bus in cfg.sensor_buses:
            if bus.port != "sim":
                continue
            link = run_dir / f"tty-{bus.id}"
            if bus.protocol == "maxbotix":
                sim = SimulatedMaxBotix(link, distance_cm=FREE_CM, interval_s=0.1,
                                        seed=rng.randrange(1 << 30)).start()
                sims.maxbotix[bus.id] = sim
            else:
                sim = SimulatedRs485Bus(link, distances=dict.fromkeys(addresses[bus.id], FREE_CM),
                                        seed=rng.randrange(1 << 30)).start()
                sims.buses[bus.id] = sim
            sims.paths[bus.id] = sim.path
        for sign in cfg.signs:
            if sign.port == "sim":
                sim_sign = SimulatedSign(run_dir / f"tty-{sign.id}").start()
                sims.signs[sign.id] = sim_sign
                sims.paths[sign.id] = sim_sign.path
        return sims

    def set_distance(self, spot_id: str, distance_cm: int | None) -> bool:
        """Put a target at `distance_cm` in front of a spot's sensor (None: sensor silent)."""
        where = self._spot_sensor.get(spot_id)
        if where is None:
            return False
        bus, addr = where
        if bus in self.buses:
            self.buses[bus].distances[addr] = distance_cm
            return True
        if bus in self.maxbotix:
            self.maxbotix[bus].distance_cm = distance_cm
            return True
        return False

    def park(self, spot_id: str) -> bool:
        """A car parks in the spot."""
        return self.set_distance(spot_id, OCCUPIED_CM)

    def leave(self, spot_id: str) -> bool:
        """The car leaves the spot."""
        return self.set_distance(spot_id, FREE_CM)

    def stop(self) -> None:
        """Stop every simulator and remove the device links."""
        for sim in [*self.buses.values(), *self.maxbotix.values(), *self.signs.values()]:
            sim.stop()


def _port(port: str, device_id: str, sims: SimulatedPorts | None) -> str:
    if port != "sim":
        return port
    if sims is None or device_id not in sims.paths:
        raise ValueError(f"{device_id}: port is \"sim\" but no simulator was started")
    return sims.paths[device_id]


def spot_sensor_array(cfg: LotConfig, health: HealthRegistry,
                      sims: SimulatedPorts | None = None) -> SpotSensorArray:
    """The lot's spot sensors as configured (simulated ports resolved through `sims`)."""
    buses = [BusSpec(id=b.id, port=_port(b.port, b.id, sims), protocol=b.protocol, baud=b.baud,
                     poll_interval_ms=b.poll_interval_ms,
                     request_timeout_ms=b.request_timeout_ms)
             for b in cfg.sensor_buses]
    return SpotSensorArray(buses, cfg.spots, settings_for=cfg.devices.occupancy, health=health)


def led_signs(cfg: LotConfig, health: HealthRegistry,
              sims: SimulatedPorts | None = None) -> list[LedSign]:
    """The lot's availability signs as configured."""
    return [LedSign(s.id, _port(s.port, s.id, sims), fields=s.fields, health=health, baud=s.baud,
                    policy=SignPolicy(thresholds=s.thresholds, refresh_s=s.refresh_s,
                                      full_at=s.full_at))
            for s in cfg.signs]

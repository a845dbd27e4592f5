"""LED availability sign on a serial port.

Protocol (ASCII, one field per line, CR LF terminated; the sign answers nothing):

    <FIELD>:<NNN>\\r\\n    free spaces, three digits, 000..999 (capped at 999)
    <FIELD>:FULL\\r\\n     free <= full_at (default 0)

FIELD is a level id (`L1`) or `ALL` for the lot total at an entrance. The appliance sends all
fields of a sign together when a count crosses one of the sign's thresholds (immediately) and
otherwise every `refresh_s` (which also serves as the sign's keep-alive).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from appliance.errors import DeviceError
from drivers.health import HealthRegistry
from drivers.serial_link import SerialLink

log = logging.getLogger(__name__)


def sign_text(free: int, *, full_at: int = 0) -> str:
    """What a field shows for `free` spaces."""
    return "FULL" if free <= full_at else f"{min(free, 999):03d}"


def encode_sign(texts: Mapping[str, str]) -> bytes:
    """The bytes of one sign update (fields in the given order)."""
    return "".join(f"{field}:{text}\r\n" for field, text in texts.items()).encode("ascii")


class SignPolicy:
    """Decides when a sign is written (pure: time is passed in).

    Args:
        thresholds: free-space counts whose crossing is shown at once (e.g. FULL, "few left").
        refresh_s: otherwise the exact counts are re-sent this often.
        full_at: show FULL at or below this many free spaces.
    """

    def __init__(self, *, thresholds: Sequence[int] = (0, 5, 10, 50), refresh_s: float = 10.0,
                 full_at: int = 0) -> None:
        self.thresholds = tuple(sorted(thresholds))
        self.refresh_s = refresh_s
        self.full_at = full_at
        self._last_s: float | None = None
        self._bands: dict[str, int] = {}

    def band(self, free: int) -> int:
        """Index of the threshold interval `free` lies in."""
        return sum(1 for t in self.thresholds if free > t)

    def decide(self, free: Mapping[str, int], now_s: float) -> dict[str, str] | None:
        """The texts to send now, or None if the sign is up to date enough."""
        bands = {f: self.band(v) for f, v in free.items()}
        due = (self._last_s is None or now_s - self._last_s >= self.refresh_s
               or bands != self._bands)
        if not due:
            return None
        self._last_s = now_s
        self._bands = bands
        return {f: sign_text(v, full_at=self.full_at) for f, v in free.items()}

    def force(self) -> None:
        """Send at the next decision (after a failed write)."""
        self._last_s = None


class LedSign:
    """One availability sign.

    Args:
        sign_id: its id (health device name).
        url: its serial port.
        fields: sign field -> level id, or 'ALL' for the sum of all levels.
        policy: when to write.
        health: the device registry.
        baud: line speed.
    """

    def __init__(self, sign_id: str, url: str, *, fields: Mapping[str, str],
                 policy: SignPolicy | None = None, health: HealthRegistry,
                 baud: int = 9600) -> None:
        self.sign_id = sign_id
        self.fields = dict(fields)
        self.policy = policy or SignPolicy()
        self.health = health.device(sign_id, "sign")
        self.link = SerialLink(sign_id, url, baud=baud, health=self.health)
        self.writes = 0
        self.last_texts: dict[str, str] = {}

    def _field_values(self, free_by_level: Mapping[str, int]) -> dict[str, int]:
        return {field: (sum(free_by_level.values()) if level == "ALL"
                        else free_by_level.get(level, 0))
                for field, level in self.fields.items()}

    def _write(self, data: bytes) -> bool:
        if not self.link.try_open():
            return False
        try:
            self.link.write(data)
        except DeviceError:
            return False
        return True

    async def show(self, free_by_level: Mapping[str, int], now_s: float | None = None) -> bool:
        """Update the sign if the policy says so; True if something was written."""
        now = time.monotonic() if now_s is None else now_s
        texts = self.policy.decide(self._field_values(free_by_level), now)
        if texts is None:
            return False
        if not await asyncio.to_thread(self._write, encode_sign(texts)):
            self.policy.force()
            return False
        self.writes += 1
        self.last_texts = texts
        self.health.count("writes")
        self.health.seen("ok")
        self.health.info["showing"] = dict(texts)
        return True

    async def run(self, free_by_level: Callable[[], Mapping[str, int]],
                  tick_s: float = 1.0) -> None:
        """Check the counts every `tick_s` and update the sign when due, until cancelled."""
        try:
            while True:
                try:
                    await self.show(free_by_level())
                except Exception:  # a sign must never take the service down
                    log.exception("sign %s update failed", self.sign_id)
                await asyncio.sleep(tick_s)
        finally:
            self.link.close()

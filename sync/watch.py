"""When a sync problem is worth an attendant alarm: pure logic, time passed in.

Two conditions, each raised once and cleared when it goes away:

* ``sync_offline``: the uplink has had no broker connection for ``offline_alarm_s``
  (broker down, network down, wrong credentials). Gates keep working; events queue locally.
* ``sync_stalled``: the broker is up and events are waiting, but the cloud has acknowledged
  nothing for ``offline_alarm_s`` (the cloud ingest is down behind a live broker).
* ``cloud_api_unreachable``: every bundle fetch from the cloud API has failed for
  ``offline_alarm_s`` (API down, DNS, TLS, HTTP 5xx). Gates keep working on the last applied
  bundle's permits, lists and tariff.

A short blip (a broker restart, a flapping link) raises nothing: only a condition that lasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SyncAlarm:
    """Raise (or clear, when ``raise_`` is False) alarm ``code`` of ``source`` (the part of
    sync it is about: "uplink" for the broker link, "downlink" for the cloud API)."""

    code: str
    raise_: bool
    detail: str = ""
    source: str = "uplink"


@dataclass
class SyncWatch:
    """Feed it observations; it answers with the alarm changes to record.

    Args:
        alarm_after_s: how long a condition must last before it is an alarm.
    """

    alarm_after_s: float
    _offline_since: float | None = None
    _stalled_since: float | None = None
    _last_acked: int | None = None
    _api_down_since: float | None = None
    active: set[str] = field(default_factory=set)

    def observe(self, now_s: float, *, connected: bool, backlog: int, acked_through: int,
                api_ok: bool | None = None, api_error: str = "") -> list[SyncAlarm]:
        """One observation at monotonic time ``now_s``.

        ``api_ok``: whether the last bundle fetch worked (None: no API configured or not tried
        yet); ``api_error``: why the last one failed.
        """
        changes: list[SyncAlarm] = []
        if api_ok is False:
            if self._api_down_since is None:
                self._api_down_since = now_s
        else:
            self._api_down_since = None
        if connected:
            self._offline_since = None
        elif self._offline_since is None:
            self._offline_since = now_s
        if not connected or backlog == 0 or acked_through != self._last_acked:
            self._stalled_since = now_s if connected and backlog else None
        elif self._stalled_since is None:
            self._stalled_since = now_s
        self._last_acked = acked_through
        offline_for = None if self._offline_since is None else now_s - self._offline_since
        stalled_for = None if self._stalled_since is None else now_s - self._stalled_since
        changes += self._edge("sync_offline", "uplink", offline_for,
                              f"no broker connection for {offline_for or 0:.0f} s; "
                              f"{backlog} events waiting (gates unaffected)")
        changes += self._edge("sync_stalled", "uplink", stalled_for,
                              f"broker up but no cloud acknowledgement for {stalled_for or 0:.0f} s; "
                              f"{backlog} events waiting")
        api_down_for = None if self._api_down_since is None else now_s - self._api_down_since
        changes += self._edge("cloud_api_unreachable", "downlink", api_down_for,
                              f"bundle fetches failing for {api_down_for or 0:.0f} s "
                              f"({api_error or 'no answer'}); permits, lists and tariff stay "
                              "as last applied (gates unaffected)")
        return changes

    def _edge(self, code: str, source: str, lasted_s: float | None,
              detail: str) -> list[SyncAlarm]:
        if lasted_s is not None and lasted_s >= self.alarm_after_s and code not in self.active:
            self.active.add(code)
            return [SyncAlarm(code, True, detail, source)]
        if (lasted_s is None or lasted_s < self.alarm_after_s) and code in self.active:
            self.active.discard(code)
            return [SyncAlarm(code, False, source=source)]
        return []

"""SyncWatch: which sync conditions become attendant alarms, and when they clear."""

from __future__ import annotations

from sync.watch import SyncAlarm, SyncWatch


def test_a_broker_outage_longer_than_the_threshold_raises_once_and_clears_on_reconnect():
    w = SyncWatch(alarm_after_s=600)
    assert w.observe(0, connected=True, backlog=0, acked_through=10) == []
    assert w.observe(100, connected=False, backlog=5, acked_through=10) == []
    assert w.observe(699, connected=False, backlog=50, acked_through=10) == []
    raised = w.observe(700, connected=False, backlog=60, acked_through=10)
    assert [(a.code, a.raise_) for a in raised] == [("sync_offline", True)]
    assert "600 s" in raised[0].detail and "60 events waiting" in raised[0].detail
    assert w.observe(900, connected=False, backlog=90, acked_through=10) == []  # once
    assert w.observe(901, connected=True, backlog=90, acked_through=10) == [
        SyncAlarm("sync_offline", False)]


def test_a_flapping_link_never_raises_an_alarm():
    w = SyncWatch(alarm_after_s=600)
    for minute in range(0, 240, 10):  # down 5 minutes out of every 10, for four hours
        assert w.observe(minute * 60, connected=False, backlog=9, acked_through=minute) == []
        assert w.observe(minute * 60 + 299, connected=False, backlog=9, acked_through=minute) == []
        assert w.observe(minute * 60 + 300, connected=True, backlog=0, acked_through=minute + 1) == []


def test_a_live_broker_with_a_silent_cloud_is_a_stall_and_an_ack_clears_it():
    w = SyncWatch(alarm_after_s=60)
    assert w.observe(0, connected=True, backlog=3, acked_through=7) == []
    raised = w.observe(61, connected=True, backlog=40, acked_through=7)
    assert [(a.code, a.raise_) for a in raised] == [("sync_stalled", True)]
    assert w.observe(62, connected=True, backlog=41, acked_through=8) == [
        SyncAlarm("sync_stalled", False)]
    # nothing waiting is no stall, however long no ack comes
    w2 = SyncWatch(alarm_after_s=60)
    assert w2.observe(0, connected=True, backlog=0, acked_through=7) == []
    assert w2.observe(1000, connected=True, backlog=0, acked_through=7) == []


def test_bundle_fetches_failing_for_long_raise_cloud_api_unreachable_and_a_success_clears_it():
    w = SyncWatch(alarm_after_s=600)
    up = {"connected": True, "backlog": 0, "acked_through": 5}
    assert w.observe(0, **up, api_ok=None) == []  # not tried yet
    assert w.observe(10, **up, api_ok=False, api_error="connect refused") == []
    assert w.observe(609, **up, api_ok=False, api_error="connect refused") == []
    raised = w.observe(610, **up, api_ok=False, api_error="HTTP 503")
    assert [(a.code, a.raise_, a.source) for a in raised] == [
        ("cloud_api_unreachable", True, "downlink")]
    assert "600 s" in raised[0].detail and "HTTP 503" in raised[0].detail
    assert w.observe(900, **up, api_ok=False) == []  # once
    assert w.observe(901, **up, api_ok=True) == [
        SyncAlarm("cloud_api_unreachable", False, source="downlink")]
    # a lot without a cloud API never raises it
    w2 = SyncWatch(alarm_after_s=60)
    assert w2.observe(0, **up) == [] and w2.observe(10_000, **up) == []

"""The ingest's fast path (orjson) checks and stores exactly what the reference canonical_json
would: the same stored text, the same refusals, for any JSON payload."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.events import GENESIS_HASH, canonical_json, chain_hash, event_body
from sync import cloud_store
from sync.cloud_store import check_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def event(payload, *, mono_ns=7):
    payload_json = canonical_json(payload)
    body = event_body(seq=1, event_id="e-1", lot_id="lot-a", type="plate.read",
                      ts_utc="2026-11-20T08:00:00+00:00", ts_local="2026-11-20T09:00:00+01:00",
                      mono_ns=mono_ns, payload_json=payload_json)
    return {"seq": 1, "event_id": "e-1", "lot_id": "lot-a", "type": "plate.read",
            "ts_utc": "2026-11-20T08:00:00+00:00", "ts_local": "2026-11-20T09:00:00+01:00",
            "mono_ns": mono_ns, "payload": payload, "prev_hash": GENESIS_HASH,
            "hash": chain_hash(GENESIS_HASH, body)}


@settings(max_examples=400)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6),
       st.integers(min_value=0, max_value=2**70))
def test_fast_and_reference_paths_agree(payload, mono_ns):
    e = event(payload, mono_ns=mono_ns)
    row = check_event("lot-a", e)
    assert isinstance(row, tuple) and row[7] == canonical_json(payload)
    tampered = {**e, "payload": {**payload, "extra": 1}}
    assert isinstance(check_event("lot-a", tampered), str)
    saved, cloud_store._orjson = cloud_store._orjson, None  # the reference path alone
    try:
        assert check_event("lot-a", e) == row
        assert isinstance(check_event("lot-a", tampered), str)
    finally:
        cloud_store._orjson = saved


def test_the_fast_path_is_in_use():
    assert cloud_store._orjson is not None  # pinned in pyproject: a silent fallback is slow

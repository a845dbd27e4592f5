"""Bad input: the config loader and the local API either work or refuse with a clear error.

(The serial parsers are fuzzed where they live: tests/drivers/test_frames.py.)
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import tomllib
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import LotConfig, load_config, parse_config
from appliance.core.events import verify_chain
from appliance.errors import ConfigError
from tests.conftest import FAST_LOT, write_lot

BASE_TEXT = FAST_LOT.format(mode="counter", capacity_l1='capacity = { REGULAR = 40, EV = 5 }',
                            capacity_l2='capacity = { REGULAR = 40 }', spots="",
                            data_dir="/tmp/lotedge-fuzz")
BASE = tomllib.loads(BASE_TEXT)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_scalar(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def dump_toml(doc: dict[str, Any]) -> str:
    """A small TOML writer for config-shaped documents (tables, arrays of tables, inline rest)."""
    out: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            out.append(f"[{json.dumps(key)}]")
            out.extend(f"{json.dumps(k)} = {_scalar(v)}" for k, v in value.items())
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                out.append(f"[[{json.dumps(key)}]]")
                out.extend(f"{json.dumps(k)} = {_scalar(v)}" for k, v in item.items())
        else:
            out.insert(0, f"{json.dumps(key)} = {_scalar(value)}")
    return "\n".join(out) + "\n"


def test_the_toml_writer_round_trips_the_base_lot():
    assert tomllib.loads(dump_toml(BASE)) == BASE
    assert isinstance(parse_config(dump_toml(BASE)), LotConfig)


def _outcome(text: str) -> LotConfig | ConfigError:
    try:
        return parse_config(text, path="fuzz.toml")
    except ConfigError as err:
        message = str(err)
        assert message and "\n" not in message.strip(), message  # one clear line
        return err


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_random_text_is_a_config_error_or_a_config(text):
    _outcome(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_on_disk_give_a_config_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("cfg") / "lot.toml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError:
        pass


leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                 st.lists(st.integers(-5, 5), max_size=3),
                 st.dictionaries(st.sampled_from(["REGULAR", "EV", "LARGE", "X"]),
                                 st.integers(-3, 100), max_size=3))


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    found = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found.append(prefix + (k,))
            found.extend(_paths(v, prefix + (k,)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            if isinstance(v, dict):
                found.extend(_paths(v, prefix + (i,)))
    return found


PATHS = _paths(BASE)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), leaf), min_size=1, max_size=3))
def test_mutated_valid_config_is_a_config_error_or_a_config(mutations):
    doc = json.loads(json.dumps(BASE))
    for path, value in mutations:
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value is None:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        text = dump_toml(doc)
    except (TypeError, ValueError):
        return
    result = _outcome(text)
    if isinstance(result, ConfigError):
        assert "fuzz.toml" in str(result)  # the error names the file


# --- the local API ---------------------------------------------------------------------------

class _ServiceThread:
    """The simulated service running in its own event loop thread (no traffic)."""

    def __init__(self, cfg: LotConfig):
        self.cfg = cfg
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from tests.conftest import RunningService

        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with RunningService(self.cfg):
            self.ready.set()
            await self._stop.wait()

    def __enter__(self) -> _ServiceThread:
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    cfg = load_config(write_lot(tmp_path_factory.mktemp("api")))
    with _ServiceThread(cfg):
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(cfg.data_path(cfg.api.socket))),
                              base_url="http://lotedge", timeout=10)
        yield client, cfg
        client.close()


SEGMENT = st.one_of(st.sampled_from(["in-1", "out-1", "T-1", "nope", "", "..", "%00", "0"]),
                    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="/?#"),
                            max_size=12))
TEMPLATES = ["/health", "/availability", "/availability/sensors", "/lanes", "/lanes/{}/open",
             "/lanes/{}/close", "/lanes/{}/hold", "/tickets", "/tickets/{}", "/tickets/{}/{}",
             "/alarms", "/alarms/{}/ack", "/events", "/reservations/import", "/counts/reset",
             "/diag/status", "/diag/lanes/{}/loops", "/diag/devices", "/diag/sensors",
             "/diag/sync", "/auth/sign-in", "/auth/session", "/attendants", "/shift",
             "/shift/close", "/{}"]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
FIELDS = st.dictionaries(
    st.sampled_from(["attendant", "reason", "hold", "fee_cents", "amount_cents", "code", "note",
                     "counts", "level", "pin", "name", "role", "q", "after", "limit"]),
    JSON, max_size=5)


@st.composite
def requests(draw):
    template = draw(st.sampled_from(TEMPLATES))
    path = template.format(*[draw(SEGMENT) for _ in range(template.count("{}"))])
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    body = draw(st.one_of(st.none(), FIELDS, JSON.map(lambda v: json.dumps(v).encode()),
                          st.binary(max_size=40)))
    params = draw(st.dictionaries(st.sampled_from(["q", "after", "limit", "all", "lane"]),
                                  st.text(max_size=8), max_size=2))
    return method, path, body, params


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(requests())
def test_random_api_requests_get_an_answer_or_a_json_4xx_never_500(live_api, request_):
    client, _ = live_api
    method, path, body, params = request_
    kwargs: dict[str, Any] = {"params": params}
    if isinstance(body, dict):
        kwargs["json"] = body
    elif isinstance(body, bytes):
        kwargs["content"] = body
    response = client.request(method, path, **kwargs)
    # 501 is the documented "not part of this build" answer (e.g. device health until wired)
    assert response.status_code < 500 or response.status_code == 501, (
        method, path, body, response.text[:300])
    if response.status_code >= 400 and response.status_code not in (404, 405):
        data = response.json()
        assert isinstance(data.get("error"), str) and data["error"], data


def test_the_ledger_still_verifies_after_the_api_fuzzing(live_api):
    _, cfg = live_api
    db = sqlite3.connect(cfg.db_path())
    db.row_factory = sqlite3.Row
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = [dict(r) for r in db.execute("SELECT * FROM events ORDER BY seq")]
    db.close()
    assert rows and verify_chain(rows) == []

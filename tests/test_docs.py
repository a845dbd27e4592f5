"""The documentation: the site builds with --strict (a broken link fails), the generated pages
are what the code and data say, every config key has a description, the AsyncAPI document
covers every MQTT topic, and the README stays a short front door."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO
from tools import gen_docs

DOCS = REPO / "docs"


def test_site_builds_with_strict(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=240, cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").exists()
    assert (tmp_path / "site" / "asyncapi.yaml").exists()


def test_every_config_key_has_a_description():
    missing = [f"{k.section or '(top level)'} {k.name}  ({k.owner})"
               for k in gen_docs.config_keys() if not k.doc]
    assert not missing, ("config keys without a description (add a docstring on the line after "
                         "the field, or an Args: line in its class docstring, then `make docs`):"
                         "\n  " + "\n  ".join(missing))


def test_generated_pages_are_up_to_date():
    for name, make in gen_docs.PAGES.items():
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == make(), f"docs/{name} is stale: run `make docs` and commit it"


def test_configuration_page_lists_every_key_with_type_and_default():
    page = gen_docs.configuration_page()
    for key in gen_docs.config_keys():
        assert f"| `{key.name}` | " in page
    assert "## `[cloud]`" in page and "## `[[lanes]]`" in page and "## `[[tariff.bands]]`" in page
    assert "| `ack_timeout_s` | number | `30.0` |" in page
    assert "| `id` | string | `required` |" in page


def test_performance_page_names_its_run():
    page = (DOCS / "performance.md").read_text(encoding="utf-8")
    data = __import__("json").loads((DOCS / "bench" / "results.json").read_text())
    assert f"**date**: {data['when']}" in page
    assert data["machine"]["cpu"] in page
    for fig in data["figures"]:
        assert fig["name"].replace("|", "\\|") in page


def _topics_of_the_protocol_page() -> set[str]:
    text = (DOCS / "cloud-protocol.md").read_text(encoding="utf-8")
    table = text[text.index("## Topics"):text.index("## Messages")]
    return {m for m in re.findall(r"^\| `([^`]+)` \|", table, re.M) if not m.startswith("GET ")}


def test_asyncapi_has_a_channel_for_every_topic_and_its_refs_resolve():
    doc = yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert doc["asyncapi"].startswith("3.")
    addresses = {ch["address"].replace("{client_id}", "{client_id}")
                 for ch in doc["channels"].values()}
    topics = _topics_of_the_protocol_page()
    assert topics, "no topics found in cloud-protocol.md"
    assert topics <= addresses, f"topics without an AsyncAPI channel: {topics - addresses}"

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(doc):
        if ref.startswith("#/"):
            target = doc
            for part in ref[2:].split("/"):
                target = target[part]
        else:
            path = DOCS / ref
            assert path.exists(), ref
            __import__("json").loads(path.read_text())
    for op in doc["operations"].values():
        assert op["action"] in ("send", "receive")


def test_readme_is_a_short_front_door():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "no dates in the README"
    for link in re.findall(r"\]\(((?!https?:)[^)#]+)", text):
        assert (REPO / link).exists(), f"README links to a missing file: {link}"
    assert "make run FRESH=1" in text
    assert Path(REPO / "docs" / "img" / "live-view.svg").exists()

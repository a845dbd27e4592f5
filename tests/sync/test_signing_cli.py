"""Keys and their config: `lotedge cloud keygen --out`, the [cloud] key pair rule, the ingest's
key and password options, and `lotedge cloud resync`, all ending in one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from appliance.cli.main import app
from appliance.config import CloudSection, load_config
from appliance.errors import ConfigError
from sync.signing import load_private_key, private_key, public_key, seal, unseal
from sync.uplink import read_acked_through, uplink_from_config, write_acked_through
from tests.conftest import REPO, write_lot
from tests.sync.helpers import LOT, open_filled

runner = CliRunner()


def lotedge(*args: str) -> subprocess.CompletedProcess:
    """The real console entry point (one-line errors, exit codes) in a subprocess."""
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_keygen_out_writes_an_owner_only_key_whose_public_half_is_printed(tmp_path):
    key, pub = tmp_path / "lot.key", tmp_path / f"{LOT}.pub"
    result = runner.invoke(app, ["cloud", "keygen", "--out", str(key), "--public-out", str(pub)])
    assert result.exit_code == 0, result.output
    printed = result.output.strip().rsplit(" ", 1)[-1]
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert pub.read_text().strip() == printed
    assert key.read_text().strip() not in result.output  # the private key is never printed
    signing = load_private_key(key, key="cloud.signing_key_file")
    sealed = seal("batch", b'{"x":1}', signing)
    assert unseal("batch", sealed, public_key(printed, what="p")) == b'{"x":1}'
    again = lotedge("cloud", "keygen", "--out", str(key))
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "exists" in again.stderr


def test_a_loose_signing_key_file_is_refused_naming_the_key(tmp_path):
    key = tmp_path / "lot.key"
    runner.invoke(app, ["cloud", "keygen", "--out", str(key)])
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"^cloud.signing_key_file: .*must not be readable"):
        load_private_key(key, key="cloud.signing_key_file")


@pytest.mark.parametrize("line, key", [
    ('signing_key_file = "/etc/lotedge/lot.key"', "cloud.ack_public_key"),
    ('ack_public_key = "' + "A" * 43 + '="', "cloud.signing_key_file"),
    ("bundle_stale_after_h = 0", "cloud.bundle_stale_after_h"),
])
def test_the_key_pair_rule_is_a_config_error_naming_the_key(tmp_path, line, key):
    path = write_lot(tmp_path)
    path.write_text(path.read_text() + f"\n[cloud]\nenabled = true\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith(key + ":"), info.value.message


async def test_uplink_from_config_loads_both_keys(tmp_path):
    key = tmp_path / "lot.key"
    runner.invoke(app, ["cloud", "keygen", "--out", str(key)])
    cloud_pub = tmp_path / "cloud.pub"
    runner.invoke(app, ["cloud", "keygen", "--out", str(tmp_path / "cloud.key"),
                        "--public-out", str(cloud_pub)])
    ledger = await open_filled(tmp_path / "l.sqlite3", 1)
    cloud = CloudSection(enabled=True, signing_key_file=str(key), ack_public_key=str(cloud_pub))
    uplink = uplink_from_config(ledger, cloud)
    assert uplink.signing_key is not None and uplink.ack_key is not None
    bad = CloudSection(enabled=True, signing_key_file=str(key), ack_public_key="bm90IGEga2V5")
    with pytest.raises(ConfigError, match="^cloud.ack_public_key: "):
        uplink_from_config(ledger, bad)
    await ledger.close()


def test_ingest_key_and_password_options_fail_in_one_line(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    ack = tmp_path / "ack.key"
    runner.invoke(app, ["cloud", "keygen", "--out", str(ack)])
    half = lotedge("cloud", "ingest", "--mqtt", "mqtt://127.0.0.1:1", "--lot-keys", str(keys))
    assert half.returncode == 2 and "--ack-key-file" in half.stderr
    assert half.stderr.count("\n") == 1, half.stderr
    pw = tmp_path / "pw"
    pw.write_text("hunter2-pw\n")
    pw.chmod(0o640)
    loose = lotedge("cloud", "ingest", "--mqtt", "mqtt://127.0.0.1:1", "--lot-keys", str(keys),
                    "--ack-key-file", str(ack), "--password-file", str(pw))
    assert loose.returncode == 2 and loose.stderr.count("\n") == 1, loose.stderr
    assert "--password-file" in loose.stderr and "hunter2" not in loose.stderr
    nodir = lotedge("cloud", "ingest", "--mqtt", "mqtt://127.0.0.1:1", "--lot-keys",
                    str(tmp_path / "missing"), "--ack-key-file", str(ack))
    assert nodir.returncode == 2 and "--lot-keys" in nodir.stderr


async def test_resync_lowers_acked_through_as_an_audited_event(tmp_path):
    db = tmp_path / "l.sqlite3"
    ledger = await open_filled(db, 40)
    await write_acked_through(ledger, 40)
    from sync.retention import prune_through

    await prune_through(ledger, 10)  # seq 1-10 are gone locally
    await ledger.close()
    pruned = lotedge("cloud", "resync", "--db", str(db), "--lot-id", LOT, "--from", "5")
    assert pruned.returncode == 2 and "pruned" in pruned.stderr
    assert pruned.stderr.count("\n") == 1
    wrong = lotedge("cloud", "resync", "--db", str(db), "--lot-id", "other", "--from", "20")
    assert wrong.returncode == 2 and "belongs to lot" in wrong.stderr
    ok = lotedge("cloud", "resync", "--db", str(db), "--lot-id", LOT, "--from", "21",
                 "--by", "ops:anna", "--reason", "cloud restored backup")
    assert ok.returncode == 0, ok.stderr
    assert "acked_through 40 -> 20" in ok.stdout
    from appliance.ledger import Ledger
    from sync.uplink import read_sync_epoch
    from tests.sync.helpers import TZ

    ledger = await Ledger.open(db, lot_id=LOT, tz=TZ)
    assert await read_acked_through(ledger) == 20 and await read_sync_epoch(ledger) == 1
    event = await ledger.fetchone("SELECT payload FROM events WHERE type = 'sync.resync'")
    assert json.loads(event["payload"]) == {
        "from_seq": 21, "acked_before": 40, "acked_after": 20, "epoch": 1, "by": "ops:anna",
        "reason": "cloud restored backup"}
    # Nothing unacknowledged can be pruned now: the trigger reads the lowered position.
    with pytest.raises(Exception, match="only events acknowledged"):
        await prune_through(ledger, 25)
    # A stale ack written by an uplink still in the old epoch does not undo the resync.
    await write_acked_through(ledger, 40, epoch=0)
    assert await read_acked_through(ledger) == 20
    await write_acked_through(ledger, 30, epoch=1)
    assert await read_acked_through(ledger) == 30
    assert (await ledger.verify()).ok
    await ledger.close()
    assert os.path.exists(db)


def test_sealed_messages_are_bound_to_their_kind():
    from sync.bundle import generate_keypair
    from sync.signing import SignatureRefused

    priv, pub = generate_keypair()
    sealed = seal("ack", b'{"a":1}', private_key(priv, what="k"))
    as_batch = sealed.replace(b'"ack":', b'"batch":')
    with pytest.raises(SignatureRefused, match="bad batch signature"):
        unseal("batch", as_batch, public_key(pub, what="k"))
    with pytest.raises(SignatureRefused, match="not a signed ack"):
        unseal("ack", b'{"acked_through": 5}', public_key(pub, what="k"))
    assert json.loads(sealed)["ack"] == {"a": 1}  # still plain JSON


def test_deploy_lot_toml_cloud_section_uncommented_is_valid_tls_auth_and_signed(tmp_path):
    text = (REPO / "deploy/lot.toml").read_text()
    start = text.index("[cloud]")
    end = text.index("\n[", start + 1)
    section = text[start:end].replace("enabled = false", "enabled = true")
    lines = [ln[2:] if ln.startswith("# ") and "=" in ln.split("#")[1] else ln
             for ln in section.splitlines()]
    path = tmp_path / "lot.toml"
    path.write_text(text[:start] + "\n".join(lines) + text[end:])
    cloud = load_config(path).cloud
    assert cloud.enabled and cloud.mqtt_url.startswith("mqtts://")
    assert cloud.username and cloud.password_file and cloud.tls_ca_file
    assert cloud.signing_key_file and cloud.ack_public_key


async def test_the_service_refuses_to_sync_with_a_loose_signing_key(tmp_path):
    import asyncio

    from appliance.service import Service

    key, pub = tmp_path / "lot.key", tmp_path / "cloud.pub"
    runner.invoke(app, ["cloud", "keygen", "--out", str(key)])
    runner.invoke(app, ["cloud", "keygen", "--out", str(tmp_path / "c.key"),
                        "--public-out", str(pub)])
    key.chmod(0o644)
    path = write_lot(tmp_path, mode="counter")
    path.write_text(path.read_text() + '\n[cloud]\nenabled = true\nmqtt_url = '
                    f'"mqtt://127.0.0.1:1"\nsigning_key_file = "{key}"\n'
                    f'ack_public_key = "{pub}"\n')
    service = Service(load_config(path), simulate=True, api=False)
    try:  # refused at start, before the lanes or the ledger are up
        with pytest.raises(ConfigError, match=r"^cloud.signing_key_file: .*chmod 600"):
            await asyncio.wait_for(service.start(), 10)
        assert service.ledger is None
    finally:
        await service.stop()

"""The install, upgrade, rollback and uninstall logic end to end, in temporary directories (the
CI subset of tests/install/test_debootstrap.py): deploy/install.sh from this clone, the service
started by its installed unit's command (READY over NOTIFY_SOCKET, then /health), signed
upgrades to a second build, a broken build rolled back by itself with the ledger restored over
its migration, a rollback by hand, and deploy/uninstall.sh keeping the ledger.

To stay quick the release venvs take lotedge's dependencies from the test venv
(LOTEDGE_TEST_DEPS_SITE); the debootstrap test installs every wheel for real."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from appliance.cli import release
from sync.bundle import generate_keypair
from tests.conftest import REPO
from tests.install.docsteps import step
from tests.install.helpers import build_tools, build_wheel, keypair, source_copy

INSTALL = REPO / "deploy" / "install.sh"
UNINSTALL = REPO / "deploy" / "uninstall.sh"
DECLARED = release.__version__
SITE = sysconfig.get_paths()["purelib"]


@pytest.fixture(scope="session")
def archives(tmp_path_factory):
    """Signed archives of a second build and of a broken third one, and the trust key."""
    tmp = tmp_path_factory.mktemp("releases")
    key, public = keypair(tmp)
    out = {"public": public, "key": key}
    for name, version, broken, migrates in (("next", "9.0.1", False, False),
                                            ("broken", "9.0.2", True, True),
                                            ("migrating", "9.0.3", False, True)):
        src = source_copy(tmp / f"src-{name}", version=version, broken=broken,
                          migrates=migrates)
        wheelhouse = tmp / f"wheels-{name}"
        build_wheel(src, wheelhouse)
        archive = tmp / f"lotedge-{version}.tar"
        release.pack(wheelhouse=wheelhouse, units=REPO / "systemd",
                     docs=[REPO / "docs/install.md"], out=archive)
        release.sign_archive(archive, key)
        out[name] = archive
    return out


@contextlib.contextmanager
def served(directory: Path):
    """A plain HTTP file server on a free loopback port (the fleet's download server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               str(port), "--directory", str(directory)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


class Box:
    """One install in temporary directories, driven through its own commands."""

    def __init__(self, root: Path):
        self.root = root
        self.prefix, self.etc, self.data = root / "opt", root / "etc", root / "var"
        self.units, self.bin, self.run = root / "units", root / "bin", root / "run"
        self.env = {**os.environ, "LOTEDGE_PREFIX": str(self.prefix),
                    "LOTEDGE_TEST_DEPS_SITE": SITE, "PYTHONPATH": ""}

    def install(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(INSTALL), "--wheelhouse", str(build_tools()), "--prefix",
             str(self.prefix), "--etc", str(self.etc), "--data-dir", str(self.data),
             "--unit-dir", str(self.units), "--bin-dir", str(self.bin), "--udev-dir",
             str(self.root / "udev"), "--run-dir", str(self.run), "--user",
             subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip(),
             "--python", "/usr/bin/python3", *extra],
            capture_output=True, text=True, timeout=600, env=self.env, cwd=self.root)

    def lotedge(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "lotedge"), *args], capture_output=True,
                              text=True, timeout=timeout, env=self.env, cwd=self.root)

    def current(self) -> str:
        return Path(os.readlink(self.prefix / "current")).name

    def health(self) -> dict:
        return release._health(self.data / "lotedge.sock")

    def schema(self) -> int:
        with sqlite3.connect(self.data / "ledger.sqlite3") as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    def set_config(self, old: str, new: str) -> None:
        path = self.etc / "lot.toml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))


@pytest.fixture
def box(tmp_path):
    """An install in tmp_path; whatever service it started is stopped afterwards."""
    made = Box(tmp_path)
    yield made
    pid_file = made.run / "lotedge.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)


def test_install_start_upgrade_roll_back_and_uninstall(tmp_path, box, archives):
    first = box.install()
    assert first.returncode == 0, first.stderr
    assert f"lotedge {DECLARED} is current" in first.stdout
    assert box.current() == DECLARED
    assert os.readlink(box.bin / "lotedge") == f"{box.prefix}/current/venv/bin/lotedge"
    unit = (box.units / "lotedge.service").read_text()
    assert f"ExecStart={box.prefix}/current/venv/bin/lotedge run --config {box.etc}/lot.toml" \
        in unit
    doc = next(line for line in unit.splitlines() if line.startswith("Documentation="))
    assert Path(doc.removeprefix("Documentation=file://")).is_file()  # a page that exists
    assert (box.root / "udev/60-lotedge-gpio.rules").read_text().count('GROUP="gpio"') == 2
    version = box.lotedge("--version")
    assert version.stdout == f"lotedge {DECLARED}\n", version.stderr

    # The shipped config asks for lgpio, missing here: the service exits 4 instead of hanging.
    if "not a Raspberry Pi" in first.stdout:
        began = time.monotonic()
        failed = box.lotedge("release", "start", "--health-timeout-s", "60")
        assert failed.returncode == release.EXIT_ROLLED_BACK, failed.stdout + failed.stderr
        assert "exited with code 4 before READY" in failed.stderr
        assert time.monotonic() - began < 30
        bench = step("bench-box").replace("/etc/lotedge/", f"{box.etc}/")
        subprocess.run(["bash", "-euc", bench], check=True, timeout=60)
        assert 'pin_factory = "mock"' in (box.etc / "lot.toml").read_text()
    box.set_config("[cloud]\n", f'[cloud]\nbundle_public_key = "{archives["public"]}"\n')

    started = box.lotedge("release", "start", "--health-timeout-s", "60")
    assert started.returncode == 0, started.stdout + started.stderr
    assert box.health()["version"] == DECLARED and box.health()["ok"] is True
    status = box.lotedge("diag", "--config", str(box.etc / "lot.toml"), "status", "--json")
    assert json.loads(status.stdout)["installed_version"] == DECLARED, status.stderr
    schema_before = box.schema()

    # Run again from the same clone: a repair, the edited config kept, the service untouched.
    config = (box.etc / "lot.toml").read_bytes()
    uptime = box.health()["uptime_s"]
    again = box.install()
    assert again.returncode == 0, again.stderr
    assert "installed lotedge" not in again.stdout and "upgrading" not in again.stdout
    assert (box.etc / "lot.toml").read_bytes() == config and box.current() == DECLARED
    assert box.health()["uptime_s"] > uptime  # not restarted

    # Refused before anything is unpacked: no signature, or the wrong signer.
    unsigned = tmp_path / "unsigned" / archives["next"].name
    unsigned.parent.mkdir()
    shutil.copy(archives["next"], unsigned)
    proc = box.lotedge("upgrade", str(unsigned))
    assert proc.returncode == 2 and "is not signed" in proc.stderr, proc.stderr
    other, _ = generate_keypair()
    forged = tmp_path / "forged"
    forged.mkdir()
    shutil.copy(archives["next"], forged / unsigned.name)
    (forged / "k").write_text(other)
    os.chmod(forged / "k", 0o600)
    release.sign_archive(forged / unsigned.name, forged / "k")
    proc = box.lotedge("upgrade", str(forged / unsigned.name))
    assert proc.returncode == 2 and "bad signature" in proc.stderr, proc.stderr
    assert not (box.prefix / "releases/9.0.1").exists()

    # A second build, fetched over HTTP: installed beside, checked, switched, healthy.
    with served(archives["next"].parent) as base:
        proc = box.lotedge("upgrade", f"{base}/{archives['next'].name}", "--health-timeout-s",
                           "60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fetched" in proc.stdout and "signature ok" in proc.stdout
    assert "upgraded" in proc.stdout
    assert box.current() == "9.0.1" and box.health()["version"] == "9.0.1"
    assert sorted(p.name for p in (box.prefix / "releases").iterdir()) == [DECLARED, "9.0.1"]
    assert list((box.data / "backups").glob(f"pre-upgrade-{DECLARED}-to-9.0.1-*.sqlite3"))

    # A broken build migrates the ledger and never reports healthy: rolled back by itself,
    # the pre-upgrade ledger restored (9.0.1 could not open the migrated one).
    proc = box.lotedge("upgrade", str(archives["broken"]), "--health-timeout-s", "8")
    assert proc.returncode == release.EXIT_ROLLED_BACK, proc.stdout + proc.stderr
    assert "migration: rollback restores the backup" in proc.stdout
    assert "rolled back: 9.0.1 runs again" in proc.stderr
    assert box.current() == "9.0.1" and box.health()["version"] == "9.0.1"
    assert box.health()["ok"] is True and box.schema() == schema_before
    with sqlite3.connect(box.data / "ledger.sqlite3.failed-9.0.2") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_before + 1
    assert not (box.prefix / "releases/9.0.2").exists()

    # A healthy build that migrates the ledger: going back by hand needs the backup.
    proc = box.lotedge("upgrade", str(archives["migrating"]), "--health-timeout-s", "60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.health()["version"] == "9.0.3" and box.schema() == schema_before + 1
    proc = box.lotedge("rollback", "--health-timeout-s", "60")
    assert proc.returncode == 2 and "--restore-backup" in proc.stderr, proc.stderr
    assert "newer than this lotedge" in proc.stderr
    assert box.current() == "9.0.3" and box.health()["version"] == "9.0.3"  # nothing changed
    proc = box.lotedge("rollback", "--restore-backup", "--health-timeout-s", "60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.current() == "9.0.1" and box.health()["version"] == "9.0.1"
    assert box.schema() == schema_before
    assert (box.data / "ledger.sqlite3.rolled-back-9.0.3").exists()

    # By hand, back to the first release.
    proc = box.lotedge("rollback", "--to", DECLARED, "--health-timeout-s", "60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert box.current() == DECLARED and box.health()["version"] == DECLARED

    # Uninstall: units, releases, link gone; the ledger and its backups kept.
    proc = subprocess.run(["bash", str(UNINSTALL), "--prefix", str(box.prefix)],
                          capture_output=True, text=True, timeout=120, env=box.env)
    assert proc.returncode == 0, proc.stderr
    assert not box.prefix.exists() and not (box.bin / "lotedge").exists()
    assert not list(box.units.glob("lotedge*")) and box.health() is None
    assert (box.data / "ledger.sqlite3").exists() and list((box.data / "backups").iterdir())
    assert (box.etc / "lot.toml").exists()


def test_installer_refuses_a_32_bit_python(tmp_path):
    fake = tmp_path / "python32"
    fake.write_text("#!/bin/sh\necho 32\n")
    fake.chmod(0o755)
    box = Box(tmp_path)
    proc = subprocess.run(["bash", str(INSTALL), "--python", str(fake), "--prefix",
                           str(box.prefix), "--user", "nobody-here"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    if os.getuid() == 0:
        assert "32-bit" in proc.stderr and "64-bit OS" in proc.stderr, proc.stderr
    assert not (box.prefix / "releases").exists()


def test_installer_rejects_unknown_options():
    proc = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "unknown option --frobnicate" in proc.stderr


def test_a_lane_serving_a_car_blocks_the_switch(monkeypatch, tmp_path):
    busy = {"lanes": [{"lane": "in", "state": "IDLE", "arming": False, "safety": False},
                      {"lane": "out", "state": "PASSING", "arming": False, "safety": True}]}
    monkeypatch.setattr(release, "_health", lambda path: busy)
    with pytest.raises(release.ReleaseError) as err:
        release.wait_idle(tmp_path / "sock", wait_s=0.3, maintenance=False, say=lambda _: None)
    assert err.value.code == release.EXIT_BUSY and "out" in str(err.value)
    release.wait_idle(tmp_path / "sock", wait_s=0.3, maintenance=True, say=lambda _: None)
    busy["lanes"][1].update(state="IDLE", safety=False)
    release.wait_idle(tmp_path / "sock", wait_s=0.3, maintenance=False, say=lambda _: None)


def test_the_current_release_and_the_two_before_it_are_kept(tmp_path):
    layout = release.Layout(prefix=tmp_path, etc=tmp_path / "etc", unit_dir=tmp_path / "units",
                            run_dir=tmp_path / "run")
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "failed-1.4.0"):
        (layout.release(version) / "venv/bin").mkdir(parents=True)
        (layout.lotedge(version)).touch()
    release.switch(layout, "1.3.0")
    assert layout.current_version() == "1.3.0"
    state = {"history": ["1.0.0", "1.1.0", "1.2.0", "1.3.0"],
             "backups": {"1.1.0": {}, "1.3.0": {}}}
    assert release.prune(layout, state) == ["1.0.0", "failed-1.4.0"]
    assert sorted(p.name for p in layout.releases.iterdir()) == ["1.1.0", "1.2.0", "1.3.0"]
    assert state == {"history": ["1.1.0", "1.2.0", "1.3.0"], "backups": {"1.1.0": {}, "1.3.0": {}}}
    with pytest.raises(release.ReleaseError):
        release.switch(layout, "1.0.0")  # gone: never a link to nothing
    assert layout.current_version() == "1.3.0"


def test_the_signature_is_as_documented_and_covers_every_byte(tmp_path):
    import base64
    import hashlib
    import io
    import tarfile

    from sync.signing import public_key

    key, public = keypair(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "lotedge-1.0.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    archive = tmp_path / "lotedge-1.0.0.tar"
    assert release.pack(wheelhouse=wheels, units=REPO / "systemd", docs=[], out=archive) == "1.0.0"
    sig = release.sign_archive(archive, key)
    raw = base64.b64decode(sig.read_text().strip())
    public_key(public, what="test").verify(  # docs/install.md "The release archive"
        raw, b"lotedge-release-v1\n" + hashlib.sha256(archive.read_bytes()).digest())
    release.verify_archive(archive, public)
    assert release.unpack(archive, tmp_path / "out")["version"] == "1.0.0"

    data = bytearray(archive.read_bytes())
    data[-700] ^= 1
    archive.write_bytes(bytes(data))
    with pytest.raises(release.ReleaseError, match="bad signature"):
        release.verify_archive(archive, public)

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(release.ReleaseError, match="unsafe member"):
        release.unpack(evil, tmp_path / "evil")
    assert not (tmp_path / "escaped").exists()

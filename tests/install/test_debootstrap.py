"""docs/install.md on a clean Debian 12 root (debootstrap): install from a clone, start the
service by its installed unit's command, upgrade to a second build from a signed archive, see a
deliberately broken build rolled back by itself, roll back by hand, uninstall, and install again
offline from a wheelhouse with no network at all.

systemd cannot be PID 1 in a chroot, so the page's `systemctl start` is replaced by its
documented alternative `lotedge release start`: the installed unit's ExecStart run as its
User= with a NOTIFY_SOCKET (READY=1), then /health. The root filesystem is built once and kept
as a tar in LOTEDGE_TEST_CACHE (/var/cache/lotedge-test), with the apt and pip caches, so a
rerun downloads nothing it already has. Needs root, debootstrap and the Debian mirror."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.install.docsteps import step
from tests.install.helpers import BREAK_HEALTH, EXTRA_MIGRATION

pytestmark = [pytest.mark.slow, pytest.mark.timeout(7200)]

CACHE = Path(os.environ.get("LOTEDGE_TEST_CACHE", "/var/cache/lotedge-test"))
MIRROR = os.environ.get("LOTEDGE_TEST_MIRROR", "http://deb.debian.org/debian")
BASE = CACHE / "bookworm-minbase.tar"
START = "systemctl start lotedge lotedge-backup.timer"


def base_tar() -> Path:
    """A minbase Debian 12 root as a tar, made once."""
    assert os.getuid() == 0, "the debootstrap test needs root (chroot, mounts)"
    assert shutil.which("debootstrap"), "apt-get install -y debootstrap"
    if not BASE.exists():
        build = CACHE / "build-root"
        shutil.rmtree(build, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(build), MIRROR],
                       check=True, capture_output=True, timeout=3600)
        subprocess.run(["tar", "-C", str(build), "--numeric-owner", "-cf", f"{BASE}.tmp", "."],
                       check=True, timeout=600)
        os.replace(f"{BASE}.tmp", BASE)
        shutil.rmtree(build)
    return BASE


class Chroot:
    """A fresh root from the cached tar with /proc, /dev and the download caches mounted."""

    def __init__(self, root: Path):
        self.root = root
        self.mounts: list[Path] = []
        for line in Path("/proc/mounts").read_text().splitlines():  # a run that was killed
            target = line.split()[1]
            if target.startswith(f"{root}/"):
                subprocess.run(["umount", "-l", target], timeout=60)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(base_tar())],
                       check=True, timeout=600)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        self._mount(["-t", "proc", "proc"], "proc")  # /dev: the tar's own device nodes
        for cache, inside in (("apt", "var/cache/apt/archives"), ("pip", "root/.cache/pip")):
            (CACHE / cache).mkdir(parents=True, exist_ok=True)
            self._mount(["--bind", str(CACHE / cache)], inside)
        self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        cert = os.environ.get("PIP_CERT")  # a host behind a TLS proxy: its CA for pip
        if cert and Path(cert).is_file():
            shutil.copy(cert, root / "etc/lotedge-test-ca.crt")
            self.env["PIP_CERT"] = "/etc/lotedge-test-ca.crt"

    def _mount(self, how: list[str], inside: str) -> None:
        target = self.root / inside
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *how, str(target)], check=True, timeout=60)
        self.mounts.append(target)

    def run(self, script: str, *, net: bool = True, timeout: float = 3600,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a bash script as root in the chroot (with no network at all when not `net`)."""
        cmd = ["chroot", str(self.root), "/bin/bash", "-euo", "pipefail", "-c", script]
        if not net:
            cmd = ["unshare", "--net", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=self.env)
        if check:
            assert proc.returncode == 0, f"{script}\n--- exit {proc.returncode}\n" \
                                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def doc(self, name: str, *, net: bool = True, **fill: str) -> subprocess.CompletedProcess:
        """A step of docs/install.md, as written (placeholders filled)."""
        return self.run(step(name, **fill).replace(START, "lotedge release start"), net=net)

    def health(self) -> dict | None:
        from appliance.cli.release import _health

        return _health(self.root / "var/lib/lotedge/lotedge.sock")

    def close(self) -> None:
        pid_file = self.root / "run/lotedge-exec/lotedge.pid"
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(pid_file.read_text()), 9)
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(target)], timeout=60)
        mounted = Path("/proc/mounts").read_text()
        if f" {self.root}/" not in mounted and f" {self.root} " not in mounted:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def box():
    """A fresh root, kept out of pytest's temporary directories: those are cleaned by other
    test runs, and a root with mounts must only be removed once they are gone."""
    (CACHE / "roots").mkdir(parents=True, exist_ok=True)
    made = Chroot(CACHE / "roots" / f"root-{os.getpid()}")
    try:
        yield made
    finally:
        made.close()


def bump(box: Chroot, clone: str, version: str, *, broken: bool = False) -> None:
    """A second build: this clone with another version (and, broken, the sabotage)."""
    box.run(f"git clone -q /srv/lotedge.git {clone} && cd {clone} && "
            f"sed -i 's/^version = \"[^\"]*\"/version = \"{version}\"/' pyproject.toml")
    if broken:
        status = box.root / clone.lstrip("/") / "appliance/api/status.py"
        status.write_text(status.read_text().replace(*BREAK_HEALTH))
        schema = box.root / clone.lstrip("/") / "appliance/ledger/schema.py"
        schema.write_text(schema.read_text() + EXTRA_MIGRATION)


def test_the_install_page_on_a_clean_debian_root(box):
    subprocess.run(["git", "clone", "-q", "--bare", str(REPO), str(box.root / "srv/lotedge.git")],
                   check=True, timeout=600)
    box.doc("packages")
    install = box.doc("clone", **{"repository-url": "/srv/lotedge.git"})
    declared = box.run("cd /root/lotedge && sed -n 's/^version = \"\\([^\"]*\\)\".*/\\1/p' "
                       "pyproject.toml").stdout.strip()
    assert f"lotedge {declared} is current" in install.stdout
    check = box.doc("check")
    assert check.stdout.startswith(f"lotedge {declared}\nok: lot my-lot"), check.stdout
    unit = (box.root / "etc/systemd/system/lotedge.service").read_text()
    doc = next(ln for ln in unit.splitlines() if ln.startswith("Documentation=file://"))
    assert (box.root / doc.removeprefix("Documentation=file:///")).resolve().is_file()
    assert (box.root / "etc/udev/rules.d/60-lotedge-gpio.rules").is_file()
    passwd = box.run("getent passwd lotedge && id -nG lotedge").stdout
    assert "/usr/sbin/nologin" in passwd and {"gpio", "dialout", "video"} <= set(
        passwd.splitlines()[1].split())

    # The shipped config (lgpio) on a box that is not a Pi: exit 4 at start, no hang.
    failed = box.run("lotedge release start --health-timeout-s 60", check=False)
    assert failed.returncode == 1 and "exited with code 4 before READY" in failed.stderr, \
        failed.stderr
    box.doc("bench-box")
    started = box.doc("start")
    assert "service: running" in started.stdout or "running (lot my-lot" in started.stdout, \
        started.stdout
    health = box.health()
    assert health["ok"] is True and health["version"] == declared
    pid = int((box.root / "run/lotedge-exec/lotedge.pid").read_text())
    uid = box.run("id -u lotedge").stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"Uid:\t{uid}\t" in status  # the unit's User=, not root
    with sqlite3.connect(box.root / "var/lib/lotedge/ledger.sqlite3") as conn:
        schema = conn.execute("PRAGMA user_version").fetchone()[0]

    # The release key the lot trusts (the bundle key), and a second build signed with it.
    public = box.run("lotedge cloud keygen --out /root/release.key").stdout.split()[-1]
    box.run(f"sed -i 's|^\\[cloud\\]$|[cloud]\\nbundle_public_key = \"{public}\"|' "
            "/etc/lotedge/lot.toml && lotedge config check /etc/lotedge/lot.toml")
    bump(box, "/root/lotedge-next", "9.0.1")
    box.doc("pack", **{"new-clone": "/root/lotedge-next", "signing-key-file": "/root/release.key",
                       "archive": "/media/usb/lotedge-9.0.1.tar"})
    upgraded = box.doc("upgrade", archive="/media/usb/lotedge-9.0.1.tar")
    assert upgraded.stdout.rstrip().endswith("lotedge 9.0.1"), upgraded.stdout
    assert box.health()["version"] == "9.0.1"

    # A broken build (migrates the ledger, never healthy): rolled back by itself.
    bump(box, "/root/lotedge-broken", "9.0.2", broken=True)
    box.doc("pack", **{"new-clone": "/root/lotedge-broken",
                       "signing-key-file": "/root/release.key",
                       "archive": "/media/usb/lotedge-9.0.2.tar"})
    broken = box.run("lotedge upgrade /media/usb/lotedge-9.0.2.tar --health-timeout-s 20",
                     check=False)
    assert broken.returncode == 1 and "rolled back: 9.0.1 runs again" in broken.stderr, \
        broken.stdout + broken.stderr
    assert box.health()["version"] == "9.0.1" and box.health()["ok"] is True
    with sqlite3.connect(box.root / "var/lib/lotedge/ledger.sqlite3") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema
    releases = json.loads(box.run("lotedge release list --json").stdout)
    assert releases["current"] == "9.0.1" and "9.0.2" not in releases["releases"]

    rolled = box.doc("rollback")
    assert rolled.stdout.rstrip().endswith(f"lotedge {declared}"), rolled.stdout
    assert box.health()["version"] == declared

    # `make install` from a clone of a newer version upgrades through the running release.
    again = box.run("cd /root/lotedge-next && make install")
    assert f"upgrading {declared} -> 9.0.1" in again.stdout and "upgraded" in again.stdout
    assert box.health()["version"] == "9.0.1"

    box.doc("uninstall")
    assert not (box.root / "opt/lotedge").exists()
    assert not list((box.root / "etc/systemd/system").glob("lotedge*"))
    assert not (box.root / "usr/local/bin/lotedge").exists()
    assert box.run("getent passwd lotedge", check=False).returncode == 2
    assert (box.root / "var/lib/lotedge/ledger.sqlite3").exists()  # kept
    assert box.health() is None

    # Offline: a wheelhouse made while connected, then an install with no network at all.
    box.doc("wheelhouse")
    box.doc("offline-install", net=False)
    box.run("lotedge release start")
    assert box.health()["version"] == declared

"""Releases side by side: `lotedge upgrade`, `lotedge rollback` and `lotedge release ...`.

Layout (every path configurable for tests and staging, see `Layout.from_env`):

    /opt/lotedge/releases/<version>/{venv,units,doc,release.json}   one per release
    /opt/lotedge/current -> releases/<version>                        switched atomically
    /opt/lotedge/releases.json                                        history, pre-upgrade backups
    /usr/local/bin/lotedge -> /opt/lotedge/current/venv/bin/lotedge

An upgrade verifies the archive (Ed25519, the lot's `[cloud] bundle_public_key`) before anything
is unpacked, installs the release beside the running one, has the new release check the live
config and a migrated copy of the ledger, waits until no lane is serving a car, stops the
service, backs the ledger up, switches, starts, and waits for READY and a healthy `/health`;
otherwise it switches back (restoring the backup if the new release migrated the ledger, which
the old one would refuse to open) and starts the old release again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from appliance import __version__
from appliance.errors import ConfigError, LotedgeError

release_app = typer.Typer(help="Installed releases: list, check, pack, start and stop",
                          no_args_is_help=True)

# Exit codes of upgrade/rollback (docs/install.md "Exit codes").
EXIT_ROLLED_BACK = 1  # the new release did not report healthy: the previous one runs again
EXIT_REFUSED = 2  # bad archive or signature, config or ledger check failed, unsafe migration
EXIT_BUSY = 4  # a lane was serving a car for the whole wait: nothing was changed
KEEP_PREVIOUS = 2  # releases kept besides the current one
SIG_CONTEXT = b"lotedge-release-v1\n"
UNIT = "lotedge.service"


class ReleaseError(LotedgeError):
    """An upgrade or rollback step failed; `code` is the command's exit code."""

    def __init__(self, message: str, *, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where releases, config, units and the command link live."""

    prefix: Path
    etc: Path
    unit_dir: Path
    run_dir: Path

    data: Path = Path("/var/lib/lotedge")
    user: str = "lotedge"

    @classmethod
    def from_env(cls) -> Layout:
        """LOTEDGE_PREFIX (default /opt/lotedge), then what deploy/install.sh recorded in
        PREFIX/layout.json, then the defaults (/etc/lotedge, /etc/systemd/system,
        /run/lotedge-exec, /var/lib/lotedge, user lotedge); LOTEDGE_ETC, LOTEDGE_UNIT_DIR and
        LOTEDGE_RUN_DIR override."""
        prefix = Path(os.environ.get("LOTEDGE_PREFIX", "/opt/lotedge"))
        try:
            recorded = json.loads((prefix / "layout.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}

        def pick(env: str, key: str, default: str) -> str:
            return os.environ.get(env) or str(recorded.get(key) or default)

        return cls(prefix=prefix, etc=Path(pick("LOTEDGE_ETC", "etc", "/etc/lotedge")),
                   unit_dir=Path(pick("LOTEDGE_UNIT_DIR", "unit_dir", "/etc/systemd/system")),
                   run_dir=Path(pick("LOTEDGE_RUN_DIR", "run_dir", "/run/lotedge-exec")),
                   data=Path(str(recorded.get("data") or "/var/lib/lotedge")),
                   user=str(recorded.get("user") or "lotedge"))

    @property
    def releases(self) -> Path:
        return self.prefix / "releases"

    @property
    def current(self) -> Path:
        return self.prefix / "current"

    @property
    def config(self) -> Path:
        return self.etc / "lot.toml"

    def release(self, version: str) -> Path:
        return self.releases / version

    def lotedge(self, version: str) -> Path:
        return self.release(version) / "venv" / "bin" / "lotedge"

    def current_version(self) -> str | None:
        """The version `current` points at, or None before the first install."""
        with contextlib.suppress(OSError):
            return Path(os.readlink(self.current)).name
        return None

    def state(self) -> dict[str, Any]:
        try:
            return json.loads((self.prefix / "releases.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = self.current_version()
            return {"history": [current] if current else [], "backups": {}}

    def save_state(self, state: dict[str, Any]) -> None:
        tmp = self.prefix / f".releases.json.{os.getpid()}"
        tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.prefix / "releases.json")


# --- archives ----------------------------------------------------------------------------------


def _sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def sign_archive(archive: Path, key_file: Path) -> Path:
    """Write ARCHIVE.sig: base64 Ed25519 over the context and the archive's SHA-256."""
    import base64

    from sync.signing import load_private_key

    key = load_private_key(key_file, key="--key")
    sig = archive.with_name(archive.name + ".sig")
    sig.write_text(base64.b64encode(key.sign(SIG_CONTEXT + _sha256_file(archive))).decode()
                   + "\n", encoding="ascii")
    return sig


def verify_archive(archive: Path, trust_key: str) -> None:
    """Check ARCHIVE.sig against the trusted public key; ReleaseError before anything is read
    from inside the archive."""
    import binascii

    from cryptography.exceptions import InvalidSignature

    from sync.bundle import decode_signature
    from sync.signing import load_public_key

    sig = archive.with_name(archive.name + ".sig")
    if not archive.is_file():
        raise ReleaseError(f"no release archive at {archive}")
    if not sig.is_file():
        raise ReleaseError(f"{archive.name} is not signed (no {sig.name}): refused")
    public = load_public_key(trust_key, key="trust key")
    try:
        signature = decode_signature(sig.read_text(encoding="ascii").strip())
        public.verify(signature, SIG_CONTEXT + _sha256_file(archive))
    except (binascii.Error, ValueError, UnicodeDecodeError, InvalidSignature) as err:
        raise ReleaseError(f"{archive.name}: bad signature (not signed by the trusted key): "
                           "refused") from err


def fetch(url: str, into: Path, *, timeout_s: float = 600) -> Path:
    """Download an archive and its .sig (from the fleet's server) into `into`; nothing is
    trusted until `verify_archive`."""
    import httpx

    name = url.rstrip("/").rsplit("/", 1)[-1]
    if not name.endswith(".tar"):
        raise ReleaseError(f"{url}: not a release archive (lotedge-VERSION.tar)")
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
            for suffix in ("", ".sig"):
                with client.stream("GET", url + suffix) as response:
                    if response.status_code != 200:
                        raise ReleaseError(f"{url}{suffix}: HTTP {response.status_code}")
                    with (into / f"{name}{suffix}").open("wb") as out:
                        for chunk in response.iter_bytes(1 << 20):
                            out.write(chunk)
    except httpx.HTTPError as err:
        raise ReleaseError(f"{url}: {err}") from err
    return into / name


def pack(*, wheelhouse: Path, units: Path, docs: list[Path], out: Path) -> str:
    """A release archive (tar): release.json, wheels/, units/, doc/. Returns its version."""
    wheels = sorted(wheelhouse.glob("lotedge-*.whl"))
    if len(wheels) != 1:
        raise ReleaseError(f"{wheelhouse}: needs exactly one lotedge-*.whl (found {len(wheels)})")
    version = wheels[0].name.split("-")[1]
    manifest = {"name": "lotedge", "version": version, "wheel": wheels[0].name}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:
        data = json.dumps(manifest, indent=1).encode() + b"\n"
        info = tarfile.TarInfo("release.json")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        import io

        tar.addfile(info, io.BytesIO(data))
        for whl in sorted(wheelhouse.glob("*.whl")):
            tar.add(whl, f"wheels/{whl.name}")
        for unit in sorted(units.glob("lotedge*")):
            tar.add(unit, f"units/{unit.name}")
        for doc in docs:
            tar.add(doc, f"doc/{doc.name}")
    return version


def unpack(archive: Path, into: Path) -> dict[str, Any]:
    """Extract a verified archive (data filter: no links out, no devices) and read its
    manifest."""
    with tarfile.open(archive) as tar:
        for member in tar:  # Debian 12's Python 3.11.2 has no extraction filters
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile()
                                                                or member.isdir()):
                raise ReleaseError(f"{archive.name}: unsafe member {member.name!r}")
            if member.isdir():
                (into / name).mkdir(parents=True, exist_ok=True)
                continue
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            with (into / name).open("xb") as out:
                shutil.copyfileobj(source, out)
    return _manifest(into)


def _manifest(staged: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((staged / "release.json").read_text(encoding="utf-8"))
        version = str(manifest["version"])
    except (OSError, ValueError, KeyError) as err:
        raise ReleaseError(f"{staged}: no valid release.json") from err
    if not version or "/" in version or version.startswith("."):
        raise ReleaseError(f"release.json: bad version {version!r}")
    if not list((staged / "wheels").glob(f"lotedge-{version}-*.whl")):
        raise ReleaseError(f"{staged}/wheels: no lotedge {version} wheel")
    return manifest


# --- installing a release beside the others -------------------------------------------------


def _run(cmd: list[str], what: str, *, timeout_s: float = 1800, env: dict | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ReleaseError(f"{what}: {err}") from err
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-1:])
        raise ReleaseError(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc.stdout


def _rewrite_unit(text: str, layout: Layout) -> str:
    """The shipped unit with this box's prefix and config directory."""
    text = (text.replace("/opt/lotedge/", f"{layout.prefix}/")
            .replace("/etc/lotedge/", f"{layout.etc}/")
            .replace("/var/lib/lotedge", str(layout.data)))
    return (text.replace("\nUser=lotedge\n", f"\nUser={layout.user}\n")
            .replace("\nGroup=lotedge\n", f"\nGroup={layout.user}\n"))


def install_release(layout: Layout, staged: Path, *, python: str = "/usr/bin/python3") -> str:
    """Install the staged release (release.json, wheels/, units/, doc/) into
    releases/<version> with its own venv, offline from its wheels; returns the version."""
    version = _manifest(staged)["version"]
    target = layout.release(version)
    if target.exists():
        shutil.rmtree(target)  # a half-installed or failed earlier attempt
    target.mkdir(parents=True)
    venv = target / "venv"
    deps_site = os.environ.get("LOTEDGE_TEST_DEPS_SITE")  # tests: deps from the dev venv
    _run([python, "-m", "venv", *(["--without-pip"] if deps_site else []), str(venv)],
         "creating the venv")
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-index",
           "--no-compile", "--disable-pip-version-check", "--find-links", str(staged / "wheels")]
    if deps_site:
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "_lotedge_test_deps.pth").write_text(deps_site + "\n")
        pip += ["--no-deps", "--ignore-installed"]  # the dev venv's own lotedge is not ours
    _run([*pip, f"lotedge[pi]=={version}"], f"installing lotedge {version}")
    _run([str(venv / "bin/python"), "-m", "compileall", "-q", "-j", "0",
          "--invalidation-mode", "checked-hash", *map(str, (venv / "lib").glob("python3*"))],
         "compiling bytecode", timeout_s=900)
    (target / "units").mkdir()
    for unit in sorted((staged / "units").glob("lotedge*")):
        (target / "units" / unit.name).write_text(_rewrite_unit(unit.read_text(), layout))
    if (staged / "doc").is_dir():
        shutil.copytree(staged / "doc", target / "doc")
    (target / "release.json").write_text(json.dumps(
        {"version": version, "installed_utc": datetime.now(UTC).isoformat(timespec="seconds")},
        indent=1) + "\n")
    return version


def switch(layout: Layout, version: str) -> None:
    """Point `current` at releases/<version> atomically (a new link renamed over the old)."""
    if not layout.lotedge(version).exists():
        raise ReleaseError(f"release {version} is not installed in {layout.releases}")
    tmp = layout.prefix / f".current.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(Path("releases") / version)
    os.replace(tmp, layout.current)


def install_units(layout: Layout, version: str, manager: ServiceManager) -> None:
    """Copy the release's units into the unit directory when they differ."""
    changed = False
    layout.unit_dir.mkdir(parents=True, exist_ok=True)
    for unit in sorted((layout.release(version) / "units").glob("lotedge*")):
        dest = layout.unit_dir / unit.name
        if not dest.exists() or dest.read_bytes() != unit.read_bytes():
            shutil.copyfile(unit, dest)
            dest.chmod(0o644)
            changed = True
    if changed:
        manager.reload()


def prune(layout: Layout, state: dict[str, Any]) -> list[str]:
    """Remove releases other than the current one and the KEEP_PREVIOUS before it."""
    keep = state["history"][-(KEEP_PREVIOUS + 1):]
    state["history"] = keep
    state["backups"] = {v: b for v, b in state.get("backups", {}).items() if v in keep}
    removed = []
    for path in sorted(layout.releases.iterdir()) if layout.releases.is_dir() else []:
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


# --- the service: systemd, or the unit's command run directly --------------------------------


class ServiceManager:
    """Starts and stops lotedge.service and says whether it came up."""

    def reload(self) -> None:
        """Re-read changed unit files."""

    def stop(self) -> None:
        raise NotImplementedError

    def start(self, deadline_s: float) -> None:
        """Start and return once READY=1 was sent; ReleaseError otherwise."""
        raise NotImplementedError


class SystemdManager(ServiceManager):
    """systemctl: `start` of a Type=notify unit returns once the service sent READY=1."""

    def reload(self) -> None:
        _run(["systemctl", "daemon-reload"], "systemctl daemon-reload", timeout_s=60)

    def stop(self) -> None:
        _run(["systemctl", "stop", UNIT], "systemctl stop", timeout_s=60)

    def start(self, deadline_s: float) -> None:
        _run(["systemctl", "start", UNIT], "systemctl start (waits for READY=1)",
             timeout_s=deadline_s)


def parse_unit(path: Path) -> dict[str, Any]:
    """ExecStart (argv), User, Group, UMask and Environment of a unit's [Service] section."""
    out: dict[str, Any] = {"environment": {}}
    section = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]" or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if key == "ExecStart":
            out["argv"] = shlex.split(value.lstrip("-@:+!"))
        elif key in ("User", "Group", "UMask"):
            out[key.lower()] = value
        elif key == "Environment":
            for item in shlex.split(value):
                name, _, val = item.partition("=")
                out["environment"][name] = val
    if not out.get("argv"):
        raise ReleaseError(f"{path}: no ExecStart")
    return out


class ExecManager(ServiceManager):
    """Runs the installed unit's ExecStart as its User= with a NOTIFY_SOCKET we listen on (a
    box or chroot without systemd as PID 1); the pid is kept in run_dir/lotedge.pid."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.pid_file = layout.run_dir / "lotedge.pid"
        self.log_file = layout.run_dir / "lotedge.log"

    def pid(self) -> int | None:
        """The running service's pid, if any."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                return None
        return pid

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        end = time.monotonic() + 20
        while time.monotonic() < end and self.pid() is not None:
            time.sleep(0.1)
        if self.pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def start(self, deadline_s: float) -> None:
        unit = parse_unit(self.layout.unit_dir / UNIT)
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        self.layout.run_dir.chmod(0o755)  # the service user reaches the notify socket in it
        argv = unit["argv"]
        user = unit.get("user")
        if user and user != pwd.getpwuid(os.getuid()).pw_name:
            argv = ["setpriv", f"--reuid={user}", f"--regid={unit.get('group', user)}",
                    "--init-groups", "--", *argv]
        notify_dir = Path(tempfile.mkdtemp(prefix="notify-", dir=self.layout.run_dir))
        notify_dir.chmod(0o755)
        address = notify_dir / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(address))
            address.chmod(0o666)  # the service user sends to it
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG": "C.UTF-8", **unit["environment"], "NOTIFY_SOCKET": str(address)}
            umask = int(unit.get("umask", "0022"), 8)
            with self.log_file.open("ab") as log:
                proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=log, start_new_session=True, cwd="/",
                                        preexec_fn=lambda: os.umask(umask))
            self.pid_file.write_text(f"{proc.pid}\n")
            end = time.monotonic() + deadline_s
            try:
                while True:
                    code = proc.poll()
                    if code is not None:
                        raise ReleaseError(f"the service exited with code {code} before READY "
                                           f"({_last_line(self.log_file)})", code=EXIT_ROLLED_BACK)
                    left = end - time.monotonic()
                    if left <= 0:  # as systemd does at TimeoutStartSec=: stop it
                        self.stop()
                        raise ReleaseError(f"no READY=1 within {deadline_s:.0f} s "
                                           f"({_last_line(self.log_file)})",
                                           code=EXIT_ROLLED_BACK)
                    sock.settimeout(min(left, 0.5))
                    try:
                        message = sock.recv(4096).decode(errors="replace")
                    except TimeoutError:
                        continue
                    if "READY=1" in message.splitlines():
                        return
            finally:
                shutil.rmtree(notify_dir, ignore_errors=True)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1][-300:]
    return "no output"


def manager_for(layout: Layout, name: str | None = None) -> ServiceManager:
    """`systemd` when systemd runs this box (or LOTEDGE_SERVICE_MANAGER says), else `exec`."""
    name = name or os.environ.get("LOTEDGE_SERVICE_MANAGER") or (
        "systemd" if Path("/run/systemd/system").is_dir() else "exec")
    if name == "systemd":
        return SystemdManager()
    if name == "exec":
        return ExecManager(layout)
    raise ConfigError(f"service manager {name!r}: systemd or exec")


# --- the running lot ------------------------------------------------------------------------


def _health(socket_path: Path) -> dict[str, Any] | None:
    from appliance.client import ServiceUnavailable, SyncServiceClient

    if not socket_path.exists():
        return None
    client = SyncServiceClient(socket_path, timeout_s=5)
    try:
        return client.get("/health")
    except (ServiceUnavailable, LotedgeError):
        return None
    finally:
        client.close()


def busy_lanes(health: dict[str, Any]) -> list[str]:
    """Lanes in the middle of a car's passage: not IDLE, or a vehicle on a loop."""
    return [lane["lane"] for lane in health.get("lanes", [])
            if lane.get("state") != "IDLE" or lane.get("arming") or lane.get("safety")]


def wait_idle(socket_path: Path, *, wait_s: float, maintenance: bool,
              say=print) -> None:
    """Return once no lane serves a car (or at once with `maintenance`, or when the service is
    not running); ReleaseError(EXIT_BUSY) after `wait_s`."""
    if maintenance:
        say("maintenance window: not waiting for idle lanes")
        return
    end = time.monotonic() + wait_s
    told = False
    while True:
        health = _health(socket_path)
        if health is None:
            return  # nothing running, no car to interrupt
        busy = busy_lanes(health)
        if not busy:
            return
        if time.monotonic() >= end:
            raise ReleaseError(f"lanes {', '.join(busy)} still serving a car after {wait_s:.0f} s:"
                               " nothing changed (retry, or --maintenance when the lot is closed)",
                               code=EXIT_BUSY)
        if not told:
            say(f"waiting for idle lanes (busy: {', '.join(busy)})")
            told = True
        time.sleep(0.5)


def wait_healthy(socket_path: Path, version: str, deadline_s: float) -> dict[str, Any]:
    """/health answering ok with the expected version within the deadline."""
    end = time.monotonic() + deadline_s
    last = "no answer"
    while time.monotonic() < end:
        health = _health(socket_path)
        if health is not None:
            if health.get("ok") is True and health.get("version") == version:
                return health
            last = f"ok={health.get('ok')} version={health.get('version')}"
        time.sleep(0.3)
    raise ReleaseError(f"/health not healthy within {deadline_s:.0f} s ({last})",
                       code=EXIT_ROLLED_BACK)


# --- the ledger around a switch ---------------------------------------------------------------


def backup_ledger(db: Path, out: Path) -> Path:
    """A consistent copy of the (stopped service's) ledger through SQLite's backup API."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as src, \
            contextlib.closing(sqlite3.connect(out)) as dst:
        src.backup(dst)
    out.chmod(0o600)
    st = db.stat()
    with contextlib.suppress(PermissionError):
        os.chown(out, st.st_uid, st.st_gid)
    return out


def restore_ledger(db: Path, backup: Path, *, aside_tag: str) -> Path:
    """Put the backup in place of the ledger; the replaced ledger is kept beside it."""
    st = db.stat()
    aside = db.with_name(f"{db.name}.{aside_tag}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{db}{suffix}")
        if part.exists():
            os.replace(part, Path(f"{aside}{suffix}"))
    tmp = db.with_name(f".{db.name}.restore")
    shutil.copyfile(backup, tmp)
    tmp.chmod(0o600)
    with contextlib.suppress(PermissionError):
        os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, db)
    return aside


def check_with(lotedge: Path, config: Path) -> dict[str, Any]:
    """Run `<release>/lotedge release check --json`: that release's view of the live config
    and of a migrated copy of the ledger."""
    proc = subprocess.run([str(lotedge), "release", "check", "--config", str(config), "--json"],
                          capture_output=True, text=True, timeout=300)
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        data = {}
    if proc.returncode != 0 or not data.get("ok"):
        why = data.get("error") or " ".join(proc.stderr.strip().splitlines()[-1:]) or "no output"
        raise ReleaseError(f"check by {lotedge.parents[2].name} failed: {why}")
    return data


# --- the commands -------------------------------------------------------------------------------


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="lot configuration (default: LOTEDGE_ETC/lot.toml)")]
ManagerOpt = Annotated[str | None, typer.Option(
    "--service-manager", help="systemd or exec (default: systemd when it runs the box)")]
IdleOpt = Annotated[float, typer.Option(help="wait this long for idle lanes")]
HealthOpt = Annotated[float, typer.Option(help="deadline for READY and a healthy /health")]
MaintOpt = Annotated[bool, typer.Option(
    "--maintenance", help="the lot is closed: do not wait for idle lanes")]


def _say(text: str) -> None:
    print(f"lotedge: {text}", flush=True)


def _load(layout: Layout, config: Path | None):
    from appliance.config import load_config

    return load_config(config or layout.config)


def _swap(layout: Layout, manager: ServiceManager, *, version: str, socket_path: Path,
          health_s: float) -> dict[str, Any]:
    """Switch to `version`, install its units, start it and wait until healthy."""
    switch(layout, version)
    install_units(layout, version, manager)
    manager.start(health_s)
    return wait_healthy(socket_path, version, health_s)


def _upgrade(layout: Layout, staged: Path, *, config: Path | None, manager: ServiceManager,
             idle_s: float, maintenance: bool, health_s: float, python: str) -> int:
    cfg = _load(layout, config)
    config_path = config or layout.config
    db, socket_path = cfg.db_path(), cfg.data_path(cfg.api.socket)
    old = layout.current_version()
    new = _manifest(staged)["version"]
    if new == old:
        _say(f"release {new} is already current: nothing to do")
        return 0
    state = layout.state()
    _say(f"installing {new} beside {old or 'nothing'}")
    install_release(layout, staged, python=python)
    try:
        report = check_with(layout.lotedge(new), config_path)
    except ReleaseError:
        shutil.rmtree(layout.release(new), ignore_errors=True)
        raise
    migrated = (report.get("schema_from") is not None
                and report["schema_to"] != report["schema_from"])
    _say(f"dry run by {new}: config ok, ledger schema {report.get('schema_from')} -> "
         f"{report.get('schema_to')}" + (" (migration: rollback restores the backup)"
                                        if migrated else ""))
    wait_idle(socket_path, wait_s=idle_s, maintenance=maintenance, say=_say)
    manager.stop()
    backup = None
    if db.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        backup = backup_ledger(db, db.parent / "backups" / f"pre-upgrade-{old}-to-{new}-{stamp}"
                                                         ".sqlite3")
        _say(f"ledger backed up to {backup}")
    try:
        health = _swap(layout, manager, version=new, socket_path=socket_path, health_s=health_s)
    except ReleaseError as err:
        _say(f"{new} did not come up healthy: {err}")
        manager.stop()
        if migrated and backup is not None:
            aside = restore_ledger(db, backup, aside_tag=f"failed-{new}")
            _say(f"restored the pre-upgrade ledger (the migrated one kept as {aside.name})")
        if old is None:
            raise ReleaseError(f"upgrade to {new} failed and there is no release to go back to",
                               code=EXIT_ROLLED_BACK) from err
        try:
            _swap(layout, manager, version=old, socket_path=socket_path, health_s=health_s)
        except ReleaseError as again:
            raise ReleaseError(f"upgrade to {new} failed ({err}) and {old}, switched back, did "
                               f"not come up healthy either: {again}",
                               code=EXIT_ROLLED_BACK) from again
        shutil.rmtree(layout.release(new), ignore_errors=True)
        raise ReleaseError(f"upgrade to {new} rolled back: {old} runs again",
                           code=EXIT_ROLLED_BACK) from err
    state["history"] = [v for v in state.get("history", []) if v != new] + [new]
    if backup is not None:
        state.setdefault("backups", {})[new] = {"path": str(backup), "from": old,
                                                "migrated": migrated}
    removed = prune(layout, state)
    layout.save_state(state)
    _say(f"upgraded {old} -> {new}: healthy (uptime {health['uptime_s']} s)"
         + (f"; removed old releases {', '.join(removed)}" if removed else ""))
    return 0


def upgrade(
    archive: Annotated[str | None, typer.Argument(
        help="signed release archive (lotedge-VERSION.tar with its .sig beside it), a path or "
             "an http(s) URL")] = None,
    staged: Annotated[Path | None, typer.Option(
        help="an unpacked release directory made on this box by deploy/install.sh "
             "(release.json, wheels/, units/, doc/): not signature-checked")] = None,
    trust_key: Annotated[str | None, typer.Option(
        help="Ed25519 public key (base64 or file); default \\[cloud] bundle_public_key")] = None,
    config: ConfigOpt = None,
    service_manager: ManagerOpt = None,
    idle_wait_s: IdleOpt = 300.0,
    maintenance: MaintOpt = False,
    health_timeout_s: HealthOpt = 90.0,
    python: Annotated[str, typer.Option(help="interpreter for the new venv")] = "/usr/bin/python3",
) -> None:
    """Install a release beside the running one, check, switch, restart; roll back by itself
    if it does not report healthy. Exit 0 upgraded, 1 rolled back, 2 refused, 4 lanes busy."""
    layout = Layout.from_env()
    manager = manager_for(layout, service_manager)
    if (archive is None) == (staged is None):
        raise ReleaseError("give a signed archive or --staged DIR (one of them)")
    try:
        if archive is not None:
            key = trust_key or _load(layout, config).cloud.bundle_public_key
            if not key:
                raise ReleaseError("no trust key: set [cloud] bundle_public_key (the key that "
                                   "signs bundles) or give --trust-key")
            with tempfile.TemporaryDirectory(prefix="lotedge-release-") as tmp:
                path = Path(archive)
                if archive.startswith(("http://", "https://")):
                    (Path(tmp) / "download").mkdir()
                    path = fetch(archive, Path(tmp) / "download")
                    _say(f"fetched {path.name} and its signature")
                verify_archive(path, key)
                _say(f"{path.name}: signature ok")
                unpack(path, Path(tmp) / "release")
                code = _upgrade(layout, Path(tmp) / "release", config=config, manager=manager,
                                idle_s=idle_wait_s, maintenance=maintenance,
                                health_s=health_timeout_s, python=python)
        else:
            code = _upgrade(layout, staged, config=config, manager=manager, idle_s=idle_wait_s,
                            maintenance=maintenance, health_s=health_timeout_s, python=python)
    except (ReleaseError, OSError) as err:
        _exit_on(err)
    raise typer.Exit(code)


def _exit_on(err: ReleaseError | OSError) -> NoReturn:
    """One line on stderr and the documented exit code for a refused or failed release step."""
    if isinstance(err, ReleaseError):
        print(f"lotedge: error: {err}", file=sys.stderr)
        raise typer.Exit(err.code) from None
    print(f"lotedge: error: {err.strerror}: {err.filename or ''} (run as root)",  # not root
          file=sys.stderr)
    raise typer.Exit(EXIT_REFUSED) from None


def rollback(
    to: Annotated[str | None, typer.Option(help="release to go back to (default: previous)")]
    = None,
    restore_backup: Annotated[bool, typer.Option(
        help="the ledger was migrated: put back the backup made before the upgrade (events "
             "recorded since are kept aside, not in the ledger)")] = False,
    config: ConfigOpt = None,
    service_manager: ManagerOpt = None,
    idle_wait_s: IdleOpt = 300.0,
    maintenance: MaintOpt = False,
    health_timeout_s: HealthOpt = 90.0,
) -> None:
    """Switch back to the previous release by hand and restart it."""
    layout = Layout.from_env()
    manager = manager_for(layout, service_manager)
    try:
        cfg = _load(layout, config)
        db, socket_path = cfg.db_path(), cfg.data_path(cfg.api.socket)
        state = layout.state()
        current = layout.current_version()
        history = [v for v in state.get("history", []) if v != current]
        target = to or (history[-1] if history else None)
        if target is None or not layout.lotedge(target).exists():
            raise ReleaseError(f"no release to roll back to (installed: "
                               f"{', '.join(sorted(p.name for p in layout.releases.iterdir()))})")
        backup = state.get("backups", {}).get(current)
        try:
            check_with(layout.lotedge(target), config or layout.config)
            restore = None
        except ReleaseError as err:
            if not (restore_backup and backup and backup.get("from") == target):
                raise ReleaseError(f"{err}; if {current} migrated the ledger, rerun with "
                                   f"--restore-backup (backup made by the upgrade from "
                                   f"{target}: {backup['path'] if backup else 'none'})") from err
            restore = Path(backup["path"])
        wait_idle(socket_path, wait_s=idle_wait_s, maintenance=maintenance, say=_say)
        manager.stop()
        if restore is not None:
            aside = restore_ledger(db, restore, aside_tag=f"rolled-back-{current}")
            _say(f"restored {restore.name}; the ledger of {current} kept as {aside.name}")
        health = _swap(layout, manager, version=target, socket_path=socket_path,
                       health_s=health_timeout_s)
        state["history"] = [v for v in state.get("history", []) if v != target] + [target]
        layout.save_state(state)
        _say(f"rolled back {current} -> {target}: healthy (uptime {health['uptime_s']} s)")
    except (ReleaseError, OSError) as err:
        _exit_on(err)


@release_app.command("list")
def release_list(json_out: Annotated[bool, typer.Option("--json", help="JSON output")] = False) -> None:
    """The installed releases, the current one marked."""
    layout = Layout.from_env()
    current = layout.current_version()
    names = sorted(p.name for p in layout.releases.iterdir()) if layout.releases.is_dir() else []
    if json_out:
        print(json.dumps({"current": current, "releases": names,
                          "history": layout.state().get("history", [])}))
        return
    for name in names:
        print(f"{'*' if name == current else ' '} {name}")


@release_app.command("check")
def release_check(config: ConfigOpt = None,
                  json_out: Annotated[bool, typer.Option("--json", help="JSON output")] = False) -> None:
    """This release's dry run: the config loads, a copy of the ledger migrates and verifies."""
    import asyncio

    from appliance.ledger import Ledger
    from appliance.ledger.schema import MIGRATIONS

    layout = Layout.from_env()
    out: dict[str, Any] = {"version": __version__, "schema_supported": len(MIGRATIONS)}
    try:
        cfg = _load(layout, config)
        out["lot_id"] = cfg.lot.id
        db = cfg.db_path()
        out["schema_from"] = out["schema_to"] = None
        if db.exists():
            with tempfile.TemporaryDirectory(prefix="lotedge-check-") as tmp:
                copy = backup_ledger(db, Path(tmp) / "ledger.sqlite3")
                with contextlib.closing(sqlite3.connect(copy)) as conn:
                    out["schema_from"] = conn.execute("PRAGMA user_version").fetchone()[0]

                async def migrate() -> tuple[int, bool, int]:
                    ledger = await Ledger.open(copy, lot_id=cfg.lot.id, tz=cfg.lot.tz)
                    try:
                        report = await ledger.verify()
                        return await ledger.schema_version(), report.ok, report.events
                    finally:
                        await ledger.close()

                out["schema_to"], verified, out["events"] = asyncio.run(migrate())
                if not verified:
                    raise ReleaseError("the migrated copy of the ledger does not verify")
        out["ok"] = True
    except (LotedgeError, sqlite3.Error, OSError) as err:
        out.update(ok=False, error=" ".join(str(err).split()))
    if json_out:
        print(json.dumps(out))
    elif out["ok"]:
        print(f"ok: {__version__} runs lot {out['lot_id']}; ledger schema {out['schema_from']} "
              f"-> {out['schema_to']}")
    else:
        print(f"lotedge: error: {out['error']}", file=sys.stderr)
    if not out["ok"]:
        raise typer.Exit(EXIT_REFUSED)


@release_app.command("pack")
def release_pack(
    wheelhouse: Annotated[Path, typer.Option(help="every wheel of the release (make wheelhouse)")],
    out: Annotated[Path, typer.Option(help="archive to write (lotedge-VERSION.tar)")],
    key: Annotated[Path, typer.Option(
        help="the bundle signing key (base64 Ed25519 private key, owner-only file)")],
    units: Annotated[Path, typer.Option(help="the systemd units")] = Path("systemd"),
    doc: Annotated[list[Path] | None, typer.Option(help="documentation files to ship")] = None,
) -> None:
    """Make a signed release archive (ARCHIVE and ARCHIVE.sig)."""
    try:
        version = pack(wheelhouse=wheelhouse, units=units, docs=doc or [], out=out)
        sig = sign_archive(out, key)
    except ReleaseError as err:
        print(f"lotedge: error: {err}", file=sys.stderr)
        raise typer.Exit(EXIT_REFUSED) from None
    print(f"{out} ({version}), signature {sig}")


@release_app.command("start")
def release_start(service_manager: ManagerOpt = None, config: ConfigOpt = None,
                  health_timeout_s: HealthOpt = 90.0) -> None:
    """Start the service (systemctl, or the unit's command) and wait until it is healthy."""
    layout = Layout.from_env()
    cfg = _load(layout, config)
    try:
        manager_for(layout, service_manager).start(health_timeout_s)
        health = wait_healthy(cfg.data_path(cfg.api.socket), layout.current_version() or "",
                              health_timeout_s)
    except ReleaseError as err:
        print(f"lotedge: error: {err}", file=sys.stderr)
        raise typer.Exit(err.code) from None
    print(f"lotedge: {health['version']} running and healthy")


@release_app.command("stop")
def release_stop(service_manager: ManagerOpt = None) -> None:
    """Stop the service."""
    layout = Layout.from_env()
    manager_for(layout, service_manager).stop()

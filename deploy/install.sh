#!/usr/bin/env bash
# Install or upgrade lotedge on a 64-bit Raspberry Pi OS / Debian 12 box, as root (docs/install.md).
#
#   deploy/install.sh                          # from this clone (wheels from the package index)
#   deploy/install.sh --wheelhouse wheelhouse  # offline: every wheel from `make wheelhouse`
#
# Each release lives in PREFIX/releases/<version> with its own venv; PREFIX/current points at
# the one that runs (the units start PREFIX/current/venv/bin/lotedge) and BIN_DIR/lotedge is a
# link to it. The first install lays everything out; when another version is current, the
# running release's `lotedge upgrade --staged` installs the new one beside it, checks it,
# waits for idle lanes, switches, restarts and rolls back by itself if it does not come up
# healthy. Run it again with the same clone: the units, links and directories are repaired,
# the lot config (/etc/lotedge/lot.toml) is never overwritten.
#
# Options:
#   --wheelhouse DIR       install with no package index, from DIR (make wheelhouse)
#   --prefix DIR           releases (default /opt/lotedge)
#   --etc DIR              configuration (default /etc/lotedge)
#   --data-dir DIR         ledger and backups (default /var/lib/lotedge)
#   --unit-dir DIR         systemd units (default /etc/systemd/system)
#   --bin-dir DIR          where the `lotedge` link goes (default /usr/local/bin)
#   --udev-dir DIR         udev rules (default /etc/udev/rules.d)
#   --run-dir DIR          pid and log of a service started without systemd (/run/lotedge-exec)
#   --user NAME            service user (default lotedge; created with gpio, dialout, video)
#   --python PY            interpreter for the venvs (default python3)
#   --no-enable            do not enable the units
#   --maintenance          upgrade without waiting for idle lanes (the lot is closed)
#   --service-manager M    systemd or exec (default: systemd when it runs the box)
# Exit codes: 0 done, 1 upgrade rolled back, 2 bad input or unsupported system, 4 lanes busy.
set -euo pipefail

PREFIX=/opt/lotedge
ETC=/etc/lotedge
DATA=/var/lib/lotedge
UNIT_DIR=/etc/systemd/system
BIN_DIR=/usr/local/bin
UDEV_DIR=/etc/udev/rules.d
RUN_DIR=/run/lotedge-exec
USER_NAME=lotedge
PYTHON=python3
WHEELHOUSE=
ENABLE=1
UPGRADE_ARGS=()
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "install.sh: error: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }
need() { [ $# -ge 2 ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --wheelhouse) need "$@"; WHEELHOUSE="$(cd "$2" && pwd)" || die "no directory $2"; shift 2 ;;
        --prefix) need "$@"; PREFIX="$2"; shift 2 ;;
        --etc) need "$@"; ETC="$2"; shift 2 ;;
        --data-dir) need "$@"; DATA="$2"; shift 2 ;;
        --unit-dir) need "$@"; UNIT_DIR="$2"; shift 2 ;;
        --bin-dir) need "$@"; BIN_DIR="$2"; shift 2 ;;
        --udev-dir) need "$@"; UDEV_DIR="$2"; shift 2 ;;
        --run-dir) need "$@"; RUN_DIR="$2"; shift 2 ;;
        --user) need "$@"; USER_NAME="$2"; shift 2 ;;
        --python) need "$@"; PYTHON="$2"; shift 2 ;;
        --no-enable) ENABLE=0; shift ;;
        --maintenance) UPGRADE_ARGS+=(--maintenance); shift ;;
        --service-manager) need "$@"; UPGRADE_ARGS+=(--service-manager "$2"); shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

# 1. This system: 64-bit, root, Python 3.11+ with venv.
ME="$(id -un)"
if [ "$(id -u)" != 0 ] && [ "$USER_NAME" != "$ME" ]; then
    die "run as root (su -, or sudo if the box has it): the installer creates the user $USER_NAME, /opt, /etc and the units"
fi
command -v "$PYTHON" >/dev/null || die "no $PYTHON: apt-get install -y python3 python3-venv"
MACHINE="$(uname -m)"
BITS="$("$PYTHON" -c 'import struct; print(struct.calcsize("P") * 8)')" || die "$PYTHON does not run"
case "$MACHINE" in
    x86_64|aarch64) ;;
    *) die "this is a $MACHINE system: lotedge needs a 64-bit OS (Raspberry Pi OS 64-bit / Debian 12 arm64 or amd64)" ;;
esac
[ "$BITS" = 64 ] || die "$PYTHON is a ${BITS}-bit build on a $MACHINE kernel: lotedge needs a 64-bit OS (Raspberry Pi OS 64-bit / Debian 12 arm64), not a 32-bit userland"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than 3.11 (Debian 12 / Raspberry Pi OS bookworm has 3.11)"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || die "no venv module: apt-get install -y python3-venv"

for d in PREFIX ETC DATA UNIT_DIR BIN_DIR UDEV_DIR RUN_DIR; do
    mkdir -p "${!d}"
    eval "$d=\"\$(cd \"\${$d}\" && pwd)\""
done
IS_PI=0
grep -qs "Raspberry Pi" /proc/device-tree/model && IS_PI=1

# 2. The service user: its own group plus gpio, dialout and video (GPIO, serial, cameras).
if [ "$USER_NAME" != "$ME" ]; then
    for group in gpio dialout video; do
        getent group "$group" >/dev/null || groupadd --system "$group"
    done
    if ! id "$USER_NAME" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir "$DATA" --no-create-home \
                --shell /usr/sbin/nologin --comment "lotedge appliance" "$USER_NAME"
        say "created user $USER_NAME"
    fi
    usermod --groups gpio,dialout,video "$USER_NAME"
fi
GROUP_NAME="$(id -gn "$USER_NAME")"
own() { [ "$(id -u)" = 0 ] && chown "$@" || true; }

# 3. GPIO access by group (Raspberry Pi OS has such a rule; plain Debian does not). Serial
#    ports are group dialout and cameras group video in Debian's own udev rules.
install -m 0644 "$SRC/deploy/udev/60-lotedge-gpio.rules" "$UDEV_DIR/60-lotedge-gpio.rules"
if [ "$UDEV_DIR" = /etc/udev/rules.d ] && command -v udevadm >/dev/null && [ -d /run/udev ]; then
    udevadm control --reload && udevadm trigger --subsystem-match=gpio || true
fi

# 4. Directories and the lot config (never overwritten).
mkdir -p "$PREFIX/releases" "$ETC/secrets" "$DATA/backups" "$RUN_DIR"
chmod 0755 "$PREFIX" "$PREFIX/releases"
chmod 0750 "$ETC" "$DATA"
chmod 0700 "$ETC/secrets" "$DATA/backups"
chmod 0755 "$RUN_DIR"   # the service user sends READY=1 to a socket in it (release start)
own "root:$GROUP_NAME" "$ETC"
own "$USER_NAME:$GROUP_NAME" "$ETC/secrets"
own -R "$USER_NAME:$GROUP_NAME" "$DATA"   # also a ledger kept from an earlier install
if [ ! -e "$ETC/lot.toml" ]; then
    sed "s|^data_dir = \"/var/lib/lotedge\"|data_dir = \"$DATA\"|" "$SRC/deploy/lot.toml" > "$ETC/lot.toml"
    chmod 0640 "$ETC/lot.toml"
    say "installed $ETC/lot.toml - edit it for this lot"
fi
own "root:$GROUP_NAME" "$ETC/lot.toml"
if [ "$IS_PI" = 0 ] && grep -qE '^pin_factory = "(lgpio|rpigpio|native)"' "$ETC/lot.toml"; then
    say "note: this is not a Raspberry Pi, and $ETC/lot.toml has $(grep -E '^pin_factory' "$ETC/lot.toml" | cut -d'#' -f1 | xargs)."
    say "      The service will stop with exit 4 (no GPIO backend). On a box without GPIO set"
    say "      [hardware] pin_factory = \"mock\" (bench or test box: the barriers are not driven)."
fi
printf '{"prefix": "%s", "etc": "%s", "data": "%s", "unit_dir": "%s", "bin_dir": "%s", "run_dir": "%s", "udev_dir": "%s", "user": "%s"}\n' \
    "$PREFIX" "$ETC" "$DATA" "$UNIT_DIR" "$BIN_DIR" "$RUN_DIR" "$UDEV_DIR" "$USER_NAME" > "$PREFIX/layout.json"

# A second run from the same clone (same version) repairs: links, units and directories only.
SRC_VERSION="$(cd "$SRC" && "$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
CURRENT=
[ -L "$PREFIX/current" ] && CURRENT="$(basename "$(readlink "$PREFIX/current")")"
VERSION="$SRC_VERSION"
REL="$PREFIX/releases/$VERSION"
if [ "$CURRENT" = "$VERSION" ] && [ -e "$REL/release.json" ]; then
    say "lotedge $VERSION is installed: repairing links and units (a change is released by bumping the version in pyproject.toml)"
else

# 5. The release, staged: every wheel (from --wheelhouse, or fetched and built now), the units
#    and the docs, as `lotedge upgrade --staged` takes it.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lotedge-install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/stage/wheels" "$WORK/stage/units" "$WORK/stage/doc"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$PYTHON" -m venv "$WORK/boot"           # pip for building; the release venvs are made below
mkdir "$WORK/src"                          # build from a copy: the clone stays as it is
for part in pyproject.toml README.md LICENSE appliance drivers lpr sync ui; do
    if [ -e "$SRC/$part" ]; then cp -r "$SRC/$part" "$WORK/src/"; fi
done
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
if [ -n "$WHEELHOUSE" ]; then
    for whl in "$WHEELHOUSE"/*.whl; do ln -s "$whl" "$WORK/stage/wheels/"; done
    # lotedge itself from this clone, built offline with the wheelhouse's setuptools and wheel
    "$WORK/boot/bin/pip" wheel -q --no-index --find-links "$WHEELHOUSE" --no-deps \
        -w "$WORK/built" "$WORK/src" || die "building lotedge offline needs setuptools and wheel in $WHEELHOUSE (make wheelhouse)"
else
    "$WORK/boot/bin/pip" wheel -q -w "$WORK/built" "$WORK/src[pi]" pip setuptools wheel \
        || die "fetching the wheels failed (no package index? use --wheelhouse DIR)"
fi
for whl in "$WORK"/built/*.whl; do
    ln -sf "$whl" "$WORK/stage/wheels/$(basename "$whl")"
done
WHEEL="$(cd "$WORK/built" && ls lotedge-*.whl)"
VERSION="$(echo "$WHEEL" | cut -d- -f2)"
cp "$SRC"/systemd/lotedge* "$WORK/stage/units/"
cp "$SRC/docs/install.md" "$SRC/README.md" "$WORK/stage/doc/"
printf '{"name": "lotedge", "version": "%s", "wheel": "%s"}\n' "$VERSION" "$WHEEL" \
    > "$WORK/stage/release.json"

[ "$VERSION" = "$SRC_VERSION" ] || die "built $WHEEL, but pyproject.toml says $SRC_VERSION"
if [ -n "$CURRENT" ] && [ "$CURRENT" != "$VERSION" ] && [ -x "$PREFIX/current/venv/bin/lotedge" ]; then
    # 6a. Another release runs: the running release upgrades (and rolls back by itself).
    say "upgrading $CURRENT -> $VERSION"
    rc=0
    LOTEDGE_PREFIX="$PREFIX" "$PREFIX/current/venv/bin/lotedge" upgrade --staged "$WORK/stage" \
        --python "$(command -v "$PYTHON")" "${UPGRADE_ARGS[@]}" || rc=$?
    exit "$rc"
fi

# 6b. First install: the release's own venv, offline from the staged wheels.
if [ ! -e "$REL/release.json" ]; then
    rm -rf "$REL"
    mkdir -p "$REL/units" "$REL/doc"
    if [ -n "${LOTEDGE_TEST_DEPS_SITE:-}" ]; then   # tests only: dependencies from a dev venv
        "$PYTHON" -m venv --without-pip "$REL/venv"
        echo "$LOTEDGE_TEST_DEPS_SITE" > "$(echo "$REL"/venv/lib/python3*/site-packages)/_lotedge_test_deps.pth"
        "$REL/venv/bin/python" -m pip install -q --no-index --no-compile --no-deps --ignore-installed \
            --find-links "$WORK/stage/wheels" "lotedge==$VERSION"
    else
        "$PYTHON" -m venv "$REL/venv"
        "$REL/venv/bin/pip" install -q --no-index --no-compile --find-links "$WORK/stage/wheels" \
            "lotedge[pi]==$VERSION"
    fi
    # /opt is read-only to the service (ProtectSystem=strict): compile now, checked hashes
    "$REL/venv/bin/python" -m compileall -q -j 0 --invalidation-mode checked-hash \
        "$REL"/venv/lib/python3* >/dev/null
    for unit in "$WORK"/stage/units/lotedge*; do
        sed -e "s|/opt/lotedge/|$PREFIX/|g" -e "s|/etc/lotedge/|$ETC/|g" -e "s|/var/lib/lotedge|$DATA|g" \
            -e "s|^User=lotedge\$|User=$USER_NAME|" -e "s|^Group=lotedge\$|Group=$GROUP_NAME|" \
            "$unit" > "$REL/units/$(basename "$unit")"
    done
    cp "$WORK"/stage/doc/* "$REL/doc/"
    printf '{"version": "%s", "installed_utc": "%s"}\n' "$VERSION" "$(date -u +%FT%TZ)" \
        > "$REL/release.json"
    say "installed lotedge $VERSION into $REL"
fi
fi  # not a repair
ln -sfn "releases/$VERSION" "$PREFIX/.current.$$" && mv -T "$PREFIX/.current.$$" "$PREFIX/current"
[ -e "$PREFIX/releases.json" ] || printf '{"history": ["%s"], "backups": {}}\n' "$VERSION" > "$PREFIX/releases.json"
rm -rf "$PREFIX/venv" "$PREFIX/src"   # the single-venv layout of 0.1.0
ln -sfn "$PREFIX/current/venv/bin/lotedge" "$BIN_DIR/lotedge"

# 7. systemd units (PREFIX/current through ExecStart; Documentation= is the shipped page).
for unit in "$REL"/units/lotedge*; do
    cmp -s "$unit" "$UNIT_DIR/$(basename "$unit")" || install -m 0644 "$unit" "$UNIT_DIR/"
done
if [ "$ENABLE" = 1 ] && [ "$UNIT_DIR" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable lotedge.service lotedge-backup.timer
    say "enabled lotedge.service and lotedge-backup.timer (start: systemctl start lotedge)"
fi
say "done: lotedge $VERSION is current ($PREFIX/current), command $BIN_DIR/lotedge"

#!/usr/bin/env bash
# Install lotedge on a Raspberry Pi OS / Debian box (or into a staging root with --root).
#
#   sudo deploy/install.sh                 # install on this machine, enable the units
#   deploy/install.sh --root /tmp/stage    # write the files under /tmp/stage only
#
# Places: /opt/lotedge/src (source copy), /opt/lotedge/venv (Python venv), /etc/lotedge/lot.toml
# (never overwritten), /etc/lotedge/secrets (0700), /etc/systemd/system/lotedge*.{service,timer},
# /var/lib/lotedge (0750, data dir) and /var/lib/lotedge/backups (0700).
# Idempotent: running it again gives the same tree (the config is kept as edited).
#
# Options:
#   --root DIR      install under DIR (DESTDIR); no user creation, no systemctl
#   --python PY     interpreter for the venv (default python3)
#   --no-deps       install lotedge itself without its dependencies (staging/tests)
#   --no-enable     do not enable the units (with --root nothing is ever enabled)
set -euo pipefail

ROOT=/
PYTHON=python3
DEPS=1
ENABLE=1
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "install.sh: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT="$2"; shift 2 ;;
        --root=*) ROOT="${1#--root=}"; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PYTHON="$2"; shift 2 ;;
        --no-deps) DEPS=0; shift ;;
        --no-enable) ENABLE=0; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

mkdir -p "$ROOT"
ROOT="$(cd "$ROOT" && pwd)"
R="${ROOT%/}"                       # "" for the real root
LIVE=0
[ "$ROOT" = "/" ] && LIVE=1
if [ "$LIVE" = 1 ] && [ "$(id -u)" != 0 ]; then
    die "installing into / needs root (or use --root DIR)"
fi
command -v "$PYTHON" >/dev/null || die "no $PYTHON (apt-get install python3 python3-venv)"

say() { echo "install.sh: $*"; }

# dir PATH MODE [OWNER:GROUP]
dir() {
    mkdir -p "$R$1"
    chmod "$2" "$R$1"
    if [ "$LIVE" = 1 ] && [ -n "${3:-}" ]; then chown "$3" "$R$1"; fi
}

# file SRC DEST MODE [OWNER:GROUP]: copy only when the content differs.
file() {
    if ! cmp -s "$1" "$R$2"; then
        install -m "$3" "$1" "$R$2"
    fi
    chmod "$3" "$R$2"
    if [ "$LIVE" = 1 ] && [ -n "${4:-}" ]; then chown "$4" "$R$2"; fi
}

# 1. The service user: only gpio, dialout and video on top of its own group.
if [ "$LIVE" = 1 ]; then
    for group in gpio dialout video; do
        getent group "$group" >/dev/null || groupadd --system "$group"
    done
    if ! id lotedge >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/lotedge --no-create-home \
                --shell /usr/sbin/nologin --comment "lotedge appliance" lotedge
        say "created user lotedge"
    fi
    usermod --groups gpio,dialout,video lotedge
fi

# 2. Source copy (the venv installs from it; the README lives there).
dir /opt 0755
dir /opt/lotedge 0755 root:root
dir /opt/lotedge/src 0755 root:root
PARTS=()
for part in pyproject.toml README.md appliance drivers lpr sync ui config systemd deploy; do
    [ -e "$SRC/$part" ] && PARTS+=("$part")
done
(
    cd "$SRC"
    find "${PARTS[@]}" -path '*/__pycache__' -prune -o -type f ! -name '*.pyc' -print | LC_ALL=C sort
) > "${TMPDIR:-/tmp}/lotedge-files.$$"
while IFS= read -r rel; do
    mkdir -p "$(dirname "$R/opt/lotedge/src/$rel")"
    file "$SRC/$rel" "/opt/lotedge/src/$rel" 0644
done < "${TMPDIR:-/tmp}/lotedge-files.$$"
# Files that left the source tree leave the copy too.
(cd "$R/opt/lotedge/src" && find . -type f ! -path './build/*' | sed 's|^\./||' | LC_ALL=C sort) \
    | comm -23 - "${TMPDIR:-/tmp}/lotedge-files.$$" \
    | while IFS= read -r gone; do rm -f "$R/opt/lotedge/src/$gone"; done
rm -f "${TMPDIR:-/tmp}/lotedge-files.$$"
find "$R/opt/lotedge/src" -type d -empty -delete
find "$R/opt/lotedge/src" -type d -exec chmod 0755 {} +
chmod 0755 "$R/opt/lotedge/src/deploy/install.sh"

# 3. The venv. Bytecode is compiled at install with checked hashes (deterministic): /opt is
#    read-only to the service (ProtectSystem=strict), so it cannot write caches at run time.
VENV="$R/opt/lotedge/venv"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    say "created venv $VENV"
fi
# Reinstall only when the source changed (the stamp is written after a complete install).
STAMP="$VENV/.lotedge-src.sha256"
SRC_HASH="$(cd "$R/opt/lotedge/src" && find . -type f -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)-deps$DEPS"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$SRC_HASH" ]; then
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    "$VENV/bin/pip" install -q --no-compile --no-deps --force-reinstall "$R/opt/lotedge/src"
    if [ "$DEPS" = 1 ]; then
        # [pi]: the GPIO backends (lgpio on a 64-bit Pi OS, for the Pi 5 and older Pis)
        "$VENV/bin/pip" install -q --no-compile "$R/opt/lotedge/src[pi]"
    fi
    rm -rf "$R/opt/lotedge/src/build" "$R/opt/lotedge/src/"*.egg-info
    find "$VENV"/lib/python3*/site-packages -name '__pycache__' -type d -prune -exec rm -rf {} +
    "$VENV/bin/python" -m compileall -q -j 0 --invalidation-mode checked-hash \
        "$VENV"/lib/python3*/site-packages >/dev/null
    echo "$SRC_HASH" > "$STAMP"
    chmod 0644 "$STAMP"
    say "installed lotedge into $VENV"
fi

# 4. Configuration: the lot file is never overwritten; secrets are owner-only.
dir /etc 0755
dir /etc/lotedge 0750 root:lotedge
if [ ! -e "$R/etc/lotedge/lot.toml" ]; then
    install -m 0640 "$SRC/deploy/lot.toml" "$R/etc/lotedge/lot.toml"
    say "installed /etc/lotedge/lot.toml - edit it for this lot"
fi
if [ "$LIVE" = 1 ]; then chown root:lotedge /etc/lotedge/lot.toml; fi
dir /etc/lotedge/secrets 0700 lotedge:lotedge

# 5. Data directory.
dir /var 0755
dir /var/lib 0755
dir /var/lib/lotedge 0750 lotedge:lotedge
dir /var/lib/lotedge/backups 0700 lotedge:lotedge

# 6. systemd units.
dir /etc/systemd 0755
dir /etc/systemd/system 0755
for unit in lotedge.service lotedge-backup.service lotedge-backup.timer; do
    file "$SRC/systemd/$unit" "/etc/systemd/system/$unit" 0644 root:root
done
if [ "$LIVE" = 1 ] && [ "$ENABLE" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable lotedge.service lotedge-backup.timer
    say "enabled lotedge.service and lotedge-backup.timer (start: systemctl start lotedge)"
fi
say "done: installed into $ROOT"

#!/usr/bin/env bash
# Remove lotedge: stop and disable the units, remove them, the releases and their venvs, the
# `lotedge` link, the udev rule and the service user. The ledger, its backups and the lot
# config are kept unless --purge (docs/install.md "Uninstall").
#
#   deploy/uninstall.sh [--prefix DIR] [--purge]
# The other places come from PREFIX/layout.json (written by install.sh).
set -euo pipefail

PREFIX=/opt/lotedge
PURGE=0
die() { echo "uninstall.sh: error: $*" >&2; exit 2; }
say() { echo "uninstall.sh: $*"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX="$2"; shift 2 ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[ -e "$PREFIX/layout.json" ] || die "no lotedge install at $PREFIX (no layout.json)"
get() { sed -n "s/.*\"$1\": \"\\([^\"]*\\)\".*/\\1/p" "$PREFIX/layout.json"; }
ETC="$(get etc)"; DATA="$(get data)"; UNIT_DIR="$(get unit_dir)"; BIN_DIR="$(get bin_dir)"
RUN_DIR="$(get run_dir)"; UDEV_DIR="$(get udev_dir)"; USER_NAME="$(get user)"
if [ "$(id -u)" != 0 ] && [ "$USER_NAME" != "$(id -un)" ]; then die "run as root"; fi

# The service first: systemd's, or the one started by the unit's command.
if [ "$UNIT_DIR" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
    systemctl disable --now lotedge.service lotedge-backup.timer 2>/dev/null || true
fi
if [ -x "$PREFIX/current/venv/bin/lotedge" ]; then
    LOTEDGE_PREFIX="$PREFIX" "$PREFIX/current/venv/bin/lotedge" release stop \
        --service-manager exec || true
fi
rm -f "$UNIT_DIR"/lotedge.service "$UNIT_DIR"/lotedge-backup.service \
      "$UNIT_DIR"/lotedge-backup.timer "$UDEV_DIR/60-lotedge-gpio.rules"
if [ "$UNIT_DIR" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
if [ "$(readlink "$BIN_DIR/lotedge" 2>/dev/null)" = "$PREFIX/current/venv/bin/lotedge" ]; then
    rm -f "$BIN_DIR/lotedge"
fi
rm -rf "$PREFIX" "$RUN_DIR"
say "removed the units, $PREFIX (every release and venv) and $BIN_DIR/lotedge"
if [ "$USER_NAME" != "$(id -un)" ] && id "$USER_NAME" >/dev/null 2>&1; then
    userdel "$USER_NAME"
    say "removed user $USER_NAME"
fi
if [ "$PURGE" = 1 ]; then
    rm -rf "$DATA" "$ETC"
    say "purged $DATA (ledger and backups) and $ETC (lot config and secrets)"
else
    say "kept $DATA (ledger and backups) and $ETC (lot config): remove them with --purge"
fi

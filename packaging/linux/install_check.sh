#!/usr/bin/env bash
# Install the Linux artifacts the way an admin does, check them, remove them, and check nothing is left.
# CI runs this on its fresh machine, so "installs on a fresh machine" is tested on every change.
#   install_check.sh DIST   (DIST holds xtwizard_*.deb and xtwizard-*-linux-*.tar.gz)
# 1. The .deb through apt (which resolves its Depends from the Debian archive): /usr/bin/xtwizard, the menu
#    entry (desktop-file-validate) and icons; the installed program's full self-test; purge; nothing left.
# 2. The tar.gz per user (install.sh into a throw-away HOME): the link, menu entry and icon; the installed
#    program opens its window (--measure-startup paints the first page offscreen); install.sh --uninstall.
set -euo pipefail
DIST=$(cd "$1" && pwd)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

DEB=$(ls "$DIST"/xtwizard_*.deb | head -1)
echo "== .deb: apt-get install $DEB"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$DEB" >/dev/null
[ "$(readlink -f /usr/bin/xtwizard)" = /opt/xtwizard/xtwizard ] || fail "/usr/bin/xtwizard does not lead to /opt/xtwizard"
desktop-file-validate /usr/share/applications/xtwizard.desktop || fail "the menu entry is not valid"
test -s /usr/share/icons/hicolor/256x256/apps/xtwizard.png || fail "icon missing"
/usr/bin/xtwizard --version | grep -q "^xtwizard " || fail "xtwizard --version"
echo "== .deb: the installed program's self-test"
HOME="$TMP/deb-home" bash "$(dirname "$0")/../frozen_selftest.sh" /usr/bin/xtwizard
echo "== .deb: apt-get purge"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get purge -y -qq xtwizard >/dev/null
for f in /usr/bin/xtwizard /opt/xtwizard /usr/share/applications/xtwizard.desktop \
         /usr/share/icons/hicolor/256x256/apps/xtwizard.png; do
  [ ! -e "$f" ] || fail "$f is still there after purge"
done

TAR=$(ls "$DIST"/xtwizard-*-linux-*.tar.gz | head -1)
echo "== tar.gz: install.sh from $TAR into a throw-away HOME"
mkdir -p "$TMP/home" "$TMP/unpack"
tar -xzf "$TAR" -C "$TMP/unpack"
INSTALL=$(find "$TMP/unpack" -maxdepth 2 -name install.sh | head -1)
HOME="$TMP/home" bash "$INSTALL" >/dev/null
BIN="$TMP/home/.local/bin/xtwizard"
test -x "$BIN" || fail "the per-user link is missing"
desktop-file-validate "$TMP/home/.local/share/applications/xtwizard.desktop" || fail "the per-user menu entry is not valid"
grep -q "^Exec=$BIN" "$TMP/home/.local/share/applications/xtwizard.desktop" || fail "the menu entry does not run $BIN"
HOME="$TMP/home" "$BIN" --measure-startup "$TMP/paint" >/dev/null
test -s "$TMP/paint" || fail "the installed program did not paint its first page"
HOME="$TMP/home" bash "$INSTALL" --uninstall >/dev/null
left=$(find "$TMP/home/.local" -name "xtwizard*" | grep -v "/share/xtwizard" || true)
[ -z "$left" ] || fail "left after --uninstall: $left"
echo "== Linux artifacts installed, checked and removed: .deb (apt) and tar.gz (per user)"

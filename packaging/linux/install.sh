#!/usr/bin/env bash
# Per-user install from the tar.gz: ~/.local/lib/xtwizard (the program), ~/.local/bin/xtwizard (a link),
# a menu entry and an icon.  `./install.sh --uninstall` removes those again (your data stays: see README,
# "Remove everything").
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX=${PREFIX:-$HOME/.local}
APPS=$PREFIX/share/applications
ICONS=$PREFIX/share/icons/hicolor
if [ "${1:-}" = "--uninstall" ]; then
  rm -rf "$PREFIX/lib/xtwizard"
  rm -f "$PREFIX/bin/xtwizard" "$APPS/xtwizard.desktop" "$ICONS/256x256/apps/xtwizard.png" \
        "$ICONS/scalable/apps/xtwizard.svg"
  echo "xtwizard removed from $PREFIX."
  exit 0
fi
mkdir -p "$PREFIX/lib" "$PREFIX/bin" "$APPS" "$ICONS/256x256/apps" "$ICONS/scalable/apps"
rm -rf "$PREFIX/lib/xtwizard"
cp -a "$HERE/xtwizard" "$PREFIX/lib/xtwizard"
ln -sf "$PREFIX/lib/xtwizard/xtwizard" "$PREFIX/bin/xtwizard"
sed "s|^Exec=xtwizard|Exec=$PREFIX/bin/xtwizard|" "$HERE/xtwizard.desktop" > "$APPS/xtwizard.desktop"
cp "$HERE/xtwizard.png" "$ICONS/256x256/apps/xtwizard.png"
cp "$HERE/xtwizard.svg" "$ICONS/scalable/apps/xtwizard.svg"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS" || true
echo "xtwizard installed: $PREFIX/bin/xtwizard (and in the applications menu)."
echo "Check it: $PREFIX/bin/xtwizard --self-test"

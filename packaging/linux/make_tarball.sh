#!/usr/bin/env bash
# dist/xtwizard-VERSION-linux-ARCH.tar.gz: the one-folder build, the icon and .desktop file, and install.sh
# (per-user install into ~/.local, no root needed).
#   make_tarball.sh ONEFOLDER VERSION OUTDIR
set -euo pipefail
SRC=$1; VERSION=$2; OUT=$3
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ARCH=$(uname -m)
NAME="xtwizard-$VERSION-linux-$ARCH"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/$NAME"
cp -a "$SRC" "$STAGE/$NAME/xtwizard"
cp "$ROOT/resources/xtwizard.desktop" "$ROOT/resources/xtwizard.png" "$ROOT/resources/xtwizard.svg" "$STAGE/$NAME/"
cp "$ROOT/packaging/linux/install.sh" "$STAGE/$NAME/install.sh"
chmod +x "$STAGE/$NAME/install.sh"
tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -czf "$OUT/$NAME.tar.gz" "$NAME"
echo "== tar.gz: $OUT/$NAME.tar.gz ($(du -m "$OUT/$NAME.tar.gz" | cut -f1) MB)"

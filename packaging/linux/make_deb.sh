#!/usr/bin/env bash
# dist/xtwizard_VERSION_ARCH.deb (dpkg-deb): /opt/xtwizard (the one-folder build), /usr/bin/xtwizard,
# a .desktop entry and hicolor icons.  Depends lists the system libraries the bundle expects from the OS
# (PyInstaller leaves out libc, libGL/libEGL and the X/xcb client libraries it did not find).
#   make_deb.sh ONEFOLDER VERSION OUTDIR
set -euo pipefail
SRC=$1; VERSION=$2; OUT=$3
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/pkg
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" \
         "$PKG/usr/share/icons/hicolor/256x256/apps" "$PKG/usr/share/icons/hicolor/scalable/apps" \
         "$PKG/usr/share/doc/xtwizard"
cp -a "$SRC" "$PKG/opt/xtwizard"
ln -s /opt/xtwizard/xtwizard "$PKG/usr/bin/xtwizard"
cp "$ROOT/resources/xtwizard.desktop" "$PKG/usr/share/applications/xtwizard.desktop"
cp "$ROOT/resources/xtwizard.png" "$PKG/usr/share/icons/hicolor/256x256/apps/xtwizard.png"
cp "$ROOT/resources/xtwizard.svg" "$PKG/usr/share/icons/hicolor/scalable/apps/xtwizard.svg"
cat > "$PKG/usr/share/doc/xtwizard/copyright" <<COPY
xtwizard $VERSION. Proprietary. Bundles Python, Qt (PySide6-Essentials, LGPLv3) and other open-source
libraries under their own licences; see /opt/xtwizard/_internal for their metadata.
COPY
SIZE_KB=$(du -sk "$PKG" | cut -f1)
# The newest glibc symbol version any bundled binary needs (the build machine's distribution sets it).
GLIBC=$(find "$SRC" -type f \( -name "*.so*" -o -name xtwizard \) -exec objdump -T {} + 2>/dev/null |
        grep -o "GLIBC_2\.[0-9]*" | sort -t. -k2 -n -u | tail -1 | sed 's/GLIBC_//' || true)
GLIBC=${GLIBC:-2.31}
cat > "$PKG/DEBIAN/control" <<CONTROL
Package: xtwizard
Version: $VERSION
Section: net
Priority: optional
Architecture: $ARCH
Maintainer: xtwizard <support@xtwizard.invalid>
Installed-Size: $SIZE_KB
Depends: libc6 (>= $GLIBC), libegl1, libgl1, libfontconfig1, libxkbcommon0, libxkbcommon-x11-0, libxcb1,
 libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-image0, libxcb-render-util0, libxcb-randr0,
 libxcb-shape0, libxcb-xfixes0, libxcb-xkb1, libxcb-shm0, libxcb-sync1, libxcb-render0, libxcb-xinput0,
 libdbus-1-3, ca-certificates
Recommends: gnome-keyring | kwalletmanager
Description: move Exchange Online mailboxes between Microsoft 365 tenants
 A desktop wizard for Microsoft's native cross-tenant mailbox migration: it signs in to both tenants,
 checks the prerequisites, creates the migration app, endpoint, organization relationships and scoping
 group, and runs the moves. "xtwizard --demo" rehearses against simulated tenants on this computer.
CONTROL
find "$PKG" -type d -exec chmod 0755 {} +
DEB="$OUT/xtwizard_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zgzip -z9 --build "$PKG" "$DEB" >/dev/null
echo "== deb: $DEB ($(du -m "$DEB" | cut -f1) MB)"

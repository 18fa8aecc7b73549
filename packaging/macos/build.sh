#!/usr/bin/env bash
# macOS build: xtwizard.app (one folder by nature) from a clean virtual environment, signed with the
# hardened runtime, a DMG, notarized and stapled; then the frozen self-test.  Run on macOS 12+ with
# Python 3.11+ from python.org (universal2) or a macos-14 (arm64) / macos-13 (x86_64) runner.
#
#   packaging/macos/build.sh                      # unsigned developer build (ad-hoc signature)
#   XTW_SIGN_IDENTITY="Developer ID Application: Example Ltd (TEAMID1234)" \
#   XTW_NOTARY_PROFILE=xtwizard-notary packaging/macos/build.sh
#
# XTW_NOTARY_PROFILE is a keychain profile made once with
#   xcrun notarytool store-credentials xtwizard-notary --apple-id ... --team-id ... --password <app-specific>
# (in CI: an App Store Connect API key: notarytool --key/--key-id/--issuer).  A stable Developer ID also
# keeps the Keychain's "Always Allow" for the token-cache key across updates (engineering-practice §3.2).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
VENV=$ROOT/build/packaging-venv
DIST=$ROOT/dist
ENTITLEMENTS=$ROOT/packaging/macos/entitlements.plist

rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# Pillow only converts resources/xtwizard.png to the .icns; it is not bundled.
"$VENV/bin/python" -m pip install -q "$ROOT" "pyinstaller>=6.10,<7" pillow
VERSION=$("$VENV/bin/python" -c "import xtwizard; print(xtwizard.__version__)")

mkdir -p "$ROOT/build"
(cd "$ROOT/build" && XTW_VERSION="$VERSION" "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
   --distpath "$DIST" --workpath "$ROOT/build/pyinstaller" "$ROOT/packaging/xtwizard.spec")
APP="$DIST/xtwizard.app"

IDENTITY=${XTW_SIGN_IDENTITY:--}
echo "== signing $APP with ${IDENTITY} (hardened runtime)"
# Inside out: every nested Mach-O first, then the bundle (no --deep for signing: Apple advises against it).
find "$APP/Contents" -type f \( -name "*.so" -o -name "*.dylib" -o -perm -u+x \) -print0 |
  while IFS= read -r -d '' f; do
    if file "$f" | grep -q "Mach-O"; then
      codesign --force --timestamp --options runtime --entitlements "$ENTITLEMENTS" --sign "$IDENTITY" "$f"
    fi
  done
find "$APP/Contents" -name "*.framework" -type d -prune -print0 |
  while IFS= read -r -d '' fw; do codesign --force --timestamp --options runtime --sign "$IDENTITY" "$fw"; done
codesign --force --timestamp --options runtime --entitlements "$ENTITLEMENTS" --sign "$IDENTITY" "$APP"
codesign --verify --deep --strict --verbose=2 "$APP"

echo "== self-test of the frozen app"
QT_QPA_PLATFORM=offscreen "$APP/Contents/MacOS/xtwizard" --self-test --log-file "$ROOT/build/self-test.log" \
  || { cat "$ROOT/build/self-test.log"; exit 1; }

echo "== DMG"
DMG="$DIST/xtwizard-$VERSION-macos-$(uname -m).dmg"
STAGE=$(mktemp -d)
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "xtwizard $VERSION" -srcfolder "$STAGE" -ov -format UDZO "$DMG"
rm -rf "$STAGE"
if [ "$IDENTITY" != "-" ]; then
  codesign --force --timestamp --sign "$IDENTITY" "$DMG"
fi

if [ -n "${XTW_NOTARY_PROFILE:-}" ]; then
  echo "== notarizing"
  xcrun notarytool submit "$DMG" --keychain-profile "$XTW_NOTARY_PROFILE" --wait
  xcrun stapler staple "$DMG"
  xcrun stapler validate "$DMG"
  spctl --assess --type open --context context:primary-signature --verbose "$DMG"
fi
echo "== $DMG"

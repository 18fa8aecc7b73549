#!/usr/bin/env bash
# Build the one-folder xtwizard binary from a clean virtual environment, then the Linux artifacts.
#
#   packaging/build.sh                 # dist/xtwizard/, dist/xtwizard-VERSION-linux-ARCH.tar.gz, dist/xtwizard_VERSION_ARCH.deb
#   XTW_REUSE_VENV=1 packaging/build.sh   # keep build/packaging-venv from an earlier run (faster; CI does not)
#   XTW_SKIP_ARTIFACTS=1 packaging/build.sh  # only the one-folder build
#
# The virtual environment holds the project and PyInstaller only: no test tools, no second Qt binding
# (PyInstaller refuses to collect PySide6 next to PyQt, engineering-practice §4.1). macOS and Windows use
# the same spec: see packaging/macos/build.sh and packaging/windows/build.ps1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
VENV=${XTW_BUILD_VENV:-$ROOT/build/packaging-venv}
DIST=${XTW_DIST:-$ROOT/dist}
WORK=$ROOT/build/pyinstaller

if [ -z "${XTW_REUSE_VENV:-}" ] || [ ! -x "$VENV/bin/python" ]; then
  echo "== clean build environment: $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
echo "== installing xtwizard and PyInstaller into it"
"$VENV/bin/python" -m pip install -q "$ROOT" "pyinstaller>=6.10,<7"
# Guard: exactly one Qt binding, and it is PySide6-Essentials (not the 600 MB PySide6 meta-package).
"$VENV/bin/python" - <<'PYCHECK'
import importlib.metadata as md
names = {d.metadata["Name"].lower().replace("_", "-") for d in md.distributions()}
bad = names & {"pyqt5", "pyqt6", "pyside2", "pyside6", "pyside6-addons"}
assert not bad, f"unwanted Qt packages in the build environment: {sorted(bad)}"
assert "pyside6-essentials" in names, "PySide6-Essentials is missing"
PYCHECK

VERSION=$("$VENV/bin/python" -c "import xtwizard; print(xtwizard.__version__)")
echo "== PyInstaller (one folder) for xtwizard $VERSION"
rm -rf "$DIST/xtwizard"
mkdir -p "$WORK"
(cd "$ROOT/build" && "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN --distpath "$DIST" --workpath "$WORK" \
  "$ROOT/packaging/xtwizard.spec")
echo "== one-folder size: $(du -sm "$DIST/xtwizard" | cut -f1) MB ($DIST/xtwizard)"

if [ -z "${XTW_SKIP_ARTIFACTS:-}" ] && [ "$(uname -s)" = Linux ]; then
  "$ROOT/packaging/linux/make_tarball.sh" "$DIST/xtwizard" "$VERSION" "$DIST"
  "$ROOT/packaging/linux/make_deb.sh" "$DIST/xtwizard" "$VERSION" "$DIST"
fi

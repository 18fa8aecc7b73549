#!/usr/bin/env bash
# Freeze packaging/bench/bare_wizard.py with the same spec, environment and pruning as xtwizard
# (run packaging/build.sh first: it makes the build environment).  Result: build/bench/bare-wizard/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV=${XTW_BUILD_VENV:-$ROOT/build/packaging-venv}
mkdir -p "$ROOT/build/bench-work"
cd "$ROOT/build"
XTW_ENTRY="$ROOT/packaging/bench/bare_wizard.py" XTW_NAME=bare-wizard \
  "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN --distpath "$ROOT/build/bench" \
  --workpath "$ROOT/build/bench-work" "$ROOT/packaging/xtwizard.spec"
echo "== baseline: $ROOT/build/bench/bare-wizard ($(du -sm "$ROOT/build/bench/bare-wizard" | cut -f1) MB)"

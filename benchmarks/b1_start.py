"""B1: the frozen binary to its first page painted, against a bare frozen PySide6 QWizard built the same way.

Reuses packaging/measure_startup.py (alternating runs, medians, cold when the page cache can be dropped) and
the builds of packaging/build.sh and packaging/bench/build_baseline.sh (made when missing, or with --rebuild)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dist" / "xtwizard" / "xtwizard"
BASELINE = ROOT / "build" / "bench" / "bare-wizard" / "bare-wizard"
GOAL = 1.3


def ensure_builds(rebuild: bool) -> None:
    env = {**os.environ, "XTW_SKIP_ARTIFACTS": "1", "XTW_REUSE_VENV": "1"}
    if rebuild or not APP.exists():
        subprocess.run(["bash", str(ROOT / "packaging" / "build.sh")], cwd=ROOT, env=env, check=True)
    if rebuild or not BASELINE.exists():
        subprocess.run(["bash", str(ROOT / "packaging" / "bench" / "build_baseline.sh")], cwd=ROOT, env=env,
                       check=True)


def build_age_note() -> str:
    """When the build was made, and whether the sources changed since (a stale build measures old code)."""
    built = APP.stat().st_mtime
    newer = [p for p in (ROOT / "xtwizard").rglob("*.py") if p.stat().st_mtime > built]
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(built))
    return f"build of {when} UTC" + (f" ({len(newer)} source files changed since: rerun with --rebuild)"
                                     if newer else "")


def run(rebuild: bool = False, runs: int = 7) -> dict[str, Any]:
    ensure_builds(rebuild)
    out = subprocess.run([sys.executable, str(ROOT / "packaging" / "measure_startup.py"), str(APP), str(BASELINE),
                          "--runs", str(runs)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measure_startup.py failed: {out.stderr.strip()[-1500:]}")
    m = json.loads(out.stdout)
    return {"goal": GOAL, "met": m["ratio"] <= GOAL, "build": build_age_note(), **m}

"""B5: the size of the one-folder build (dist/xtwizard/, made by packaging/build.sh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.b1_start import APP, BASELINE, build_age_note, ensure_builds

GOAL_MB = 150


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def run(rebuild: bool = False) -> dict[str, Any]:
    ensure_builds(rebuild)
    size = folder_bytes(APP.parent)
    base = folder_bytes(BASELINE.parent)
    return {"goal_mb": GOAL_MB, "bytes": size, "mb": round(size / 1e6, 1), "mib": round(size / 2**20, 1),
            "baseline_mb": round(base / 1e6, 1), "met": size / 1e6 <= GOAL_MB, "build": build_age_note()}

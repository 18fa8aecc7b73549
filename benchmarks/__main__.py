"""Run the benchmarks and write benchmarks/results.json and the table between the bench markers in README.md.

    .venv/bin/python -m benchmarks                  # all
    .venv/bin/python -m benchmarks --only B2,B5     # some
    .venv/bin/python -m benchmarks --rebuild        # rebuild the frozen app and the baseline first (B1, B5)
    .venv/bin/python -m benchmarks --users 500      # a smaller B3/B4 (the README table is written only for the
                                                    # full sizes unless --write-readme)
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import NotMeasurable, machine
from benchmarks.report import render, write_readme

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
NAMES = ("B1", "B2", "B3", "B4", "B5")


def runners(args: argparse.Namespace) -> dict[str, Callable[[], dict[str, Any]]]:
    def b1() -> dict[str, Any]:
        return importlib.import_module("benchmarks.b1_start").run(rebuild=args.rebuild, runs=args.runs)

    def b2() -> dict[str, Any]:
        return importlib.import_module("benchmarks.b2_setup").run()

    def b3() -> dict[str, Any]:
        return importlib.import_module("benchmarks.b3_prepare").run(users=args.users_b3, limit=args.limit)

    def b4() -> dict[str, Any]:
        return importlib.import_module("benchmarks.b4_monitor").run(users=args.users_b4)

    def b5() -> dict[str, Any]:
        return importlib.import_module("benchmarks.b5_size").run(rebuild=False)

    return {"B1": b1, "B2": b2, "B3": b3, "B4": b4, "B5": b5}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(NAMES), help="comma-separated: B1,B2,B3,B4,B5")
    ap.add_argument("--rebuild", action="store_true", help="rebuild dist/xtwizard and the bare-QWizard baseline")
    ap.add_argument("--runs", type=int, default=7, help="B1: runs of each binary")
    ap.add_argument("--users-b3", type=int, default=5000)
    ap.add_argument("--users-b4", type=int, default=10000)
    ap.add_argument("--limit", type=int, default=4, help="B3: the throttle's concurrent requests per tenant")
    ap.add_argument("--write-readme", action="store_true", help="write README.md even for smaller sizes")
    ap.add_argument("--table", action="store_true", help="only write the table again from benchmarks/results.json")
    args = ap.parse_args(argv)
    if args.table:
        table = render(json.loads(RESULTS.read_text()))
        write_readme(ROOT / "README.md", table)
        sys.stdout.write(table + "\n")
        return 0
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    wanted = [n.strip().upper() for n in args.only.split(",") if n.strip()]
    measured: dict[str, Any] = {}
    for name, fn in runners(args).items():
        if name not in wanted:
            continue
        sys.stderr.write(f"== {name}\n")
        try:
            measured[name] = {"status": "measured", **fn()}
        except NotMeasurable as exc:
            measured[name] = {"status": "not measurable yet", "why": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one benchmark failing must not hide the others
            traceback.print_exc()
            measured[name] = {"status": "failed", "why": f"{exc.__class__.__name__}: {exc}"}
        measured[name]["measured_at"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        sys.stderr.write(json.dumps(measured[name]) + "\n")
    full = args.users_b3 == 5000 and args.users_b4 == 10000
    # Read the file again only now and replace just what this run measured: a run of other benchmarks that
    # finished meanwhile keeps its results.
    previous: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results: dict[str, Any] = {**previous.get("results", {}), **measured}
    doc = {"machine": machine.describe(), "results": dict(sorted(results.items()))}
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    table = render(doc)
    sys.stdout.write(table + "\n")
    if full or args.write_readme:
        write_readme(ROOT / "README.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

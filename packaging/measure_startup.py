"""Start time of the frozen xtwizard to its first painted page, as a ratio to a bare frozen QWizard.

    python packaging/measure_startup.py dist/xtwizard/xtwizard build/bench/bare-wizard/bare-wizard [--runs 7]

Each run starts the binary with `--measure-startup FILE`; the binary writes the monotonic clock (shared by
all processes on Linux, macOS and Windows) at its first paint and exits.  Runs alternate between the two
binaries; the median of each is reported.  Runs are "cold" when the page cache can be dropped (root on
Linux: /proc/sys/vm/drop_caches), otherwise "warm" (after one discarded run each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def one_run(binary: str, env: dict[str, str], cold: bool) -> float:
    if cold:
        drop_caches()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "paint"
        started = time.monotonic()
        subprocess.run([binary, "--measure-startup", str(out)], env=env, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return float(out.read_text().strip()) - started


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("app")
    ap.add_argument("baseline")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--mode", choices=("auto", "cold", "warm"), default="auto",
                    help="cold: drop the page cache before each run (root on Linux); auto: cold if possible")
    args = ap.parse_args()
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    cold = args.mode != "warm" and drop_caches()
    if args.mode == "cold" and not cold:
        raise SystemExit("cannot drop the page cache here (needs root on Linux)")
    if not cold:  # warm the page cache once so that every measured run starts alike
        one_run(args.app, env, False)
        one_run(args.baseline, env, False)
    app, base = [], []
    for _ in range(args.runs):
        app.append(one_run(args.app, env, cold))
        base.append(one_run(args.baseline, env, cold))
    result = {"mode": "cold" if cold else "warm", "platform": env["QT_QPA_PLATFORM"], "runs": args.runs,
              "app_median_s": round(statistics.median(app), 3), "baseline_median_s": round(statistics.median(base), 3),
              "ratio": round(statistics.median(app) / statistics.median(base), 2),
              "app_runs_s": [round(x, 3) for x in app], "baseline_runs_s": [round(x, 3) for x in base]}
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

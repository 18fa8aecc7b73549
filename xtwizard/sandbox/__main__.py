"""`python -m xtwizard.sandbox serve ...`: run the sandbox and print one JSON line when it is ready."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from .faults import FaultSpecError
from .scenario import ScenarioError, builtin_names
from .server import Sandbox, print_ready_line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xtwizard.sandbox",
                                 description="Offline Microsoft 365 sandbox for xtwizard.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve a scenario until terminated")
    s.add_argument("--scenario", default="demo", help=f"a built-in name ({', '.join(builtin_names())}) or a JSON file")
    s.add_argument("--port", type=int, default=0,
                   help="first port; the services take this and the next four (0: any free ports)")
    s.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    s.add_argument("--state-dir", help="keep state here across restarts")
    s.add_argument("--latency-ms", type=int, default=0, help="add this latency to every request")
    s.add_argument("--time-scale", type=float, default=None, help="run the sandbox clock this many times faster")
    s.add_argument("--fault", action="append", default=[], metavar="JSON",
                   help='a fault rule, e.g. \'{"kind":"throttle","service":"graph","count":5}\' (repeatable)')
    s.add_argument("--browser-http", action="store_true",
                   help="also serve the sign-in pages over plain HTTP on loopback, for a real browser")
    s.add_argument("--log-level", default="WARNING")
    sub.add_parser("scenarios", help="list built-in scenarios")
    args = ap.parse_args(argv)
    if args.cmd == "scenarios":
        print("\n".join(builtin_names()))
        return 0
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print("The sandbox only listens on loopback.", file=sys.stderr)
        return 2
    try:
        faults = [json.loads(f) for f in args.fault]
    except ValueError as exc:
        print(f"--fault takes a JSON object: {exc}", file=sys.stderr)
        return 2
    try:
        sb = Sandbox(args.scenario, port=args.port, host=args.host, state_dir=args.state_dir,
                     latency_ms=args.latency_ms, time_scale=args.time_scale, browser_http=args.browser_http,
                     faults=faults)
        info = sb.start()
    except ScenarioError as exc:
        print(f"Scenario problem: {exc}", file=sys.stderr)
        return 2
    except FaultSpecError as exc:
        print(f"Fault rule problem: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"Could not start the sandbox: {exc}", file=sys.stderr)
        return 1
    print(print_ready_line(info), flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

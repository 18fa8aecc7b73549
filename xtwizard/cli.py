"""Entry point: `xtwizard` (the wizard), `xtwizard --demo` (rehearsal against simulated tenants)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from . import __version__


def _has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def describe_demo(info: dict[str, Any]) -> str:
    lines = [
        "xtwizard demo: two simulated Microsoft 365 tenants are running on this computer.",
        "Nothing here touches a real tenant.",
        "",
        f"  Sign-in (authority):  {info['authority_host']}",
        f"  Microsoft Graph:      {info['graph_url']}",
        f"  Azure Resource Mgr:   {info['arm_url']}",
        f"  Exchange Online:      {info['exchange_url']}",
        f"  Key Vault:            {info['vault_url_template']}",
        f"  Control API:          {info['control_url']}",
        f"  Sign-in pages:        {info.get('browser_url') or info['authority_host']} (for your browser)",
        f"  CA certificate:       {info['ca_bundle']}",
        "",
    ]
    for t in info["tenants"]:
        lines.append(f"  {t['key'].capitalize()} tenant: {t['displayName']} ({t['initialDomain']}, {t['id']})")
        for a in t["accounts"]:
            roles = ", ".join(a["roles"]) or "no admin role"
            lines.append(f"      {a['userPrincipalName']}  ({roles})")
    return "\n".join(lines)


def rehearsal_sandbox_dir() -> str:
    """The simulated tenants' state between demo runs, so a rehearsal project can be resumed."""
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("xtwizard", appauthor=False), "rehearsal", "sandbox")


def run_demo(args: argparse.Namespace) -> int:
    import shutil

    from .sandbox import Sandbox

    state_dir = args.state_dir or rehearsal_sandbox_dir()
    if args.reset:
        shutil.rmtree(os.path.dirname(state_dir) if not args.state_dir else state_dir, ignore_errors=True)
        print("Rehearsal data removed: the simulated tenants start fresh.", flush=True)
    sb = Sandbox(args.scenario, state_dir=state_dir, browser_http=True)
    info = sb.start()
    print(describe_demo(info), flush=True)
    try:
        if args.console or not _has_display():
            done = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):  # before saying "press Ctrl+C"
                signal.signal(sig, lambda *_: done.set())
            if not args.console:
                print("\nNo display found, so the wizard window cannot open; the simulated tenants keep "
                      "running here. Press Ctrl+C to stop.", flush=True)
            else:
                print("\nPress Ctrl+C to stop.", flush=True)
            done.wait()
            return 0
        from .cloud.endpoints import sandbox_endpoints
        from .ui.app import run_wizard

        return run_wizard(sandbox_endpoints(info), demo=True, client_id=args.client_id)
    finally:
        sb.stop()


def measure_startup(out: str) -> int:
    """Start the wizard exactly as a double-click does (real cloud, nothing signed in) in throw-away folders,
    write the monotonic clock at the first paint of its first page to `out`, and quit.
    packaging/measure_startup.py compares that with a bare QWizard frozen the same way."""
    import time
    from pathlib import Path

    from .cloud.endpoints import PUBLIC_CLOUD
    from .ui.app import run_wizard

    def painted() -> None:
        Path(out).write_text(f"{time.monotonic():.6f}\n", encoding="utf-8")
        from PySide6.QtWidgets import QApplication

        QApplication.quit()

    scratch = Path(out).parent  # the measurer's temporary folder (tempfile would add its import to the time)
    return run_wizard(PUBLIC_CLOUD, data_dir=scratch / "data", log_dir=scratch / "logs", first_paint=painted)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from .headless import COMMANDS, epilog

    if argv and argv[0] in COMMANDS:  # headless sub-commands (xtwizard/headless/)
        from .headless import main as headless_main

        return headless_main(argv[0], argv[1:])
    ap = argparse.ArgumentParser(prog="xtwizard", description="Move Exchange Online mailboxes between Microsoft 365 "
                                 "tenants with Microsoft's cross-tenant mailbox migration.",
                                 epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"xtwizard {__version__}")
    ap.add_argument("--demo", action="store_true", help="rehearse with two simulated tenants (no real tenant is touched)")
    ap.add_argument("--scenario", default="demo", help=argparse.SUPPRESS)
    ap.add_argument("--state-dir", help=argparse.SUPPRESS)
    ap.add_argument("--console", action="store_true", help="with --demo: no window, just run the simulated tenants")
    ap.add_argument("--client-id", help="sign in with your organisation's own public client application (default: "
                    "the Exchange Online PowerShell client)")
    ap.add_argument("--reset", action="store_true",
                    help="with --demo: forget earlier rehearsals (simulated tenants and rehearsal projects)")
    ap.add_argument("--self-test", action="store_true",
                    help="check this installation (keyring, TLS, Qt, sign-in and setup against simulated tenants) "
                         "and exit 0 if it works; the log goes to --log-file or the user log folder")
    ap.add_argument("--log-file", help="with --self-test: write the log here")
    ap.add_argument("--measure-startup", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.self_test:
        from pathlib import Path

        from .selftest import run as self_test

        return self_test(Path(args.log_file) if args.log_file else None)
    if args.measure_startup:
        return measure_startup(args.measure_startup)
    if args.demo:
        return run_demo(args)
    if not _has_display():
        print("xtwizard needs a display for its window. Without one: `xtwizard --demo --console` runs the simulated "
              "tenants, and `xtwizard setup --help` sets up a migration from the terminal.", file=sys.stderr)
        return 2
    from .cloud.endpoints import PUBLIC_CLOUD
    from .ui.app import run_wizard

    return run_wizard(PUBLIC_CLOUD, client_id=args.client_id)


if __name__ == "__main__":
    sys.exit(main())

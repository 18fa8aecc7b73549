"""`xtwizard users`, `xtwizard prepare`, `xtwizard check`: the users engine without the GUI (issue 6 items 1-4).

users    inventory of the source mailboxes and the mapping: --auto-map DOMAIN, --import-csv, --export-csv
prepare  the target MailUsers: prints the plan with per-user attribute diffs, then applies it (--plan-only)
check    readiness of every mapped user; --fix applies the safe one-click fixes; --dry-run USER

Exit codes: 0 done (every user valid / prepared / ready); 1 some users are not (the report says why and what
to do); 2 the command stopped with a problem.  Sign-in and the connection arguments: `common.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK, EXIT_VERIFY_FAILED, add_connection_args, run, say


def _progress(done: int, total: int, what: str) -> None:
    if total and (done == total or done % 100 == 0):
        say(f"  [{done}/{total}] {what}", flush=True)


# --- users -------------------------------------------------------------------------------------------------
def users_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xtwizard users", description="List the source mailboxes (in scope or not) and "
                                "build the source -> target mapping; every row is validated.")
    p.add_argument("--auto-map", metavar="DOMAIN", help="map every mailbox in scope to its alias in DOMAIN (an "
                   "existing MailUser prepared for the mailbox is kept)")
    p.add_argument("--all", action="store_true", help="with --auto-map: also mailboxes outside the scope group")
    p.add_argument("--import-csv", metavar="FILE", help="read the mapping from a SourceUser,TargetUser CSV")
    p.add_argument("--export-csv", metavar="FILE", help="write the (validated) mapping as SourceUser,TargetUser CSV")
    p.add_argument("--no-sizes", action="store_true", help="skip the mailbox sizes (one request per mailbox)")
    add_connection_args(p)
    return p


def users_main(argv: list[str]) -> int:
    args = users_parser().parse_args(argv)

    async def body(ws: Any, project: Any) -> int:
        from ..migration.users import UserEngine, load_mapping
        from ..migration.users.mapping import decode_csv

        engine = UserEngine(ws)
        boxes = await engine.inventory(_progress, statistics=not args.no_sizes)
        inv = project.data["users"]["inventory"]
        say(f"\nSource mailboxes: {inv['mailboxes']}, in the scope group '{inv['scopeGroup'] or '(none)'}': "
            f"{inv['inScope']}", flush=True)
        for m in boxes:
            size = f"{(m.size_bytes or 0) / (1 << 20):,.0f} MB" if m.size_bytes is not None else ""
            say(f"  {'*' if m.in_scope else ' '} {m.address:<40} {m.recipient_type_details:<15} {size}", flush=True)
        rows = load_mapping(project)
        domain = None
        if args.import_csv:
            rows, problems = engine.import_csv(decode_csv(Path(args.import_csv).read_bytes()))
            for p in problems:
                say(f"CSV: {p}", file=sys.stderr)
        elif args.auto_map:
            domain = args.auto_map
            rows = engine.auto_map([m for m in boxes if m.in_scope or args.all], domain)
        if not rows:
            say("\nNo mapping yet: use --auto-map DOMAIN or --import-csv FILE.", flush=True)
            return EXIT_OK
        rows = await engine.validate(rows)
        if args.import_csv or args.auto_map:
            engine.save_mapping(rows, domain)
        say(f"\nMapping ({len(rows)} users):", flush=True)
        for r in rows:
            say(f"  [{r.status.upper():<7}] {r.source} -> {r.target}: {r.message}", flush=True)
            if r.fix and r.status != "ok":
                say(f"            What to do: {r.fix}", flush=True)
        if args.export_csv:
            Path(args.export_csv).write_text(engine.export_csv(rows), encoding="utf-8", newline="")
            say(f"\nWrote {args.export_csv}", flush=True)
        bad = [r for r in rows if r.status == "error"]
        if bad:
            say(f"\n{len(bad)} row(s) need attention; see 'What to do' above.", file=sys.stderr)
            return EXIT_VERIFY_FAILED
        return EXIT_OK

    return run(args, body)


# --- prepare -----------------------------------------------------------------------------------------------
def prepare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xtwizard prepare", description="Create or update the target MailUsers of the "
                                "mapped users (ExchangeGuid, ArchiveGuid, X500s, delivery-domain proxy, primary and "
                                "external addresses). Prints the plan first; a rerun changes nothing. Never assigns "
                                "licences.")
    p.add_argument("--plan-only", action="store_true", help="print the plan and change nothing")
    p.add_argument("--concurrency", type=int, default=16, help="users worked on at once (default 16)")
    add_connection_args(p)
    return p


def prepare_main(argv: list[str]) -> int:
    args = prepare_parser().parse_args(argv)

    async def body(ws: Any, project: Any) -> int:
        from ..migration.users import UserEngine

        engine = UserEngine(ws, concurrency=args.concurrency)
        plan = await engine.plan_prepare()
        say("\nPlan:", flush=True)
        for line in plan.lines():
            say(f"  {line}", flush=True)
        if args.plan_only or plan.is_empty:
            return EXIT_VERIFY_FAILED if plan.skipped else EXIT_OK
        say("\nApplying:", flush=True)
        result = await engine.apply_prepare(plan, _progress)
        say(f"\nPrepared {len(result.done)} MailUser(s) in {result.seconds:.1f} s ({result.requests} requests).",
            flush=True)
        for c, p in result.failed:
            say(f"Failed: {c.line}\n  Problem: {p.what}\n  Why: {p.why}\n  What to do: {p.fix}", file=sys.stderr)
        return EXIT_VERIFY_FAILED if result.failed or plan.skipped else EXIT_OK

    return run(args, body)


# --- check -------------------------------------------------------------------------------------------------
def check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xtwizard check", description="Check every mapped user's readiness to move "
                                "(the checks of Microsoft's validation script and more), each problem with why and "
                                "what to do.")
    p.add_argument("--fix", action="store_true", help="apply the safe one-click fixes, then check again")
    p.add_argument("--dry-run", metavar="USER", help="Test-MigrationServerAvailability for one user (either address)")
    p.add_argument("--no-probe", action="store_true", help="skip the per-user test through the migration endpoint")
    add_connection_args(p)
    return p


def _print_readiness(results: list[Any]) -> None:
    for r in results:
        say(f"  {'MOVED  ' if r.moved else 'READY  ' if r.ready else 'BLOCKED'} {r.source} -> {r.target}", flush=True)
        for f in r.problems:
            say("      " + f.text().replace("\n", "\n      "), flush=True)
    moved = sum(1 for r in results if r.moved)
    ready = sum(1 for r in results if r.ready and not r.moved)
    say(f"\n{ready} of {len(results) - moved} user(s) ready." + (f" {moved} already moved." if moved else ""),
        flush=True)


def check_main(argv: list[str]) -> int:
    args = check_parser().parse_args(argv)

    async def body(ws: Any, project: Any) -> int:
        from ..migration.users import UserEngine

        engine = UserEngine(ws)
        if args.dry_run:
            c = await engine.dry_run(args.dry_run)
            say(c.text(), flush=True)
            return EXIT_OK if c.ok else EXIT_VERIFY_FAILED
        results = await engine.readiness(_progress, probe=not args.no_probe)
        say("\nReadiness:", flush=True)
        _print_readiness(results)
        if args.fix:
            plan = engine.plan_fixes(results)
            if plan.pending:
                say("\nOne-click fixes:", flush=True)
                for line in plan.lines():
                    say(f"  {line}", flush=True)
                applied = await engine.apply_fixes(plan, _progress)
                for w in applied.warnings:
                    say(f"Warning: {w}", file=sys.stderr)
                say(f"\nApplied {len(applied.done)} fix(es). Checking again:", flush=True)
                results = await engine.readiness(_progress, probe=not args.no_probe)
                _print_readiness(results)
            else:
                say("\nNo one-click fix applies; the problems above need a decision or a change elsewhere.",
                    flush=True)
        return EXIT_OK if all(r.ready for r in results) else EXIT_VERIFY_FAILED

    return run(args, body)


main = users_main

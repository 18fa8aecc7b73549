"""`xtwizard migrate|status|report|teardown`: the batches engine without the GUI, for MSP scripting.

    migrate   plan waves of the ready users (or --users-csv SourceUser,TargetUser) and launch them as batches;
              or act on one batch: --start-batch, --stop-batch, --complete-batch, --retry-failed, --remove-batch,
              --relaunch NAME; --rebatch NAME takes the users that need a new batch out of it (--yes applies)
    status    one refresh of every batch and user (paged list calls), each failure with what to do
    report    readiness, progress, final and audit-log reports (HTML + CSV) into a folder
    teardown  the plan of what to remove; --yes applies it; --purge-vault also purges the key vault it deleted

Exit codes: 0 done; 1 users failed (status) or teardown waiting; 2 a problem (what / why / what to do).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK, EXIT_VERIFY_FAILED, add_connection_args, report_problem, run, say, split

# --flag BATCH -> the engine method it calls
ACTIONS = {"start-batch": "start", "stop-batch": "stop", "complete-batch": "complete", "retry-failed": "retry_failed",
           "remove-batch": "remove", "relaunch": "relaunch"}


def _when(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"xtwizard {command}", description=__doc__.splitlines()[0])
    if command == "migrate":
        p.add_argument("--users-csv", help="SourceUser,TargetUser CSV (default: the users readiness passed)")
        p.add_argument("--wave-size", type=int, default=2000, help="users per batch (at most 2000)")
        p.add_argument("--prefix", default="Wave", help="batch names: PREFIX 1, PREFIX 2, …")
        p.add_argument("--start", choices=("now", "manual", "after"), default="now")
        p.add_argument("--start-after", help="UTC time (ISO 8601) with --start after")
        p.add_argument("--completion", choices=("manual", "after", "automatic"), default="manual")
        p.add_argument("--complete-after", help="UTC time (ISO 8601) with --completion after")
        p.add_argument("--notify", default="", help="comma-separated NotificationEmails")
        p.add_argument("--plan-only", action="store_true", help="print the waves and change nothing")
        for flag in ACTIONS:
            p.add_argument(f"--{flag}", metavar="BATCH", help=f"{flag.replace('-', ' ')}: act on this batch only")
        p.add_argument("--rebatch", metavar="BATCH", help="take the users whose move failed in a way Retry cannot mend "
                       "(e.g. an auxiliary archive appeared during the move) out of this batch, so that a later "
                       "migrate moves them again in a new batch once readiness passes; prints the plan, --yes "
                       "applies it")
        p.add_argument("--yes", action="store_true", help="with --rebatch: apply the plan (without it: print it only)")
    if command == "report":
        p.add_argument("--out", required=True, help="folder for the reports")
    if command == "teardown":
        p.add_argument("--yes", action="store_true", help="apply the plan (without it: print it only)")
        p.add_argument("--purge-vault", action="store_true", help="also purge the key vault xtwizard created, once "
                       "deleted: its name is free again at once, but the vault and its certificate can never be "
                       "recovered (default: Azure keeps it soft-deleted, and its name taken, for its retention days)")
    add_connection_args(p)
    return p


def main_for(command: str, argv: list[str]) -> int:
    args = _parser(command).parse_args(argv)

    async def body(ws: Any, project: Any) -> int:
        from ..migration.batches import BatchEngine

        engine = BatchEngine(ws)
        return int(await {"migrate": _migrate, "status": _status, "report": _report,
                          "teardown": _teardown}[command](args, engine))

    return run(args, body)


async def _migrate(args: argparse.Namespace, engine: Any) -> int:
    from ..migration.batches import BatchOptions, WaveUser

    if args.rebatch:
        return await _rebatch(args, engine)
    for flag, action in ACTIONS.items():
        name = getattr(args, flag.replace("-", "_"))
        if name:
            out = await getattr(engine, action)(name)
            say(f"{action.replace('_', ' ').capitalize()}: {name}" + (f" ({out})" if out is not None else ""))
            return EXIT_OK
    if args.users_csv:
        with open(args.users_csv, encoding="utf-8-sig", newline="") as fh:
            rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(fh)]
        users = [WaveUser(r.get("sourceuser", ""), r.get("targetuser", "")) for r in rows
                 if r.get("sourceuser") and r.get("targetuser")]
    else:
        users = engine.ready_users()
    waves = engine.plan_waves(users, args.wave_size, args.prefix)
    if not waves:
        say("No users to migrate: every mapped user is in a batch already, or none passed readiness.")
        return EXIT_OK
    for w in waves:
        say(f"{w.name}: {len(w.users)} users" + (f", {w.delegate_groups} delegate group(s) kept together"
                                                 if w.delegate_groups else ""))
        for warning in w.warnings:
            say(f"  Warning: {warning}")
    if args.plan_only:
        return EXIT_OK
    for w in waves:
        options = BatchOptions(w.name, start=args.start, start_after=_when(args.start_after),
                               completion=args.completion, complete_after=_when(args.complete_after),
                               notification_emails=tuple(split(args.notify)))
        result = await engine.create(w, options)
        say(f"Created batch '{result.name}' with {result.users} users: {result.status}")
    say("\nFollow the batches with: xtwizard status (then --complete-batch NAME once the users are synced).")
    return EXIT_OK


async def _rebatch(args: argparse.Namespace, engine: Any) -> int:
    plan = await engine.plan_rebatch(args.rebatch)
    say(f"Users to take out of '{args.rebatch}' (to move again in a new batch):")
    for line in plan.lines():
        say(f"  {line}")
    if not plan.pending:
        return EXIT_OK
    if not args.yes:
        say("\nNothing changed. Run again with --yes to apply.")
        return EXIT_OK

    def progress(done: int, total: int, what: str) -> None:
        if done < total:
            say(f"  [{done + 1}/{total}] {what}")

    result = await engine.apply_rebatch(plan, progress)
    say(f"\nTook {len(result.done)} user(s) out of '{args.rebatch}'. Next: fix what 'What to do' said, run xtwizard "
        "check (readiness), then xtwizard migrate puts those that pass into a new batch.")
    return EXIT_OK


async def _status(args: argparse.Namespace, engine: Any) -> int:
    snap = await engine.refresh()
    for b in snap.batches:
        counts = ", ".join(f"{n} {k}" for k, n in b.counts.items() if n)
        say(f"{b.name}: {b.status}, {b.percent}% ({counts})")
    for p in snap.problems:
        say(f"Problem: {p.what}\n  Why: {p.why}\n  What to do: {p.fix}")
    failed = [u for u in snap.users if u.failed]
    for u in failed:
        if u.problem is not None:
            say(f"  {u.target}: {u.problem.what} What to do: {u.problem.fix}")
    done = [u for u in snap.users if u.completed]
    if done:
        say(f"\n{len(done)} user(s) completed. After the move:")
        for line in engine.checklist(done[0].target if len(done) == 1 else f"the {len(done)} moved users"):
            say(f"  - {line}")
    say(f"\n{len(snap.users)} users, {snap.requests} requests")
    if failed:
        again = sorted({u.batch for u in failed if engine.needs_new_batch(u)})
        retry = sorted({u.batch for u in failed if not engine.needs_new_batch(u)})
        hint = f"\n{len(failed)} user(s) failed: see 'What to do' for each above."
        if retry:
            hint += f" Once fixed, xtwizard migrate --retry-failed {_names(retry)} resumes them."
        if again:
            hint += (f" Those that need a new batch: xtwizard migrate --rebatch {_names(again)} takes them out of it; "
                     "then xtwizard check, and xtwizard migrate launches a new batch.")
        say(hint, file=sys.stderr)
        return EXIT_VERIFY_FAILED
    return EXIT_OK


def _names(batches: list[str]) -> str:
    """'Wave 1', or BATCH (for 'Wave 1', 'Wave 2') when there are several."""
    quoted = [f"'{b}'" for b in batches]
    return quoted[0] if len(quoted) == 1 else f"BATCH (for {', '.join(quoted)})"


async def _report(args: argparse.Namespace, engine: Any) -> int:
    files = engine.write_reports(Path(args.out), await engine.refresh())
    for f in files:
        say(str(f))
    return EXIT_OK


async def _teardown(args: argparse.Namespace, engine: Any) -> int:
    plan = await engine.plan_teardown(purge_vault=args.purge_vault)
    say("Teardown plan:")
    for line in plan.lines():
        say(f"  {line}")
    waiting = engine.waiting_problem(plan)
    if waiting is not None:
        report_problem(waiting)
        return EXIT_VERIFY_FAILED
    if not plan.pending:
        return EXIT_OK
    if not args.yes:
        say("\nNothing changed. Run again with --yes to apply.")
        return EXIT_OK

    def progress(done: int, total: int, what: str) -> None:
        say(f"  [{done + 1}/{total}] {what}" if done < total else f"\n{what}: {total} change(s) made.")

    await engine.apply_teardown(plan, progress)
    return EXIT_OK


def migrate_main(argv: list[str]) -> int:
    return main_for("migrate", argv)


def status_main(argv: list[str]) -> int:
    return main_for("status", argv)


def report_main(argv: list[str]) -> int:
    return main_for("report", argv)


def teardown_main(argv: list[str]) -> int:
    return main_for("teardown", argv)

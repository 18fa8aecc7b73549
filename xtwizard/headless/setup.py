"""`xtwizard setup`: the setup engine without the GUI, for MSP scripting and for tests.

Prints the plan, applies it (unless --plan-only), verifies, and exits non-zero with a readable report on
failure.  Sign-in and the connection arguments: `common.py`.

Exit codes: 0 done and verified (or --plan-only); 1 verification failed; 2 the setup stopped with a problem
(the report says what, why and what to do); 3 waiting for the source admin's consent.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_OK, EXIT_VERIFY_FAILED, add_connection_args, csv_addresses, run, say, split


def setup_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xtwizard setup", description="Create or adopt the migration app and its credential, the source's consent, the "
                       "migration endpoint, both organization relationships and the scoping group. Prints the plan "
                       "first; a rerun changes nothing.")
    p.add_argument("--plan-only", action="store_true", help="print the plan and change nothing")
    p.add_argument("--verify-only", action="store_true", help="only run the verification")
    p.add_argument("--credential", choices=("secret", "keyvault"), default="secret",
                   help="client secret (Microsoft's current method; default) or Key Vault certificate")
    p.add_argument("--scope-group", help="the mail-enabled security group that scopes the move (exactly one)")
    p.add_argument("--create-scope-group", action="store_true", help="create the scope group if it does not exist")
    p.add_argument("--members", default="", help="comma-separated addresses to add to the scope group")
    p.add_argument("--members-csv", help="a CSV file with an EmailAddress column: addresses to add")
    p.add_argument("--remove-members", default="", help="comma-separated addresses to remove from the scope group")
    p.add_argument("--window-days", type=int, default=90, help="how long the migration will run (secret expiry)")
    p.add_argument("--consent", choices=("auto", "api", "kit"), default="auto",
                   help="source consent: by the signed-in source admin through Graph (api), or the admin kit")
    p.add_argument("--app-id", help="adopt this existing app registration in the target")
    p.add_argument("--test-mailuser", help="a target MailUser address for Test-MigrationServerAvailability")
    p.add_argument("--replication-wait", type=float, default=600.0,
                   help="seconds to wait for directory replication of what was just made (default 600)")
    p.add_argument("--unfinished-wait", type=float, default=60.0,
                   help="seconds to look for what an interrupted run may have made (default 60)")
    add_connection_args(p)
    return p


def main(argv: list[str]) -> int:
    args = setup_parser().parse_args(argv)

    async def body(ws: Any, project: Any) -> int:
        return await _body(args, ws, project)

    return run(args, body, consent_exit=True)


async def _body(args: argparse.Namespace, ws: Any, project: Any) -> int:
    from ..migration.setup import SetupEngine, SetupOptions

    members = split(args.members) + (csv_addresses(args.members_csv) if args.members_csv else [])
    options = SetupOptions(
        credential=args.credential, scope_groups=[args.scope_group] if args.scope_group else [],
        create_scope_group=args.create_scope_group, members_add=members,
        members_remove=split(args.remove_members), migration_window_days=args.window_days,
        consent_by_api={"auto": None, "api": True, "kit": False}[args.consent], app_id=args.app_id,
        test_mailuser=args.test_mailuser, replication_wait_seconds=args.replication_wait,
        unfinished_wait_seconds=args.unfinished_wait)
    engine = SetupEngine(ws, options)
    if not args.verify_only:
        plan = await engine.plan()
        say("\nPlan:", flush=True)
        for line in plan.lines():
            say(f"  {line}", flush=True)
        if args.plan_only:
            if plan.waiting and engine.facts is not None and engine.facts.app is not None:
                say("\nSource admin kit:\n" + engine.source_admin_kit(), flush=True)
            return EXIT_OK
        if plan.pending:
            say("\nApplying:", flush=True)

            def progress(done: int, total: int, what: str) -> None:
                say(f"  [{done + 1}/{total}] {what}", flush=True)

            result = await engine.apply(progress)
            for w in result.warnings:
                say(f"Warning: {w}", flush=True)
        else:
            await engine.apply()  # closes what an interrupted run left open; waits for consent if needed
    checks = await engine.verify()
    say("\nVerification:", flush=True)
    for c in checks:
        say(f"  {c.text()}", flush=True)
    failed = [c for c in checks if not c.ok and not c.warning]
    expiry = project.data.get("setup", {}).get("expiry")
    if expiry:
        what = "Client secret" if expiry.get("mode") == "secret" else "Certificate"
        say(f"\n{what} expires: {expiry.get('expires')}", flush=True)
    warning = engine.expiry_warning()
    if warning:
        say(f"Warning: {warning}", flush=True)
    if failed:
        say(f"\n{len(failed)} check(s) failed; see 'What to do' above.", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    say("\nReady to migrate.", flush=True)
    return EXIT_OK

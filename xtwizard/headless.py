"""`xtwizard setup`: the setup engine without the GUI, for MSP scripting and for tests.

Prints the plan, applies it (unless --plan-only), verifies, and exits non-zero with a readable report on
failure.  Sign-in: against real tenants, the device-code flow (the code is printed; the admin finishes it in
any browser).  Against the sandbox (--sandbox / --sandbox-info), OAuth ROPC (`grant_type=password`, msal's
`acquire_token_by_username_password`) for scenario accounts that declare a password hash; the passwords come
from the environment (XTWIZARD_SOURCE_PASSWORD, XTWIZARD_TARGET_PASSWORD), never from the command line.
Tokens stay in memory: nothing is written to the keyring or the disk by this command.

Exit codes: 0 done and verified (or --plan-only); 1 verification failed; 2 the setup stopped with a problem
(the report says what, why and what to do); 3 waiting for the source admin's consent.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_PROBLEM, EXIT_CONSENT_PENDING = 0, 1, 2, 3


def setup_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xtwizard setup", description="Create or adopt the migration app and its credential, the source's consent, the "
                       "migration endpoint, both organization relationships and the scoping group. Prints the plan "
                       "first; a rerun changes nothing.")
    p.add_argument("--project", required=True, help="the project folder, or its ID in --data-dir")
    p.add_argument("--data-dir", help="where projects live (default: the user data folder)")
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
    p.add_argument("--source-user", help="source admin account (UPN)")
    p.add_argument("--target-user", help="target admin account (UPN)")
    p.add_argument("--sandbox", help="run against a sandbox started in this process from this scenario")
    p.add_argument("--sandbox-state", help="with --sandbox: keep the simulated tenants' state here")
    p.add_argument("--sandbox-info", help="run against a running sandbox: the file holding its ready line")
    p.add_argument("--client-id", help="sign in with this public client application")
    p.add_argument("--replication-wait", type=float, default=600.0,
                   help="seconds to wait for directory replication of what was just made (default 600)")
    p.add_argument("--unfinished-wait", type=float, default=60.0,
                   help="seconds to look for what an interrupted run may have made (default 60)")
    return p


def main(argv: list[str]) -> int:
    return run_setup(setup_parser().parse_args(argv))


def say(*parts: Any, file: Any = None, flush: bool = True) -> None:
    """The command's output (the headless command is the one place in the package that talks to a terminal)."""
    print(*parts, file=file or sys.stdout, flush=flush)


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _csv_addresses(path: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        value = next((v for k, v in row.items() if k and k.strip().lower() in ("emailaddress", "email", "upn")), "")
        if value and value.strip():
            out.append(value.strip())
    return out


def _open_project(args: argparse.Namespace) -> Any:
    from .migration.project import ProjectStore

    folder = Path(args.project)
    if (folder / "project.json").exists():
        return ProjectStore(folder.parent).open(folder.name)
    store = ProjectStore(Path(args.data_dir) / "projects") if args.data_dir else ProjectStore.default()
    return store.open(args.project)


def _report_problem(p: Any) -> None:
    say("", file=sys.stderr)
    say(f"Problem: {p.what}", file=sys.stderr)
    say(f"Why: {p.why}", file=sys.stderr)
    say(f"What to do: {p.fix}", file=sys.stderr)
    if p.details:
        say("Details:", file=sys.stderr)
        for line in str(p.details).splitlines():
            say(f"  {line}", file=sys.stderr)


def run_setup(args: argparse.Namespace) -> int:
    from .migration.project import ProjectError

    sandbox = None
    try:
        project = _open_project(args)
    except ProjectError as exc:
        say(f"Problem: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    try:
        if args.sandbox:
            from .sandbox import Sandbox

            sandbox = Sandbox(args.sandbox, state_dir=args.sandbox_state)
            info: dict[str, Any] | None = sandbox.start()
        elif args.sandbox_info:
            info = json.loads(Path(args.sandbox_info).read_text(encoding="utf-8").strip().splitlines()[-1])
        else:
            info = None
        return asyncio.run(_run(args, project, info))
    finally:
        if sandbox is not None:
            sandbox.stop()


async def _sign_in(ws: Any, slot: str, user: str | None, simulated: bool) -> None:
    from .cloud.auth import SignInError

    session = ws.sessions[slot]
    if simulated:
        password = os.environ.get(f"XTWIZARD_{slot.upper()}_PASSWORD", "")
        if not user or not password:
            raise SignInError("failed", f"For the sandbox, give --{slot}-user and set XTWIZARD_{slot.upper()}_PASSWORD "
                                        "(the scenario declares that account's password hash).")
        # msal's user-realm discovery drops the authority's port (it asks https://127.0.0.1/common/userrealm/…);
        # the sandbox's accounts are all managed, so skip the discovery for its host only.
        from urllib.parse import urlsplit

        import msal.authority

        host = urlsplit(ws.endpoints.authority_host).hostname or ""
        msal.authority.Authority._domains_without_user_realm_discovery.add(host)

        def ropc() -> dict[str, Any]:
            import warnings

            with warnings.catch_warnings():  # msal warns that ROPC is deprecated: it is, for real tenants
                warnings.simplefilter("ignore", DeprecationWarning)
                return dict(session.app.acquire_token_by_username_password(
                    user, password, scopes=[ws.endpoints.scope(ws.endpoints.graph_resource)]))

        result = await asyncio.to_thread(ropc)
        if "error" in result:
            description = str(result.get("error_description", "")).splitlines()
            raise SignInError("failed", description[0] if description else str(result.get("error")))
    else:
        flow = await ws.start_device_code(slot)
        say(f"[{slot}] {flow.get('message')}", file=sys.stderr, flush=True)
        await ws.finish_device_code(slot, flow, threading.Event())
        return
    ident = await ws.resume(slot)
    if ident is None:
        raise SignInError("failed", f"The {slot} sign-in did not give an account.")


async def _run(args: argparse.Namespace, project: Any, info: dict[str, Any] | None) -> int:
    from keyring.backends.fail import Keyring as NoKeyring

    from .cloud.auth import DEFAULT_CLIENT_ID, SignInError
    from .cloud.endpoints import PUBLIC_CLOUD, sandbox_endpoints
    from .migration.problems import explain
    from .migration.setup import SetupEngine, SetupOptions, SetupProblem
    from .migration.workspace import Workspace

    endpoints = sandbox_endpoints(info) if info is not None else PUBLIC_CLOUD
    data_dir = project.folder.parent.parent
    ws = Workspace(endpoints, project, data_dir, client_id=args.client_id or DEFAULT_CLIENT_ID,
                   keyring_backend=NoKeyring())  # type: ignore[no-untyped-call]
    members = _split(args.members) + (_csv_addresses(args.members_csv) if args.members_csv else [])
    options = SetupOptions(
        credential=args.credential, scope_groups=[args.scope_group] if args.scope_group else [],
        create_scope_group=args.create_scope_group, members_add=members,
        members_remove=_split(args.remove_members), migration_window_days=args.window_days,
        consent_by_api={"auto": None, "api": True, "kit": False}[args.consent], app_id=args.app_id,
        test_mailuser=args.test_mailuser, replication_wait_seconds=args.replication_wait,
        unfinished_wait_seconds=args.unfinished_wait)
    say(f"Project: {project.name} ({project.id})", flush=True)
    try:
        for slot, user in (("target", args.target_user), ("source", args.source_user)):
            await _sign_in(ws, slot, user, endpoints.is_simulated)
            ident = ws.identities[slot]
            say(f"Signed in to the {slot}: {ident.display_name} ({ident.initial_domain}) as {ident.username}",
                  flush=True)
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
    except SetupProblem as exc:
        _report_problem(exc.problem)
        return EXIT_CONSENT_PENDING if "not approved" in exc.problem.what else EXIT_PROBLEM
    except SignInError as exc:
        _report_problem(explain(exc))
        return EXIT_PROBLEM
    finally:
        await ws.aclose()

"""What every headless command shares: output, opening the project, the sandbox, and signing in to both tenants.

Sign-in: against real tenants, the device-code flow (the code is printed; the admin finishes it in any browser).
Against the sandbox (--sandbox / --sandbox-info), OAuth ROPC (`grant_type=password`, msal's
`acquire_token_by_username_password`) for scenario accounts that declare a password hash; the passwords come
from the environment (XTWIZARD_SOURCE_PASSWORD, XTWIZARD_TARGET_PASSWORD), never from the command line.
Tokens stay in memory (no keyring, no disk).

A command is `run(args, body)`: `body(ws, project)` is awaited with a signed-in Workspace and returns the exit
code; problems (`SetupProblem`, `ProjectError`, `SignInError`, anything carrying a `.problem`) are reported on
stderr as what / why / what to do, with EXIT_PROBLEM.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_PROBLEM, EXIT_CONSENT_PENDING = 0, 1, 2, 3

Body = Callable[[Any, Any], Awaitable[int]]


def say(*parts: Any, file: Any = None, flush: bool = True) -> None:
    """The command's output (the headless commands are the one place in the package that talk to a terminal)."""
    print(*parts, file=file or sys.stdout, flush=flush)


def split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def csv_addresses(path: str) -> list[str]:
    """Addresses from a CSV with an EmailAddress (or Email, UPN) column."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        value = next((v for k, v in row.items() if k and k.strip().lower() in ("emailaddress", "email", "upn")), "")
        if value and value.strip():
            out.append(value.strip())
    return out


def add_connection_args(p: argparse.ArgumentParser) -> None:
    """The arguments every command needs to reach a project and its two tenants."""
    p.add_argument("--project", required=True, help="the project folder, or its ID in --data-dir")
    p.add_argument("--data-dir", help="where projects live (default: the user data folder)")
    p.add_argument("--source-user", help="source admin account (UPN)")
    p.add_argument("--target-user", help="target admin account (UPN)")
    p.add_argument("--sandbox", help="run against a sandbox started in this process from this scenario")
    p.add_argument("--sandbox-state", help="with --sandbox: keep the simulated tenants' state here")
    p.add_argument("--sandbox-info", help="run against a running sandbox: the file holding its ready line")
    p.add_argument("--client-id", help="sign in with this public client application")


def open_project(args: argparse.Namespace) -> Any:
    from ..migration.project import ProjectStore

    folder = Path(args.project)
    if (folder / "project.json").exists():
        return ProjectStore(folder.parent).open(folder.name)
    store = ProjectStore(Path(args.data_dir) / "projects") if args.data_dir else ProjectStore.default()
    return store.open(args.project)


def report_problem(p: Any) -> None:
    say("", file=sys.stderr)
    say(f"Problem: {p.what}", file=sys.stderr)
    say(f"Why: {p.why}", file=sys.stderr)
    say(f"What to do: {p.fix}", file=sys.stderr)
    if p.details:
        say("Details:", file=sys.stderr)
        for line in str(p.details).splitlines():
            say(f"  {line}", file=sys.stderr)


def run(args: argparse.Namespace, body: Body, *, consent_exit: bool = False) -> int:
    """Open the project, start or find the sandbox if asked, sign in to both tenants, await `body(ws, project)`."""
    from ..migration.project import ProjectError

    sandbox = None
    try:
        project = open_project(args)
    except ProjectError as exc:
        say(f"Problem: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    try:
        if args.sandbox:
            from ..sandbox import Sandbox

            sandbox = Sandbox(args.sandbox, state_dir=args.sandbox_state)
            info: dict[str, Any] | None = sandbox.start()
        elif args.sandbox_info:
            info = json.loads(Path(args.sandbox_info).read_text(encoding="utf-8").strip().splitlines()[-1])
        else:
            info = None
        return asyncio.run(_connected(args, project, info, body, consent_exit))
    finally:
        if sandbox is not None:
            sandbox.stop()


async def _connected(args: argparse.Namespace, project: Any, info: dict[str, Any] | None, body: Body,
                     consent_exit: bool) -> int:
    from keyring.backends.fail import Keyring as NoKeyring

    from ..cloud.auth import DEFAULT_CLIENT_ID, SignInError
    from ..cloud.endpoints import PUBLIC_CLOUD, sandbox_endpoints
    from ..migration.problems import explain
    from ..migration.workspace import Workspace

    endpoints = sandbox_endpoints(info) if info is not None else PUBLIC_CLOUD
    data_dir = project.folder.parent.parent
    ws = Workspace(endpoints, project, data_dir, client_id=args.client_id or DEFAULT_CLIENT_ID,
                   keyring_backend=NoKeyring())  # type: ignore[no-untyped-call]
    say(f"Project: {project.name} ({project.id})", flush=True)
    try:
        for slot, user in (("target", args.target_user), ("source", args.source_user)):
            await sign_in(ws, slot, user, endpoints.is_simulated)
            ident = ws.identities[slot]
            say(f"Signed in to the {slot}: {ident.display_name} ({ident.initial_domain}) as {ident.username}",
                flush=True)
        return await body(ws, project)
    except SignInError as exc:
        report_problem(explain(exc))
        return EXIT_PROBLEM
    except Exception as exc:
        problem = getattr(exc, "problem", None)
        if problem is None:
            raise
        report_problem(problem)
        return EXIT_CONSENT_PENDING if consent_exit and "not approved" in problem.what else EXIT_PROBLEM
    finally:
        await ws.aclose()


async def sign_in(ws: Any, slot: str, user: str | None, simulated: bool) -> None:
    from ..cloud.auth import SignInError

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

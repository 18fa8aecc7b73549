"""What the setup reads, and when (issue #8, B2): independent reads go out together, a change is followed by
reads of what it touched only, and the app's principals and grants are looked up by the journal's ids.

`Waves` holds every request until the program has nothing else to send, then lets them through together and
hands back their answers: a wave is what the engine sends without waiting for an answer, so the waves are the
engine's sequential rounds, whatever the machine's speed."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.engine.setup_support import SandboxContext, clock_sleep, new_project
from xtwizard.cloud.http import HttpPolicy
from xtwizard.cloud.tls import client_ssl_context
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.sandbox import Sandbox

T = TypeVar("T")
SCOPE = SetupOptions(scope_groups=["Migration Wave 1"])
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def describe(request: httpx.Request) -> str:
    """'GET /servicePrincipals(appId={id})', or the cmdlet for Exchange ('Get-MigrationEndpoint')."""
    if request.url.path.endswith("/InvokeCommand"):
        return str(json.loads(request.content)["CmdletInput"]["CmdletName"])
    path = GUID.sub("{id}", request.url.path.split("/v1.0", 1)[-1].replace("%27", "'"))
    return f"{request.method} {path}"


class Waves(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.waves: list[list[str]] = []
        self._held: list[tuple[httpx.Request, asyncio.Future[httpx.Response]]] = []
        self._release: asyncio.Task[None] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer: asyncio.Future[httpx.Response] = asyncio.get_running_loop().create_future()
        self._held.append((request, answer))
        if self._release is None:
            self._release = asyncio.create_task(self._wave())
        return await answer

    async def _wave(self) -> None:
        for _ in range(200):  # the program's other tasks reach their next request (no I/O happens before one)
            await asyncio.sleep(0)
        held, self._held, self._release = self._held, [], None
        self.waves.append(sorted(describe(r) for r, _ in held))
        answers = await asyncio.gather(*(self._send(r) for r, _ in held), return_exceptions=True)
        for (_, fut), a in zip(held, answers, strict=True):
            if isinstance(a, BaseException):
                fut.set_exception(a)
            else:
                fut.set_result(a)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        await resp.aread()
        return resp

    def take(self) -> list[list[str]]:
        out, self.waves = self.waves, []
        return out

    async def aclose(self) -> None:
        await self.inner.aclose()


def run_waves(sb: Sandbox, project: Any, body: Callable[[Callable[..., SetupEngine], Waves], Awaitable[T]]) -> T:
    """`body(make_engine, waves)` with every request of the engines made by `make_engine(options, clock=…)`
    going through `waves`."""
    async def go() -> T:
        waves = Waves(httpx.AsyncHTTPTransport(verify=client_ssl_context(sb.ca_path)))
        policy = HttpPolicy(transport=waves)

        def make(options: SetupOptions, **kw: Any) -> SetupEngine:
            return SetupEngine(SandboxContext(sb, project, policy), options, sleep=clock_sleep(sb), **kw)

        try:
            return await body(make, waves)
        finally:
            await policy.aclose()

    return asyncio.run(go())


APP = "GET /applications(appId='{id}')"
SP = "GET /servicePrincipals(appId='{id}')"
GRANTS = "GET /servicePrincipals/{id}/appRoleAssignments"
# The demo's setup, change by change: the write, then the reads before the next change (what it touched and
# what depends on it: a new app's principals in both tenants; a new principal's grants).
CHANGES = [
    (["POST /applications"], [APP, SP, SP]),
    (["POST /servicePrincipals"], [SP, GRANTS]),
    (["POST /servicePrincipals/{id}/appRoleAssignedTo"], [GRANTS]),
    (["POST /applications/{id}/addPassword"], [APP]),
    (["POST /servicePrincipals"], [SP, GRANTS]),
    (["POST /servicePrincipals/{id}/appRoleAssignedTo"], [GRANTS]),
    (["Enable-OrganizationCustomization"], ["Get-OrganizationConfig"]),
    (["New-MigrationEndpoint"], ["Get-MigrationEndpoint"]),
    (["New-OrganizationRelationship"], ["Get-OrganizationRelationship"]),
    (["Set-OrganizationRelationship"], ["Get-OrganizationRelationship"]),
]
INSPECTION = [SP, SP,  # Exchange Online's service principal in each tenant
              "GET /me/transitiveMemberOf", "Get-OrganizationConfig", "Get-MigrationEndpoint",
              "Get-OrganizationRelationship", "Get-OrganizationRelationship", "Get-DistributionGroup",
              "Get-DistributionGroupMember"]


def test_each_change_is_followed_by_reads_of_what_it_touched_only(sandbox: Any, tmp_path: Path) -> None:
    async def body(make: Callable[..., SetupEngine], waves: Waves) -> Any:
        engine = make(SCOPE)
        await engine.plan()
        plan = waves.take()
        await engine.apply()
        applied = waves.take()
        checks = await engine.verify()
        return plan, applied, waves.take(), checks

    plan, applied, verified, checks = run_waves(sandbox, new_project(tmp_path), body)
    # one round for the plan (the app is looked for by its name: not there yet)
    assert plan == [sorted([*INSPECTION, "GET /applications"])]
    # apply starts from that plan (just made): its first request is the first change
    assert applied == [sorted(w) for change in CHANGES for w in change]
    # verification: the app, its principals and grants by the journal's ids, and Test-MigrationServerAvailability
    # by the journal's endpoint name, all in one round
    assert verified == [sorted([*INSPECTION, APP, SP, SP, GRANTS, GRANTS, "Test-MigrationServerAvailability"])]
    assert [c.text() for c in checks if not c.ok] == []


def test_apply_starts_from_the_plan_just_shown_once_and_only_while_it_is_recent(sandbox: Any,
                                                                              tmp_path: Path) -> None:
    """Apply reuses the last plan's inspection once, within fresh_seconds and while nothing was journaled
    since; a retry, a plan read for longer, or a journal another run moved means reading both tenants again."""
    project = new_project(tmp_path)
    later = datetime.timedelta()

    def clock() -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + later

    async def body(make: Callable[..., SetupEngine], waves: Waves) -> Any:
        nonlocal later
        engine = make(SCOPE, clock=clock)
        stop = threading.Event()
        stop.set()  # apply stops before its first change: what it read first is all that is seen
        seen = []
        await engine.plan()
        waves.take()
        await engine.apply(cancel=stop)
        seen.append(waves.take())  # the plan just shown
        await engine.apply(cancel=stop)
        seen.append(waves.take())  # again (a retry)
        await engine.plan()
        later = datetime.timedelta(seconds=61)  # the admin read the plan for more than a minute
        await engine.apply(cancel=stop)
        seen.append(waves.take()[1:])
        later = datetime.timedelta()
        await engine.plan()
        one = threading.Event()  # someone else makes one change meanwhile (journaled)
        await make(SCOPE).apply(progress=lambda done, total, line: one.set(), cancel=one)
        waves.take()
        await engine.apply(cancel=stop)
        seen.append(waves.take())
        return seen

    fresh, retry, stale, moved = run_waves(sandbox, project, body)
    inspection = [sorted([*INSPECTION, "GET /applications"])]
    assert fresh == []
    assert retry == inspection
    assert stale == inspection
    assert moved == [sorted([*INSPECTION, APP, SP, SP])]  # the other run made the app: now read by its id

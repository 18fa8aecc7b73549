"""Helpers for the typed-client tests (tests/unit/test_cloud_*.py): tokens, recorded sleeps, control API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import ca_context
from tests.sandbox.support import user_token
from xtwizard.cloud.endpoints import CloudEndpoints, sandbox_endpoints
from xtwizard.cloud.http import HttpPolicy, RetryPolicy
from xtwizard.sandbox import Sandbox

SOURCE_ADMIN = "admin@northwindtraders.onmicrosoft.com"
TARGET_ADMIN = "admin@fabrikaminc.onmicrosoft.com"
HELPDESK = "helpdesk@northwind.example"
EXADMIN = "exadmin@fabrikam.example"

T = TypeVar("T")


class RecordedSleep:
    """Stands in for asyncio.sleep: retries and polls are checked without waiting on the wall clock."""

    def __init__(self, on_sleep: Callable[[float], None] | None = None) -> None:
        self.waits: list[float] = []
        self.on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)


class MintedTokens:
    """A TokenProvider that mints sandbox tokens for one user (fast; sign-in itself is tested elsewhere).

    `stale` makes the next non-forced call hand out a token that the sandbox rejects (as after a key
    rollover), to exercise the clients' refresh-once on 401."""

    def __init__(self, sb: Sandbox, tenant: str, upn: str) -> None:
        self.sb, self.tenant, self.upn = sb, tenant, upn
        self.calls: list[tuple[str, bool]] = []
        self.stale = 0
        self.always_stale = False

    async def __call__(self, resource: str, *, force_refresh: bool = False) -> str:
        self.calls.append((resource, force_refresh))
        if self.always_stale or (self.stale and not force_refresh):
            self.stale = max(0, self.stale - 1)
            return "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdGFsZSJ9.c3RhbGU"
        return user_token(self.sb, self.tenant, self.upn, resource)


def control(sb: Sandbox, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(verify=ca_context(sb.ca_path), trust_env=False, timeout=30) as c:
        r = c.request(method, sb.info["control_url"] + path, json=body)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None


def fault(sb: Sandbox, **spec: Any) -> None:
    control(sb, "POST", "/faults", spec)


def advance(sb: Sandbox, seconds: float) -> None:
    control(sb, "POST", "/clock", {"advance_seconds": seconds})


def request_log(sb: Sandbox, service: str | None = None) -> list[dict[str, Any]]:
    rows = control(sb, "GET", "/requests?limit=10000")["value"]
    return [r for r in rows if service is None or r["service"] == service]


def endpoints_of(sb: Sandbox) -> CloudEndpoints:
    return sandbox_endpoints(sb.info)


def policy_for(sb: Sandbox, sleep: RecordedSleep | None = None, **kwargs: Any) -> HttpPolicy:
    return HttpPolicy.for_ca_bundle(sb.ca_path, sleep=sleep or RecordedSleep(),
                                    retry=kwargs.pop("retry", RetryPolicy(base_delay=0.01)), **kwargs)


def run(make: Callable[[HttpPolicy], Awaitable[T]], sb: Sandbox, sleep: RecordedSleep | None = None) -> T:
    """Run one async test body with a fresh HttpPolicy (closed afterwards) on a fresh loop."""

    async def go() -> T:
        policy = policy_for(sb, sleep)
        try:
            return await make(policy)
        finally:
            await policy.aclose()

    return asyncio.run(go())


def module_sandbox() -> Any:
    """A module-scoped sandbox fixture (one server per module) and a per-test reset of its state."""

    @pytest.fixture(scope="module")
    def _shared_sandbox() -> Iterator[Sandbox]:
        sb = Sandbox("demo")
        sb.start()
        try:
            yield sb
        finally:
            sb.stop()

    @pytest.fixture
    def sandbox(_shared_sandbox: Sandbox) -> Sandbox:
        _shared_sandbox.reset()
        return _shared_sandbox

    return _shared_sandbox, sandbox

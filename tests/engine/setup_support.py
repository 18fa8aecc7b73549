"""Helpers for the setup engine tests: a light SetupContext over a sandbox, with minted tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.unit.cloud_support import (
    SOURCE_ADMIN,
    TARGET_ADMIN,
    MintedTokens,
    advance,
    endpoints_of,
    policy_for,
)
from xtwizard.cloud.arm import ArmClient
from xtwizard.cloud.endpoints import CloudEndpoints
from xtwizard.cloud.exchange import ExchangeClient
from xtwizard.cloud.graph import GraphClient
from xtwizard.cloud.http import HttpPolicy
from xtwizard.migration.project import MigrationProject, ProjectStore
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.migration.workspace import TenantIdentity
from xtwizard.sandbox import Sandbox

T = TypeVar("T")


@dataclass
class SandboxContext:
    """What the Workspace gives the engine, with tokens minted by the sandbox (sign-in is tested elsewhere)."""

    sb: Sandbox
    project: MigrationProject
    policy: HttpPolicy
    admins: dict[str, str] = field(default_factory=lambda: {"source": SOURCE_ADMIN, "target": TARGET_ADMIN})
    identities: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.endpoints: CloudEndpoints = endpoints_of(self.sb)
        for slot, key in (("source", "source"), ("target", "target")):
            t = self.sb.state.tenant(key)
            assert t is not None
            self.identities[slot] = TenantIdentity(slot, t.id, t.display_name, t.initial_domain, self.admins[slot])

    def tokens(self, slot: str) -> MintedTokens:
        return MintedTokens(self.sb, slot, self.admins[slot])

    def token_provider(self, slot: str) -> MintedTokens:
        return self.tokens(slot)

    def graph(self, slot: str) -> GraphClient:
        return GraphClient(self.endpoints, self.policy, self.tokens(slot), tenant=slot)

    def exchange(self, slot: str) -> ExchangeClient:
        ident = self.identities[slot]
        return ExchangeClient(self.endpoints, self.policy, self.tokens(slot), tenant=ident.tenant_id,
                              admin_upn=self.admins[slot])

    def arm(self, slot: str) -> ArmClient:
        return ArmClient(self.endpoints, self.policy, self.tokens(slot), tenant=slot)


def new_project(tmp: Path) -> MigrationProject:
    return ProjectStore(tmp / "projects").create("Northwind to Fabrikam")


def clock_sleep(sb: Sandbox, waits: list[float] | None = None) -> Callable[[float], Awaitable[None]]:
    """The engine's backoff waits advance the sandbox clock instead of the wall clock."""

    async def sleep(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)
        advance(sb, seconds)

    return sleep


def run_engine(sb: Sandbox, project: MigrationProject, options: SetupOptions,
               body: Callable[[SetupEngine], Awaitable[T]], waits: list[float] | None = None) -> T:
    async def go() -> T:
        policy = policy_for(sb)
        try:
            engine = SetupEngine(SandboxContext(sb, project, policy), options, sleep=clock_sleep(sb, waits))
            return await body(engine)
        finally:
            await policy.aclose()

    return asyncio.run(go())

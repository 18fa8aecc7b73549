"""Helpers for the users engine tests: setup done once through the setup engine, then a UserEngine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.engine.setup_support import SandboxContext, clock_sleep
from tests.unit.cloud_support import policy_for
from xtwizard.migration.project import MigrationProject
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.migration.users import UserEngine
from xtwizard.sandbox import Sandbox

T = TypeVar("T")


def run_users(sb: Sandbox, project: MigrationProject, body: Callable[[UserEngine], Awaitable[T]], *,
              setup_scope: str | None = None, concurrency: int = 16, policy_kwargs: dict[str, Any] | None = None,
              admins: dict[str, str] | None = None) -> T:
    """Run `body(engine)` on a fresh loop; with `setup_scope`, the setup engine runs first (endpoint, relationships,
    scope group), as the wizard's earlier pages leave it."""

    async def go() -> T:
        policy = policy_for(sb, **(policy_kwargs or {}))
        try:
            ctx = CachedContext(sb, project, policy, **({"admins": admins} if admins else {}))
            if setup_scope:
                await SetupEngine(ctx, SetupOptions(scope_groups=[setup_scope]), sleep=clock_sleep(sb)).apply()
            return await body(UserEngine(ctx, sleep=clock_sleep(sb), concurrency=concurrency))
        finally:
            await policy.aclose()

    return asyncio.run(go())


class CachedTokens:
    """Tokens minted once per resource and reused, as msal's cache does (minting signs a JWT: at thousands of
    requests that would measure the test helper, not the engine)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[str, str] = {}

    async def __call__(self, resource: str, *, force_refresh: bool = False) -> str:
        if force_refresh or resource not in self.cache:
            self.cache[resource] = await self.inner(resource, force_refresh=force_refresh)
        return self.cache[resource]


class CachedContext(SandboxContext):
    def __post_init__(self) -> None:
        super().__post_init__()
        self._tokens: dict[str, CachedTokens] = {}

    def tokens(self, slot: str) -> Any:
        if slot not in self._tokens:
            self._tokens[slot] = CachedTokens(super().tokens(slot))
        return self._tokens[slot]

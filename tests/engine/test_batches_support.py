"""Helpers for the batches engine tests (no tests here): the setup run once on the sandbox, then the engine."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.engine.setup_support import SandboxContext, clock_sleep, new_project
from tests.unit.cloud_support import policy_for
from xtwizard.migration.batches import BatchEngine, WaveUser
from xtwizard.migration.project import MigrationProject
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.sandbox import Sandbox

T = TypeVar("T")
SOURCE, TARGET = "northwind.example", "fabrikam.example"
# Demo users without a planted problem (sandbox/scenarios/demo.json stories).
CLEAN = ["alice", "ben.carter", "dan.evans", "ella.fischer", "farid.ghani", "zoe.baker"]


def pair(local: str) -> WaveUser:
    return WaveUser(f"{local}@{SOURCE}", f"{local}@{TARGET}")


def sandbox_now(sb: Sandbox) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(sb.clock.now(), datetime.UTC)


def run(sb: Sandbox, project: MigrationProject, body: Callable[[BatchEngine, SandboxContext], Awaitable[T]],
        context: type[SandboxContext] = SandboxContext) -> T:
    async def go() -> T:
        policy = policy_for(sb)
        try:
            ctx = context(sb, project, policy)
            return await body(BatchEngine(ctx, clock=lambda: sandbox_now(sb)), ctx)
        finally:
            await policy.aclose()

    return asyncio.run(go())


def set_up(sb: Sandbox, tmp: Path, options: SetupOptions | None = None,
           before: Callable[[SandboxContext], Awaitable[Any]] | None = None,
           secrets: list[str] | None = None) -> MigrationProject:
    """A project whose setup is done (client-secret mode, scope group 'Migration Wave 1')."""
    project = new_project(tmp)

    async def go() -> None:
        policy = policy_for(sb)
        try:
            ctx = SandboxContext(sb, project, policy)
            if before is not None:
                await before(ctx)
            engine = SetupEngine(ctx, options or SetupOptions(scope_groups=["Migration Wave 1"]),
                                 sleep=clock_sleep(sb))
            await engine.apply()
            if secrets is not None:  # the client secret lives only in the setup engine's memory
                secrets.extend(engine._secrets.values())
            checks = await engine.verify()
            assert all(c.ok or c.warning for c in checks), [c.text() for c in checks if not c.ok]
        finally:
            await policy.aclose()

    asyncio.run(go())
    return project


def exo(sb: Sandbox, ctx: SandboxContext, slot: str, cmdlet: str, **params: Any) -> Any:
    """A raw cmdlet, as an admin would run it outside xtwizard."""
    return ctx.exchange(slot).invoke(cmdlet, params)

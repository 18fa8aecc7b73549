"""Fault drills for the migration batches: every fault × each step of a batch's life (create, start, complete);
see docs/drills.md.

Each cell starts from a snapshot taken after the setup, runs a two-user wave (New-MigrationBatch, Start- when
started by hand, Complete-MigrationBatch, on the sandbox clock) with the fault on that step's cmdlet (or, for
faults of time and disk, armed as the step starts), then does what an admin does next — looks at the Monitor and
carries on — and checks that there is one batch, each user in it once and completed, and no open intent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.drills.support import (
    FAULTS,
    WIRE,
    Cell,
    JournalWrites,
    Snapshot,
    assert_actionable,
    assert_no_secrets_on_disk,
    restore,
    run,
    sleep_for,
    snapshot,
)
from tests.engine.setup_support import new_project
from tests.engine.test_batches_support import pair, sandbox_now
from xtwizard.migration.batches import BatchEngine, BatchOptions
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.faults import parse_rule

NAME = "Wave 1"
USERS = [pair("alice"), pair("ben.carter")]
STEPS = {"create": "New-MigrationBatch", "start": "Start-MigrationBatch", "complete": "Complete-MigrationBatch"}


@pytest.fixture(scope="module")
def after_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Snapshot]]:
    folder = tmp_path_factory.mktemp("batches")
    with Sandbox("demo") as sb:
        project = new_project(folder)

        async def setup(ctx: Any) -> None:
            await SetupEngine(ctx, SetupOptions(scope_groups=["Migration Wave 1"]), sleep=sleep_for(sb)).apply()

        assert run(Cell(sb, project, "none"), setup) is None
        yield sb, snapshot(sb, project, folder / "snapshot")


def engine_for(sb: Sandbox, ctx: Any) -> BatchEngine:
    return BatchEngine(ctx, clock=lambda: sandbox_now(sb))


async def carry_on(sb: Sandbox, engine: BatchEngine, options: BatchOptions,
                   before: Callable[[str], None] = lambda step: None) -> None:
    """The wave from wherever it is to Completed, as an admin drives it from the Monitor page."""
    def batch() -> Any:
        return next((b for b in snap.batches if b.name == NAME), None)

    snap = await engine.refresh()
    if batch() is None:
        before("create")
        (wave,) = engine.plan_waves(USERS)
        await engine.create(wave, options)
        snap = await engine.refresh()
    if all(u.stage == "waiting" for u in snap.users_in(NAME)) and options.start == "manual":
        before("start")
        await engine.start(NAME)
    sb.clock.advance(20 * 3600)  # validation and the copy
    snap = await engine.refresh()
    if batch() is not None and batch().status != "Completed" and \
            not all(u.stage in ("completing", "completed") for u in snap.users_in(NAME)):
        before("complete")
        await engine.complete(NAME)
    sb.clock.advance(3600)


CELLS = [(step, fault) for step in STEPS for fault in FAULTS]


@pytest.mark.parametrize(("step", "fault"), CELLS)
def test_batch_step_under_fault(after_setup: tuple[Sandbox, Snapshot], tmp_path: Path, step: str,
                                fault: str) -> None:
    sb, snap = after_setup
    project = restore(sb, snap, tmp_path)
    cell = Cell(sb, project, fault, journal=JournalWrites(project))
    options = BatchOptions(NAME, start="manual" if step == "start" else "now")
    if fault in WIRE:
        sb.faults.add(parse_rule({**WIRE[fault], "service": "exchange", "cmdlet": STEPS[step]}))
        cell.armed = True

    def arm_at(now: str) -> None:
        if now == step:
            cell.arm()

    def drive(hook: Callable[[str], None]) -> Callable[[Any], Awaitable[None]]:
        return lambda ctx: carry_on(sb, engine_for(sb, ctx), options, hook)

    problem = run(cell, drive(arm_at))
    cell.assert_met()
    if problem is not None:
        assert_actionable(problem)
    cell.calm()
    assert run(cell, drive(lambda now: None)) is None

    async def final(ctx: Any) -> Any:
        return await engine_for(sb, ctx).refresh()

    outcome: list[Any] = []
    assert run(cell, lambda ctx: _keep(outcome, final(ctx))) is None
    shown = outcome[0]
    assert [b.name for b in shown.batches].count(NAME) == 1
    assert sorted(u.target for u in shown.users_in(NAME)) == sorted(u.target for u in USERS)
    assert {u.stage for u in shown.users_in(NAME)} == {"completed"}, shown.users_in(NAME)
    target = sb.state.tenant("target")
    assert target is not None
    assert len([b for b in target.col("exchange.batches").values() if b["Identity"] == NAME]) == 1
    assert NAME in project.data.get("batches", {}).get("batches", {}) or \
        NAME in reopen_data(project), "the project lost the batch's record"
    assert_no_secrets_on_disk(tmp_path, [])
    assert project.unfinished() == [], [(e.action, e.target) for e in project.unfinished()]


async def _keep(out: list[Any], aw: Awaitable[Any]) -> None:
    out.append(await aw)


def reopen_data(project: Any) -> dict[str, Any]:
    from tests.drills.support import reopen

    return dict(reopen(project).data.get("batches", {}).get("batches", {}))

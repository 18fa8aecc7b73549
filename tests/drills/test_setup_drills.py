"""Fault drills for the setup: every fault × every step of the setup (docs/drills.md).

A fault is armed right before the step's first change, so it meets that change's requests (or its journal
writes).  The run ends in success (the HTTP policy retried, the engine adopted what a lost answer made) or in
an actionable Problem; then the admin runs the setup again without the fault, and it must end verified with
the journal matching both tenants, nothing duplicated and no secret on disk.  Killed at every journaled point:
tests/engine/test_setup_crash.py (real SIGKILL, both credential modes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.drills.support import (
    FAULTS,
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
from tests.engine.test_setup_crash import journal_matches_sandbox
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.migration.setup.model import Change
from xtwizard.sandbox import Sandbox

OPTIONS = SetupOptions(scope_groups=["Migration Wave 1"], members_add=["gina.hoffman@northwind.example"],
                       unfinished_wait_seconds=0)
STEPS = ("migration-app", "credential", "source-consent", "target-exchange", "source-exchange", "scope-group")


class Recorder(SetupEngine):
    """A clean setup that keeps a snapshot as each step's first change comes (the cells start there)."""

    sb: Sandbox
    keep: Path
    snaps: dict[str, Snapshot]

    async def _execute(self, c: Change) -> None:
        if c.step not in self.snaps:
            self.snaps[c.step] = snapshot(self.sb, self.ctx.project, self.keep / c.step,
                                          self._secrets)
        await super()._execute(c)


@pytest.fixture(scope="module")
def before_step(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, dict[str, Snapshot]]]:
    keep = tmp_path_factory.mktemp("steps")
    with Sandbox("demo") as sb:
        project = new_project(keep)
        snaps: dict[str, Snapshot] = {}

        async def record(ctx: Any) -> None:
            engine = Recorder(ctx, OPTIONS, sleep=sleep_for(sb))
            engine.sb, engine.keep, engine.snaps = sb, keep, snaps
            await engine.apply()

        assert run(Cell(sb, project, "none"), record) is None
        assert set(snaps) == set(STEPS), sorted(snaps)
        yield sb, snaps


class ArmedSetup(SetupEngine):
    """The setup engine, with the cell's fault armed just before the first change of one step."""

    cell: Cell
    step: str

    async def _execute(self, c: Change) -> None:
        if c.step == self.step:
            self.cell.arm()
        await super()._execute(c)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("step", STEPS)
def test_setup_step_under_fault(before_step: tuple[Sandbox, dict[str, Snapshot]], tmp_path: Path, step: str,
                                fault: str) -> None:
    sb, snaps = before_step
    project = restore(sb, snaps[step], tmp_path)  # the run so far, the client secret still in its memory
    cell = Cell(sb, project, fault, journal=JournalWrites(project))
    secrets: list[str] = list(snaps[step].secrets.values())

    async def faulted(ctx: Any) -> None:
        engine = ArmedSetup(ctx, OPTIONS, sleep=sleep_for(sb))
        engine.cell, engine.step = cell, step
        engine._secrets.update(snaps[step].secrets)
        try:
            await engine.apply()
        finally:
            secrets.extend(engine._secrets.values())

    problem = run(cell, faulted)
    assert cell.armed, f"the setup never reached the step {step}"
    cell.assert_met()
    if problem is not None:
        assert_actionable(problem)
    cell.calm()
    checks: list[Any] = []

    async def retried(ctx: Any) -> None:
        engine = SetupEngine(ctx, OPTIONS, sleep=sleep_for(sb))
        try:
            await engine.apply()
            checks.extend(await engine.verify())
        finally:
            secrets.extend(engine._secrets.values())

    again = run(cell, retried)
    assert again is None, again
    assert [c for c in checks if not c.ok and not c.warning] == []
    journal_matches_sandbox(sb, project, "secret")
    assert secrets, "the setup made a client secret"
    assert_no_secrets_on_disk(tmp_path, secrets)

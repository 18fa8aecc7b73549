"""Fault drills for the preparation of target MailUsers: every fault × each step of a user's preparation, and
a kill at every journaled point then a resume (docs/drills.md).

The setup and the mapping run once per module; each cell starts from a copy of their result (both tenants
and the project) and applies the plan with the fault armed.  The steps: creating a MailUser (New-MailUser)
and stamping its attributes (Set-MailUser); faults of time and of the disk are armed as the apply starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.drills.support import (
    FAULTS,
    WIRE,
    Cell,
    JournalWrites,
    Killed,
    Snapshot,
    assert_actionable,
    assert_no_secrets_on_disk,
    reopen,
    restore,
    run,
    sleep_for,
    snapshot,
)
from tests.engine.setup_support import new_project
from xtwizard.migration.project import MigrationProject
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.migration.users import UserEngine
from xtwizard.migration.users.engine import STEP_PREPARE
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.exchange import store
from xtwizard.sandbox.faults import parse_rule

SCOPE = "Migration Wave 1"
DOMAIN = "fabrikam.example"
STEPS = {"create-mailuser": "New-MailUser", "stamp-attributes": "Set-MailUser"}
PREPARED = 6  # the demo's pending changes: Olivia's MailUser made, five stamped


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Snapshot, Any]]:
    """The demo with the setup done and the users mapped, once; and the preparation plan the page showed."""
    folder = tmp_path_factory.mktemp("prepared")
    with Sandbox("demo") as sb:
        project = new_project(folder)
        plans: list[Any] = []

        async def setup_and_map(ctx: Any) -> None:
            await SetupEngine(ctx, SetupOptions(scope_groups=[SCOPE]), sleep=sleep_for(sb)).apply()
            engine = UserEngine(ctx, sleep=sleep_for(sb))
            boxes = await engine.inventory()
            rows = await engine.validate(engine.auto_map([m for m in boxes if m.in_scope], DOMAIN))
            engine.save_mapping(rows, DOMAIN)
            plans.append(await engine.plan_prepare())

        assert run(Cell(sb, project, "none"), setup_and_map) is None
        project.save()
        assert len(plans[0].pending) == PREPARED
        yield sb, snapshot(sb, project, folder / "snapshot"), plans[0]


async def prepare_again(engine: UserEngine) -> Any:
    """What the admin does after a failure or a crash: plan again (a new process knows nothing) and apply."""
    return await engine.apply_prepare(await engine.plan_prepare())


def check_tenant_and_journal(sb: Sandbox, project: MigrationProject) -> None:
    """Every mapped user prepared once, as the journal says; no intent open; a new plan has nothing to do."""
    assert project.unfinished() == []
    target = sb.state.tenant("target")
    assert target is not None
    mailusers = [r for r in store.recipients(target).values() if r["RecipientTypeDetails"] == "MailUser"]
    externals = [str(r.get("ExternalEmailAddress", "")).lower() for r in mailusers]
    assert len(externals) == len(set(externals)), "a MailUser made twice"
    olivia = [r for r in mailusers if "olivia.perez" in str(r.get("PrimarySmtpAddress"))]
    assert len(olivia) == 1 and olivia[0]["ExchangeGuid"] != store.ZERO_GUID
    done = [e for e in project.entries() if e.step == STEP_PREPARE and e.phase == "done"]
    made = {str(e.target.get("guid", "")).lower() for e in done if e.action.startswith("create")}
    assert str(olivia[0]["Guid"]).lower() in made, "the MailUser in the tenant is not the journal's"


class Armed(UserEngine):
    """The users engine with the cell's fault armed as the apply starts (wire faults wait for their cmdlet)."""

    cell: Cell

    async def apply_prepare(self, plan: Any, progress: Any = None, cancel: Any = None) -> Any:
        self.cell.arm()
        return await super().apply_prepare(plan, progress, cancel)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("step", STEPS)
def test_preparation_step_under_fault(mapped: Any, tmp_path: Path, step: str, fault: str) -> None:
    sb, snap, plan = mapped
    project = restore(sb, snap, tmp_path)
    cell = Cell(sb, project, fault, journal=JournalWrites(project))
    if fault in WIRE:  # on the step's cmdlet only, from the start
        sb.faults.add(parse_rule({**WIRE[fault], "service": "exchange", "cmdlet": STEPS[step]}))
        cell.armed = True
    results: list[Any] = []

    async def faulted(ctx: Any) -> None:
        engine = Armed(ctx, sleep=sleep_for(sb))
        engine.cell = cell
        results.append(await engine.apply_prepare(plan))

    problem = run(cell, faulted)
    cell.assert_met()
    if problem is not None:
        assert_actionable(problem)
    for result in results:  # the apply finished: a user that failed says why, the others are done
        for _change, p in result.failed:
            assert_actionable(p)
    cell.calm()

    async def retried(ctx: Any) -> None:
        results.append(await prepare_again(UserEngine(ctx, sleep=sleep_for(sb))))

    assert run(cell, retried) is None
    assert results[-1].failed == []
    check_tenant_and_journal(sb, project)
    assert_no_secrets_on_disk(tmp_path, [])


def test_preparation_killed_at_every_journaled_point_resumes(mapped: Any, tmp_path: Path) -> None:
    """Killed right after every journal write, and just before every one after the first (an outcome not
    recorded while the tenant already changed); a new engine (nothing in memory) resumes.  One user at a time,
    so that every run writes the same records in the same order (with more, the group commit batches them as
    the answers come)."""
    sb, snap, plan = mapped
    project = restore(sb, snap, tmp_path / "count")
    counter = JournalWrites(project)
    assert run(Cell(sb, project, "none", journal=counter),
               lambda ctx: UserEngine(ctx, sleep=sleep_for(sb), concurrency=1).apply_prepare(plan)) is None
    writes = counter.count
    assert writes == 2 * PREPARED
    points = [("AFTER", n) for n in range(1, writes + 1)] + [("BEFORE", n) for n in range(2, writes + 1)]
    for where, n in points:
        project = restore(sb, snap, tmp_path / f"{where}{n}")
        killer = JournalWrites(project)
        killer.kill(where, n)
        with pytest.raises(Killed):
            run(Cell(sb, project, "none", journal=killer),
                lambda ctx: UserEngine(ctx, sleep=sleep_for(sb), concurrency=1).apply_prepare(plan))
        resumed = reopen(project)
        assert run(Cell(sb, resumed, "none"), lambda ctx: prepare_again(UserEngine(ctx, sleep=sleep_for(sb)))) is None, \
            (where, n)
        check_tenant_and_journal(sb, resumed)
    assert_no_secrets_on_disk(tmp_path, [])

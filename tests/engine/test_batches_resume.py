"""Batch changes whose outcome is not known at once — a dropped connection, a lost answer, an outcome that cannot
be journaled: the batch is looked up at once, and what stays open is settled by the next refresh from what the
target shows; a batch that was made is adopted, never made twice (docs/batches.md, "Changes left without
outcome").  The fault drills (tests/drills/test_batch_drills.py) check the invariants for every fault; this
follows one wave through each way an outcome can get lost, and what the journal and the project say."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from tests.engine.test_batches_support import pair, run, set_up
from tests.unit.cloud_support import advance
from xtwizard.migration.batches import BatchEngine, BatchOptions, BatchProblem
from xtwizard.migration.project import MigrationProject
from xtwizard.sandbox.faults import parse_rule

NAME = "Wave 1"
USERS = [pair("alice"), pair("ben.carter")]


def fault(sb: Any, cmdlet: str, kind: str = "lose", count: int = 1) -> None:
    sb.faults.add(parse_rule({"kind": kind, "count": count, "service": "exchange", "cmdlet": cmdlet}))


def outcomes(project: MigrationProject, action: str) -> list[tuple[str, str]]:
    """(phase, how it was resolved) of each outcome of `action`, oldest first."""
    return [(e.phase, str(e.detail.get("resolved", ""))) for e in project.entries()
            if e.action == action and e.phase != "intent"]


def disk_full_at_next_outcome(project: MigrationProject) -> None:
    """The next outcome written to the journal fails as on a full disk (the change itself was made)."""
    real = project._append

    def append(entry: Any) -> None:
        if entry.phase != "intent":
            project._append = real  # type: ignore[method-assign]
            raise OSError(errno.ENOSPC, "No space left on device", str(project.journal_file))
        real(entry)

    project._append = append  # type: ignore[method-assign]


def record(project: MigrationProject) -> dict[str, Any] | None:
    rec = project.data["batches"]["batches"].get(NAME)
    return rec if isinstance(rec, dict) else None


def test_an_interrupted_batch_change_is_looked_up_or_settled_by_the_next_refresh(sandbox: Any,
                                                                                  tmp_path: Path) -> None:
    project = set_up(sandbox, tmp_path)

    def made() -> int:  # batches named NAME in the target
        return [b["Identity"] for b in sandbox.state.tenant("target").col("exchange.batches").values()].count(NAME)

    # 1. New-MigrationBatch's connection drops before Exchange gets it, and so does every look that follows: the
    #    outcome is unknown, the record waits ("creating") and its users are not planned again meanwhile.
    async def launch(engine: BatchEngine, ctx: Any) -> list[Any]:
        (wave,) = engine.plan_waves(USERS)
        fault(sandbox, "New-MigrationBatch", "drop")
        fault(sandbox, "Get-MigrationBatch", "drop", 10)
        with pytest.raises(BatchProblem) as info:
            await engine.create(wave, BatchOptions(NAME, start="manual"))
        sandbox.faults.clear()
        assert "No answer came back" in info.value.problem.what, info.value.problem
        assert "Nothing is made twice" in info.value.problem.fix
        return engine.plan_waves(USERS)

    assert run(sandbox, project, launch) == []
    assert [e.action for e in project.unfinished()] == ["create batch"]
    assert record(project) is not None and record(project)["creating"]  # type: ignore[index]

    # The next refresh (a new engine, as after a restart) finds no batch: not created, the record goes, the users
    # are planned again.
    async def look(engine: BatchEngine, ctx: Any) -> list[Any]:
        await engine.refresh()
        return engine.plan_waves(USERS)

    (wave,) = run(sandbox, project, look)
    assert [u.target for u in wave.users] == [u.target for u in USERS]
    assert outcomes(project, "create batch") == [("failed", "on resume: no such batch in the target: it was not "
                                                            "created")]
    assert project.unfinished() == [] and record(project) is None and made() == 0

    # 2. The same again, but Exchange made the batch and only the answer was lost: the refresh adopts it.
    async def launch_lost(engine: BatchEngine, ctx: Any) -> None:
        fault(sandbox, "New-MigrationBatch")
        fault(sandbox, "Get-MigrationBatch", "drop", 10)
        with pytest.raises(BatchProblem):
            await engine.create(wave, BatchOptions(NAME, start="manual"))
        sandbox.faults.clear()

    run(sandbox, project, launch_lost)
    run(sandbox, project, look)
    assert outcomes(project, "create batch")[1] == (
        "done", "on resume: the batch is in the target: it was created (adopted, not made again)")
    assert made() == 1 and project.unfinished() == []
    rec = record(project)
    assert rec is not None and "creating" not in rec and rec["users"] == [[u.source, u.target] for u in USERS]

    # 3. Start-MigrationBatch's answer is lost: looked up at once, it took effect — start() simply succeeds.
    async def start(engine: BatchEngine, ctx: Any) -> None:
        fault(sandbox, "Start-MigrationBatch")
        await engine.start(NAME)

    run(sandbox, project, start)
    assert outcomes(project, "start batch") == [("done", "the answer was lost; the batch shows: its status is "
                                                         "Syncing: the change was made")]

    # 4. Complete-MigrationBatch's connection drops before Exchange gets it: looked up at once, not made.
    advance(sandbox, 20 * 3600)

    async def complete(engine: BatchEngine, ctx: Any) -> str:
        fault(sandbox, "Complete-MigrationBatch", "drop")
        with pytest.raises(BatchProblem) as info:
            await engine.complete(NAME)
        return info.value.problem.what

    assert "Could not reach Microsoft" in run(sandbox, project, complete)
    assert outcomes(project, "complete batch") == [("failed", "the answer was lost; the batch shows: its status is "
                                                              "Synced: the change was not made")]

    # 5. Completed again, but its outcome cannot be journaled (disk full): the next refresh records it done.
    async def complete_disk_full(engine: BatchEngine, ctx: Any) -> None:
        disk_full_at_next_outcome(project)
        with pytest.raises(OSError):
            await engine.complete(NAME)

    run(sandbox, project, complete_disk_full)
    assert [e.action for e in project.unfinished()] == ["complete batch"]
    run(sandbox, project, look)
    assert outcomes(project, "complete batch")[1] == ("done", "on resume: its status is Completing: the change was "
                                                              "made")

    # 6. The finished batch is removed and the answer is lost: the look finds it gone, the record says removed.
    advance(sandbox, 3600)

    async def remove(engine: BatchEngine, ctx: Any) -> None:
        assert {u.stage for u in (await engine.refresh()).users_in(NAME)} == {"completed"}
        fault(sandbox, "Remove-MigrationBatch")
        await engine.remove(NAME)

    run(sandbox, project, remove)
    assert outcomes(project, "remove batch") == [("done", "the answer was lost; the batch shows: gone from the "
                                                          "target: the removal was made")]
    assert made() == 0 and record(project) is not None and record(project)["removed"]  # type: ignore[index]
    assert project.unfinished() == []

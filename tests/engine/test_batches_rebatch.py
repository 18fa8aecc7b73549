"""A user whose move failed in a way Retry cannot mend is taken out of the batch and moved again in a new one, end to
end on the demo: Tara's auto-expanding archive grows an auxiliary archive half-way through her move ("remove the
user from this batch and move them again in a new batch").  The removal is planned, journaled and survives a crash
between Remove-MigrationUser and its outcome; Tara is launched again only once readiness has passed anew, goes into
'Wave 2' and completes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.setup_support import new_project
from tests.engine.test_batches_support import sandbox_now
from tests.engine.users_support import run_users
from tests.unit.cloud_support import advance
from xtwizard.migration.batches import BatchEngine, BatchOptions
from xtwizard.migration.setup.journal import SetupJournal
from xtwizard.migration.users import UserEngine, ready_users

TARA, ALICE = "tara.usman@fabrikam.example", "alice@fabrikam.example"


class Crash(BaseException):
    """The process 'died' at a journal write (in-process stand-in for the crash hook's kill)."""


def _crash() -> None:
    raise Crash


def test_a_user_that_needs_a_new_batch_is_taken_out_and_completes_in_the_next_wave(
        sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = new_project(tmp_path)

    def batches(users: UserEngine) -> BatchEngine:
        return BatchEngine(users.ctx, clock=lambda: sandbox_now(sandbox))  # type: ignore[arg-type]

    async def launch(users: UserEngine) -> Any:
        boxes = await users.inventory(statistics=False)
        rows = users.auto_map([m for m in boxes if m.address.split("@")[0] in ("alice", "tara.usman")],
                              "fabrikam.example")
        users.save_mapping(await users.validate(rows), "fabrikam.example")
        assert all(r.ready for r in await users.readiness())
        engine = batches(users)
        (wave,) = engine.plan_waves(engine.ready_users())
        await engine.create(wave, BatchOptions(wave.name))
        return wave.name

    assert run_users(sandbox, project, launch, setup_scope="Migration Wave 1") == "Wave 1"
    advance(sandbox, 20 * 3600)  # the copy: Tara's archive grows an auxiliary archive half-way

    async def failed(users: UserEngine) -> Any:
        engine = batches(users)
        snap = await engine.refresh()
        await engine.complete("Wave 1")
        plan = await engine.plan_rebatch("Wave 1")
        return snap, plan, await engine.plan_rebatch(users=[ALICE]), engine.plan_waves(engine.ready_users())

    snap, plan, alice_plan, waves = run_users(sandbox, project, failed)
    tara = next(u for u in snap.users if u.target == TARA)
    assert tara.failed and tara.problem is not None and "new batch" in tara.problem.fix
    assert BatchEngine.needs_new_batch(tara) and not any(BatchEngine.needs_new_batch(u) for u in snap.users
                                                         if u.target != TARA)
    assert [(c.kind, c.key, c.before["Batch"]) for c in plan.changes] == [("remove", f"migration-user:{TARA}",
                                                                          "Wave 1")]
    assert "auxiliary archive" in plan.changes[0].line
    assert [c.kind for c in alice_plan.changes] == ["keep"] and "stays in 'Wave 1'" in alice_plan.changes[0].line
    assert waves == []  # before: Tara is in a batch of the project, so no wave takes her

    # The removal, "killed" after Remove-MigrationUser and before its outcome is journaled.
    monkeypatch.setattr(SetupJournal, "crash", staticmethod(_crash))

    async def crashing(users: UserEngine) -> None:
        engine = batches(users)
        engine.journal._crash_before = 2  # the intent is written; the outcome's write "kills" the process
        with pytest.raises(Crash):
            await engine.apply_rebatch(await engine.plan_rebatch("Wave 1"))

    run_users(sandbox, project, crashing)
    target = sandbox.state.tenant("target")
    assert not [u for u in target.col("exchange.migrationUsers").values() if u["Identity"] == TARA]
    assert len(project.unfinished()) == 1
    advance(sandbox, 3600)  # Alice's completion

    async def resumed(users: UserEngine) -> Any:
        engine = batches(users)
        again = await engine.plan_rebatch("Wave 1")  # settles the open removal from what Exchange shows
        early = engine.plan_waves(engine.ready_users())
        # The cause: the archive finished expanding (one auxiliary archive, within the limit of 12; its ArchiveGuid
        # is unchanged, so the target MailUser needs nothing).  The admin checks readiness again.
        results = {r.target: r for r in await users.readiness()}
        waves = engine.plan_waves(engine.ready_users())
        for w in waves:
            await engine.create(w, BatchOptions(w.name))
        return again, early, results, waves

    again, early, results, waves = run_users(sandbox, project, resumed)
    assert project.unfinished() == []
    removal = [e for e in project.entries() if e.action == "remove migration user" and e.phase == "done"]
    assert len(removal) == 1 and "gone from the batch" in removal[0].detail["resolved"]
    assert again.pending == [] and "Nothing to take out" in again.lines()[-1]
    record = project.data["batches"]["batches"]["Wave 1"]
    assert [t for _s, t in record["users"]] == [ALICE] and [r[1] for r in record["rebatched"]] == [TARA]
    assert early == []  # taken out, but not launched again before readiness passes anew
    assert results[TARA].ready and not results[TARA].moved
    assert results[ALICE].moved and results[ALICE].ready and not results[ALICE].problems  # not "not a mailbox"
    assert [(w.name, [u.target for u in w.users]) for w in waves] == [("Wave 2", [TARA])]
    assert {u.target for u in ready_users(project)} == {ALICE, TARA}

    advance(sandbox, 20 * 3600)
    run_users(sandbox, project, lambda users: batches(users).complete("Wave 2"))
    advance(sandbox, 3600)

    async def done(users: UserEngine) -> Any:
        return await batches(users).refresh()

    final = run_users(sandbox, project, done)
    assert [(u.batch, u.status) for u in final.users if u.target == TARA] == [("Wave 2", "Completed")]
    assert [(u.batch, u.status) for u in final.users if u.target == ALICE] == [("Wave 1", "Completed")]
    source = sandbox.state.tenant("source")
    tara_source = next(r for r in source.col("exchange.recipients").values()
                       if r.get("PrimarySmtpAddress") == "tara.usman@northwind.example")
    assert tara_source["RecipientTypeDetails"] == "MailUser"  # converted: her mailbox is in the target now

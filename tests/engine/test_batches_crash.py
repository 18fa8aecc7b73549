"""Teardown interrupted at every journaled point, then resumed: by the teardown (which closes its own unfinished
removals from what the tenants show) or by the setup (which reads an open removal as one, not as a creation).

The crash hooks of `xtwizard/migration/setup/journal.py` (XTWIZARD_CRASH_AFTER/BEFORE_JOURNAL) fire at the N-th
journal write; here, in-process, `SetupJournal.crash` raises instead of killing the process (the subprocess
kill itself is covered by tests/engine/test_setup_crash.py).  Nothing after the hook runs, as after a kill.
The sandbox state and the project are copied once the move is done, and restored for each point.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.engine.setup_support import clock_sleep
from tests.engine.test_batches_support import pair, run, sandbox_now, set_up
from tests.engine.users_support import CachedContext
from tests.unit.cloud_support import advance, policy_for
from xtwizard.migration.batches import BatchEngine, BatchOptions
from xtwizard.migration.project import JournalEntry, MigrationProject, ProjectStore
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.migration.setup.journal import SetupJournal
from xtwizard.sandbox.state import SandboxState

T = TypeVar("T")
GINA = "gina.hoffman@northwind.example"  # not in 'Migration Wave 1': the setup adds her (teardown takes her out)
OPTIONS = SetupOptions(scope_groups=["Migration Wave 1"], members_add=[GINA])


class Crash(BaseException):
    """The process 'died' at a journal write (a BaseException: no `except Exception` in the engine sees it)."""


def summary(sb: Any) -> dict[str, Any]:
    """What teardown changes, without the timestamps that differ from run to run."""
    src, tgt = sb.state.tenant("source"), sb.state.tenant("target")

    def rels(t: Any) -> dict[str, Any]:
        return {r["Name"]: (sorted(r["DomainNames"]), str(r.get("MailboxMoveCapability")),
                            bool(r.get("MailboxMoveEnabled")), r.get("OAuthApplicationId") or "",
                            r.get("MailboxMovePublishedScopes") or []) for r in t.col("exchange.orgRelationships").values()}

    wave1 = next(g for g in src.col("groups").values() if g["displayName"] == "Migration Wave 1")
    users = src.col("users")
    return {
        "apps": sorted(a["displayName"] for a in tgt.col("applications").values()),
        "target_sps": sorted(s["appId"] for s in tgt.col("servicePrincipals").values()),
        "source_sps": sorted(s["appId"] for s in src.col("servicePrincipals").values()),
        "endpoints": sorted(e["Identity"] for e in tgt.col("exchange.endpoints").values()),
        "batches": sorted(b["Identity"] for b in tgt.col("exchange.batches").values()),
        "target_rels": rels(tgt), "source_rels": rels(src),
        "wave1": sorted(str(users[m]["userPrincipalName"]) if m in users else m for m in wave1["_members"]),
    }


async def teardown(engine: BatchEngine) -> list[str]:
    await engine.apply_teardown(await engine.plan_teardown())
    return [c.line for c in (await engine.plan_teardown()).pending]


def outcome(project: MigrationProject, intent: JournalEntry) -> JournalEntry:
    return next(e for e in project.entries() if e.op == intent.op and e.phase != "intent")


def test_teardown_resumes_from_every_journaled_point(sandbox: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async def by_hand(ctx: Any) -> None:  # the customer's own target relationship, adopted and put back later
        tx = ctx.exchange("target")
        await tx.enable_organization_customization()
        await tx.new_organization_relationship("Northwind", [ctx.identities["source"].tenant_id],
                                               capabilities=["Outbound"])

    wave1_before = summary(sandbox)["wave1"]
    base = set_up(sandbox, tmp_path / "base", OPTIONS, before=by_hand)
    assert summary(sandbox)["wave1"] == sorted([*wave1_before, GINA])

    async def launch(engine: BatchEngine, ctx: Any) -> None:
        (wave,) = engine.plan_waves([pair("alice"), pair("ben.carter")])
        await engine.create(wave, BatchOptions("Wave 1", completion="automatic"))

    run(sandbox, base, launch)
    advance(sandbox, 24 * 3600)  # the wave completes
    saved = copy.deepcopy(sandbox.state.to_json())

    def restore(name: str) -> MigrationProject:
        sandbox.state = SandboxState.from_json(copy.deepcopy(saved), sandbox.clock)
        folder = tmp_path / name / base.folder.name
        shutil.copytree(base.folder, folder)
        return ProjectStore(folder.parent).open(folder.name)

    def crashed(name: str, where: str, n: int, resume: Callable[[Any], Awaitable[T]]
                ) -> tuple[MigrationProject, JournalEntry, T]:
        """Teardown on a restored copy, 'killed' at its n-th journal write (the one change it left open is
        returned), then `resume(ctx)` with a new engine, as a new process would."""
        project = restore(name)

        async def go() -> tuple[JournalEntry, T]:
            policy = policy_for(sandbox)
            try:
                ctx = CachedContext(sandbox, project, policy)
                monkeypatch.setenv(f"XTWIZARD_CRASH_{where}_JOURNAL", str(n))
                try:
                    with pytest.raises(Crash):
                        await teardown(engine(ctx))
                finally:
                    monkeypatch.delenv(f"XTWIZARD_CRASH_{where}_JOURNAL")
                (left,) = project.unfinished()
                return left, await resume(ctx)
            finally:
                await policy.aclose()

        left, result = asyncio.run(go())
        return project, left, result

    def engine(ctx: Any) -> BatchEngine:
        return BatchEngine(ctx, clock=lambda: sandbox_now(sandbox))

    # A clean teardown: what every interrupted one must end with.
    clean = restore("clean")
    assert run(sandbox, clean, lambda e, c: teardown(e)) == []
    expected = summary(sandbox)
    assert expected["wave1"] == wave1_before and expected["batches"] == ["Pilot"]
    writes = [e for e in clean.entries() if e.step == "teardown"]
    assert [e.action for e in writes if e.phase == "intent"] == [
        "remove batch", "remove endpoint", "update target-rel", "update source-rel", "remove source-sp",
        "remove target-sp", "remove app", "remove member"]

    def boom() -> None:
        raise Crash

    monkeypatch.setattr(SetupJournal, "crash", staticmethod(boom))

    async def teardown_again(ctx: Any) -> list[str]:
        return await teardown(engine(ctx))

    # After each intent (the change not made yet) and before each outcome (made, not recorded): the next
    # teardown records what happened, finishes the job and ends where a clean one does.
    for where, n in [("AFTER", n) for n in range(1, len(writes), 2)] + [("BEFORE", n) for n in range(2, len(writes) + 1, 2)]:
        project, left, still = crashed(f"{where}{n}", where, n, teardown_again)
        assert left.action == writes[n - 1].action
        assert still == [] and project.unfinished() == [], (where, n)
        assert summary(sandbox) == expected, (where, n, left.action)
        closed = outcome(project, left)
        assert closed.phase == ("done" if where == "BEFORE" else "failed"), (where, n, left.action)
        assert closed.detail["resolved"].startswith("on resume: "), closed.detail
        tries = [e for e in project.entries() if e.phase == "intent" and e.step == "teardown" and e.action == left.action]
        assert len(tries) == (1 if where == "BEFORE" else 2), (where, n, left.action)  # made once, never twice
    assert project.data["batches"]["batches"]["Wave 1"]["removed"]

    # The setup resumed instead reads an open removal as a removal: an endpoint still there is known again (not
    # made twice); a source consent that is gone is forgotten — not waited for — and made again.
    def point(action: str, phase: str) -> int:
        return next(i + 1 for i, e in enumerate(writes) if e.action == action and (e.phase == "intent") == (
            phase == "intent"))

    waits: list[float] = []
    for where, n, action, made in (("AFTER", point("remove endpoint", "intent"), "remove endpoint", False),
                                   ("BEFORE", point("remove source-sp", "outcome"), "remove source-sp", True)):
        waits.clear()

        async def setup_again(ctx: Any) -> list[str]:
            key = str(ctx.project.unfinished()[0].target["key"])
            journal = SetupJournal(ctx.project)
            assert key not in journal.known() and key in journal.known(removing=True)  # it may be gone
            setup = SetupEngine(ctx, OPTIONS, sleep=clock_sleep(sandbox, waits))
            await setup.apply()
            return [c.line for c in (await setup.plan()).pending]

        project, left, still = crashed(f"setup-{where}{n}", where, n, setup_again)
        assert left.action == action and still == [], still
        closed = outcome(project, left)
        assert closed.phase == ("done" if made else "failed"), closed
        assert ("removal was made" if made else "removal was not made") in closed.detail["resolved"]
        assert project.unfinished() == [] and sum(waits) < OPTIONS.unfinished_wait_seconds, waits
        tgt, src = sandbox.state.tenant("target"), sandbox.state.tenant("source")
        known = SetupJournal(project).known()
        endpoints = [e for e in tgt.col("exchange.endpoints").values() if e["Identity"].startswith("xtwizard")]
        assert len(endpoints) == 1 and known["endpoint"]["name"] == endpoints[0]["Identity"]
        (sp,) = [s for s in src.col("servicePrincipals").values() if s["appId"] == known["app"]["appId"]]
        assert known["source-sp"]["id"] == sp["id"]
        # … and the next teardown removes what this setup made, from the same journal.
        assert run(sandbox, project, lambda e, c: teardown(e)) == []
        assert summary(sandbox) == expected

"""Failures explained, and the faults of issue 6: a user leaves the scoping group mid-batch, the secret expires
mid-migration, a batch is removed outside the wizard.  Then the reports, scanned for secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.engine.test_batches_support import pair, run, set_up
from tests.unit.cloud_support import advance
from xtwizard.migration.batches import BatchEngine, BatchOptions, Snapshot

PLANTED = {"hugo.ivanov": "licence", "iris.jensen": "on hold", "jonas.keller": "ExchangeGuid",
           "kara.lund": "X500", "gina.hoffman": "migration scope"}


async def refresh(engine: BatchEngine, ctx: Any) -> Snapshot:
    return await engine.refresh()


def test_failures_and_faults_are_explained_and_nothing_is_lost(sandbox: Any, tmp_path: Path) -> None:
    secrets: list[str] = []
    project = set_up(sandbox, tmp_path, secrets=secrets)
    users = [pair(u) for u in [*PLANTED, "alice", "ben.carter"]]

    async def launch(engine: BatchEngine, ctx: Any) -> None:
        (wave,) = engine.plan_waves(users)
        await engine.create(wave, BatchOptions("Wave 1"))
        # Ben leaves the scoping group while the batch validates.
        await ctx.exchange("source").invoke("Remove-DistributionGroupMember", {
            "Identity": "Migration Wave 1", "Member": "ben.carter@northwind.example", "Confirm": False})

    run(sandbox, project, launch)
    advance(sandbox, 20 * 3600)
    snap = run(sandbox, project, refresh)
    by_user = {u.target.split("@")[0]: u for u in snap.users_in("Wave 1")}
    for local, words in [*PLANTED.items(), ("ben.carter", "migration scope")]:
        u = by_user[local]
        assert u.stage == "failed" and u.problem is not None, u
        assert words.lower() in (u.problem.what + u.problem.why).lower(), (local, u.problem)
        assert u.problem.fix and "Retry" in u.problem.fix or "batch" in u.problem.fix
    assert "'Migration Wave 1'" in by_user["ben.carter"].problem.fix  # type: ignore[union-attr]
    assert by_user["alice"].stage == "synced"

    # Ben back in the group, his move retried: only the failed users are resumed.
    async def fix_ben(engine: BatchEngine, ctx: Any) -> int:
        await ctx.exchange("source").invoke("Add-DistributionGroupMember", {
            "Identity": "Migration Wave 1", "Member": "ben.carter@northwind.example"})
        return await engine.retry_failed("Wave 1")

    assert run(sandbox, project, fix_ben) == len(PLANTED) + 1
    advance(sandbox, 20 * 3600)
    snap = run(sandbox, project, refresh)
    assert {u.target.split("@")[0]: u.stage for u in snap.users_in("Wave 1")}["ben.carter"] == "synced"

    # The client secret disappears while users wait in Synced: the next daily sync fails them, once explained.
    async def drop_secret(engine: BatchEngine, ctx: Any) -> None:
        tg = ctx.graph("target")
        app_id = engine.journal.known()["app"]["id"]
        for cred in (await tg.get_application(app_id)).password_credentials:
            await tg.remove_password(app_id, cred.key_id)

    run(sandbox, project, drop_secret)
    advance(sandbox, 25 * 3600)
    snap = run(sandbox, project, refresh)
    alice = next(u for u in snap.users_in("Wave 1") if u.target.startswith("alice"))
    assert alice.status == "IncrementalFailed" and alice.problem is not None
    assert "secret" in alice.problem.what and "setup again" in alice.problem.fix
    assert [p.what for p in snap.problems].count(alice.problem.what) == 1  # organization-wide, said once

    # Someone removes the batch in the Exchange admin center: reported, its users kept, relaunched.
    async def remove_outside(engine: BatchEngine, ctx: Any) -> Snapshot:
        await ctx.exchange("target").remove_migration_batch("Wave 1")
        return await engine.refresh()

    snap = run(sandbox, project, remove_outside)
    gone = next(b for b in snap.batches if b.name == "Wave 1")
    assert gone.status == "Removed" and gone.problem is not None and "outside xtwizard" in gone.problem.why
    assert len(snap.users_in("Wave 1")) == len(users)
    relaunched = run(sandbox, project, lambda e, c: e.relaunch("Wave 1"))
    assert relaunched.name == "Wave 1 (again)" and relaunched.users == len(users)
    snap = run(sandbox, project, refresh)
    assert not [b for b in snap.batches if b.status == "Removed"]

    # Reports: HTML and CSV for readiness, progress, final and the audit log; no secret, no token, escaped.
    files = run(sandbox, project, lambda e, c: _reports(e, tmp_path / "reports"))
    assert sorted(f.name for f in files) == sorted(f"{n}.{x}" for n in ("readiness", "progress", "final", "audit-log")
                                                   for x in ("html", "csv"))
    text = "\n".join(f.read_text(encoding="utf-8-sig") for f in files)
    assert secrets and not any(s in text for s in secrets)
    assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.", text)
    assert "<script" not in text.lower()
    final = (tmp_path / "reports" / "final.html").read_text(encoding="utf-8")
    assert "hugo.ivanov@fabrikam.example" in final and "licence" in final
    audit = (tmp_path / "reports" / "audit-log.csv").read_text(encoding="utf-8-sig")
    for change in ("create app", "create endpoint", "create batch", "retry batch"):
        assert change in audit, change
    assert "source" in audit and "target" in audit


async def _reports(engine: BatchEngine, folder: Path) -> list[Path]:
    return engine.write_reports(folder, await engine.refresh())

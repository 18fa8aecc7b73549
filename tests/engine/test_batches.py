"""The batches engine end to end on the demo scenario: launch, monitor on the sandbox clock, complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.engine.test_batches_support import CLEAN, pair, run, set_up
from tests.unit.cloud_support import advance
from xtwizard.migration.batches import BatchEngine, BatchOptions, Snapshot


def test_a_wave_runs_to_completed_with_source_and_target_converted(sandbox: Any, tmp_path: Path) -> None:
    project = set_up(sandbox, tmp_path)
    users = [pair(u) for u in CLEAN]

    async def launch(engine: BatchEngine, ctx: Any) -> Any:
        (wave,) = engine.plan_waves(users)
        result = await engine.create(wave, BatchOptions("Wave 1"))
        return wave, result, await engine.refresh()

    wave, result, first = run(sandbox, project, launch)
    assert [u.target for u in wave.users] == [u.target for u in users]
    assert result.users == len(CLEAN)
    assert {u.stage for u in first.users_in("Wave 1")} == {"waiting"}
    # The CSV carried the target addresses (never the source ones).
    tenant = sandbox.state.tenant("target")
    listed = sorted(u["Identity"] for u in tenant.col("exchange.migrationUsers").values()
                    if tenant.col("exchange.batches")[u["_batch"]]["Identity"] == "Wave 1")
    assert listed == sorted(u.target for u in users)

    advance(sandbox, 20 * 3600)  # validation and copy (demo mailboxes are up to several GB)

    async def synced(engine: BatchEngine, ctx: Any) -> Snapshot:
        return await engine.refresh()

    snap = run(sandbox, project, synced)
    wave1 = next(b for b in snap.batches if b.name == "Wave 1")
    assert wave1.ours and wave1.counts["synced"] == len(CLEAN), snap.users_in("Wave 1")
    assert all(u.percent == 95 and u.last_sync is not None and u.source.endswith(SOURCE_DOMAIN)
               for u in snap.users_in("Wave 1"))

    async def complete(engine: BatchEngine, ctx: Any) -> Any:
        await engine.complete("Wave 1")
        return await engine.refresh()

    run(sandbox, project, complete)
    advance(sandbox, 3600)
    done = run(sandbox, project, synced)
    assert {u.stage for u in done.users_in("Wave 1")} == {"completed"}
    assert next(b for b in done.batches if b.name == "Wave 1").status == "Completed"
    # Converted: the source mailboxes are MailUsers forwarding to the target; the target MailUsers are mailboxes.
    src, tgt = sandbox.state.tenant("source"), sandbox.state.tenant("target")
    by_addr = {str(r.get("PrimarySmtpAddress", "")).lower(): r for t in (src, tgt)
               for r in t.col("exchange.recipients").values()}
    for u in users:
        assert by_addr[u.source]["RecipientTypeDetails"] == "MailUser"
        assert by_addr[u.source]["ExternalEmailAddress"].lower().endswith("@fabrikaminc.onmicrosoft.com")
        assert by_addr[u.target]["RecipientTypeDetails"] == "UserMailbox"
    # The journal holds every change to the batch; completed users get the licensing reminder and checklist.
    actions = [e.action for e in project.entries() if e.step == "batches" and e.phase == "done"]
    assert actions == ["create batch", "complete batch"]
    engine_checklist = run(sandbox, project, lambda e, c: _checklist(e, done))
    text = "\n".join(engine_checklist)
    for words in ("Licence", "Outlook", "Teams meetings", "Delegates", "domain"):
        assert words in text


SOURCE_DOMAIN = "@northwind.example"


async def _checklist(engine: BatchEngine, snap: Snapshot) -> list[str]:
    return engine.checklist(snap.users_in("Wave 1")[0])

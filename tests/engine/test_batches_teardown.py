"""Teardown once the move is done: what xtwizard made is removed, what it adopted is kept or put back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.engine.test_batches_support import pair, run, set_up
from tests.unit.cloud_support import advance
from xtwizard.migration.batches import BatchEngine, BatchOptions, BatchProblem
from xtwizard.migration.setup import SetupOptions

GINA, XENA, YUSUF = (f"{u}@northwind.example" for u in ("gina.hoffman", "xena.zimmer", "yusuf.abbas"))


def _objects(sb: Any) -> dict[str, Any]:
    src, tgt = sb.state.tenant("source"), sb.state.tenant("target")
    wave1 = next(g for g in src.col("groups").values() if g["displayName"] == "Migration Wave 1")
    users = src.col("users")
    return {
        "apps": sorted(a["displayName"] for a in tgt.col("applications").values()),
        "target_sps": sorted(s["appId"] for s in tgt.col("servicePrincipals").values()),
        "source_sps": sorted(s["appId"] for s in src.col("servicePrincipals").values()),
        "endpoints": sorted(e["Identity"] for e in tgt.col("exchange.endpoints").values()),
        "target_rels": {r["Name"]: r for r in tgt.col("exchange.orgRelationships").values()},
        "source_rels": {r["Name"]: r for r in src.col("exchange.orgRelationships").values()},
        "batches": sorted(b["Identity"] for b in tgt.col("exchange.batches").values()),
        "groups": sorted(g["displayName"] for g in src.col("groups").values()),
        "wave1": sorted(str(users[m]["userPrincipalName"]) if m in users else m for m in wave1["_members"]),
    }


def test_teardown_removes_what_we_created_and_restores_what_we_adopted(sandbox: Any, tmp_path: Path) -> None:
    before_setup = _objects(sandbox)

    async def by_hand(ctx: Any) -> None:  # an admin's own target relationship (Outbound only), adopted
        tx = ctx.exchange("target")
        await tx.enable_organization_customization()
        await tx.new_organization_relationship("Northwind", [ctx.identities["source"].tenant_id],
                                               capabilities=["Outbound"])

    # The setup adds Gina and Xena to the customer's scoping group; then the customer takes Xena out again and
    # puts Yusuf in by hand.  Teardown takes out Gina only: Yusuf and the group's own members stay.
    project = set_up(sandbox, tmp_path, SetupOptions(scope_groups=["Migration Wave 1"], members_add=[GINA, XENA]),
                     before=by_hand)
    adopted_rel = _objects(sandbox)["target_rels"]["Northwind"]
    assert "Inbound" in adopted_rel["MailboxMoveCapability"]
    assert _objects(sandbox)["wave1"] == sorted([*before_setup["wave1"], GINA, XENA])

    async def customer(engine: BatchEngine, ctx: Any) -> None:
        sx = ctx.exchange("source")
        await sx.remove_distribution_group_member("Migration Wave 1", XENA)
        await sx.add_distribution_group_member("Migration Wave 1", YUSUF)

    run(sandbox, project, customer)

    async def launch(engine: BatchEngine, ctx: Any) -> Any:
        (wave,) = engine.plan_waves([pair("alice"), pair("ben.carter")])
        await engine.create(wave, BatchOptions("Wave 1", completion="automatic"))
        return await engine.plan_teardown()

    early = run(sandbox, project, launch)
    assert [c.key for c in early.waiting] == ["batch:Wave 1"]  # users still moving: teardown waits

    async def refused(engine: BatchEngine, ctx: Any) -> str:
        try:
            await engine.apply_teardown(await engine.plan_teardown())
        except BatchProblem as exc:
            return exc.problem.what
        return ""

    assert "still moving" in run(sandbox, project, refused)
    advance(sandbox, 24 * 3600)

    async def teardown(engine: BatchEngine, ctx: Any) -> Any:
        plan = await engine.plan_teardown()
        seen: list[str] = []
        result = await engine.apply_teardown(plan, lambda d, t, what: seen.append(what))
        return plan, result, seen, await engine.plan_teardown()

    plan, result, seen, after = run(sandbox, project, teardown)
    by_key = {c.key: c for c in plan.changes}
    assert by_key["batch:Wave 1"].kind == "remove"
    assert by_key["endpoint"].kind == "remove"
    assert by_key["app"].kind == "remove" and by_key["target-sp"].kind == "remove"
    assert by_key["source-sp"].kind == "remove"
    assert by_key["target-rel"].kind == "update"           # adopted: put back, not removed
    assert by_key["target-rel"].after == {"MailboxMoveCapability": ["Outbound"]}
    assert by_key["scope-group"].kind == "keep"            # 'Migration Wave 1' was the customer's group
    assert [k for k in by_key if k.startswith("member:")] == [f"member:{GINA}"]
    assert "xtwizard added them" in by_key[f"member:{GINA}"].line
    assert len(result.done) == len(plan.pending) and seen[-1] == "Teardown finished"

    now = _objects(sandbox)
    assert now["apps"] == before_setup["apps"]
    assert now["target_sps"] == before_setup["target_sps"]
    assert now["source_sps"] == before_setup["source_sps"]
    assert now["endpoints"] == ["Northwind-Pilot"]  # the consultant's endpoint and batch were not ours: kept
    assert now["batches"] == ["Pilot"]
    assert now["groups"] == before_setup["groups"]
    assert now["wave1"] == sorted([*before_setup["wave1"], YUSUF])
    assert "Northwind" in now["target_rels"]
    assert now["target_rels"]["Northwind"]["MailboxMoveCapability"] in ("Outbound", ["Outbound"])
    # The customer's free/busy relationship, which the setup adopted for the move, is as it was.
    assert list(now["source_rels"]) == ["Fabrikam Free-Busy"]
    free_busy = now["source_rels"]["Fabrikam Free-Busy"]
    assert sorted(free_busy["DomainNames"]) == ["fabrikam.example", "fabrikaminc.onmicrosoft.com"]
    assert not free_busy["MailboxMoveEnabled"] and not free_busy.get("MailboxMovePublishedScopes")
    assert not free_busy.get("OAuthApplicationId")
    # Journaled, and a second plan finds nothing left to remove.
    removed = [e.action for e in project.entries() if e.step == "teardown" and e.phase == "done"]
    assert len(removed) == len(plan.pending)
    assert after.pending == []
    text = "\n".join(after.lines())  # in the teardown's words, not the setup's "the setup is complete"
    assert "Nothing left to remove: the teardown is complete." in text and "setup is complete" not in text, text

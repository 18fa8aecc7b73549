"""The setup engine end to end against the sandbox (client-secret mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.engine.setup_support import new_project, run_engine
from xtwizard.migration.setup import SetupEngine, SetupOptions

SCOPE = SetupOptions(scope_groups=["Migration Wave 1"])


async def full(engine: SetupEngine) -> dict[str, Any]:
    plan = await engine.plan()
    result = await engine.apply()
    checks = await engine.verify()
    return {"plan": plan, "result": result, "checks": checks, "after": await engine.plan()}


def test_secret_mode_end_to_end(sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)
    out = run_engine(sandbox, project, SCOPE, full)
    text = "\n".join(out["plan"].lines())

    assert "Mailbox.Migration" in text and "Source tenant" in text
    assert [c for c in out["checks"] if not c.ok and not c.warning] == []
    assert out["after"].is_empty


def tenant_objects(sb: Any) -> str:
    """Both tenants' directory and Exchange objects, for "nothing changed" comparisons."""
    import json

    out = {}
    for key in ("source", "target"):
        t = sb.state.tenant(key)
        out[key] = {name: col for name, col in t.collections.items()
                    if name.split(".")[0] in ("applications", "servicePrincipals", "appRoleAssignments", "groups",
                                              "exchange") and "moves" not in name}
    return json.dumps(out, sort_keys=True, default=str)


def _writes(sb: Any) -> list[str]:
    """Graph requests that change a tenant (Exchange cmdlets are compared through the state)."""
    from tests.unit.cloud_support import request_log

    return [f"{r['method']} {r['path']}" for r in request_log(sb, "graph")
            if r["method"] != "GET" and "$batch" not in str(r["path"])]


def test_rerun_plans_nothing_and_changes_nothing(sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)
    run_engine(sandbox, project, SCOPE, full)
    journal_before = project.journal_file.read_text()
    state_before = tenant_objects(sandbox)
    sandbox.request_log.clear()

    async def again(engine: SetupEngine) -> Any:  # a new engine: the secret is no longer in memory
        plan = await engine.plan()
        result = await engine.apply()
        return plan, result, await engine.verify()

    plan, result, checks = run_engine(sandbox, project, SetupOptions(), again)
    assert plan.is_empty, plan.lines()
    assert "Nothing to change" in "\n".join(plan.lines())
    assert result.done == []
    assert _writes(sandbox) == []
    assert tenant_objects(sandbox) == state_before
    assert project.journal_file.read_text() == journal_before
    assert all(c.ok for c in checks), [c.text() for c in checks if not c.ok]


def test_partly_existing_configuration_is_adopted_and_only_drift_planned(sandbox: Any, tmp_path: Path) -> None:
    """An admin made the app by hand (single-tenant, no redirect) and a target relationship without Inbound."""
    from xtwizard.cloud.exchange import ExchangeClient

    async def by_hand(engine: SetupEngine) -> Any:
        tg = engine.ctx.graph("target")
        app = await tg.create_application({"displayName": "Move from Northwind", "signInAudience": "AzureADMyOrg"})
        tx: ExchangeClient = engine.ctx.exchange("target")
        await tx.enable_organization_customization()
        src = engine.ctx.identities["source"].tenant_id
        await tx.new_organization_relationship("Northwind", [src], capabilities=["Outbound"])
        return app

    project = new_project(tmp_path)
    app = run_engine(sandbox, project, SCOPE, by_hand)
    adopt = SetupOptions(scope_groups=["Migration Wave 1"], app_id=app.app_id)

    async def go(engine: SetupEngine) -> Any:
        plan = await engine.plan()
        await engine.apply()
        return plan, await engine.verify()

    plan, checks = run_engine(sandbox, project, adopt, go)
    by_key = {c.key: c for c in plan.changes}
    assert by_key["app"].kind == "update"
    assert by_key["app"].before["signInAudience"] == "AzureADMyOrg"
    assert by_key["app"].after["signInAudience"] == "AzureADMultipleOrgs"
    assert by_key["app"].after["redirectUris"] == ["https://office.com"]
    assert by_key["target-rel"].kind == "update"
    assert by_key["target-rel"].after["MailboxMoveCapability"] == ["Outbound", "Inbound"]
    assert "org-customization" not in by_key
    assert all(c.ok for c in checks), [c.text() for c in checks if not c.ok]
    # one app, capabilities added to (not replacing) the existing ones
    tenant = sandbox.state.tenant("target")
    apps = [a for a in tenant.col("applications").values() if a.get("appId") == app.app_id]
    assert len(apps) == 1
    assert sorted(tenant.collections).count("applications") == 1

    async def rels(engine: SetupEngine) -> Any:
        return await engine.ctx.exchange("target").organization_relationships()

    (rel,) = run_engine(sandbox, project, adopt, rels)
    assert rel.name == "Northwind"
    assert {"outbound", "inbound"} == {c.lower() for c in rel.mailbox_move_capabilities}


def test_replication_delay_is_waited_out_on_the_sandbox_clock(sandbox: Any, tmp_path: Path) -> None:
    from tests.unit.cloud_support import control

    control(sandbox, "PATCH", "/settings", {"replication_delay_seconds": 30})
    waits: list[float] = []
    project = new_project(tmp_path)
    out = run_engine(sandbox, project, SCOPE, full, waits)
    assert waits, "the engine never waited for replication"
    assert [c for c in out["checks"] if not c.ok] == []
    tenant = sandbox.state.tenant("target")
    names = [a["displayName"] for a in tenant.col("applications").values()]
    assert names.count("xtwizard migration northwindtraders to fabrikaminc") == 1


def test_progress_and_cancel_between_changes_then_resume(sandbox: Any, tmp_path: Path) -> None:
    import threading

    project = new_project(tmp_path)
    seen: list[tuple[int, int, str]] = []
    cancel = threading.Event()

    def progress(done: int, total: int, line: str) -> None:
        seen.append((done, total, line))
        if done == 2:
            cancel.set()  # the admin presses Cancel while the third change runs

    async def go(engine: SetupEngine) -> Any:
        return await engine.apply(progress, cancel)

    result = run_engine(sandbox, project, SCOPE, go)
    assert result.cancelled and len(result.done) == 3
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][1] == 10
    assert "Create the multitenant app registration" in seen[0][2]
    assert project.unfinished() == []
    out = run_engine(sandbox, project, SCOPE, full)  # the secret was not made yet: the next run completes
    assert not out["result"].cancelled and out["after"].is_empty
    assert all(c.ok for c in out["checks"])


def test_consent_by_the_source_admin_elsewhere_then_the_rerun_finishes(sandbox: Any, tmp_path: Path) -> None:
    from xtwizard.migration.setup import SetupProblem

    project = new_project(tmp_path)
    kit = SetupOptions(scope_groups=["Migration Wave 1"], consent_by_api=False)

    async def first(engine: SetupEngine) -> Any:
        try:
            await engine.apply()
        except SetupProblem as exc:
            return exc.problem, engine.facts.app.app_id if engine.facts and engine.facts.app else ""
        raise AssertionError("the setup did not wait for the source's consent")

    problem, app_id = run_engine(sandbox, project, kit, first)
    assert app_id in problem.details

    async def source_admin_accepts(engine: SetupEngine) -> Any:  # what the consent link does in the source
        sg = engine.ctx.graph("source")
        sp = await sg.create_service_principal(app_id)
        exo = await sg.get_service_principal_by_app_id("00000002-0000-0ff1-ce00-000000000000")
        role = exo.app_role("Mailbox.Migration")
        await sg.grant_app_role(exo.id, sp.id, role.id)
        plan = await engine.plan()
        await engine.apply()
        return plan, await engine.verify()

    plan, checks = run_engine(sandbox, project, kit, source_admin_accepts)
    assert not plan.waiting and not [c for c in plan.pending if c.tenant == "source" and c.step == "source-consent"]
    assert all(c.ok for c in checks), [c.text() for c in checks if not c.ok]


def test_server_availability_for_a_chosen_target_mailuser(sandbox: Any, tmp_path: Path) -> None:
    """Beyond VerifySetup.ps1: Test-MigrationServerAvailability with a prepared MailUser, and with one whose
    ExchangeGuid was never stamped (the check names that user's problem)."""
    project = new_project(tmp_path)
    good = SetupOptions(scope_groups=["Migration Wave 1"], test_mailuser="alice@fabrikam.example")
    out = run_engine(sandbox, project, good, full)
    check = next(c for c in out["checks"] if c.name.startswith("Test-MigrationServerAvailability"))
    assert check.ok and "alice@fabrikam.example" in check.name

    async def verify(engine: SetupEngine) -> Any:
        return await engine.verify()

    bad = SetupOptions(test_mailuser="jonas.keller@fabrikam.example")
    check = next(c for c in run_engine(sandbox, project, bad, verify)
                 if c.name.startswith("Test-MigrationServerAvailability"))
    assert not check.ok and "ExchangeGuid" in check.message


def test_a_secret_added_by_an_interrupted_run_is_recorded_then_removed(sandbox: Any, tmp_path: Path) -> None:
    """addPassword answered, then the process died before the outcome was journaled: the secret text is lost."""
    project = new_project(tmp_path)

    async def until_secret(engine: SetupEngine) -> str:
        plan = await engine.plan()
        while plan.pending[0].key != "secret":
            await engine._execute(plan.pending[0])
            plan = await engine.plan()
        f = engine.facts
        assert f is not None and f.app is not None
        name = "xtwizard 20260101000000000000"
        engine.journal.begin("target", "credential", "create secret", {"key": "secret", "type": "secret",
                                                                        "name": name})
        new = await engine.ctx.graph("target").add_password(f.app.id, name)
        return new.key_id

    orphan = run_engine(sandbox, project, SCOPE, until_secret)
    out = run_engine(sandbox, project, SCOPE, full)
    assert [c.text() for c in out["checks"] if not c.ok] == []
    resolved = [e for e in project.entries() if e.target.get("keyId") == orphan and e.phase == "done"]
    assert resolved and "on resume" in resolved[0].detail["resolved"]
    assert any(c.key == f"orphan-secret:{orphan}" and c.kind == "remove" for c in out["plan"].pending)
    app = next(a for a in sandbox.state.tenant("target").col("applications").values()
               if a["displayName"].startswith("xtwizard migration"))
    assert orphan not in {p["keyId"] for p in app["passwordCredentials"]}
    assert len(app["passwordCredentials"]) == 1
    assert out["after"].is_empty

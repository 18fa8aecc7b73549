"""The setup engine in the Key Vault certificate mode (the original design), end to end against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.engine.setup_support import new_project, run_engine
from tests.engine.test_setup import tenant_objects
from tests.unit.cloud_support import control
from xtwizard.migration.setup import SetupEngine, SetupOptions

KV = SetupOptions(credential="keyvault", scope_groups=["Migration Wave 1"], vault_polling_interval=0.05)


async def full(engine: SetupEngine) -> dict[str, Any]:
    plan = await engine.plan()
    result = await engine.apply()
    return {"plan": plan, "result": result, "checks": await engine.verify(), "after": await engine.plan()}


def test_keyvault_mode_end_to_end_and_rerun(sandbox: Any, tmp_path: Path) -> None:
    control(sandbox, "PATCH", "/settings", {"certificate_issue_seconds": 0})
    project = new_project(tmp_path)
    out = run_engine(sandbox, project, KV, full)
    text = "\n".join(out["plan"].lines())
    assert "key vault" in text and "Key Vault Certificate User" in text
    assert "client secret" not in text.lower()
    failed = [c.text() for c in out["checks"] if not c.ok]
    assert failed == [], failed
    assert out["after"].is_empty, out["after"].lines()
    names = {c.name for c in out["checks"]}
    assert {"Key vault", "Exchange can read the certificate", "Endpoint AppSecretKeyVaultUrl",
            "Test-MigrationServerAvailability"} <= names
    # the endpoint points at the vault's certificate; the app holds only its public part
    tenant = sandbox.state.tenant("target")
    (endpoint,) = [e for e in tenant.col("exchange.endpoints").values() if e["Identity"].startswith("xtwizard")]
    assert "/certificates/xtwizard-migration/" in endpoint["AppSecretKeyVaultUrl"]
    assert project.data["setup"]["expiry"]["mode"] == "keyvault"
    # a rerun in a new engine changes nothing
    before = tenant_objects(sandbox)

    async def again(engine: SetupEngine) -> Any:
        plan = await engine.plan()
        await engine.apply()
        return plan

    assert run_engine(sandbox, project, KV, again).is_empty
    assert tenant_objects(sandbox) == before


def _soft_deleted_vault(sandbox: Any, project: Any, name: str) -> None:
    async def make(engine: SetupEngine) -> None:
        arm = engine.ctx.arm("target")
        sub = (await arm.subscriptions())[0].subscription_id
        await arm.ensure_resource_group(sub, "old-stuff", "westeurope")
        await arm.create_vault(sub, "old-stuff", name, location="westeurope",
                               tenant_id=engine.ctx.identities["target"].tenant_id)
        await arm.delete_vault(sub, "old-stuff", name)

    run_engine(sandbox, project, KV, make)


def test_soft_deleted_default_name_is_avoided_and_said(sandbox: Any, tmp_path: Path) -> None:
    control(sandbox, "PATCH", "/settings", {"certificate_issue_seconds": 0})
    project = new_project(tmp_path)
    default = f"xtw-fabrikaminc-{project.id[:6]}"
    _soft_deleted_vault(sandbox, project, default)
    out = run_engine(sandbox, project, KV, full)
    vault_line = next(c.line for c in out["plan"].changes if c.key == "vault")
    assert "held by a deleted vault" in vault_line and f"'{default}-2' is used" in vault_line
    assert [c.text() for c in out["checks"] if not c.ok] == []


def test_a_chosen_vault_name_that_is_soft_deleted_is_refused_with_the_fix(sandbox: Any, tmp_path: Path) -> None:
    import pytest

    from xtwizard.migration.setup import SetupProblem

    project = new_project(tmp_path)
    _soft_deleted_vault(sandbox, project, "fabrikam-migration")
    opts = SetupOptions(credential="keyvault", scope_groups=["Migration Wave 1"], vault_name="fabrikam-migration")
    with pytest.raises(SetupProblem) as info:
        run_engine(sandbox, project, opts, full)
    p = info.value.problem
    assert "deleted vault" in p.what and "purge" in p.fix


def test_no_subscription_rights_points_to_the_secret_mode(sandbox: Any, tmp_path: Path) -> None:
    import pytest

    from tests.engine.setup_support import SandboxContext
    from tests.unit.cloud_support import EXADMIN
    from xtwizard.migration.setup import SetupProblem

    project = new_project(tmp_path)
    orig = SandboxContext.__post_init__

    def exadmin(self: SandboxContext) -> None:
        self.admins["target"] = EXADMIN
        orig(self)

    SandboxContext.__post_init__ = exadmin  # type: ignore[method-assign]
    try:
        with pytest.raises(SetupProblem) as info:
            run_engine(sandbox, project, KV, full)
    finally:
        SandboxContext.__post_init__ = orig  # type: ignore[method-assign]
    assert "no Azure subscription" in info.value.problem.what
    assert "client-secret mode" in info.value.problem.fix
    assert list(project.entries()) == []

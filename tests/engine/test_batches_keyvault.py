"""Teardown in the Key Vault certificate mode, end to end on the sandbox: what the setup made is removed, what it
adopted (the customer's app, resource group and vault) is kept as it was — with only what xtwizard added taken
back: the certificate on the app, the certificate in the vault, the roles, the app's changed settings."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from tests.engine.setup_support import SandboxContext, clock_sleep
from tests.engine.test_batches_support import run, set_up
from tests.sandbox.test_graph import self_signed_der
from tests.unit.cloud_support import control
from xtwizard.cloud.arm import ArmClient
from xtwizard.cloud.graph import certificate_key_credential
from xtwizard.migration.batches import BatchEngine
from xtwizard.migration.setup import SetupOptions
from xtwizard.migration.setup.journal import SetupJournal

KV = dict(credential="keyvault", scope_groups=["Migration Wave 1"], vault_polling_interval=0.05)
EXCHANGE = "00000002-0000-0ff1-ce00-000000000000"


class ClockContext(SandboxContext):
    """ARM's long-running operations (a resource group's deletion) polled on the sandbox clock."""

    def arm(self, slot: str) -> ArmClient:
        return ArmClient(self.endpoints, self.policy, self.tokens(slot), tenant=slot, sleep=clock_sleep(self.sb))


def _thumbprint(credential: dict[str, Any]) -> str:
    return hashlib.sha1(base64.b64decode(credential["key"])).hexdigest().upper()


async def teardown(engine: BatchEngine, ctx: Any, purge: bool = False) -> tuple[Any, Any]:
    plan = await engine.plan_teardown(purge_vault=purge)
    await engine.apply_teardown(plan)
    return plan, await engine.plan_teardown(purge_vault=purge)


async def deleted_vaults(engine: BatchEngine, ctx: Any) -> list[str]:
    arm = ctx.arm("target")
    return [d.name for d in await arm.deleted_vaults((await arm.subscriptions())[0].subscription_id)]


def test_adopted_app_and_vault_keep_what_the_customer_had(sandbox: Any, tmp_path: Path) -> None:
    control(sandbox, "PATCH", "/settings", {"certificate_issue_seconds": 0})
    customer_der, _ = self_signed_der("CN=Fabrikam Mail Tools")
    customer_cert = certificate_key_credential(customer_der, "Fabrikam Mail Tools")
    made: dict[str, Any] = {}

    async def customer(ctx: Any) -> None:  # the customer's app (single-tenant, its own certificate) and vault
        tg, arm = ctx.graph("target"), ctx.arm("target")
        app = await tg.create_application({"displayName": "Fabrikam Mail Tools", "signInAudience": "AzureADMyOrg",
                                           "web": {"redirectUris": ["https://tools.fabrikam.example"]}})
        await tg.set_key_credentials(app.id, [customer_cert])
        sub = (await arm.subscriptions())[0].subscription_id
        await arm.ensure_resource_group(sub, "fabrikam-security", "westeurope")
        await arm.create_vault(sub, "fabrikam-security", "fabrikam-tools-kv", location="westeurope",
                               tenant_id=ctx.identities["target"].tenant_id)
        made.update(app=app, sub=sub)

    options = SetupOptions(**KV, resource_group="fabrikam-security", vault_name="fabrikam-tools-kv")  # type: ignore[arg-type]
    project = set_up(sandbox, tmp_path, options, before=lambda ctx: _with_app_id(ctx, customer, options, made))

    async def app_state(ctx: Any) -> dict[str, Any]:
        tg, arm = ctx.graph("target"), ctx.arm("target")
        app = await tg.get_application(made["app"].id)
        vault = await arm.find_vault(made["sub"], "fabrikam-security", "fabrikam-tools-kv")
        return {"app": app, "creds": sorted(_thumbprint(k) for k in await tg.get_application_key_credentials(app.id)),
                "sp": await tg.get_service_principal_by_app_id(app.app_id), "vault": vault,
                "roles": [a.id for a in await arm.role_assignments(vault.id)  # on the vault itself
                          if a.id.lower().startswith(vault.id.lower() + "/")] if vault is not None else None}

    during = run(sandbox, project, lambda e, ctx: app_state(ctx))
    assert len(during["creds"]) == 2 and during["app"].sign_in_audience == "AzureADMultipleOrgs"
    assert during["sp"] is not None and len(during["roles"]) == 2

    plan, after = run(sandbox, project, lambda e, ctx: teardown(e, ctx, purge=True))  # never the customer's vault
    kinds = {c.key: c.kind for c in plan.changes}
    assert not [k for k in kinds if k.startswith("deleted-vault")]
    assert {k: kinds[k] for k in ("app", "target-sp", "app-certificate", "certificate", "vault-admin-role",
                                  "vault-exchange-role", "vault", "endpoint", "source-sp")} == {
        "app": "update", "target-sp": "remove", "app-certificate": "remove", "certificate": "remove",
        "vault-admin-role": "remove", "vault-exchange-role": "remove", "vault": "keep", "endpoint": "remove",
        "source-sp": "remove"}
    assert [c.key for c in plan.changes if c.key == "app"] == ["app", "app"]  # kept, and its settings put back
    order = [c.key for c in plan.pending]
    assert order.index("certificate") < order.index("vault-admin-role")  # deleted while our role still allows it
    assert "resource-group" not in kinds
    assert after.pending == [], after.lines()

    now = run(sandbox, project, lambda e, ctx: app_state(ctx))
    app = now["app"]
    assert now["creds"] == [_thumbprint(customer_cert)]  # the customer's certificate stays, ours is gone
    assert app.sign_in_audience == "AzureADMyOrg" and list(app.redirect_uris) == ["https://tools.fabrikam.example"]
    assert not [r for r in app.required_resource_access if r.get("resourceAppId") == EXCHANGE]
    assert now["sp"] is None  # the enterprise application xtwizard made for it
    assert now["vault"] is not None and now["roles"] == []  # the vault stays, without our roles

    tenant = sandbox.state.tenant("target")  # the vault's certificates (our role to read them is gone)
    assert [k for k in tenant.col("kv.certificates") if "xtwizard-migration" in k] == []
    assert [k for k in tenant.col("kv.deletedcertificates") if "xtwizard-migration" in k]
    known = SetupJournal(project).known()
    assert not {"certificate", "app-certificate", "target-sp", "target-grant", "endpoint"} & set(known)


async def _with_app_id(ctx: Any, customer: Any, options: SetupOptions, made: dict[str, Any]) -> None:
    await customer(ctx)
    options.app_id = made["app"].app_id  # the setup adopts it


def test_created_resource_group_goes_with_its_vault(sandbox: Any, tmp_path: Path) -> None:
    control(sandbox, "PATCH", "/settings", {"certificate_issue_seconds": 0})
    project = set_up(sandbox, tmp_path, SetupOptions(**KV))  # type: ignore[arg-type]
    created = {e.target.get("key") for e in project.entries() if e.phase == "done" and e.action.startswith("create")}
    assert {"resource-group", "vault", "certificate", "app", "vault-admin-role"} <= created
    plan, after = run(sandbox, project, teardown, ClockContext)
    kinds = {c.key: c.kind for c in plan.changes}
    assert kinds["resource-group"] == "remove" and kinds["app"] == "remove"
    assert not {"vault", "certificate", "vault-admin-role", "app-certificate"} & set(kinds)  # they go with them
    assert after.pending == [], after.lines()

    async def azure(engine: BatchEngine, ctx: Any) -> Any:
        arm = ctx.arm("target")
        sub = (await arm.subscriptions())[0].subscription_id
        return (await arm.get_resource_group(sub, "xtwizard-migration"),
                [d.name for d in await arm.deleted_vaults(sub)])

    group, deleted = run(sandbox, project, azure)
    vault_name = next(e.target["name"] for e in project.entries() if e.target.get("key") == "vault")
    assert group is None and vault_name in deleted  # soft-deleted with its group: recoverable for 90 days
    assert not {"resource-group", "vault", "certificate", "vault-admin-role", "app", "secret"} & set(
        SetupJournal(project).known())
    # Purging was not chosen: the plans say the vault stays recoverable, and its name taken, until Azure purges it.
    kept = [c for c in [*plan.changes, *after.changes] if c.key == f"deleted-vault:{vault_name}"]
    assert [c.kind for c in kept] == ["keep", "keep"] and "--purge-vault" in kept[0].line, after.lines()
    assert "Nothing left to remove" in after.lines()[-1]

    # Chosen afterwards: the soft-deleted vault is purged (journaled), its name is free again.
    purged, last = run(sandbox, project, lambda e, ctx: teardown(e, ctx, purge=True), ClockContext)
    assert [(c.kind, c.key) for c in purged.pending] == [("remove", f"deleted-vault:{vault_name}")]
    assert "can never be recovered" in purged.pending[0].line
    assert last.pending == [] and vault_name not in run(sandbox, project, deleted_vaults)
    assert [e.action for e in project.entries() if e.step == "teardown" and e.phase == "done"][-1] == \
        "remove deleted-vault"


def test_a_vault_made_in_the_customers_group_is_deleted_and_purged_in_one_teardown(sandbox: Any,
                                                                                  tmp_path: Path) -> None:
    control(sandbox, "PATCH", "/settings", {"certificate_issue_seconds": 0})

    async def customer(ctx: Any) -> None:  # the customer's resource group; xtwizard makes the vault in it
        arm = ctx.arm("target")
        await arm.ensure_resource_group((await arm.subscriptions())[0].subscription_id, "fabrikam-security",
                                        "westeurope")

    options = SetupOptions(**KV, resource_group="fabrikam-security")  # type: ignore[arg-type]
    project = set_up(sandbox, tmp_path, options, before=customer)
    vault_name = next(e.target["name"] for e in project.entries() if e.target.get("key") == "vault")
    plan, after = run(sandbox, project, lambda e, ctx: teardown(e, ctx, purge=True), ClockContext)
    order = [c.key for c in plan.pending]
    assert "resource-group" not in order and order.index("vault") < order.index(f"deleted-vault:{vault_name}")
    assert after.pending == [] and not [c for c in after.changes if c.key.startswith("deleted-vault")]

    async def azure(engine: BatchEngine, ctx: Any) -> Any:
        arm = ctx.arm("target")
        sub = (await arm.subscriptions())[0].subscription_id
        return (await arm.get_resource_group(sub, "fabrikam-security"), await deleted_vaults(engine, ctx),
                await arm.check_vault_name(sub, vault_name))

    group, deleted, name = run(sandbox, project, azure)
    assert group is not None and vault_name not in deleted and name.available  # the customer's group stays

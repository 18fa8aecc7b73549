"""Microsoft's own ARM SDKs against the sandbox, changed only by documented knobs (reference §5.1, §6.5)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.sandbox import test_arm_helpers as helpers
from tests.sandbox.support import StaticCredential
from tests.sandbox.test_arm_helpers import (
    ADMIN,
    CONTRIB,
    SUB,
    SUB2,
    oid,
)
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.catalog import AZURE_ROLES

# The shared fixtures, used by name.
azure_server, azure, client = helpers.azure_server, helpers.azure, helpers.client


def knobs(sb: Sandbox) -> dict[str, Any]:
    return {"base_url": sb.urls["arm"], "credential_scopes": ["https://management.azure.com/.default"],
            "connection_verify": sb.ca_path}


def cred(sb: Sandbox, upn: str = ADMIN) -> StaticCredential:
    return StaticCredential(sb, "target", upn)


def test_subscription_client_lists_subscriptions_and_locations(azure: Sandbox) -> None:
    subs_mod = pytest.importorskip("azure.mgmt.resource.subscriptions")
    sc = subs_mod.SubscriptionClient(cred(azure), **knobs(azure))
    subs = {s.subscription_id: s for s in sc.subscriptions.list()}
    assert set(subs) == {SUB, SUB2}
    assert subs[SUB].display_name == "Fabrikam Production" and subs[SUB].state == "Enabled"
    assert subs[SUB].tenant_id == azure.state.tenant("target").id  # type: ignore[union-attr]
    locations = {loc.name: loc.display_name for loc in sc.subscriptions.list_locations(SUB)}
    assert locations["westus"] == "West US"
    assert sc.subscriptions.get(SUB).display_name == "Fabrikam Production"


def test_subscription_paging_follows_next_link(azure: Sandbox) -> None:
    subs_mod = pytest.importorskip("azure.mgmt.resource.subscriptions")
    azure.state.settings["arm_page_size"] = 1
    sc = subs_mod.SubscriptionClient(cred(azure), **knobs(azure))
    pages = list(sc.subscriptions.list().by_page())
    assert len(pages) == 2
    assert sorted(s.subscription_id for p in pages for s in p) == sorted([SUB, SUB2])


def test_resource_group_create_get_exists_and_delete_lro(azure: Sandbox) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    rm = ResourceManagementClient(cred(azure), SUB, **knobs(azure))
    created = rm.resource_groups.create_or_update("rg-xt", {"location": "West Europe", "tags": {"app": "xtwizard"}})
    assert created.location == "westeurope" and created.properties.provisioning_state == "Succeeded"
    assert rm.resource_groups.get("rg-xt").tags == {"app": "xtwizard"}
    assert rm.resource_groups.check_existence("rg-xt") is True
    assert [g.name for g in rm.resource_groups.list()] == ["rg-xt"]
    poller = rm.resource_groups.begin_delete("rg-xt", polling_interval=0)
    poller.result()
    assert poller.status() == "Succeeded"
    assert rm.resource_groups.check_existence("rg-xt") is False
    with pytest.raises(ResourceNotFoundError):
        rm.resource_groups.get("rg-xt")


def test_contributor_cannot_read_other_subscription(azure: Sandbox) -> None:
    from azure.mgmt.resource.resources import ResourceManagementClient

    rm = ResourceManagementClient(cred(azure, CONTRIB), SUB2, **knobs(azure))
    with pytest.raises(HttpResponseError) as err:
        rm.resource_groups.create_or_update("rg-x", {"location": "eastus"})
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"


def test_key_vault_lifecycle_with_the_management_sdk(azure: Sandbox) -> None:
    from azure.mgmt.keyvault import KeyVaultManagementClient, models
    from azure.mgmt.resource.resources import ResourceManagementClient

    ResourceManagementClient(cred(azure), SUB, **knobs(azure)).resource_groups.create_or_update(
        "rg-kv", {"location": "eastus"})
    kv = KeyVaultManagementClient(cred(azure), SUB, **knobs(azure))
    check = kv.vaults.check_name_availability({"name": "xt-vault-1", "type": "Microsoft.KeyVault/vaults"})
    assert check.name_available is True
    tenant_id = azure.state.tenant("target").id  # type: ignore[union-attr]
    params = models.VaultCreateOrUpdateParameters(location="eastus", properties=models.VaultProperties(
        tenant_id=tenant_id, sku=models.Sku(family="A", name="standard"), soft_delete_retention_in_days=7))
    vault = kv.vaults.begin_create_or_update("rg-kv", "xt-vault-1", params, polling_interval=0).result()
    assert vault.properties.vault_uri == f"{azure.urls['vault']}/xt-vault-1/"
    # api-version 2026-02-01 and later default new vaults to RBAC (Learn: access-control-default).
    assert vault.properties.enable_rbac_authorization is True
    assert kv.vaults.get("rg-kv", "xt-vault-1").properties.soft_delete_retention_in_days == 7
    assert [v.name for v in kv.vaults.list_by_resource_group("rg-kv")] == ["xt-vault-1"]
    assert [v.name for v in kv.vaults.list_by_subscription()] == ["xt-vault-1"]
    taken = kv.vaults.check_name_availability({"name": "xt-vault-1", "type": "Microsoft.KeyVault/vaults"})
    assert taken.name_available is False and taken.reason == "AlreadyExists"

    kv.vaults.delete("rg-kv", "xt-vault-1")
    with pytest.raises(ResourceNotFoundError):
        kv.vaults.get("rg-kv", "xt-vault-1")
    deleted = list(kv.vaults.list_deleted())
    assert [d.name for d in deleted] == ["xt-vault-1"]
    assert deleted[0].properties.location == "eastus"
    assert kv.vaults.get_deleted("xt-vault-1", "eastus").properties.vault_id.endswith("/vaults/xt-vault-1")
    soft = kv.vaults.check_name_availability({"name": "xt-vault-1", "type": "Microsoft.KeyVault/vaults"})
    assert soft.name_available is False and soft.reason == "AlreadyExists"

    kv.vaults.begin_purge_deleted("xt-vault-1", "eastus", polling_interval=0).result()
    assert list(kv.vaults.list_deleted()) == []
    again = kv.vaults.check_name_availability({"name": "xt-vault-1", "type": "Microsoft.KeyVault/vaults"})
    assert again.name_available is True


def test_role_definitions_and_assignments_with_the_authorization_sdk(azure: Sandbox) -> None:
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.keyvault import KeyVaultManagementClient, models
    from azure.mgmt.resource.resources import ResourceManagementClient

    ResourceManagementClient(cred(azure), SUB, **knobs(azure)).resource_groups.create_or_update(
        "rg-kv", {"location": "eastus"})
    tenant_id = azure.state.tenant("target").id  # type: ignore[union-attr]
    params = models.VaultCreateOrUpdateParameters(location="eastus", properties=models.VaultProperties(
        tenant_id=tenant_id, sku=models.Sku(family="A", name="standard")))
    vault = KeyVaultManagementClient(cred(azure), SUB, **knobs(azure)).vaults.begin_create_or_update(
        "rg-kv", "xt-vault-2", params, polling_interval=0).result()
    am = AuthorizationManagementClient(cred(azure), SUB, **knobs(azure))
    found = list(am.role_definitions.list(vault.id, filter="roleName eq 'Key Vault Certificates Officer'"))
    assert len(found) == 1
    officer = found[0]
    assert officer.name == AZURE_ROLES["Key Vault Certificates Officer"]
    assert "Microsoft.KeyVault/vaults/certificates/*" in officer.permissions[0].data_actions

    import uuid
    params = {"role_definition_id": officer.id, "principal_id": oid(azure, ADMIN), "principal_type": "User"}
    created = am.role_assignments.create(vault.id, str(uuid.uuid4()), params)
    assert created.scope == vault.id and created.principal_type == "User"
    with pytest.raises(ResourceExistsError) as dup:
        am.role_assignments.create(vault.id, str(uuid.uuid4()), params)
    assert dup.value.error.code == "RoleAssignmentExists"
    mine = list(am.role_assignments.list_for_scope(vault.id, filter=f"principalId eq '{oid(azure, ADMIN)}'"))
    assert {a.role_definition_id.rsplit("/", 1)[-1] for a in mine} == {AZURE_ROLES["Owner"], officer.name}
    at_scope = list(am.role_assignments.list_for_scope(vault.id, filter="atScope()"))
    assert created.id in {a.id for a in at_scope}
    am.role_assignments.delete(vault.id, created.name)
    assert created.id not in {a.id for a in am.role_assignments.list_for_scope(vault.id)}


def test_contributor_cannot_create_role_assignments(azure: Sandbox) -> None:
    from azure.mgmt.authorization import AuthorizationManagementClient

    am = AuthorizationManagementClient(cred(azure, CONTRIB), SUB, **knobs(azure))
    import uuid
    with pytest.raises(HttpResponseError) as err:
        am.role_assignments.create(f"/subscriptions/{SUB}", str(uuid.uuid4()), {
            "role_definition_id": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                                  f"{AZURE_ROLES['Reader']}", "principal_id": oid(azure, CONTRIB)})
    assert err.value.status_code == 403
    assert "Microsoft.Authorization/roleAssignments/write" in str(err.value.message)

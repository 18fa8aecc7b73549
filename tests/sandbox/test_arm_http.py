"""ARM wire shapes the SDK tests do not pin down: api-version and token errors, RBAC refusals, LRO headers,
vault naming rules, role-assignment errors (reference §5.1)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.sandbox import test_arm_helpers as helpers
from tests.sandbox.support import bearer, user_token
from tests.sandbox.test_arm_helpers import (
    ADMIN,
    API,
    ARM,
    AUTHZ_API,
    KV_API,
    NOBODY,
    READER,
    SOURCE_SUB,
    SRC_ADMIN,
    SUB,
    SUB2,
    arm_headers,
    grant,
    make_vault,
    oid,
    vault_id,
)
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.catalog import AZURE_ROLES

# The shared fixtures, used by name.
azure_server, azure, client = helpers.azure_server, helpers.azure, helpers.client


def url(sb: Sandbox, path: str, api: str | None = API) -> str:
    return f"{sb.urls['arm']}{path}" + (f"?api-version={api}" if api else "")


def err(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


def test_api_version_is_required_and_checked(azure: Sandbox, client: httpx.Client) -> None:
    r = client.get(url(azure, f"/subscriptions/{SUB}", None))
    assert r.status_code == 400
    assert err(r) == {"code": "MissingApiVersionParameter", "details": [],  # type: ignore[comparison-overlap]
                      "message": "The api-version query parameter (?api-version=) is required for all requests."}
    r = client.get(url(azure, f"/subscriptions/{SUB}", "2099-01-01"), headers=arm_headers(azure))
    assert r.status_code == 400 and err(r)["code"] == "InvalidApiVersionParameter"
    assert err(r)["message"].startswith("The api-version '2099-01-01' is invalid. The supported versions are '")
    r = client.get(url(azure, f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/vaults", "2099-01-01"),
                   headers=arm_headers(azure))
    assert r.status_code == 400 and err(r)["code"] == "NoRegisteredProviderFound"
    assert "for type 'vaults'" in err(r)["message"] and "2023-07-01" in err(r)["message"]


def test_token_errors_have_arm_codes(azure: Sandbox, client: httpx.Client) -> None:
    target = url(azure, f"/subscriptions/{SUB}")
    r = client.get(target)
    assert r.status_code == 401 and err(r)["code"] == "AuthenticationFailed"
    assert "'Authorization' header is missing" in err(r)["message"]
    r = client.get(target, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and err(r)["code"] == "AuthenticationFailed"
    expired = user_token(azure, "target", ADMIN, ARM, lifetime=-60)
    r = client.get(target, headers=bearer(expired))
    assert r.status_code == 401 and err(r)["code"] == "ExpiredAuthenticationToken"
    assert "is earlier than current UTC time" in err(r)["message"]
    graph = user_token(azure, "target", ADMIN, "https://graph.microsoft.com")
    r = client.get(target, headers=bearer(graph))
    assert r.status_code == 401 and err(r)["code"] == "InvalidAuthenticationTokenAudience"
    assert "'https://graph.microsoft.com'" in err(r)["message"]
    r = client.get(target, headers=arm_headers(azure, SRC_ADMIN, "source"))
    assert r.status_code == 401 and err(r)["code"] == "InvalidAuthenticationTokenTenant"
    tenant_id = azure.state.tenant("target").id  # type: ignore[union-attr]
    assert f"https://login.windows.net/{tenant_id}" in r.headers["WWW-Authenticate"]


def test_request_and_correlation_ids(azure: Sandbox, client: httpx.Client) -> None:
    r = client.get(url(azure, "/subscriptions"), headers={**arm_headers(azure),
                                                          "x-ms-correlation-request-id": "corr-123"})
    assert r.status_code == 200
    assert r.headers["x-ms-correlation-request-id"] == "corr-123" and r.headers["x-ms-request-id"]


@pytest.mark.parametrize(("upn", "tenant", "expected"), [
    (ADMIN, "target", {SUB, SUB2}), (READER, "target", {SUB}), (NOBODY, "target", set()),
    (SRC_ADMIN, "source", {SOURCE_SUB}),
])
def test_subscription_list_shows_only_subscriptions_with_a_role(azure: Sandbox, client: httpx.Client, upn: str,
                                                                tenant: str, expected: set[str]) -> None:
    r = client.get(url(azure, "/subscriptions"), headers=arm_headers(azure, upn, tenant))
    assert r.status_code == 200
    assert {s["subscriptionId"] for s in r.json()["value"]} == expected


def test_unknown_and_malformed_subscriptions(azure: Sandbox, client: httpx.Client) -> None:
    r = client.get(url(azure, f"/subscriptions/{uuid.uuid4()}"), headers=arm_headers(azure))
    assert r.status_code == 404 and err(r)["code"] == "SubscriptionNotFound"
    r = client.get(url(azure, "/subscriptions/not-a-guid/resourcegroups"), headers=arm_headers(azure))
    assert r.status_code == 400 and err(r)["code"] == "InvalidSubscriptionId"


def test_resource_group_put_get_head_and_conflicts(azure: Sandbox, client: httpx.Client) -> None:
    h = arm_headers(azure)
    rg = url(azure, f"/subscriptions/{SUB}/resourcegroups/rg-one")
    first = client.put(rg, headers=h, json={"location": "eastus"})
    assert first.status_code == 201
    assert first.json() == {"id": f"/subscriptions/{SUB}/resourceGroups/rg-one", "name": "rg-one",
                            "type": "Microsoft.Resources/resourceGroups", "location": "eastus", "tags": {},
                            "properties": {"provisioningState": "Succeeded"}}
    assert client.put(rg, headers=h, json={"location": "East US"}).status_code == 200
    moved = client.put(rg, headers=h, json={"location": "westus"})
    assert moved.status_code == 409 and err(moved)["code"] == "InvalidResourceGroupLocation"
    nowhere = client.put(url(azure, f"/subscriptions/{SUB}/resourcegroups/rg-two"), headers=h,
                         json={"location": "atlantis"})
    assert nowhere.status_code == 400 and err(nowhere)["code"] == "LocationNotAvailableForResourceGroup"
    assert client.head(rg, headers=h).status_code == 204
    assert client.head(url(azure, f"/subscriptions/{SUB}/resourcegroups/missing"), headers=h).status_code == 404
    missing = client.get(url(azure, f"/subscriptions/{SUB}/resourcegroups/missing"), headers=h)
    assert missing.status_code == 404 and err(missing) == {
        "code": "ResourceGroupNotFound", "message": "Resource group 'missing' could not be found.", "details": []}
    bad = client.put(rg, headers=h, content=b"{not json")
    assert bad.status_code == 400 and err(bad)["code"] == "InvalidRequestContent"


def test_reader_reads_but_cannot_write_with_the_real_message(azure: Sandbox, client: httpx.Client) -> None:
    client.put(url(azure, f"/subscriptions/{SUB}/resourcegroups/rg-r"), headers=arm_headers(azure),
               json={"location": "eastus"}).raise_for_status()
    h = arm_headers(azure, READER)
    assert client.get(url(azure, f"/subscriptions/{SUB}/resourcegroups/rg-r"), headers=h).status_code == 200
    r = client.put(url(azure, f"/subscriptions/{SUB}/resourcegroups/rg-r2"), headers=h, json={"location": "eastus"})
    assert r.status_code == 403
    assert err(r)["code"] == "AuthorizationFailed"
    assert err(r)["message"] == (
        f"The client '{READER}' with object id '{oid(azure, READER)}' does not have authorization to perform action "
        f"'Microsoft.Resources/subscriptions/resourceGroups/write' over scope '/subscriptions/{SUB}/resourceGroups/"
        f"rg-r2' or the scope is invalid. If access was recently granted, please refresh your credentials.")


def test_resource_group_delete_is_a_long_running_operation(azure: Sandbox, client: httpx.Client) -> None:
    azure.state.settings["arm_lro_seconds"] = 30
    h = arm_headers(azure)
    make_vault(azure, client, "in-the-group", rg="rg-gone").raise_for_status()
    rg = url(azure, f"/subscriptions/{SUB}/resourcegroups/rg-gone")
    r = client.delete(rg, headers=h)
    assert r.status_code == 202 and r.content == b""
    location = r.headers["Location"]
    assert f"/subscriptions/{SUB}/operationresults/" in location and "api-version=" in location
    assert 29 <= int(r.headers["Retry-After"]) <= 30
    assert client.get(rg, headers=h).json()["properties"]["provisioningState"] == "Deleting"
    poll = client.get(location, headers=h)
    assert poll.status_code == 202 and poll.headers["Location"]
    client.post(azure.info["control_url"] + "/clock", json={"advance_seconds": 31}).raise_for_status()
    done = client.get(location, headers=h)
    assert done.status_code == 200
    assert client.get(rg, headers=h).status_code == 404
    # Deleting a group soft-deletes the vaults in it, as Azure does.
    deleted = client.get(url(azure, f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/deletedVaults", KV_API),
                         headers=h)
    assert [d["name"] for d in deleted.json()["value"]] == ["in-the-group"]


def test_vault_defaults_follow_the_api_version(azure: Sandbox, client: httpx.Client) -> None:
    old = make_vault(azure, client, "kv-old-api", rbac=None, api="2023-07-01")
    new = make_vault(azure, client, "kv-new-api", rbac=None, api="2026-02-01")
    assert old.status_code == new.status_code == 201
    assert old.json()["properties"]["enableRbacAuthorization"] is False
    assert new.json()["properties"]["enableRbacAuthorization"] is True
    props = new.json()["properties"]
    assert props["vaultUri"] == f"{azure.urls['vault']}/kv-new-api/"
    assert props["enableSoftDelete"] is True and props["softDeleteRetentionInDays"] == 90
    assert props["provisioningState"] == "Succeeded" and props["sku"] == {"family": "A", "name": "standard"}
    again = make_vault(azure, client, "kv-new-api", rbac=None)
    assert again.status_code == 200 and again.json()["properties"]["enableRbacAuthorization"] is True


@pytest.mark.parametrize("name", ["ab", "a" * 25, "1vault", "vault-", "va--ult", "vault_1"])
def test_vault_name_rules(azure: Sandbox, client: httpx.Client, name: str) -> None:
    r = make_vault(azure, client, name)
    assert r.status_code == 400 and err(r)["code"] == "VaultNameNotValid"
    check = client.post(url(azure, f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/checkNameAvailability", KV_API),
                        headers=arm_headers(azure), json={"name": name, "type": "Microsoft.KeyVault/vaults"})
    assert check.json()["nameAvailable"] is False and check.json()["reason"] == "AccountNameInvalid"


@pytest.mark.parametrize(("extra", "needle"), [
    ({"softDeleteRetentionInDays": 6}, "softDeleteRetentionInDays"),
    ({"softDeleteRetentionInDays": 91}, "softDeleteRetentionInDays"),
    ({"enableSoftDelete": False}, "enableSoftDelete"),
    ({"sku": {"family": "A", "name": "gold"}}, "sku"),
    ({"accessPolicies": [{"tenantId": "x", "objectId": "y", "permissions": {}}]}, "GUID"),
    ({"publicNetworkAccess": "Sometimes"}, "publicNetworkAccess"),
])
def test_vault_property_validation(azure: Sandbox, client: httpx.Client, extra: dict[str, object], needle: str) -> None:
    r = make_vault(azure, client, "kv-props", extra=extra)
    assert r.status_code == 400 and needle in err(r)["message"]


def test_vault_names_are_global_and_blocked_while_soft_deleted(azure: Sandbox, client: httpx.Client) -> None:
    make_vault(azure, client, "kv-global").raise_for_status()
    other_tenant = make_vault(azure, client, "kv-global", sub=SOURCE_SUB, upn=SRC_ADMIN, tenant="source")
    assert other_tenant.status_code == 409 and err(other_tenant)["code"] == "VaultAlreadyExists"
    h = arm_headers(azure)
    assert client.delete(url(azure, vault_id("kv-global"), KV_API), headers=h).status_code == 200
    assert client.delete(url(azure, vault_id("kv-global"), KV_API), headers=h).status_code == 204
    check = client.post(url(azure, f"/subscriptions/{SOURCE_SUB}/providers/Microsoft.KeyVault/checkNameAvailability",
                            KV_API), headers=arm_headers(azure, SRC_ADMIN, "source"),
                        json={"name": "KV-GLOBAL", "type": "Microsoft.KeyVault/vaults"})
    assert check.json() == {"nameAvailable": False, "reason": "AlreadyExists", "message": check.json()["message"]}
    assert check.json()["message"].startswith("The vault name 'KV-GLOBAL' is already in use. Vault names are "
                                              "globally unique")
    assert "recently deleted but not purged" in check.json()["message"]
    blocked = make_vault(azure, client, "kv-global")
    assert blocked.status_code == 409 and err(blocked)["code"] == "ConflictError"
    recovered = make_vault(azure, client, "kv-global", extra={"createMode": "recover"})
    assert recovered.status_code == 200
    assert client.get(url(azure, vault_id("kv-global"), KV_API), headers=h).status_code == 200


def test_purge_is_long_running_and_frees_the_name(azure: Sandbox, client: httpx.Client) -> None:
    h = arm_headers(azure)
    make_vault(azure, client, "kv-purge").raise_for_status()
    client.delete(url(azure, vault_id("kv-purge"), KV_API), headers=h).raise_for_status()
    dv = client.get(url(azure, f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/"
                              "kv-purge", KV_API), headers=h)
    assert dv.status_code == 200
    assert dv.json()["properties"]["vaultId"] == vault_id("kv-purge")
    assert dv.json()["type"] == "Microsoft.KeyVault/deletedVaults"
    purge = client.post(url(azure, f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/locations/eastus/"
                                   "deletedVaults/kv-purge/purge", KV_API), headers=h)
    assert purge.status_code == 202 and "/operationResults/" in purge.headers["Location"]
    assert client.get(purge.headers["Location"], headers=h).status_code == 202
    assert client.get(purge.headers["Location"], headers=h).status_code == 200
    assert make_vault(azure, client, "kv-purge").status_code == 201


def test_purge_protection_blocks_purge(azure: Sandbox, client: httpx.Client) -> None:
    h = arm_headers(azure)
    make_vault(azure, client, "kv-protect", extra={"enablePurgeProtection": True}).raise_for_status()
    off = make_vault(azure, client, "kv-protect", extra={"enablePurgeProtection": False})
    assert off.status_code == 400 and "enablePurgeProtection" in err(off)["message"]
    client.delete(url(azure, vault_id("kv-protect"), KV_API), headers=h).raise_for_status()
    purge = client.post(url(azure, f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/locations/eastus/"
                                   "deletedVaults/kv-protect/purge", KV_API), headers=h)
    assert purge.status_code == 409 and "purge protection" in err(purge)["message"]


def test_access_policy_updates(azure: Sandbox, client: httpx.Client) -> None:
    h = arm_headers(azure)
    tenant_id = azure.state.tenant("target").id  # type: ignore[union-attr]
    make_vault(azure, client, "kv-policies", rbac=False).raise_for_status()
    policy = {"tenantId": tenant_id, "objectId": oid(azure, READER),
              "permissions": {"certificates": ["Get", "List"], "secrets": ["get"]}}
    r = client.put(url(azure, vault_id("kv-policies") + "/accessPolicies/add", KV_API), headers=h,
                   json={"properties": {"accessPolicies": [policy]}})
    assert r.status_code == 200
    vault = client.get(url(azure, vault_id("kv-policies"), KV_API), headers=h).json()
    assert vault["properties"]["accessPolicies"] == [{**policy, "permissions": {"certificates": ["get", "list"],
                                                                                  "secrets": ["get"]}}]
    bad = client.put(url(azure, vault_id("kv-policies") + "/accessPolicies/add", KV_API), headers=h,
                     json={"properties": {"accessPolicies": [{**policy, "permissions": {"secrets": ["fly"]}}]}})
    assert bad.status_code == 400


def test_role_assignment_errors(azure: Sandbox, client: httpx.Client) -> None:
    make_vault(azure, client, "kv-ra").raise_for_status()
    scope = vault_id("kv-ra")
    role = AZURE_ROLES["Key Vault Secrets User"]
    ghost = str(uuid.uuid4())
    r = grant(azure, client, scope, role, ghost)
    assert r.status_code == 400 and err(r)["code"] == "PrincipalNotFound"
    assert f"does not exist in the directory {azure.state.tenant('target').id}" in err(r)["message"]  # type: ignore[union-attr]
    r = client.put(url(azure, scope + "/providers/Microsoft.Authorization/roleAssignments/not-a-guid", AUTHZ_API),
                   headers=arm_headers(azure), json={"properties": {"roleDefinitionId": role, "principalId": ghost}})
    assert r.status_code == 400 and err(r)["code"] == "InvalidRoleAssignmentId"
    r = client.put(url(azure, scope + f"/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                       AUTHZ_API), headers=arm_headers(azure),
                   json={"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/"
                                                            f"{role}", "principalId": oid(azure, READER),
                                        "principalType": "ServicePrincipal"}})
    assert r.status_code == 400 and err(r)["code"] == "UnmatchedPrincipalType"
    r = client.put(url(azure, scope + f"/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                       AUTHZ_API), headers=arm_headers(azure),
                   json={"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/"
                                                            f"{uuid.uuid4()}", "principalId": oid(azure, READER)}})
    assert r.status_code == 400 and err(r)["code"] == "RoleDefinitionDoesNotExist"
    missing = client.get(url(azure, f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                                    f"{uuid.uuid4()}", AUTHZ_API), headers=arm_headers(azure))
    assert missing.status_code == 404 and err(missing)["code"] == "RoleDefinitionDoesNotExist"


def test_group_assignment_applies_to_members(azure: Sandbox, client: httpx.Client) -> None:
    t = azure.state.tenant("target")
    assert t is not None
    group = next(g for g in t.col("groups").values() if g["displayName"] == "Vault Readers")
    r = grant(azure, client, f"/subscriptions/{SUB}", AZURE_ROLES["Reader"], group["id"])
    assert r.status_code == 201 and r.json()["properties"]["principalType"] == "Group"
    listed = client.get(url(azure, "/subscriptions"), headers=arm_headers(azure, NOBODY))
    assert [s["subscriptionId"] for s in listed.json()["value"]] == [SUB]


def test_throttling_uses_arm_shape(azure: Sandbox, client: httpx.Client) -> None:
    client.post(azure.info["control_url"] + "/faults",
                json={"kind": "throttle", "service": "arm", "count": 1, "retry_after": 4}).raise_for_status()
    r = client.get(url(azure, f"/subscriptions/{SUB}"), headers=arm_headers(azure))
    assert r.status_code == 429 and r.headers["Retry-After"] == "4"
    assert err(r)["code"] == "SubscriptionRequestsThrottled" and "https://aka.ms/arm-throttling" in err(r)["message"]
    assert client.get(url(azure, f"/subscriptions/{SUB}"), headers=arm_headers(azure)).status_code == 200


def test_demo_scenario_admin_owns_the_target_subscription(sandbox: Sandbox, http: httpx.Client) -> None:
    target = sandbox.state.tenant("target")
    assert target is not None and target.col("arm.subscriptions")
    admin = next(u for u in target.col("users").values() if u.get("_roles"))
    token = user_token(sandbox, "target", admin["userPrincipalName"], ARM)
    subs = http.get(f"{sandbox.urls['arm']}/subscriptions?api-version={API}", headers=bearer(token)).json()["value"]
    assert subs and {s["subscriptionId"] for s in subs} <= set(target.col("arm.subscriptions"))
    assert all(s["tenantId"] == target.id for s in subs)


def test_new_service_principal_needs_principal_type_during_replication(azure: Sandbox, client: httpx.Client) -> None:
    """What the wizard meets right after creating its app: Azure advises setting principalType."""
    t = azure.state.tenant("target")
    assert t is not None
    azure.state.settings["replication_delay_seconds"] = 60
    sp_id = str(uuid.uuid4())
    t.col("servicePrincipals")[sp_id] = azure.state.stamp({"id": sp_id, "appId": str(uuid.uuid4()),
                                                            "displayName": "xtwizard migration app"})
    role = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{AZURE_ROLES['Reader']}"
    target = url(azure, f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                 AUTHZ_API)
    r = client.put(target, headers=arm_headers(azure), json={"properties": {"roleDefinitionId": role,
                                                                           "principalId": sp_id}})
    assert r.status_code == 400 and err(r)["code"] == "PrincipalNotFound"
    r = client.put(target, headers=arm_headers(azure), json={"properties": {
        "roleDefinitionId": role, "principalId": sp_id, "principalType": "ServicePrincipal"}})
    assert r.status_code == 201 and r.json()["properties"]["principalType"] == "ServicePrincipal"


def test_deleting_a_group_keeps_assignments_of_a_similarly_named_group(azure: Sandbox, client: httpx.Client) -> None:
    h = arm_headers(azure)
    for rg in ("rg-a", "rg-ab"):
        client.put(url(azure, f"/subscriptions/{SUB}/resourcegroups/{rg}"), headers=h,
                   json={"location": "eastus"}).raise_for_status()
        grant(azure, client, f"/subscriptions/{SUB}/resourceGroups/{rg}", AZURE_ROLES["Reader"],
              oid(azure, NOBODY)).raise_for_status()
    location = client.delete(url(azure, f"/subscriptions/{SUB}/resourcegroups/rg-a"), headers=h).headers["Location"]
    assert client.get(location, headers=h).status_code == 202
    assert client.get(location, headers=h).status_code == 200
    nobody = arm_headers(azure, NOBODY)
    assert client.get(url(azure, f"/subscriptions/{SUB}/resourcegroups/rg-ab"), headers=nobody).status_code == 200
    assert [g["name"] for g in client.get(url(azure, f"/subscriptions/{SUB}/resourcegroups"),
                                          headers=nobody).json()["value"]] == ["rg-ab"]


def test_role_definitions_at_the_tenant_root_need_no_assignment(azure: Sandbox, client: httpx.Client) -> None:
    r = client.get(url(azure, "/providers/Microsoft.Authorization/roleDefinitions", AUTHZ_API)
                   + "&$filter=roleName eq 'Key Vault Secrets User'", headers=arm_headers(azure, NOBODY))
    assert r.status_code == 200
    [definition] = r.json()["value"]
    assert definition["id"] == f"/providers/Microsoft.Authorization/roleDefinitions/{AZURE_ROLES['Key Vault Secrets User']}"
    assert definition["properties"]["permissions"][0]["dataActions"] == [
        "Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]
    sub_scope = client.get(url(azure, f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions",
                               AUTHZ_API), headers=arm_headers(azure, NOBODY))
    assert sub_scope.status_code == 403


def test_disabled_subscription_is_read_only(azure: Sandbox, client: httpx.Client) -> None:
    t = azure.state.tenant("target")
    assert t is not None
    t.col("arm.subscriptions")[SUB2]["state"] = "Disabled"
    h = arm_headers(azure)
    r = client.put(url(azure, f"/subscriptions/{SUB2}/resourcegroups/rg-x"), headers=h, json={"location": "eastus"})
    assert r.status_code == 409 and err(r)["code"] == "ReadOnlyDisabledSubscription"
    assert client.get(url(azure, f"/subscriptions/{SUB2}"), headers=h).json()["state"] == "Disabled"
    assert client.get(url(azure, f"/subscriptions/{SUB2}/resourcegroups"), headers=h).status_code == 200


def test_unregistered_key_vault_provider_blocks_vaults_until_registered(azure: Sandbox, client: httpx.Client) -> None:
    t = azure.state.tenant("target")
    assert t is not None
    t.col("arm.subscriptions")[SUB2]["_providers"] = {"microsoft.keyvault": "NotRegistered"}
    azure.state.settings["arm_lro_seconds"] = 30
    r = make_vault(azure, client, "kv-unregistered", sub=SUB2)
    assert r.status_code == 409 and err(r) == {
        "code": "MissingSubscriptionRegistration", "details": [],
        "message": "The subscription is not registered to use namespace 'Microsoft.KeyVault'. See "
                   "https://aka.ms/rps-not-found for how to register subscriptions."}
    provider = url(azure, f"/subscriptions/{SUB2}/providers/Microsoft.KeyVault")
    assert client.get(provider, headers=arm_headers(azure)).json()["registrationState"] == "NotRegistered"
    refused = client.post(provider.replace("?", "/register?"), headers=arm_headers(azure, READER))
    assert refused.status_code == 403 and "Microsoft.KeyVault/register/action" in err(refused)["message"]
    started = client.post(provider.replace("?", "/register?"), headers=arm_headers(azure))
    assert started.status_code == 200 and started.json()["registrationState"] == "Registering"
    client.post(azure.info["control_url"] + "/clock", json={"advance_seconds": 31}).raise_for_status()
    assert client.get(provider, headers=arm_headers(azure)).json()["registrationState"] == "Registered"
    assert make_vault(azure, client, "kv-unregistered", sub=SUB2).status_code == 201
    assert "_providers" not in client.get(url(azure, f"/subscriptions/{SUB2}"), headers=arm_headers(azure)).json()

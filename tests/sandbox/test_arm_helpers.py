"""Shared set-up for the ARM and Key Vault tests: a scenario with Azure roles worth testing, and helpers.

The scenario is written here rather than taken from demo.json so that these tests pin down the Azure
behaviour they assert (who holds which role) whatever the demo story becomes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ca_context
from tests.sandbox.support import bearer, user_token
from xtwizard.sandbox import Sandbox

TARGET_ID = "9d7c3b1a-2e4f-4a6b-8c0d-1e3f5a7b9c22"
SOURCE_ID = "5b1e7a2c-3d4f-4e6a-9b8c-0d1e2f3a4b11"
SUB = "3f1c2a4e-6b8d-4e0f-a2c4-6e8a0c2e4a33"
SUB2 = "7a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c88"
SOURCE_SUB = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e55"
ADMIN = "admin@fabrikaminc.onmicrosoft.com"
READER = "reader@fabrikaminc.onmicrosoft.com"
CONTRIB = "contrib@fabrikaminc.onmicrosoft.com"
NOBODY = "nobody@fabrikaminc.onmicrosoft.com"
SRC_ADMIN = "admin@contosoltd.onmicrosoft.com"
ARM = "https://management.azure.com"
VAULT = "https://vault.azure.net"
API = "2022-12-01"
KV_API = "2026-05-15"
AUTHZ_API = "2022-04-01"

SCENARIO: dict[str, Any] = {
    "name": "azure-tests",
    "settings": {"arm_lro_seconds": 0},
    "tenants": [
        {"key": "target", "id": TARGET_ID, "displayName": "Fabrikam", "initialDomain": "fabrikaminc.onmicrosoft.com",
         "users": [
             {"userPrincipalName": ADMIN, "displayName": "Frank Admin", "roles": ["Global Administrator"]},
             {"userPrincipalName": READER, "displayName": "Rita Reader", "account": True},
             {"userPrincipalName": CONTRIB, "displayName": "Carl Contributor", "account": True},
             {"userPrincipalName": NOBODY, "displayName": "Nora Nobody", "account": True},
         ],
         "groups": [{"displayName": "Vault Readers", "members": [NOBODY]}],
         "subscriptions": [
             {"subscriptionId": SUB, "displayName": "Fabrikam Production",
              "roleAssignments": [{"principal": ADMIN, "role": "Owner"}, {"principal": READER, "role": "Reader"},
                                  {"principal": CONTRIB, "role": "Contributor"}]},
             {"subscriptionId": SUB2, "displayName": "Fabrikam Dev",
              "roleAssignments": [{"principal": ADMIN, "role": "Owner"}]},
         ]},
        {"key": "source", "id": SOURCE_ID, "displayName": "Contoso", "initialDomain": "contosoltd.onmicrosoft.com",
         "users": [{"userPrincipalName": SRC_ADMIN, "displayName": "Sam Source", "roles": ["Global Administrator"]}],
         "subscriptions": [{"subscriptionId": SOURCE_SUB, "roleAssignments": [{"principal": SRC_ADMIN,
                                                                                "role": "Owner"}]}]},
    ],
}


def start_azure_sandbox(directory: Path) -> Sandbox:
    path = directory / "azure-scenario.json"
    path.write_text(json.dumps(SCENARIO), encoding="utf-8")
    sb = Sandbox(str(path))
    sb.start()
    return sb


@pytest.fixture(scope="module")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One running sandbox per test module (starting and stopping five HTTPS listeners costs ~1 s)."""
    sb = start_azure_sandbox(tmp_path_factory.mktemp("azure"))
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def azure(azure_server: Sandbox) -> Sandbox:
    """The module's sandbox with the scenario's state as it was at the start: each test starts clean."""
    azure_server.reset()
    return azure_server


@pytest.fixture
def client(azure: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(verify=ca_context(azure.ca_path), trust_env=False, timeout=30) as c:
        yield c


def arm_headers(sb: Sandbox, upn: str = ADMIN, tenant: str = "target") -> dict[str, str]:
    return bearer(user_token(sb, tenant, upn, ARM))


def kv_headers(sb: Sandbox, upn: str = ADMIN, tenant: str = "target") -> dict[str, str]:
    return bearer(user_token(sb, tenant, upn, VAULT))


def oid(sb: Sandbox, upn: str, tenant: str = "target") -> str:
    t = sb.state.tenant(tenant)
    assert t is not None
    user = t.user(upn)
    assert user is not None
    return str(user["id"])


def make_vault(sb: Sandbox, c: httpx.Client, name: str, *, rg: str = "rg-migration", rbac: bool | None = True,
               sub: str = SUB, upn: str = ADMIN, tenant: str = "target", extra: dict[str, Any] | None = None,
               api: str = KV_API) -> httpx.Response:
    h = arm_headers(sb, upn, tenant)
    c.put(f"{sb.urls['arm']}/subscriptions/{sub}/resourcegroups/{rg}?api-version={API}", headers=h,
          json={"location": "eastus"}).raise_for_status()
    t = sb.state.tenant(tenant)
    assert t is not None
    props: dict[str, Any] = {"tenantId": t.id, "sku": {"family": "A", "name": "standard"}}
    if rbac is not None:
        props["enableRbacAuthorization"] = rbac
    props.update(extra or {})
    return c.put(f"{sb.urls['arm']}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/"
                 f"{name}?api-version={api}", headers=h, json={"location": "eastus", "properties": props})


def grant(sb: Sandbox, c: httpx.Client, scope: str, role_guid: str, principal: str,
          upn: str = ADMIN) -> httpx.Response:
    sub = scope.split("/")[2]
    return c.put(f"{sb.urls['arm']}{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
                 f"?api-version={AUTHZ_API}", headers=arm_headers(sb, upn),
                 json={"properties": {"roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
                                                          f"roleDefinitions/{role_guid}", "principalId": principal}})


def vault_id(name: str, rg: str = "rg-migration", sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}"

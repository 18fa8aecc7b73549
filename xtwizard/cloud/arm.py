"""Azure Resource Manager: what the Key Vault credential path needs (reference §5.1).

Subscriptions of the signed-in tenant, locations, a resource group, a Key Vault with RBAC authorization
(name check incl. soft-deleted vaults, create, get, delete, purge), role definitions by name and idempotent
role assignments, and ARM's long-running operations (`Azure-AsyncOperation` / `Location` polling with an
injectable sleep).  Errors become `ArmError` with ARM's code (e.g. AuthorizationFailed).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from .endpoints import CloudEndpoints
from .http import HttpPolicy, retry_after_seconds
from .service import ServiceError, TokenProvider, json_or_none, request_id_of, same_origin, send_with_token

API_RESOURCES = "2022-12-01"
API_KEYVAULT = "2023-07-01"
API_AUTHORIZATION = "2022-04-01"

# Built-in role ids (reference §5.1, [3P]); resolve by name at run time, keep these as a cross-check.
KEY_VAULT_CERTIFICATES_OFFICER = "a4417e6f-fecd-4de8-b567-7b0420556985"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_CERTIFICATE_USER = "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba"

# A namespace for role-assignment names: the same (scope, role, principal) always gets the same name, so a
# rerun PUTs the same resource instead of making a second assignment.
_ASSIGNMENT_NAMESPACE = uuid.UUID("5f0c7c53-1b8e-4c1e-9a55-6f3d1c2b7a90")

Sleep = Callable[[float], Awaitable[None]]


class ArmError(ServiceError):
    """ARM refused or failed a call: `code` is ARM's (AuthorizationFailed, ResourceGroupNotFound, …)."""

    service = "Azure Resource Manager"


class OperationFailed(ArmError):
    """A long-running operation ended in Failed or Canceled."""


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    display_name: str
    state: str
    tenant_id: str


@dataclass(frozen=True)
class Location:
    name: str
    display_name: str
    regional_display_name: str = ""


@dataclass(frozen=True)
class ResourceGroup:
    id: str
    name: str
    location: str
    created: bool = False


@dataclass(frozen=True)
class NameAvailability:
    available: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Vault:
    id: str
    name: str
    location: str
    vault_uri: str
    tenant_id: str
    rbac_authorization: bool
    provisioning_state: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def resource_group(self) -> str:
        parts = self.id.split("/")
        low = [p.lower() for p in parts]
        return parts[low.index("resourcegroups") + 1] if "resourcegroups" in low else ""


@dataclass(frozen=True)
class DeletedVault:
    id: str
    name: str
    location: str
    deletion_date: str
    scheduled_purge_date: str
    purge_protection: bool


@dataclass(frozen=True)
class RoleDefinition:
    id: str
    name: str          # the role's GUID
    role_name: str     # e.g. "Key Vault Certificates Officer"


@dataclass(frozen=True)
class RoleAssignment:
    id: str
    name: str
    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: str


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _vault(d: Mapping[str, Any]) -> Vault:
    props = d.get("properties") or {}
    return Vault(id=_s(d.get("id")), name=_s(d.get("name")), location=_s(d.get("location")),
                 vault_uri=_s(props.get("vaultUri")), tenant_id=_s(props.get("tenantId")),
                 rbac_authorization=bool(props.get("enableRbacAuthorization")),
                 provisioning_state=_s(props.get("provisioningState")), raw=dict(d))


def _assignment(d: Mapping[str, Any]) -> RoleAssignment:
    props = d.get("properties") or {}
    return RoleAssignment(id=_s(d.get("id")), name=_s(d.get("name")), scope=_s(props.get("scope")),
                          role_definition_id=_s(props.get("roleDefinitionId")),
                          principal_id=_s(props.get("principalId")), principal_type=_s(props.get("principalType")))


def role_assignment_name(scope: str, role_definition_id: str, principal_id: str) -> str:
    """A deterministic assignment GUID for (scope, role, principal) — reruns address the same assignment."""
    key = f"{scope.lower().rstrip('/')}|{role_definition_id.rsplit('/', 1)[-1].lower()}|{principal_id.lower()}"
    return str(uuid.uuid5(_ASSIGNMENT_NAMESPACE, key))


class ArmClient:
    """ARM for one signed-in admin of one tenant."""

    service = "arm"

    def __init__(self, endpoints: CloudEndpoints, policy: HttpPolicy, token_for: TokenProvider, *,
                 tenant: str = "", sleep: Sleep | None = None, max_polls: int = 120) -> None:
        self.endpoints = endpoints
        self.policy = policy
        self.token_for = token_for
        self.tenant = tenant
        self.base = endpoints.arm_url.rstrip("/")
        self.sleep: Sleep = sleep or policy.sleep
        self.max_polls = max_polls

    # --- plumbing ------------------------------------------------------------------------------------------
    async def _send(self, method: str, path_or_url: str, route: str, *, api_version: str | None = None,
                    json: Any = None, params: Mapping[str, str] | None = None,
                    ok: Sequence[int] = (200, 201, 202, 204)) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("https://") else self.base + path_or_url
        if not same_origin(url, self.base):
            raise ArmError(0, "UntrustedLink", f"Refused to send the admin's token to another host ({route}).")
        query = dict(params or {})
        if api_version:
            query["api-version"] = api_version
        resp = await send_with_token(self.policy, self.token_for, self.endpoints.arm_resource, method, url,
                                     service=self.service, route=route, tenant=self.tenant, json=json,
                                     params=query or None)
        if resp.status_code not in ok:
            raise self.error_from(resp)
        return resp

    @staticmethod
    def error_from(resp: httpx.Response, cls: type[ArmError] = ArmError) -> ArmError:
        body = json_or_none(resp)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return cls(resp.status_code, _s(err.get("code")) or f"HTTP{resp.status_code}",
                       _s(err.get("message")) or resp.reason_phrase, request_id_of(resp))
        return cls(resp.status_code, f"HTTP{resp.status_code}", resp.reason_phrase or "Unexpected answer",
                   request_id_of(resp))

    async def _list(self, path: str, route: str, api_version: str,
                    params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        followed: set[str] = set()
        resp = await self._send("GET", path, route, api_version=api_version, params=params, ok=(200,))
        while True:
            data = json_or_none(resp)
            if not isinstance(data, dict):
                raise ArmError(resp.status_code, "InvalidResponse", "ARM answered without a JSON object.",
                               request_id_of(resp))
            items.extend(v for v in data.get("value") or [] if isinstance(v, dict))
            next_link = data.get("nextLink")
            if not next_link:
                return items
            if str(next_link) in followed:
                raise ArmError(resp.status_code, "PagingLoop", "ARM sent the same next-page link twice; paging "
                               "was stopped.", request_id_of(resp))
            followed.add(str(next_link))
            resp = await self._send("GET", str(next_link), route, ok=(200,))

    async def wait_for_operation(self, resp: httpx.Response, route: str) -> httpx.Response:
        """Follow a 201/202 with `Azure-AsyncOperation` or `Location` until the operation ends.

        Azure-AsyncOperation answers `{status: InProgress|Succeeded|Failed|Canceled}`; a Location URL answers
        202 while running and 200/204 when done.  Waits honour Retry-After through the injected sleep."""
        if resp.status_code not in (201, 202):
            return resp
        async_url = resp.headers.get("Azure-AsyncOperation")
        location = resp.headers.get("Location")
        if not async_url and not location:
            return resp
        current = resp
        for _ in range(self.max_polls):
            wait = retry_after_seconds(current.headers.get("Retry-After"))
            await self.sleep(10.0 if wait is None else wait)
            if async_url:
                current = await self._send("GET", async_url, route + " (operation)", ok=(200, 202))
                status = _s((json_or_none(current) or {}).get("status")).lower()
                if status in ("succeeded",):
                    return current
                if status in ("failed", "canceled", "cancelled"):
                    body = json_or_none(current) or {}
                    err = body.get("error") or {}
                    raise OperationFailed(current.status_code, _s(err.get("code")) or status.capitalize(),
                                          _s(err.get("message")) or f"The operation {status}.",
                                          request_id_of(current))
            else:
                assert location is not None
                current = await self._send("GET", location, route + " (operation)", ok=(200, 201, 202, 204))
                if current.status_code != 202:
                    return current
                location = current.headers.get("Location") or location
        raise ArmError(408, "OperationTimedOut", f"The operation did not finish after {self.max_polls} polls.")

    # --- subscriptions and locations -------------------------------------------------------------------------
    async def subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        """Subscriptions the admin can see, only those of `tenant_id` when given (a guest's other homes out)."""
        rows = await self._list("/subscriptions", "/subscriptions", API_RESOURCES)
        subs = [Subscription(_s(r.get("subscriptionId")), _s(r.get("displayName")), _s(r.get("state")),
                             _s(r.get("tenantId"))) for r in rows]
        if tenant_id:
            subs = [s for s in subs if not s.tenant_id or s.tenant_id.lower() == tenant_id.lower()]
        return subs

    async def locations(self, subscription_id: str) -> list[Location]:
        rows = await self._list(f"/subscriptions/{quote(subscription_id)}/locations",
                                "/subscriptions/{sub}/locations", API_RESOURCES)
        return [Location(_s(r.get("name")), _s(r.get("displayName")), _s(r.get("regionalDisplayName")))
                for r in rows]

    # --- resource groups ----------------------------------------------------------------------------------------
    def _rg_path(self, subscription_id: str, name: str) -> str:
        return f"/subscriptions/{quote(subscription_id)}/resourcegroups/{quote(name)}"

    async def get_resource_group(self, subscription_id: str, name: str) -> ResourceGroup | None:
        try:
            resp = await self._send("GET", self._rg_path(subscription_id, name), "/subscriptions/{sub}/resourcegroups/{rg}",
                                    api_version=API_RESOURCES, ok=(200,))
        except ArmError as exc:
            if exc.status == 404:
                return None
            raise
        d = resp.json()
        return ResourceGroup(_s(d.get("id")), _s(d.get("name")), _s(d.get("location")))

    async def ensure_resource_group(self, subscription_id: str, name: str, location: str) -> ResourceGroup:
        """The group as it is when it exists (its location is kept), else created in `location`."""
        existing = await self.get_resource_group(subscription_id, name)
        if existing is not None:
            return existing
        resp = await self._send("PUT", self._rg_path(subscription_id, name), "/subscriptions/{sub}/resourcegroups/{rg}",
                                api_version=API_RESOURCES, json={"location": location}, ok=(200, 201))
        d = resp.json()
        return ResourceGroup(_s(d.get("id")), _s(d.get("name")), _s(d.get("location")),
                             created=resp.status_code == 201)

    async def delete_resource_group(self, subscription_id: str, name: str) -> None:
        resp = await self._send("DELETE", self._rg_path(subscription_id, name),
                                "/subscriptions/{sub}/resourcegroups/{rg}", api_version=API_RESOURCES,
                                ok=(200, 202, 204))
        await self.wait_for_operation(resp, "/subscriptions/{sub}/resourcegroups/{rg}")

    # --- Key Vault vaults -----------------------------------------------------------------------------------------
    def _vault_path(self, subscription_id: str, resource_group: str, name: str) -> str:
        return (f"{self._rg_path(subscription_id, resource_group)}/providers/Microsoft.KeyVault/vaults/"
                f"{quote(name)}")

    _VAULT_ROUTE = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}"

    async def check_vault_name(self, subscription_id: str, name: str) -> NameAvailability:
        """Whether a vault name is free: taken names include soft-deleted vaults (they block reuse)."""
        resp = await self._send("POST", f"/subscriptions/{quote(subscription_id)}/providers/Microsoft.KeyVault/"
                                "checkNameAvailability",
                                "/subscriptions/{sub}/providers/Microsoft.KeyVault/checkNameAvailability",
                                api_version=API_KEYVAULT, json={"name": name, "type": "Microsoft.KeyVault/vaults"},
                                ok=(200,))
        d = resp.json()
        return NameAvailability(bool(d.get("nameAvailable")), _s(d.get("reason")), _s(d.get("message")))

    async def create_vault(self, subscription_id: str, resource_group: str, name: str, *, location: str,
                           tenant_id: str, sku: str = "standard", soft_delete_retention_days: int = 90,
                           purge_protection: bool = False, tags: Mapping[str, str] | None = None) -> Vault:
        """Create (or update) a vault with RBAC authorization: data-plane access comes from role assignments."""
        props: dict[str, Any] = {"tenantId": tenant_id, "sku": {"family": "A", "name": sku},
                                 "enableRbacAuthorization": True, "enableSoftDelete": True,
                                 "softDeleteRetentionInDays": soft_delete_retention_days,
                                 "publicNetworkAccess": "Enabled"}
        if purge_protection:
            props["enablePurgeProtection"] = True
        body: dict[str, Any] = {"location": location, "properties": props}
        if tags:
            body["tags"] = dict(tags)
        path = self._vault_path(subscription_id, resource_group, name)
        resp = await self._send("PUT", path, self._VAULT_ROUTE, api_version=API_KEYVAULT, json=body,
                                ok=(200, 201, 202))
        if resp.status_code == 202 or (resp.status_code == 201 and _vault(resp.json() or {}).provisioning_state
                                       not in ("", "Succeeded")):
            await self.wait_for_operation(resp, self._VAULT_ROUTE)
            return await self.get_vault(subscription_id, resource_group, name)
        return _vault(resp.json())

    async def get_vault(self, subscription_id: str, resource_group: str, name: str) -> Vault:
        resp = await self._send("GET", self._vault_path(subscription_id, resource_group, name), self._VAULT_ROUTE,
                                api_version=API_KEYVAULT, ok=(200,))
        return _vault(resp.json())

    async def find_vault(self, subscription_id: str, resource_group: str, name: str) -> Vault | None:
        try:
            return await self.get_vault(subscription_id, resource_group, name)
        except ArmError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_vault(self, subscription_id: str, resource_group: str, name: str) -> None:
        """Delete a vault (it becomes soft-deleted; `purge_deleted_vault` frees the name)."""
        await self._send("DELETE", self._vault_path(subscription_id, resource_group, name), self._VAULT_ROUTE,
                         api_version=API_KEYVAULT, ok=(200, 204))

    async def deleted_vaults(self, subscription_id: str) -> list[DeletedVault]:
        rows = await self._list(f"/subscriptions/{quote(subscription_id)}/providers/Microsoft.KeyVault/deletedVaults",
                                "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults", API_KEYVAULT)
        out = []
        for r in rows:
            p = r.get("properties") or {}
            out.append(DeletedVault(_s(r.get("id")), _s(r.get("name")), _s(p.get("location")),
                                    _s(p.get("deletionDate")), _s(p.get("scheduledPurgeDate")),
                                    bool(p.get("purgeProtectionEnabled"))))
        return out

    async def purge_deleted_vault(self, subscription_id: str, location: str, name: str) -> None:
        """Purge a soft-deleted vault and wait until ARM says it is gone (a long-running operation)."""
        route = "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{loc}/deletedVaults/{name}/purge"
        resp = await self._send("POST", f"/subscriptions/{quote(subscription_id)}/providers/Microsoft.KeyVault/"
                                f"locations/{quote(location)}/deletedVaults/{quote(name)}/purge", route,
                                api_version=API_KEYVAULT, ok=(200, 202, 204))
        await self.wait_for_operation(resp, route)

    # --- RBAC ----------------------------------------------------------------------------------------------------
    async def role_definition_by_name(self, scope: str, role_name: str) -> RoleDefinition | None:
        """A built-in or custom role by its display name at `scope` (e.g. a vault's resource id)."""
        literal = "'" + role_name.replace("'", "''") + "'"
        rows = await self._list(f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleDefinitions",
                                "{scope}/providers/Microsoft.Authorization/roleDefinitions", API_AUTHORIZATION,
                                params={"$filter": f"roleName eq {literal}"})
        for r in rows:
            props = r.get("properties") or {}
            if _s(props.get("roleName")).lower() == role_name.lower():
                return RoleDefinition(_s(r.get("id")), _s(r.get("name")), _s(props.get("roleName")))
        return None

    async def assign_role(self, scope: str, role_definition_id: str, principal_id: str, *,
                          principal_type: str = "User") -> RoleAssignment | None:
        """Give `principal_id` a role at `scope`, idempotently.

        The assignment name is derived from (scope, role, principal), so a rerun PUTs the same assignment;
        a 409 RoleAssignmentExists (made earlier under another name) is success too, and returns None.
        `principal_type` avoids the PrincipalNotFound that replication delay causes for new principals."""
        name = role_assignment_name(scope, role_definition_id, principal_id)
        route = "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        body = {"properties": {"roleDefinitionId": role_definition_id, "principalId": principal_id,
                               "principalType": principal_type}}
        try:
            resp = await self._send("PUT", f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/"
                                    f"{name}", route, api_version=API_AUTHORIZATION, json=body, ok=(200, 201))
        except ArmError as exc:
            if exc.status == 409 and exc.code == "RoleAssignmentExists":
                return None
            raise
        return _assignment(resp.json())

    async def role_assignments(self, scope: str, *, principal_id: str | None = None,
                               assigned_to: str | None = None) -> list[RoleAssignment]:
        """Assignments at, above and below `scope`.  `principal_id` matches direct assignments only;
        `assigned_to` also finds those the principal holds through its groups (ARM's assignedTo())."""
        params = None
        if assigned_to:
            params = {"$filter": f"assignedTo('{assigned_to}')"}
        elif principal_id:
            params = {"$filter": f"principalId eq '{principal_id}'"}
        rows = await self._list(f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments",
                                "{scope}/providers/Microsoft.Authorization/roleAssignments", API_AUTHORIZATION,
                                params=params)
        return [_assignment(r) for r in rows]

    async def delete_role_assignment(self, assignment_id: str) -> None:
        await self._send("DELETE", assignment_id, "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
                         api_version=API_AUTHORIZATION, ok=(200, 204))

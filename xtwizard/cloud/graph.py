"""Microsoft Graph v1.0: the calls G1–G13 of reference §4, with typed results for what the wizard reads.

Every call goes through the one HTTP policy (throttling, retries, allowlist logging by route template) and
the token-provider seam (401 -> one forced refresh).  Errors become `GraphError` with Graph's own code and
the request id an admin can quote to Microsoft support.  A client secret made by `add_password` is handed
to the caller only: it is never logged, and its dataclass field is kept out of `repr`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote as _quote

import httpx

from .endpoints import CloudEndpoints
from .http import HttpPolicy
from .service import ServiceError, TokenProvider, json_or_none, request_id_of, same_origin, send_with_token

EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
DIRECTORY_ROLE_TYPE = "#microsoft.graph.directoryRole"

# Entra role template ids (reference §4, G2).
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"

# The Cross Tenant User Data Migration add-on (reference §2.1): part numbers seen in the wild differ in case
# and separators, so they are compared after normalising; the SKU id is a cross-check from a single source.
CROSS_TENANT_MIGRATION_PART_NUMBER = "crosstenantuserdatamigration"
CROSS_TENANT_MIGRATION_SKU_ID = "946ce899-873d-44bb-9d8b-671870cbfdbf"


class GraphError(ServiceError):
    """Graph refused or failed a call: `code` is Graph's (e.g. Authorization_RequestDenied)."""

    service = "Microsoft Graph"


# --- typed results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VerifiedDomain:
    name: str
    is_default: bool
    is_initial: bool
    type: str = ""
    capabilities: str = ""


@dataclass(frozen=True)
class Organization:
    tenant_id: str
    display_name: str
    verified_domains: tuple[VerifiedDomain, ...]

    @property
    def initial_domain(self) -> str:
        """The tenant's `*.onmicrosoft.com` domain (what Exchange's RemoteTenant and delivery domains use)."""
        return next((d.name for d in self.verified_domains if d.is_initial), "")

    @property
    def default_domain(self) -> str:
        return next((d.name for d in self.verified_domains if d.is_default), self.initial_domain)


@dataclass(frozen=True)
class User:
    id: str
    user_principal_name: str
    display_name: str
    mail: str | None = None
    usage_location: str | None = None
    account_enabled: bool | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class DirectoryRole:
    id: str
    display_name: str
    role_template_id: str


@dataclass(frozen=True)
class PasswordCredentialInfo:
    """A client secret as listed on an application: never the secret itself (Graph returns it only once)."""

    key_id: str
    display_name: str | None
    hint: str | None
    start_date_time: str | None
    end_date_time: str | None


@dataclass(frozen=True)
class NewClientSecret:
    """The answer of addPassword.  `secret_text` is shown once; keep it in memory only, never log it."""

    key_id: str
    display_name: str | None
    hint: str | None
    start_date_time: str | None
    end_date_time: str | None
    secret_text: str = field(repr=False)


@dataclass(frozen=True)
class KeyCredentialInfo:
    key_id: str
    display_name: str | None
    type: str
    usage: str
    custom_key_identifier: str | None
    start_date_time: str | None
    end_date_time: str | None


@dataclass(frozen=True)
class Application:
    id: str
    app_id: str
    display_name: str
    sign_in_audience: str
    redirect_uris: tuple[str, ...]
    required_resource_access: tuple[Mapping[str, Any], ...]
    password_credentials: tuple[PasswordCredentialInfo, ...]
    key_credentials: tuple[KeyCredentialInfo, ...]
    publisher_domain: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class AppRole:
    id: str
    value: str | None
    display_name: str | None
    allowed_member_types: tuple[str, ...]
    is_enabled: bool = True


@dataclass(frozen=True)
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str
    app_owner_organization_id: str | None
    app_roles: tuple[AppRole, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def app_role(self, value: str) -> AppRole | None:
        """The app role with this value (e.g. Mailbox.Migration), as Microsoft's scripts resolve it."""
        return next((r for r in self.app_roles if r.value == value), None)


@dataclass(frozen=True)
class AppRoleAssignment:
    id: str
    app_role_id: str
    principal_id: str
    principal_type: str | None
    principal_display_name: str | None
    resource_id: str
    resource_display_name: str | None


@dataclass(frozen=True)
class Group:
    id: str
    display_name: str
    mail: str | None
    mail_enabled: bool
    security_enabled: bool
    group_types: tuple[str, ...]
    on_premises_sync_enabled: bool | None = None

    @property
    def is_mail_enabled_security(self) -> bool:
        """A scope group for MailboxMovePublishedScopes (reference §2.1): not a Microsoft 365 group."""
        return self.mail_enabled and self.security_enabled and "Unified" not in self.group_types


@dataclass(frozen=True)
class DirectoryMember:
    """A member of a group: a user, a nested group or a service principal (`kind` from @odata.type)."""

    id: str
    kind: str
    display_name: str | None
    user_principal_name: str | None
    mail: str | None


@dataclass(frozen=True)
class ServicePlan:
    service_plan_id: str
    service_plan_name: str
    provisioning_status: str | None = None


@dataclass(frozen=True)
class SubscribedSku:
    id: str
    sku_id: str
    sku_part_number: str
    capability_status: str
    consumed_units: int
    prepaid_enabled: int
    service_plans: tuple[ServicePlan, ...]

    @property
    def available_units(self) -> int:
        """Licenses that can still be assigned: enabled prepaid units minus consumed (reference G12)."""
        return max(0, self.prepaid_enabled - self.consumed_units)


@dataclass(frozen=True)
class LicenseDetail:
    id: str
    sku_id: str
    sku_part_number: str
    service_plans: tuple[ServicePlan, ...]


@dataclass(frozen=True)
class BatchResponse:
    id: str
    status: int
    body: Any
    headers: Mapping[str, str]


# --- helpers the wizard uses ---------------------------------------------------------------------------
def normalize_part_number(part_number: str) -> str:
    return re.sub(r"[^a-z0-9]", "", part_number.lower())


def is_cross_tenant_migration_sku(sku: SubscribedSku) -> bool:
    """Matches the part number case-insensitively without separators (reference §2.1), allowing a CSP prefix."""
    normalized = normalize_part_number(sku.sku_part_number)
    return (normalized.endswith(CROSS_TENANT_MIGRATION_PART_NUMBER)
            or sku.sku_id.lower() == CROSS_TENANT_MIGRATION_SKU_ID)


def find_cross_tenant_migration_skus(skus: Iterable[SubscribedSku]) -> list[SubscribedSku]:
    return [s for s in skus if is_cross_tenant_migration_sku(s)]


def cross_tenant_migration_units_available(skus: Iterable[SubscribedSku]) -> int:
    """Unassigned Cross Tenant User Data Migration licenses over every matching SKU."""
    return sum(s.available_units for s in find_cross_tenant_migration_skus(skus))


def certificate_key_credential(der: bytes, display_name: str, *, start: str | None = None,
                               end: str | None = None) -> dict[str, Any]:
    """A keyCredentials entry for a certificate's public part (reference G5); dates default to its validity."""
    cred: dict[str, Any] = {"type": "AsymmetricX509Cert", "usage": "Verify", "displayName": display_name,
                            "key": base64.b64encode(der).decode("ascii"),
                            "customKeyIdentifier": base64.b64encode(hashlib.sha1(der).digest()).decode("ascii")}
    if start:
        cred["startDateTime"] = start
    if end:
        cred["endDateTime"] = end
    return cred


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _plans(items: Any) -> tuple[ServicePlan, ...]:
    return tuple(ServicePlan(_s(p.get("servicePlanId")), _s(p.get("servicePlanName")), _opt(p.get("provisioningStatus")))
                 for p in items or [] if isinstance(p, dict))


def _user(d: Mapping[str, Any]) -> User:
    enabled = d.get("accountEnabled")
    return User(id=_s(d.get("id")), user_principal_name=_s(d.get("userPrincipalName")),
                display_name=_s(d.get("displayName")), mail=_opt(d.get("mail")),
                usage_location=_opt(d.get("usageLocation")),
                account_enabled=enabled if isinstance(enabled, bool) else None, raw=dict(d))


def _application(d: Mapping[str, Any]) -> Application:
    web = d.get("web") or {}
    return Application(
        id=_s(d.get("id")), app_id=_s(d.get("appId")), display_name=_s(d.get("displayName")),
        sign_in_audience=_s(d.get("signInAudience")),
        redirect_uris=tuple(str(u) for u in (web.get("redirectUris") or [])),
        required_resource_access=tuple(dict(r) for r in d.get("requiredResourceAccess") or []),
        password_credentials=tuple(
            PasswordCredentialInfo(_s(p.get("keyId")), _opt(p.get("displayName")), _opt(p.get("hint")),
                                   _opt(p.get("startDateTime")), _opt(p.get("endDateTime")))
            for p in d.get("passwordCredentials") or []),
        key_credentials=tuple(
            KeyCredentialInfo(_s(k.get("keyId")), _opt(k.get("displayName")), _s(k.get("type")), _s(k.get("usage")),
                              _opt(k.get("customKeyIdentifier")), _opt(k.get("startDateTime")),
                              _opt(k.get("endDateTime")))
            for k in d.get("keyCredentials") or []),
        publisher_domain=_opt(d.get("publisherDomain")),
        # passwordCredentials never carry a secret after creation; drop the field anyway to be sure.
        raw={k: v for k, v in d.items() if k != "passwordCredentials"})


def _service_principal(d: Mapping[str, Any]) -> ServicePrincipal:
    return ServicePrincipal(
        id=_s(d.get("id")), app_id=_s(d.get("appId")),
        display_name=_s(d.get("displayName") or d.get("appDisplayName")),
        app_owner_organization_id=_opt(d.get("appOwnerOrganizationId")),
        app_roles=tuple(AppRole(_s(r.get("id")), _opt(r.get("value")), _opt(r.get("displayName")),
                                tuple(r.get("allowedMemberTypes") or []), bool(r.get("isEnabled", True)))
                        for r in d.get("appRoles") or []),
        raw=dict(d))


def _assignment(d: Mapping[str, Any]) -> AppRoleAssignment:
    return AppRoleAssignment(id=_s(d.get("id")), app_role_id=_s(d.get("appRoleId")),
                             principal_id=_s(d.get("principalId")), principal_type=_opt(d.get("principalType")),
                             principal_display_name=_opt(d.get("principalDisplayName")),
                             resource_id=_s(d.get("resourceId")),
                             resource_display_name=_opt(d.get("resourceDisplayName")))


def _group(d: Mapping[str, Any]) -> Group:
    sync = d.get("onPremisesSyncEnabled")
    return Group(id=_s(d.get("id")), display_name=_s(d.get("displayName")), mail=_opt(d.get("mail")),
                 mail_enabled=bool(d.get("mailEnabled")), security_enabled=bool(d.get("securityEnabled")),
                 group_types=tuple(str(t) for t in d.get("groupTypes") or []),
                 on_premises_sync_enabled=sync if isinstance(sync, bool) else None)


def _member(d: Mapping[str, Any]) -> DirectoryMember:
    kind = _s(d.get("@odata.type")).rsplit(".", 1)[-1] or "directoryObject"
    return DirectoryMember(id=_s(d.get("id")), kind=kind, display_name=_opt(d.get("displayName")),
                           user_principal_name=_opt(d.get("userPrincipalName")), mail=_opt(d.get("mail")))


def _sku(d: Mapping[str, Any]) -> SubscribedSku:
    prepaid = d.get("prepaidUnits") or {}
    return SubscribedSku(id=_s(d.get("id")), sku_id=_s(d.get("skuId")), sku_part_number=_s(d.get("skuPartNumber")),
                         capability_status=_s(d.get("capabilityStatus")), consumed_units=int(d.get("consumedUnits") or 0),
                         prepaid_enabled=int(prepaid.get("enabled") or 0), service_plans=_plans(d.get("servicePlans")))


def _segment(segment: str) -> str:
    """A path segment; `@` (UPNs) and `'` (key literals) stay readable, as Graph's own examples write them."""
    return _quote(segment, safe="@'")


def _odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- the client ----------------------------------------------------------------------------------------
class GraphClient:
    """Graph for one signed-in admin of one tenant."""

    service = "graph"

    def __init__(self, endpoints: CloudEndpoints, policy: HttpPolicy, token_for: TokenProvider, *,
                 tenant: str = "") -> None:
        self.endpoints = endpoints
        self.policy = policy
        self.token_for = token_for
        self.tenant = tenant  # only keys the concurrency gate; the token decides the tenant
        self.base = endpoints.graph_url.rstrip("/")

    # --- plumbing ------------------------------------------------------------------------------------------
    async def _send(self, method: str, path_or_url: str, route: str, *, json: Any = None,
                    params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                    ok: Sequence[int] = (200, 201, 204)) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("https://") else self.base + path_or_url
        if not same_origin(url, self.base):
            raise GraphError(0, "UntrustedLink", f"Refused to send the admin's token to another host ({route}).")
        resp = await send_with_token(self.policy, self.token_for, self.endpoints.graph_resource, method, url,
                                     service=self.service, route=route, tenant=self.tenant, json=json,
                                     params=params, headers=headers)
        if resp.status_code not in ok:
            raise self.error_from(resp)
        return resp

    @staticmethod
    def error_from(resp: httpx.Response) -> GraphError:
        body = json_or_none(resp)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            inner = err.get("innerError") or err.get("innererror") or {}
            rid = str(inner.get("request-id") or "") if isinstance(inner, dict) else ""
            return GraphError(resp.status_code, str(err.get("code") or f"HTTP{resp.status_code}"),
                              str(err.get("message") or resp.reason_phrase), rid or request_id_of(resp))
        return GraphError(resp.status_code, f"HTTP{resp.status_code}", resp.reason_phrase or "Unexpected answer",
                          request_id_of(resp))

    async def _get(self, path: str, route: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        resp = await self._send("GET", path, route, params=params)
        data = json_or_none(resp)
        if not isinstance(data, dict):
            raise GraphError(resp.status_code, "InvalidResponse", "Graph answered without a JSON object.",
                             request_id_of(resp))
        return data

    async def _list(self, path: str, route: str, params: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a collection, following @odata.nextLink (which repeats the query itself)."""
        items: list[dict[str, Any]] = []
        followed: set[str] = set()
        url: str | None = path
        query: Mapping[str, str] | None = params
        while url:
            resp = await self._send("GET", url, route, params=query, headers=headers)
            data = json_or_none(resp)
            if not isinstance(data, dict):
                raise GraphError(resp.status_code, "InvalidResponse", "Graph answered without a JSON object.",
                                 request_id_of(resp))
            items.extend(v for v in data.get("value") or [] if isinstance(v, dict))
            next_link = data.get("@odata.nextLink")
            url = str(next_link) if next_link else None
            if url is not None:
                if url in followed:
                    raise GraphError(resp.status_code, "PagingLoop", "Graph sent the same next-page link twice; "
                                     "paging was stopped.", request_id_of(resp))
                followed.add(url)
            query = None
        return items

    # --- G1, G2 -------------------------------------------------------------------------------------------
    async def organization(self) -> Organization:
        items = await self._list("/organization", "/organization")
        if not items:
            raise GraphError(404, "Request_ResourceNotFound", "The organization of the signed-in admin was not found.")
        org = items[0]
        domains = tuple(VerifiedDomain(_s(d.get("name")), bool(d.get("isDefault")), bool(d.get("isInitial")),
                                       _s(d.get("type")), _s(d.get("capabilities")))
                        for d in org.get("verifiedDomains") or [])
        return Organization(_s(org.get("id")), _s(org.get("displayName")), domains)

    async def me(self) -> User:
        return _user(await self._get("/me", "/me"))

    async def my_directory_roles(self) -> list[DirectoryRole]:
        """Activated Entra roles of the signed-in admin (also through groups); PIM-eligible ones do not show."""
        items = await self._list("/me/transitiveMemberOf", "/me/transitiveMemberOf")
        return [DirectoryRole(_s(i.get("id")), _s(i.get("displayName")), _s(i.get("roleTemplateId")))
                for i in items if i.get("@odata.type") == DIRECTORY_ROLE_TYPE]

    # --- G3–G5 applications ---------------------------------------------------------------------------------
    async def create_application(self, body: Mapping[str, Any]) -> Application:
        resp = await self._send("POST", "/applications", "/applications", json=dict(body), ok=(201,))
        return _application(resp.json())

    async def get_application(self, object_id: str) -> Application:
        return _application(await self._get(f"/applications/{_segment(object_id)}", "/applications/{id}"))

    async def get_application_by_app_id(self, app_id: str) -> Application | None:
        """The application with this appId in this tenant, or None."""
        try:
            data = await self._get(f"/applications(appId={_segment(_odata_literal(app_id))})",
                                   "/applications(appId='{appId}')")
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise
        return _application(data)

    async def get_application_key_credentials(self, object_id: str) -> list[dict[str, Any]]:
        """keyCredentials with their `key` values, which Graph returns only when asked by $select (G5)."""
        data = await self._get(f"/applications/{_segment(object_id)}", "/applications/{id}",
                               params={"$select": "id,keyCredentials"})
        return [dict(k) for k in data.get("keyCredentials") or []]

    async def list_applications(self, *, display_name: str | None = None, odata_filter: str | None = None,
                                top: int | None = None) -> list[Application]:
        """Applications of the tenant, optionally by exact display name and/or a raw OData `$filter`."""
        params: dict[str, str] = {}
        clauses = [f"displayName eq {_odata_literal(display_name)}"] if display_name is not None else []
        if odata_filter:
            clauses.append(f"({odata_filter})" if clauses else odata_filter)
        if clauses:
            params["$filter"] = " and ".join(clauses)
        if top:
            params["$top"] = str(top)
        return [_application(i) for i in await self._list("/applications", "/applications", params)]

    async def set_key_credentials(self, object_id: str, key_credentials: Sequence[Mapping[str, Any]]) -> None:
        """Replace the application's certificate credentials (PATCH replaces the whole collection, G5)."""
        await self._send("PATCH", f"/applications/{_segment(object_id)}", "/applications/{id}",
                         json={"keyCredentials": [dict(k) for k in key_credentials]}, ok=(204, 200))

    async def update_application(self, object_id: str, changes: Mapping[str, Any]) -> None:
        await self._send("PATCH", f"/applications/{_segment(object_id)}", "/applications/{id}", json=dict(changes),
                         ok=(204, 200))

    async def add_password(self, object_id: str, display_name: str, *, end_date_time: str | None = None) -> NewClientSecret:
        """A new client secret (G4).  The secret is in the answer only; the caller keeps it in memory."""
        cred: dict[str, Any] = {"displayName": display_name}
        if end_date_time:
            cred["endDateTime"] = end_date_time
        resp = await self._send("POST", f"/applications/{_segment(object_id)}/addPassword",
                                "/applications/{id}/addPassword", json={"passwordCredential": cred}, ok=(200, 201))
        d = resp.json()
        return NewClientSecret(key_id=_s(d.get("keyId")), display_name=_opt(d.get("displayName")),
                               hint=_opt(d.get("hint")), start_date_time=_opt(d.get("startDateTime")),
                               end_date_time=_opt(d.get("endDateTime")), secret_text=_s(d.get("secretText")))

    async def remove_password(self, object_id: str, key_id: str) -> None:
        await self._send("POST", f"/applications/{_segment(object_id)}/removePassword",
                         "/applications/{id}/removePassword", json={"keyId": key_id}, ok=(204, 200))

    async def delete_application(self, object_id: str) -> None:
        await self._send("DELETE", f"/applications/{_segment(object_id)}", "/applications/{id}", ok=(204, 200))

    # --- G6–G9 service principals ---------------------------------------------------------------------------
    async def create_service_principal(self, app_id: str) -> ServicePrincipal:
        resp = await self._send("POST", "/servicePrincipals", "/servicePrincipals", json={"appId": app_id},
                                ok=(201,))
        return _service_principal(resp.json())

    async def get_service_principal(self, object_id: str) -> ServicePrincipal:
        return _service_principal(await self._get(f"/servicePrincipals/{_segment(object_id)}",
                                                  "/servicePrincipals/{id}"))

    async def get_service_principal_by_app_id(self, app_id: str) -> ServicePrincipal | None:
        """The tenant's service principal of an app (G7), or None when the app has none here."""
        try:
            data = await self._get(f"/servicePrincipals(appId={_segment(_odata_literal(app_id))})",
                                   "/servicePrincipals(appId='{appId}')")
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise
        return _service_principal(data)

    async def list_service_principals(self, *, odata_filter: str | None = None) -> list[ServicePrincipal]:
        params = {"$filter": odata_filter} if odata_filter else None
        return [_service_principal(i) for i in await self._list("/servicePrincipals", "/servicePrincipals", params)]

    async def delete_service_principal(self, object_id: str) -> None:
        await self._send("DELETE", f"/servicePrincipals/{_segment(object_id)}", "/servicePrincipals/{id}",
                         ok=(204, 200))

    async def app_role_assigned_to(self, resource_sp_id: str) -> list[AppRoleAssignment]:
        """Who holds roles of this resource (e.g. who has Mailbox.Migration on Exchange's SP)."""
        items = await self._list(f"/servicePrincipals/{_segment(resource_sp_id)}/appRoleAssignedTo",
                                 "/servicePrincipals/{id}/appRoleAssignedTo")
        return [_assignment(i) for i in items]

    async def grant_app_role(self, resource_sp_id: str, principal_id: str, app_role_id: str) -> AppRoleAssignment:
        """Admin consent to an application permission by API (G8)."""
        resp = await self._send("POST", f"/servicePrincipals/{_segment(resource_sp_id)}/appRoleAssignedTo",
                                "/servicePrincipals/{id}/appRoleAssignedTo",
                                json={"principalId": principal_id, "resourceId": resource_sp_id,
                                      "appRoleId": app_role_id}, ok=(201, 200))
        return _assignment(resp.json())

    async def revoke_app_role(self, resource_sp_id: str, assignment_id: str) -> None:
        await self._send("DELETE",
                         f"/servicePrincipals/{_segment(resource_sp_id)}/appRoleAssignedTo/{_segment(assignment_id)}",
                         "/servicePrincipals/{id}/appRoleAssignedTo/{assignmentId}", ok=(204, 200))

    async def app_role_assignments(self, principal_sp_id: str) -> list[AppRoleAssignment]:
        """The roles this service principal holds on other resources (G9: verify consent)."""
        items = await self._list(f"/servicePrincipals/{_segment(principal_sp_id)}/appRoleAssignments",
                                 "/servicePrincipals/{id}/appRoleAssignments")
        return [_assignment(i) for i in items]

    # --- G10–G11 groups -------------------------------------------------------------------------------------
    async def mail_enabled_security_groups(self) -> list[Group]:
        """Candidate scope groups (G10): mail-enabled security groups, Microsoft 365 groups dropped."""
        params = {"$filter": "mailEnabled eq true and securityEnabled eq true",
                  "$select": "id,displayName,mail,mailEnabled,securityEnabled,groupTypes,onPremisesSyncEnabled"}
        groups = [_group(i) for i in await self._list("/groups", "/groups", params)]
        return [g for g in groups if g.is_mail_enabled_security]

    async def get_group(self, object_id: str) -> Group:
        return _group(await self._get(f"/groups/{_segment(object_id)}", "/groups/{id}"))

    async def group_members(self, object_id: str, *, transitive: bool = False,
                            page_size: int | None = None) -> list[DirectoryMember]:
        """Members of a group (G11), every page; `transitive` flattens nested groups (listing them too)."""
        segment = "transitiveMembers" if transitive else "members"
        params = {"$select": "id,displayName,userPrincipalName,mail"}
        if page_size:
            params["$top"] = str(page_size)
        items = await self._list(f"/groups/{_segment(object_id)}/{segment}", f"/groups/{{id}}/{segment}", params)
        return [_member(i) for i in items]

    # --- G12–G13 licenses and users ---------------------------------------------------------------------------
    async def subscribed_skus(self) -> list[SubscribedSku]:
        return [_sku(i) for i in await self._list("/subscribedSkus", "/subscribedSkus")]

    async def get_user(self, id_or_upn: str, *, select: Sequence[str] | None = None) -> User:
        params = {"$select": ",".join(select)} if select else None
        return _user(await self._get(f"/users/{_segment(id_or_upn)}", "/users/{id}", params))

    async def list_users(self, *, odata_filter: str | None = None, select: Sequence[str] | None = None,
                         page_size: int | None = None) -> list[User]:
        params: dict[str, str] = {}
        if odata_filter:
            params["$filter"] = odata_filter
        if select:
            params["$select"] = ",".join(select)
        if page_size:
            params["$top"] = str(page_size)
        return [_user(i) for i in await self._list("/users", "/users", params or None)]

    async def license_details(self, id_or_upn: str) -> list[LicenseDetail]:
        items = await self._list(f"/users/{_segment(id_or_upn)}/licenseDetails", "/users/{id}/licenseDetails")
        return [LicenseDetail(_s(i.get("id")), _s(i.get("skuId")), _s(i.get("skuPartNumber")),
                              _plans(i.get("servicePlans"))) for i in items]

    async def assign_license(self, id_or_upn: str, *, add: Sequence[str] = (), remove: Sequence[str] = (),
                             disabled_plans: Mapping[str, Sequence[str]] | None = None) -> User:
        """Add and/or remove licenses by skuId (G13); the user needs a usageLocation first."""
        plans = disabled_plans or {}
        body = {"addLicenses": [{"skuId": s, "disabledPlans": list(plans.get(s, []))} for s in add],
                "removeLicenses": list(remove)}
        resp = await self._send("POST", f"/users/{_segment(id_or_upn)}/assignLicense", "/users/{id}/assignLicense",
                                json=body, ok=(200,))
        return _user(resp.json())

    # --- $batch ----------------------------------------------------------------------------------------------
    async def batch(self, requests: Sequence[Mapping[str, Any]]) -> list[BatchResponse]:
        """Up to 20 relative requests in one round trip; answers in request order.  Parts are not retried."""
        if len(requests) > 20:
            raise ValueError("Graph $batch takes at most 20 requests")
        parts: list[dict[str, Any]] = []
        for i, r in enumerate(requests):
            part: dict[str, Any] = {"id": str(r.get("id", i + 1)), "method": str(r.get("method", "GET")),
                                    "url": str(r["url"])}
            headers = dict(r.get("headers") or {})
            if "body" in r:
                part["body"] = r["body"]
                headers.setdefault("Content-Type", "application/json")  # required with a body
            if headers:
                part["headers"] = headers
            parts.append(part)
        resp = await self._send("POST", "/$batch", "/$batch", json={"requests": parts}, ok=(200,))
        answers = {str(a.get("id")): a for a in (resp.json().get("responses") or []) if isinstance(a, dict)}
        out: list[BatchResponse] = []
        for p in parts:
            a = answers.get(p["id"], {})
            out.append(BatchResponse(p["id"], int(a.get("status") or 0), a.get("body"), dict(a.get("headers") or {})))
        return out

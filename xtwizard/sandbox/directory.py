"""Directory operations shared by the identity platform and Graph: apps, service principals, role grants.

Identity's admin-consent endpoint and Graph's POST /servicePrincipals + appRoleAssignedTo do the same
thing to a tenant (reference §4, note under G8), so both call these functions.

Object conventions (Graph shape plus private `_` keys):
  application: Graph application; `_secretHashes` {keyId: sha256 hex of secretText} (the secret itself is
    never stored); `keyCredentials[].key` is the base64 DER of the certificate.
  servicePrincipal: Graph servicePrincipal; `appOwnerOrganizationId` is the app's home tenant.
  appRoleAssignments: in the tenant of the resource SP, Graph appRoleAssignment shape.
  oauth2PermissionGrants: delegated consents: {id, clientId (app id), consentType, principalId, resourceId, scope}.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from .catalog import DIRECTORY_ROLES, RESOURCES, stable_id
from .state import JSON, SandboxState, Tenant


def iso(ts: float) -> str:
    """Graph's timestamp form: UTC, seconds, trailing Z."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> float:
    """Parse an ISO 8601 timestamp (Z or offset; naive means UTC) to epoch seconds. Raises ValueError."""
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return dt.timestamp()


def find_application(state: SandboxState, app_id: str) -> tuple[Tenant, JSON] | None:
    """The app registration with this appId, and its home tenant (replication delay applies)."""
    low = app_id.lower()
    for t in state.tenants.values():
        for app in t.col("applications").values():
            if app.get("appId", "").lower() == low and state.visible(app):
                return t, app
    return None


def service_principal(state: SandboxState, tenant: Tenant, app_id: str, *, include_hidden: bool = False) -> JSON | None:
    low = app_id.lower()
    for sp in tenant.col("servicePrincipals").values():
        if sp.get("appId", "").lower() == low and (include_hidden or state.visible(sp)):
            return sp
    return None


def resource_service_principal(tenant: Tenant, resource: str) -> JSON:
    """The tenant's SP for a first-party resource (always present)."""
    return tenant.col("servicePrincipals")[stable_id(tenant.id, "sp", RESOURCES[resource]["app_id"])]


def ensure_service_principal(state: SandboxState, tenant: Tenant, home: Tenant, app: JSON) -> tuple[JSON, bool]:
    """The app's SP in `tenant`, created if missing. Returns (sp, created)."""
    existing = service_principal(state, tenant, app["appId"], include_hidden=True)
    if existing is not None:
        return existing, False
    sp_id = str(uuid.uuid4())
    sp = {
        "id": sp_id, "appId": app["appId"], "displayName": app.get("displayName"),
        "appDisplayName": app.get("displayName"), "appOwnerOrganizationId": home.id, "accountEnabled": True,
        "servicePrincipalType": "Application", "appRoles": app.get("appRoles", []),
        "replyUrls": list((app.get("web") or {}).get("redirectUris", [])),
        "servicePrincipalNames": [app["appId"]], "signInAudience": app.get("signInAudience", "AzureADMyOrg"),
        "tags": [], "createdDateTime": iso(state.clock.now()),
    }
    tenant.col("servicePrincipals")[sp_id] = state.stamp(sp)
    return sp, True


def grant_app_role(state: SandboxState, tenant: Tenant, principal_sp: JSON, resource_sp: JSON,
                   app_role_id: str) -> tuple[JSON, bool]:
    """Assign an application role of `resource_sp` to `principal_sp` (idempotent). Returns (assignment, created)."""
    for a in tenant.col("appRoleAssignments").values():
        if (a["principalId"] == principal_sp["id"] and a["resourceId"] == resource_sp["id"]
                and a["appRoleId"] == app_role_id):
            return a, False
    aid = stable_id(tenant.id, "ara", principal_sp["id"], resource_sp["id"], app_role_id)
    assignment = {
        "id": aid, "appRoleId": app_role_id, "createdDateTime": iso(state.clock.now()), "deletedDateTime": None,
        "principalDisplayName": principal_sp.get("displayName"), "principalId": principal_sp["id"],
        "principalType": "ServicePrincipal", "resourceDisplayName": resource_sp.get("displayName"),
        "resourceId": resource_sp["id"],
    }
    tenant.col("appRoleAssignments")[aid] = state.stamp(assignment)
    return assignment, True


def required_app_roles(tenant: Tenant, app: JSON) -> list[tuple[JSON, str]]:
    """(resource SP in `tenant`, app role id) for every application permission the app asks for."""
    out: list[tuple[JSON, str]] = []
    sps = tenant.col("servicePrincipals").values()
    for rra in app.get("requiredResourceAccess", []):
        resource_sp = next((s for s in sps if s.get("appId", "").lower() == str(rra.get("resourceAppId")).lower()), None)
        if resource_sp is None:
            continue
        for access in rra.get("resourceAccess", []):
            if access.get("type") == "Role":
                out.append((resource_sp, str(access.get("id"))))
    return out


def app_roles_granted(tenant: Tenant, principal_sp_id: str, resource_sp: JSON) -> list[str]:
    """Values (e.g. 'Mailbox.Migration') of the app roles of `resource_sp` granted to a principal."""
    by_id = {r["id"]: r["value"] for r in resource_sp.get("appRoles", [])}
    return [by_id[a["appRoleId"]] for a in tenant.col("appRoleAssignments").values()
            if a["principalId"] == principal_sp_id and a["resourceId"] == resource_sp["id"] and a["appRoleId"] in by_id]


def user_role_template_ids(user: JSON) -> list[str]:
    return [DIRECTORY_ROLES[r] for r in user.get("_roles", []) if r in DIRECTORY_ROLES]


def has_any_role(user: JSON, *roles: str) -> bool:
    return any(r in user.get("_roles", []) for r in roles)


def directory_role_objects(tenant: Tenant, user: JSON) -> list[dict[str, Any]]:
    """The user's activated directory roles as Graph directoryRole objects (for transitiveMemberOf)."""
    return [{"@odata.type": "#microsoft.graph.directoryRole", "id": stable_id(tenant.id, "role", name),
             "displayName": name, "description": name, "roleTemplateId": DIRECTORY_ROLES[name]}
            for name in user.get("_roles", []) if name in DIRECTORY_ROLES]


# --- refresh tokens ---------------------------------------------------------------------------------------
# state.refresh_tokens maps sha256_hex(token) -> {"tenantId", "userId", "clientId", "issuedAt", "lastUsedAt",
# "revoked": bool}.  The identity platform writes them; Graph's revokeSignInSessions revokes them.

def revoke_user_sessions(state: SandboxState, tenant: Tenant, user_id: str) -> int:
    """Revoke every refresh token of a user in a tenant (Graph POST /users/{id}/revokeSignInSessions)."""
    n = 0
    for rec in state.refresh_tokens.values():
        if rec.get("tenantId") == tenant.id and rec.get("userId") == user_id and not rec.get("revoked"):
            rec["revoked"] = True
            n += 1
    if n:
        state.touch()
    return n

"""Azure RBAC as ARM and Key Vault evaluate it: built-in role definitions and "may this principal do X here?".

Role definitions are Azure's built-in ones (ids from `catalog.AZURE_ROLES`; actions and dataActions as the
built-in roles page lists them, trimmed to the providers the sandbox serves).  Role assignments live in
`arm.roleAssignments` of the tenant that owns the subscription, keyed by the lower-cased assignment id,
in ARM's wire shape.  An assignment applies at its scope and everything below it
(subscription -> resource group -> resource), as in Azure.

Owner and Contributor carry only management-plane `actions`: they give NO Key Vault data-plane access,
exactly like the real service; the Key Vault data roles carry `dataActions`.
"""

from __future__ import annotations

import re
from typing import Any

from .catalog import AZURE_ROLES
from .state import JSON, Tenant

_KV_READS = ["Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",
             "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
             "Microsoft.Support/*", "Microsoft.KeyVault/checkNameAvailability/read",
             "Microsoft.KeyVault/deletedVaults/read", "Microsoft.KeyVault/locations/*/read",
             "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read"]


def _perm(actions: list[str], not_actions: list[str] | None = None, data: list[str] | None = None,
          not_data: list[str] | None = None) -> JSON:
    return {"actions": actions, "notActions": not_actions or [], "dataActions": data or [],
            "notDataActions": not_data or []}


# role GUID -> (description, permissions)
_DEFINITIONS: dict[str, tuple[str, JSON]] = {
    AZURE_ROLES["Owner"]: (
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        _perm(["*"])),
    AZURE_ROLES["Contributor"]: (
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
        "manage assignments in Azure Blueprints, or share image galleries.",
        _perm(["*"], ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                      "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write",
                      "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action",
                      "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete"])),
    AZURE_ROLES["Reader"]: ("View all resources, but does not allow you to make any changes.", _perm(["*/read"])),
    AZURE_ROLES["User Access Administrator"]: (
        "Lets you manage user access to Azure resources.",
        _perm(["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"])),
    AZURE_ROLES["Key Vault Administrator"]: (
        "Perform all data plane operations on a key vault and all objects in it, including certificates, keys, "
        "and secrets. Cannot manage key vault resources or manage role assignments. Only works for key vaults "
        "that use the 'Azure role-based access control' permission model.",
        _perm(list(_KV_READS), data=["Microsoft.KeyVault/vaults/*"])),
    AZURE_ROLES["Key Vault Certificates Officer"]: (
        "Perform any action on the certificates of a key vault, excluding reading the secret and key portions, "
        "and managing permissions. Only works for key vaults that use the 'Azure role-based access control' "
        "permission model.",
        _perm(list(_KV_READS), data=["Microsoft.KeyVault/vaults/certificatecas/*",
                                     "Microsoft.KeyVault/vaults/certificates/*",
                                     "Microsoft.KeyVault/vaults/certificatecontacts/write"])),
    AZURE_ROLES["Key Vault Certificate User"]: (
        "Read entire certificate contents including secret and key portion. Only works for key vaults that use "
        "the 'Azure role-based access control' permission model.",
        _perm([], data=["Microsoft.KeyVault/vaults/certificates/read",
                        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                        "Microsoft.KeyVault/vaults/keys/read"])),
    AZURE_ROLES["Key Vault Secrets Officer"]: (
        "Perform any action on the secrets of a key vault, except manage permissions. Only works for key vaults "
        "that use the 'Azure role-based access control' permission model.",
        _perm(list(_KV_READS), data=["Microsoft.KeyVault/vaults/secrets/*"])),
    AZURE_ROLES["Key Vault Secrets User"]: (
        "Read secret contents including secret portion of a certificate with private key. Only works for key "
        "vaults that use the 'Azure role-based access control' permission model.",
        _perm([], data=["Microsoft.KeyVault/vaults/secrets/getSecret/action",
                        "Microsoft.KeyVault/vaults/secrets/readMetadata/action"])),
    AZURE_ROLES["Key Vault Reader"]: (
        "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such "
        "as secret contents or key material. Only works for key vaults that use the 'Azure role-based access "
        "control' permission model.",
        _perm(list(_KV_READS), data=["Microsoft.KeyVault/vaults/*/read",
                                     "Microsoft.KeyVault/vaults/secrets/readMetadata/action"])),
    AZURE_ROLES["Key Vault Contributor"]: (
        "Manage key vaults, but does not allow you to assign roles in Azure RBAC, and does not allow you to "
        "access secrets, keys, or certificates.",
        _perm(["Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.KeyVault/*",
               "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
               "Microsoft.Support/*"],
              ["Microsoft.KeyVault/locations/deletedVaults/purge/action", "Microsoft.KeyVault/hsmPools/*",
               "Microsoft.KeyVault/managedHsms/*"])),
}

ROLE_NAMES: dict[str, str] = {guid: name for name, guid in AZURE_ROLES.items()}
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and bool(GUID_RE.match(value))


def role_definition(scope: str, guid: str) -> JSON | None:
    """A built-in role definition in ARM's wire shape, addressed at `scope` ('' for the tenant root)."""
    guid = guid.lower()
    if guid not in _DEFINITIONS:
        return None
    description, perms = _DEFINITIONS[guid]
    return {
        "id": f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
        "name": guid, "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": ROLE_NAMES[guid], "type": "BuiltInRole", "description": description,
            "assignableScopes": ["/"], "permissions": [dict(perms)],
            "createdOn": "2015-02-02T21:55:09.8806423Z", "updatedOn": "2024-01-15T09:00:00.0000000Z",
            "createdBy": None, "updatedBy": None,
        },
    }


def all_role_definitions(scope: str) -> list[JSON]:
    return [d for g in _DEFINITIONS if (d := role_definition(scope, g)) is not None]


def role_guid_of(role_definition_id: str) -> str:
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def _glob(pattern: str, action: str) -> bool:
    rx = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(rx, action, re.IGNORECASE) is not None


def role_permits(guid: str, action: str, *, data: bool = False) -> bool:
    """Does the built-in role allow `action` (a data action when `data`)?"""
    entry = _DEFINITIONS.get(guid.lower())
    if entry is None:
        return False
    perms = entry[1]
    allow, deny = ("dataActions", "notDataActions") if data else ("actions", "notActions")
    return (any(_glob(p, action) for p in perms[allow])
            and not any(_glob(p, action) for p in perms[deny]))


def scope_covers(assignment_scope: str, scope: str) -> bool:
    """True when an assignment at `assignment_scope` applies to `scope` (same or an ancestor)."""
    a = assignment_scope.rstrip("/").lower()
    s = scope.rstrip("/").lower()
    return a == "" or s == a or s.startswith(a + "/")


def principal_ids(tenant: Tenant, object_id: str) -> set[str]:
    """The caller's object id plus every group that contains it, directly or through other groups."""
    ids = {object_id.lower()}
    groups = list(tenant.col("groups").values())
    changed = True
    while changed:
        changed = False
        for g in groups:
            gid = str(g.get("id", "")).lower()
            if gid not in ids and any(str(m).lower() in ids for m in g.get("_members", [])):
                ids.add(gid)
                changed = True
    return ids


def assignments_for(tenant: Tenant, object_id: str) -> list[JSON]:
    ids = principal_ids(tenant, object_id)
    return [a for a in tenant.col("arm.roleAssignments").values()
            if str(a["properties"].get("principalId", "")).lower() in ids]


def is_allowed(tenant: Tenant, object_id: str, scope: str, action: str, *, data: bool = False) -> bool:
    """May the principal perform `action` on `scope`, through any role assignment at that scope or above?"""
    for a in assignments_for(tenant, object_id):
        props = a["properties"]
        if scope_covers(str(props.get("scope", "")), scope) and role_permits(
                role_guid_of(str(props.get("roleDefinitionId", ""))), action, data=data):
            return True
    return False


def has_any_role_within(tenant: Tenant, object_id: str, scope: str) -> bool:
    """Any role at, above or below `scope` (how ARM decides which subscriptions a caller can see)."""
    s = scope.rstrip("/").lower()
    for a in assignments_for(tenant, object_id):
        a_scope = str(a["properties"].get("scope", "")).rstrip("/").lower()
        if scope_covers(a_scope, s) or a_scope.startswith(s + "/"):
            return True
    return False

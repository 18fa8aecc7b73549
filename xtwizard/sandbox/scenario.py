"""Scenario files: the starting state of the simulated tenants (schema in the sandbox README)."""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

from .catalog import AZURE_ROLES, DIRECTORY_ROLES, RESOURCES, stable_id
from .clock import SandboxClock
from .state import JSON, SandboxState, Tenant

DEFAULT_LOCATIONS = [
    ("eastus", "East US"), ("westus", "West US"), ("westeurope", "West Europe"),
    ("northeurope", "North Europe"), ("uksouth", "UK South"), ("australiaeast", "Australia East"),
]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message says what to fix."""


def builtin_names() -> list[str]:
    folder = resources.files("xtwizard.sandbox") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_scenario(name_or_path: str) -> JSON:
    """A built-in scenario by name, or a JSON file by path."""
    if os.path.exists(name_or_path):
        with open(name_or_path, encoding="utf-8") as fh:
            text = fh.read()
    else:
        res = resources.files("xtwizard.sandbox") / "scenarios" / f"{name_or_path}.json"
        if not res.is_file():
            raise ScenarioError(f"No scenario file or built-in scenario named {name_or_path!r}; "
                                f"built-in scenarios: {', '.join(builtin_names())}.")
        text = res.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ScenarioError(f"Scenario {name_or_path!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), list) or not data["tenants"]:
        raise ScenarioError(f"Scenario {name_or_path!r} must be an object with a non-empty 'tenants' list.")
    return data


def _need(obj: JSON, key: str, where: str) -> Any:
    if key not in obj:
        raise ScenarioError(f"{where}: missing '{key}'.")
    return obj[key]


def first_party_service_principals(tenant: Tenant) -> None:
    """Every tenant has service principals for Microsoft's own resources, with their app roles."""
    sps = tenant.col("servicePrincipals")
    for info in RESOURCES.values():
        sp_id = stable_id(tenant.id, "sp", info["app_id"])
        sps[sp_id] = {
            "id": sp_id, "appId": info["app_id"], "displayName": info["name"], "appDisplayName": info["name"],
            "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",  # Microsoft Services
            "accountEnabled": True, "servicePrincipalType": "Application", "appRoles": info["app_roles"],
            "servicePrincipalNames": [info["app_id"], *[a for a in info["aliases"] if a.startswith("https")]],
            "replyUrls": [], "tags": [], "signInAudience": "AzureADMultipleOrgs",
        }


def build_state(data: JSON, clock: SandboxClock) -> SandboxState:
    st = SandboxState(clock, str(data.get("name", "scenario")), str(data.get("description", "")))
    st.settings.update(data.get("settings", {}))
    st.stories = list(data.get("stories", []))
    st.initial_faults = list(data.get("faults", []))
    st.locations = [{"id": f"/subscriptions/{{sub}}/locations/{n}", "name": n, "displayName": d,
                     "regionalDisplayName": f"({'US' if 'us' in n else 'Europe'}) {d}", "type": "Region"}
                    for n, d in DEFAULT_LOCATIONS]
    for pc in data.get("publicClients", []):
        cid = _need(pc, "clientId", "publicClients[]")
        st.public_clients[cid] = {
            "clientId": cid, "displayName": pc.get("displayName", cid),
            "redirectUris": list(pc.get("redirectUris", [])),
            "allowDeviceCode": bool(pc.get("allowDeviceCode", True)),
        }
    for i, td in enumerate(data["tenants"]):
        where = f"tenants[{i}]"
        t = Tenant(str(_need(td, "id", where)), str(td.get("displayName", td.get("key", ""))),
                   str(_need(td, "initialDomain", where)), str(td.get("key", "")))
        if st.tenant(t.id) is not None or st.tenant(t.initial_domain) is not None:
            raise ScenarioError(f"{where}: tenant id or domain used twice.")
        t.domains = [{"name": t.initial_domain, "isDefault": not td.get("verifiedDomains"), "isInitial": True,
                      "type": "Managed", "capabilities": "Email, OfficeCommunicationsOnline"}]
        for j, dom in enumerate(td.get("verifiedDomains", [])):
            t.domains.append({"name": dom, "isDefault": j == 0, "isInitial": False, "type": "Managed",
                              "capabilities": "Email, OfficeCommunicationsOnline"})
        _load_directory(t, td, where)
        t.exchange_seed = dict(td.get("exchange", {}))
        first_party_service_principals(t)
        st.tenants[t.id] = t
    return st


def _load_directory(t: Tenant, td: JSON, where: str) -> None:
    skus = t.col("subscribedSkus")
    part_to_sku: dict[str, str] = {}
    for sd in td.get("skus", []):
        part = _need(sd, "skuPartNumber", f"{where}.skus[]")
        sku_id = sd.get("skuId") or stable_id("sku", part)
        part_to_sku[part.lower()] = sku_id
        skus[sku_id] = {
            "id": f"{t.id}_{sku_id}", "skuId": sku_id, "skuPartNumber": part, "accountId": t.id,
            "accountName": t.key, "appliesTo": "User", "capabilityStatus": sd.get("capabilityStatus", "Enabled"),
            "consumedUnits": 0,
            "prepaidUnits": {"enabled": int(sd.get("units", 0)), "lockedOut": 0, "suspended": 0, "warning": 0},
            "servicePlans": [{"servicePlanId": p.get("servicePlanId") or stable_id("plan", p["servicePlanName"]),
                              "servicePlanName": p["servicePlanName"], "provisioningStatus": "Success",
                              "appliesTo": "User"} for p in sd.get("servicePlans", [])],
            "subscriptionIds": [stable_id(t.id, "commerce", part)],
        }
    users = t.col("users")
    for k, ud in enumerate(td.get("users", [])):
        w = f"{where}.users[{k}]"
        upn = str(_need(ud, "userPrincipalName", w))
        uid = ud.get("id") or stable_id(t.id, "user", upn.lower())
        roles = list(ud.get("roles", []))
        unknown = [r for r in roles if r not in DIRECTORY_ROLES]
        if unknown:
            raise ScenarioError(f"{w}: unknown directory role(s) {unknown}; known: {sorted(DIRECTORY_ROLES)}.")
        assigned = []
        for part in ud.get("licenses", []):
            sku_id = part_to_sku.get(str(part).lower())
            if sku_id is None:
                raise ScenarioError(f"{w}: license {part!r} is not one of the tenant's skus.")
            assigned.append({"skuId": sku_id, "disabledPlans": []})
            skus[sku_id]["consumedUnits"] += 1
        local, _, _ = upn.partition("@")
        users[uid] = {
            "id": uid, "userPrincipalName": upn, "displayName": ud.get("displayName", local),
            "givenName": ud.get("givenName"), "surname": ud.get("surname"),
            "mail": ud.get("mail", upn if ud.get("mailbox") else None),
            "mailNickname": ud.get("mailNickname", local), "accountEnabled": ud.get("accountEnabled", True),
            "usageLocation": ud.get("usageLocation", "US"), "userType": ud.get("userType", "Member"),
            "jobTitle": ud.get("jobTitle"), "assignedLicenses": assigned,
            "proxyAddresses": list(ud.get("proxyAddresses", [])),
            "_roles": roles, "_account": bool(ud.get("account", bool(roles))),
            "_mailbox": ud.get("mailbox"), "_story": ud.get("story"),
        }
    groups = t.col("groups")
    pending_members: list[tuple[str, list[str]]] = []
    for k, gd in enumerate(td.get("groups", [])):
        w = f"{where}.groups[{k}]"
        name = str(_need(gd, "displayName", w))
        gid = gd.get("id") or stable_id(t.id, "group", name.lower())
        if gid in groups:
            raise ScenarioError(f"{w}: a second group named {name!r}; give each group its own name or id.")
        mail_enabled = bool(gd.get("mailEnabled", False))
        groups[gid] = {
            "id": gid, "displayName": name, "description": gd.get("description"),
            "mailEnabled": mail_enabled, "securityEnabled": bool(gd.get("securityEnabled", True)),
            "groupTypes": list(gd.get("groupTypes", [])),
            "mail": gd.get("mail") if mail_enabled else None,
            "mailNickname": gd.get("mailNickname", name.replace(" ", "")),
            "onPremisesSyncEnabled": gd.get("onPremisesSyncEnabled"),
            "createdDateTime": "2024-01-15T09:00:00Z", "_members": [], "_story": gd.get("story"),
        }
        pending_members.append((gid, list(gd.get("members", []))))
    # Indexes, so that large scenarios (10,000 members) load in linear time.
    user_ids = {key.lower(): u["id"] for u in users.values() for key in (u["userPrincipalName"], u["id"])}
    group_ids = {g["displayName"].lower(): g["id"] for g in groups.values()}
    for gid, refs in pending_members:
        for ref in refs:
            member_id = user_ids.get(str(ref).lower()) or group_ids.get(str(ref).lower())
            if member_id is None:
                raise ScenarioError(f"{where}: group member {ref!r} is neither a user nor a group of the tenant.")
            groups[gid]["_members"].append(member_id)
    subs = t.col("arm.subscriptions")
    for k, sd in enumerate(td.get("subscriptions", [])):
        sub_id = str(_need(sd, "subscriptionId", f"{where}.subscriptions[{k}]"))
        subs[sub_id] = {
            "id": f"/subscriptions/{sub_id}", "subscriptionId": sub_id, "tenantId": t.id,
            "displayName": sd.get("displayName", "Azure subscription 1"), "state": sd.get("state", "Enabled"),
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"},
            "authorizationSource": "RoleBased", "managedByTenants": [], "tags": {},
        }
        for ra in sd.get("roleAssignments", []):
            principal = t.user(str(ra["principal"]))
            if principal is None:
                raise ScenarioError(f"{where}.subscriptions[{k}]: role assignment principal {ra['principal']!r} "
                                    f"is not a user of the tenant.")
            role = str(ra["role"])
            if role not in AZURE_ROLES:
                raise ScenarioError(f"{where}.subscriptions[{k}]: unknown Azure role {role!r}.")
            scope = f"/subscriptions/{sub_id}"
            ra_name = stable_id(scope, principal["id"], role)
            rid = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{ra_name}"
            t.col("arm.roleAssignments")[rid.lower()] = {
                "id": rid, "name": ra_name, "type": "Microsoft.Authorization/roleAssignments",
                "properties": {
                    "roleDefinitionId": f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{AZURE_ROLES[role]}",
                    "principalId": principal["id"], "principalType": "User", "scope": scope,
                    "createdOn": "2024-01-15T09:00:00Z", "updatedOn": "2024-01-15T09:00:00Z",
                },
            }

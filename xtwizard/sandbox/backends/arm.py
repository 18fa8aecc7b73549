"""Azure Resource Manager (management.azure.com): subscriptions, resource groups, Key Vault vaults, RBAC.

Follows reference §5.1 and the azure-rest-api-specs examples it cites; route-by-route notes, the RBAC
each route needs and its errors are in docs/sandbox/arm-keyvault.md.

State (per tenant = the tenant that owns the subscription; all keys lower-cased):
  arm.subscriptions    {subscriptionId: ARM subscription JSON}              (from the scenario)
  arm.resourceGroups   {resource id: ARM resourceGroup JSON}
  arm.vaults           {vault name: ARM vault JSON}; vault names are unique across all tenants
  arm.deletedVaults    {vault name: ARM deletedVault JSON + `_vault` (the vault as it was)}
  arm.roleAssignments  {assignment id: ARM roleAssignment JSON}
  arm.operations       {operation id: {kind, target, subscriptionId, location, doneAt, polls}}
Long-running operations (resource group delete, vault purge) answer 202 + Location + Retry-After; the
operation URL answers 202 at least once and until `settings.arm_lro_seconds` (default 15) of sandbox time
has passed, then 200.  Retry-After is that remaining time in real seconds (so a faster clock shortens it).
"""

from __future__ import annotations

import datetime
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import jwt

from ..azure_rbac import (
    ROLE_NAMES,
    all_role_definitions,
    has_any_role_within,
    is_allowed,
    is_guid,
    principal_ids,
    role_definition,
    role_guid_of,
)
from ..http import HttpError, Request, Response
from ..state import JSON, SandboxState, Tenant, public
from ..tokens import Caller, TokenRejected
from .base import Backend

API_VERSIONS: dict[str, list[str]] = {
    "resources": ["2025-04-01", "2025-03-01", "2025-01-01", "2024-11-01", "2024-07-01", "2024-03-01",
                  "2023-07-01", "2022-12-01", "2022-09-01", "2022-01-01", "2021-04-01", "2021-01-01",
                  "2020-10-01", "2020-06-01", "2020-01-01", "2019-11-01", "2019-10-01", "2019-08-01",
                  "2019-07-01", "2019-06-01", "2019-05-10", "2019-05-01", "2018-05-01", "2018-02-01",
                  "2017-05-10", "2016-09-01", "2016-06-01", "2016-02-01", "2015-11-01", "2015-01-01",
                  "2014-04-01"],
    "keyvault": ["2026-05-15", "2026-02-01", "2025-05-01", "2024-12-01-preview", "2024-11-01",
                 "2024-04-01-preview", "2023-08-01-preview", "2023-07-01", "2023-02-01", "2022-11-01",
                 "2022-07-01", "2022-02-01-preview", "2021-11-01-preview", "2021-10-01", "2021-06-01-preview",
                 "2021-04-01-preview", "2020-04-01-preview", "2019-09-01", "2018-02-14", "2016-10-01",
                 "2015-06-01"],
    "authorization": ["2022-05-01-preview", "2022-04-01", "2022-01-01-preview", "2020-10-01-preview",
                      "2020-08-01-preview", "2020-04-01-preview", "2019-04-01-preview", "2018-09-01-preview",
                      "2018-07-01", "2018-01-01-preview", "2017-05-01", "2016-07-01", "2015-07-01",
                      "2015-06-01", "2015-05-01-preview", "2014-10-01-preview", "2014-07-01-preview",
                      "2014-04-01-preview"],
}
RBAC_DEFAULT_SINCE = "2026-02-01"  # vaults created with this api-version or later default to RBAC (Learn)
VAULT_NAME_RE = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
RG_NAME_RE = re.compile(r"^[-\w._()]{1,90}$")
CERT_PERMS = {"all", "get", "list", "delete", "create", "import", "update", "managecontacts", "getissuers",
              "listissuers", "setissuers", "deleteissuers", "manageissuers", "recover", "purge", "backup",
              "restore"}
SECRET_PERMS = {"all", "get", "list", "set", "delete", "backup", "restore", "recover", "purge"}
KEY_PERMS = {"all", "encrypt", "decrypt", "wrapkey", "unwrapkey", "sign", "verify", "get", "list", "create",
             "update", "import", "delete", "backup", "restore", "recover", "purge", "release", "rotate",
             "getrotationpolicy", "setrotationpolicy"}
STORAGE_PERMS = {"all", "get", "list", "delete", "set", "update", "regeneratekey", "recover", "purge", "backup",
                 "restore", "setsas", "listsas", "getsas", "deletesas"}
PERM_SETS = {"certificates": CERT_PERMS, "secrets": SECRET_PERMS, "keys": KEY_PERMS, "storage": STORAGE_PERMS}
AUTHZ = "/providers/Microsoft.Authorization"
KV = "/providers/Microsoft.KeyVault"
ARM_AUDIENCES = ("https://management.core.windows.net/", "https://management.core.windows.net",
                 "https://management.azure.com/", "https://management.azure.com")


def iso_arm(ts: float) -> str:
    """ARM's timestamp form (seven fractional digits, Z)."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _unverified_claims(authorization: str | None) -> dict[str, Any]:
    token = (authorization or "").partition(" ")[2].strip()
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _net_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%m/%d/%Y %I:%M:%S %p")


def find_vault(state: SandboxState, name: str) -> tuple[Tenant, JSON] | None:
    """A live vault by name (any tenant): what the Key Vault data plane resolves a vault URL to."""
    low = name.lower()
    for t in state.tenants.values():
        v = t.col("arm.vaults").get(low)
        if v is not None:
            return t, v
    return None


def find_subscription(state: SandboxState, sub_id: str) -> tuple[Tenant, JSON] | None:
    low = sub_id.lower()
    for t in state.tenants.values():
        for sid, sub in t.col("arm.subscriptions").items():
            if sid.lower() == low:
                return t, sub
    return None


class ArmBackend(Backend):
    name = "arm"
    audience = "https://management.azure.com"

    # --- shapes -----------------------------------------------------------------------------------------
    def error(self, status: int, code: str, message: str,
              headers: list[tuple[str, str]] | None = None) -> HttpError:
        return HttpError(status, {"error": {"code": code, "message": message, "details": []}}, headers)

    def response_headers(self, req: Request) -> list[tuple[str, str]]:
        corr = req.headers.get("x-ms-correlation-request-id") or req.request_id
        return [("x-ms-request-id", req.request_id), ("x-ms-correlation-request-id", corr),
                ("x-ms-routing-request-id", f"SANDBOX:{req.request_id}"), ("Cache-Control", "no-cache")]

    def not_found(self, req: Request) -> HttpError:
        return self.error(404, "InvalidResourceType" if "/providers/" in req.path else "NotFound",
                          f"The resource type could not be found for the request path '{req.path}'."
                          if "/providers/" in req.path else f"No HTTP resource was found that matches "
                          f"the request URI '{req.base_url}{req.path}'.")

    def method_not_allowed(self, req: Request) -> HttpError:
        return self.error(405, "MethodNotAllowed", f"The requested resource does not support http method "
                          f"'{req.method}'.")

    def throttled(self, req: Request, status: int, retry_after: int, message: str) -> Response:
        if status != 429:
            return super().throttled(req, status, retry_after, message)
        m = re.match(r"^/subscriptions/([^/]+)", req.path)
        kind = "read" if req.method in ("GET", "HEAD") else "write"
        text = message or (f"Number of '{kind}' requests for subscription '{m.group(1) if m else ''}' actor "
                           f"'{req.client}' exceeded. Please try again after '{retry_after}' seconds after "
                           f"additional tickets are available. Refer to https://aka.ms/arm-throttling")
        return self.error(429, "SubscriptionRequestsThrottled", text,
                          [("Retry-After", str(retry_after))]).response()

    def auth_error(self, exc: TokenRejected, req: Request) -> HttpError:
        claims = _unverified_claims(req.headers.get("authorization"))
        if exc.reason == "missing":
            return self.error(401, "AuthenticationFailed",
                              "Authentication failed. The 'Authorization' header is missing.")
        if exc.reason == "malformed":
            return self.error(401, "AuthenticationFailed",
                              "Authentication failed. The 'Authorization' header is provided in an invalid format.")
        if exc.reason == "expired":
            exp = claims.get("exp")
            exp_txt = _net_time(float(exp)) if isinstance(exp, int | float) else "unknown"
            return self.error(401, "ExpiredAuthenticationToken",
                              f"The access token expiry UTC time '{exp_txt}' is earlier than current UTC time "
                              f"'{_net_time(self.sb.clock.now())}'.")
        if exc.reason == "audience":
            allowed = ",".join(f"'{a}'" for a in ARM_AUDIENCES)
            return self.error(401, "InvalidAuthenticationTokenAudience",
                              f"The access token has been obtained for wrong audience or resource "
                              f"'{claims.get('aud', '')}'. It should exactly match with one of the allowed "
                              f"audiences {allowed}.")
        return self.error(401, "InvalidAuthenticationToken", "The access token is invalid.")

    # --- dispatch ---------------------------------------------------------------------------------------
    def register(self) -> None:
        s = "/subscriptions/{sub}"
        rg = s + "/resourcegroups/{rg}"
        add = self._add
        add("GET", "/subscriptions", self.list_subscriptions)
        add("GET", "/tenants", self.list_tenants)
        add("GET", s, self.get_subscription)
        add("GET", s + "/locations", self.list_locations)
        add("GET", s + "/operationresults/{op}", self.get_operation)
        add("GET", s + "/providers/{ns}", self.get_provider)
        add("POST", s + "/providers/{ns}/register", self.register_provider)
        add("GET", s + "/resourcegroups", self.list_groups)
        add("PUT", rg, self.put_group)
        add("GET", rg, self.get_group)
        add("HEAD", rg, self.head_group)
        add("PATCH", rg, self.patch_group)
        add("DELETE", rg, self.delete_group)
        add("POST", s + KV + "/checkNameAvailability", self.check_name)
        add("GET", s + KV + "/deletedVaults", self.list_deleted)
        add("GET", s + KV + "/locations/{loc}/deletedVaults/{name}", self.get_deleted)
        add("POST", s + KV + "/locations/{loc}/deletedVaults/{name}/purge", self.purge_deleted)
        add("GET", s + KV + "/locations/{loc}/operationResults/{op}", self.get_operation)
        add("GET", s + KV + "/vaults", self.list_vaults_sub)
        add("GET", rg + KV + "/vaults", self.list_vaults_rg)
        add("PUT", rg + KV + "/vaults/{name}", self.put_vault)
        add("PATCH", rg + KV + "/vaults/{name}", self.patch_vault)
        add("GET", rg + KV + "/vaults/{name}", self.get_vault)
        add("DELETE", rg + KV + "/vaults/{name}", self.delete_vault)
        add("PUT", rg + KV + "/vaults/{name}/accessPolicies/{kind}", self.put_access_policies)
        for prefix in ("", "{scope:path}"):
            add("GET", prefix + AUTHZ + "/roleDefinitions", self.list_role_definitions)
            add("GET", prefix + AUTHZ + "/roleDefinitions/{guid}", self.get_role_definition)
            add("GET", prefix + AUTHZ + "/roleAssignments", self.list_role_assignments)
            add("PUT", prefix + AUTHZ + "/roleAssignments/{ra}", self.put_role_assignment)
            add("GET", prefix + AUTHZ + "/roleAssignments/{ra}", self.get_role_assignment)
            add("DELETE", prefix + AUTHZ + "/roleAssignments/{ra}", self.delete_role_assignment)

    def _add(self, method: str, template: str, fn: Callable[..., Response]) -> None:
        provider = ("keyvault" if "Microsoft.KeyVault" in template else
                    "authorization" if "Microsoft.Authorization" in template else "resources")

        def run(req: Request, **params: str) -> Response:
            self._check_api_version(req, provider, params)
            caller = self.caller(req)
            self._settle()
            return fn(req, caller, **params)

        self.router.add(method, template, run)

    def _check_api_version(self, req: Request, provider: str, params: dict[str, str]) -> None:
        version = req.query.get("api-version", [None])[0]
        if not version:
            raise self.error(400, "MissingApiVersionParameter",
                             "The api-version query parameter (?api-version=) is required for all requests.")
        supported = API_VERSIONS[provider]
        if version in supported:
            return
        if provider == "keyvault":
            rtype = ("locations/deletedVaults" if "deletedVaults" in req.path else
                     "checkNameAvailability" if "checkNameAvailability" in req.path else "vaults")
            raise self.error(400, "NoRegisteredProviderFound",
                             f"No registered resource provider found for location 'global' and API version "
                             f"'{version}' for type '{rtype}'. The supported api-versions are "
                             f"'{', '.join(sorted(supported))}'. The supported locations are "
                             f"'{', '.join(loc['name'] for loc in self.sb.state.locations)}'.")
        raise self.error(400, "InvalidApiVersionParameter",
                         f"The api-version '{version}' is invalid. The supported versions are "
                         f"'{','.join(supported)}'.")

    # --- common helpers ---------------------------------------------------------------------------------
    def _sub(self, caller: Caller, sub_id: str) -> tuple[Tenant, JSON]:
        if not is_guid(sub_id):
            raise self.error(400, "InvalidSubscriptionId",
                             f"The provided subscription identifier '{sub_id}' is malformed or invalid.")
        found = find_subscription(self.sb.state, sub_id)
        if found is None:
            raise self.error(404, "SubscriptionNotFound", f"The subscription '{sub_id}' could not be found.")
        tenant, sub = found
        if caller.tenant_id.lower() != tenant.id.lower():
            iss = f"https://sts.windows.net/{caller.tenant_id}/"
            raise self.error(401, "InvalidAuthenticationTokenTenant",
                             f"The access token is from the wrong issuer '{iss}'. It must match the tenant "
                             f"'https://sts.windows.net/{tenant.id}/' associated with this subscription. Please "
                             f"use the authority (URL) 'https://login.windows.net/{tenant.id}' to get the token. "
                             f"Note, if the subscription is transferred to another tenant there is no impact to "
                             f"the services, but information about new tenant could take time to propagate (up "
                             f"to an hour). If you just transferred your subscription and see this error "
                             f"message, please try back later.",
                             [("WWW-Authenticate", f'Bearer authorization_uri="https://login.windows.net/'
                               f'{tenant.id}", error="invalid_token", error_description="The access token is '
                               f'from the wrong issuer."')])
        return tenant, sub

    def _authorize(self, tenant: Tenant, caller: Caller, scope: str, action: str) -> None:
        if not is_allowed(tenant, caller.object_id, scope, action):
            who = caller.upn or caller.app_id
            raise self.error(403, "AuthorizationFailed",
                             f"The client '{who}' with object id '{caller.object_id}' does not have "
                             f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
                             f"invalid. If access was recently granted, please refresh your credentials.")
        parts = scope.split("/")
        if not action.lower().endswith("/read") and len(parts) > 2 and parts[1].lower() == "subscriptions":
            found = find_subscription(self.sb.state, parts[2])
            if found is not None and found[1].get("state") in ("Disabled", "Deleted"):
                raise self.error(409, "ReadOnlyDisabledSubscription",
                                 f"The subscription '{found[1]['subscriptionId']}' is disabled and therefore "
                                 "marked as read only. You cannot perform any write actions on this subscription "
                                 "until it is re-enabled.")

    def _body(self, req: Request) -> JSON:
        if not req.body:
            raise self.error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                             "deserialized: 'The request body is empty.'.")
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self.error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                             f"deserialized: '{exc.__class__.__name__} while reading the JSON body.'.") from None
        if not isinstance(body, dict):
            raise self.error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                             "deserialized: 'The JSON body must be an object.'.")
        return body

    def _page(self, req: Request, items: list[JSON], default_size: int = 100) -> Response:
        size = int(self.sb.state.settings.get("arm_page_size", default_size) or default_size)
        raw_skip = req.q("$skiptoken") or "0"
        if not raw_skip.isdigit() or len(raw_skip) > 9:
            raise self.error(400, "InvalidSkipToken", f"The skip token '{raw_skip}' is invalid.")
        top_raw = req.q("$top")
        if top_raw is not None:
            if not top_raw.isdigit() or not 1 <= int(top_raw) <= 1000:
                raise self.error(400, "InvalidTopInQueryString",
                                 f"The value '{top_raw}' of query parameter '$top' is invalid. It must be an "
                                 f"integer between 1 and 1000.")
            items = items[:int(top_raw)]
        skip = int(raw_skip)
        out: JSON = {"value": items[skip:skip + size]}
        if skip + size < len(items):
            query = {k: v[0] for k, v in req.query.items() if k not in ("$skiptoken", "skiptoken")}
            query["$skiptoken"] = str(skip + size)
            out["nextLink"] = f"{req.base_url}{req.path}?{urlencode(query)}"
        return Response.json(out)

    def _location(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        low = value.replace(" ", "").lower()
        for loc in self.sb.state.locations:
            if loc["name"] == low or loc["displayName"].replace(" ", "").lower() == low:
                return str(loc["name"])
        return None

    def _system_data(self, caller: Caller, created: JSON | None = None) -> JSON:
        now = iso_arm(self.sb.clock.now())
        who = caller.upn or caller.app_id
        kind = "Application" if caller.is_app else "User"
        base = created or {"createdBy": who, "createdByType": kind, "createdAt": now}
        return {"createdBy": base.get("createdBy"), "createdByType": base.get("createdByType"),
                "createdAt": base.get("createdAt"), "lastModifiedBy": who, "lastModifiedByType": kind,
                "lastModifiedAt": now}

    # --- long-running operations and time-based cleanup ---------------------------------------------------
    def _settle(self) -> None:
        st = self.sb.state
        now = self.sb.clock.now()
        for t in st.tenants.values():
            ops = t.col("arm.operations")
            for op in list(ops.values()):
                if op.get("status") == "InProgress" and now >= float(op["doneAt"]):
                    self._finish(t, op)
            deleted = t.col("arm.deletedVaults")
            for name, dv in list(deleted.items()):
                if now >= float(dv.get("_purgeAt", math.inf)):
                    self._purge_now(t, name)

    def _finish(self, tenant: Tenant, op: JSON) -> None:
        op["status"] = "Succeeded"
        if op["kind"] == "resourceGroupDelete":
            rg_key = str(op["target"]).lower()
            for name, v in list(tenant.col("arm.vaults").items()):
                if str(v["id"]).lower().startswith(rg_key + "/"):
                    self._soft_delete(tenant, name)
            tenant.col("arm.resourceGroups").pop(rg_key, None)
            ras = tenant.col("arm.roleAssignments")
            for rid in [k for k, a in ras.items() if str(a["properties"]["scope"]).lower() == rg_key
                        or str(a["properties"]["scope"]).lower().startswith(rg_key + "/")]:
                del ras[rid]
        elif op["kind"] == "vaultPurge":
            self._purge_now(tenant, str(op["target"]))
        self.sb.state.touch()

    def _start_operation(self, req: Request, tenant: Tenant, sub_id: str, kind: str, target: str,
                         location: str = "") -> Response:
        op_id = uuid.uuid4().hex.upper()
        duration = float(self.sb.state.settings.get("arm_lro_seconds", 15))
        op = {"id": op_id, "kind": kind, "target": target, "subscriptionId": sub_id, "location": location,
              "doneAt": self.sb.clock.now() + duration, "polls": 0, "status": "InProgress"}
        tenant.col("arm.operations")[op_id] = op
        self.sb.state.touch()
        version = req.query.get("api-version", [""])[0]
        if kind == "vaultPurge":
            url = f"{req.base_url}/subscriptions/{sub_id}{KV}/locations/{location}/operationResults/{op_id}"
        else:
            url = f"{req.base_url}/subscriptions/{sub_id}/operationresults/{op_id}"
        url += "?" + urlencode({"api-version": version})
        return Response.empty(202, [("Location", url), ("Retry-After", self._retry_after(op))])

    def _retry_after(self, op: JSON) -> str:
        remaining = max(0.0, float(op["doneAt"]) - self.sb.clock.now())
        return str(math.ceil(self.sb.clock.real_seconds(remaining)))

    def get_operation(self, req: Request, caller: Caller, sub: str, op: str, loc: str = "") -> Response:
        tenant, _ = self._sub(caller, sub)
        record = tenant.col("arm.operations").get(op.upper())
        if record is None or record["subscriptionId"].lower() != sub.lower():
            raise self.error(404, "NotFound", f"The operation '{op}' could not be found.")
        self._authorize(tenant, caller, f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/read")
        record["polls"] = int(record["polls"]) + 1
        if record["status"] == "InProgress" or record["polls"] == 1:
            return Response.empty(202, [("Location", f"{req.base_url}{req.target}"),
                                        ("Retry-After", self._retry_after(record))])
        return Response.empty(200)

    # --- subscriptions, tenants, locations ----------------------------------------------------------------
    def list_subscriptions(self, req: Request, caller: Caller) -> Response:
        tenant = self.sb.state.tenant(caller.tenant_id, by_key=False)
        subs: list[JSON] = []
        if tenant is not None:
            for sid, sub in tenant.col("arm.subscriptions").items():
                if has_any_role_within(tenant, caller.object_id, f"/subscriptions/{sid}"):
                    subs.append(public(sub))
        return self._page(req, subs)

    def list_tenants(self, req: Request, caller: Caller) -> Response:
        tenant = self.sb.state.tenant(caller.tenant_id, by_key=False)
        rows = [] if tenant is None else [{
            "id": f"/tenants/{tenant.id}", "tenantId": tenant.id, "tenantCategory": "Home",
            "country": "US", "countryCode": "US", "displayName": tenant.display_name,
            "domains": tenant.domain_names(), "defaultDomain": tenant.initial_domain, "tenantType": "AAD"}]
        return self._page(req, rows)

    def get_subscription(self, req: Request, caller: Caller, sub: str) -> Response:
        tenant, record = self._sub(caller, sub)
        if not has_any_role_within(tenant, caller.object_id, f"/subscriptions/{sub}"):
            self._authorize(tenant, caller, f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/read")
        return Response.json(public(record))

    def list_locations(self, req: Request, caller: Caller, sub: str) -> Response:
        tenant, record = self._sub(caller, sub)
        if not has_any_role_within(tenant, caller.object_id, f"/subscriptions/{sub}"):
            self._authorize(tenant, caller, f"/subscriptions/{sub}",
                            "Microsoft.Resources/subscriptions/locations/read")
        sid = record["subscriptionId"]
        rows = []
        for loc in self.sb.state.locations:
            row = dict(loc)
            row["id"] = f"/subscriptions/{sid}/locations/{loc['name']}"
            row["metadata"] = {"regionType": "Physical", "regionCategory": "Recommended"}
            rows.append(row)
        return Response.json({"value": rows})

    # --- resource providers ------------------------------------------------------------------------------
    # A subscription's `_providers` {namespace (lower): "Registered"|"NotRegistered"|"Registering", ...}; a
    # namespace not listed is Registered, so scenarios only mark the ones a story needs unregistered.
    def _provider_state(self, sub: JSON, ns: str) -> str:
        providers = sub.setdefault("_providers", {})
        state = str(providers.get(ns.lower(), "Registered"))
        if state == "Registering" and self.sb.clock.now() >= float(sub.get("_registeredAt", {}).get(ns.lower(), 0)):
            providers[ns.lower()] = state = "Registered"
            self.sb.state.touch()
        return state

    def _provider_json(self, sub: JSON, ns: str) -> JSON:
        known = {"microsoft.keyvault": ("Microsoft.KeyVault", ["vaults", "deletedVaults", "checkNameAvailability",
                                                               "locations", "operations"]),
                 "microsoft.resources": ("Microsoft.Resources", ["subscriptions", "resourceGroups"]),
                 "microsoft.authorization": ("Microsoft.Authorization", ["roleAssignments", "roleDefinitions"])}
        name, types = known.get(ns.lower(), (ns, []))
        return {"id": f"/subscriptions/{sub['subscriptionId']}/providers/{name}", "namespace": name,
                "registrationState": self._provider_state(sub, ns), "registrationPolicy": "RegistrationRequired",
                "resourceTypes": [{"resourceType": t, "locations": [loc["displayName"] for loc in
                                                                    self.sb.state.locations],
                                   "apiVersions": API_VERSIONS["keyvault" if name == "Microsoft.KeyVault" else
                                                               "authorization" if name == "Microsoft.Authorization"
                                                               else "resources"]} for t in types]}

    def get_provider(self, req: Request, caller: Caller, sub: str, ns: str) -> Response:
        tenant, record = self._sub(caller, sub)
        if not has_any_role_within(tenant, caller.object_id, f"/subscriptions/{sub}"):
            self._authorize(tenant, caller, f"/subscriptions/{sub}", "Microsoft.Resources/subscriptions/read")
        return Response.json(self._provider_json(record, ns))

    def register_provider(self, req: Request, caller: Caller, sub: str, ns: str) -> Response:
        tenant, record = self._sub(caller, sub)
        self._authorize(tenant, caller, f"/subscriptions/{sub}", f"{ns}/register/action")
        if self._provider_state(record, ns) != "Registered":
            record["_providers"][ns.lower()] = "Registering"
            record.setdefault("_registeredAt", {})[ns.lower()] = (
                self.sb.clock.now() + float(self.sb.state.settings.get("arm_lro_seconds", 15)))
            self.sb.state.touch()
        return Response.json(self._provider_json(record, ns))

    def _require_provider(self, sub: JSON, ns: str) -> None:
        if self._provider_state(sub, ns) != "Registered":
            raise self.error(409, "MissingSubscriptionRegistration", f"The subscription is not registered to use "
                             f"namespace '{ns}'. See https://aka.ms/rps-not-found for how to register "
                             "subscriptions.")

    # --- resource groups -----------------------------------------------------------------------------------
    def _rg_id(self, sub: str, rg: str) -> str:
        return f"/subscriptions/{sub}/resourceGroups/{rg}"

    def _rg(self, tenant: Tenant, sub: str, rg: str) -> JSON:
        group = tenant.col("arm.resourceGroups").get(self._rg_id(sub, rg).lower())
        if group is None:
            raise self.error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        return group

    def list_groups(self, req: Request, caller: Caller, sub: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        scope = f"/subscriptions/{sub}"
        prefix = scope.lower() + "/"
        rows = [public(g) for k, g in tenant.col("arm.resourceGroups").items() if k.startswith(prefix)
                and is_allowed(tenant, caller.object_id, g["id"], "Microsoft.Resources/subscriptions/resourceGroups/read")]
        if not rows:
            self._authorize(tenant, caller, scope, "Microsoft.Resources/subscriptions/resourceGroups/read")
        return self._page(req, rows)

    def put_group(self, req: Request, caller: Caller, sub: str, rg: str) -> Response:
        tenant, record = self._sub(caller, sub)
        if not RG_NAME_RE.match(rg) or rg.endswith("."):
            raise self.error(400, "InvalidResourceGroup", f"The provided resource group name '{rg}' has these "
                             "invalid characters: the name must be 1-90 characters of letters, digits, "
                             "underscores, parentheses, hyphens and periods, and must not end in a period.")
        rid = self._rg_id(record["subscriptionId"], rg)
        self._authorize(tenant, caller, rid, "Microsoft.Resources/subscriptions/resourceGroups/write")
        body = self._body(req)
        location = self._location(body.get("location"))
        if location is None:
            if "location" not in body:
                raise self.error(400, "LocationRequired", "The location property is required for this definition.")
            names = ",".join(loc["name"] for loc in self.sb.state.locations)
            raise self.error(400, "LocationNotAvailableForResourceGroup",
                             f"The provided location '{body.get('location')}' is not available for resource "
                             f"group. List of available regions is '{names}'.")
        tags = body.get("tags", {})
        if tags is None:
            tags = {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise self.error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                             "deserialized: 'tags must be an object of strings.'.")
        groups = tenant.col("arm.resourceGroups")
        existing = groups.get(rid.lower())
        if existing is not None:
            if existing["properties"]["provisioningState"] == "Deleting":
                raise self.error(409, "ResourceGroupBeingDeleted", f"The resource group '{existing['name']}' is "
                                 "in deprovisioning state and cannot perform this operation.")
            if existing["location"] != location:
                raise self.error(409, "InvalidResourceGroupLocation",
                                 f"Invalid resource group location '{location}'. The Resource group already "
                                 f"exists in location '{existing['location']}'.")
            existing["tags"] = tags
            self.sb.state.touch()
            return Response.json(public(existing), 200)
        group = {"id": rid, "name": rg, "type": "Microsoft.Resources/resourceGroups", "location": location,
                 "tags": tags, "properties": {"provisioningState": "Succeeded"}}
        groups[rid.lower()] = group
        self.sb.state.touch()
        return Response.json(public(group), 201)

    def get_group(self, req: Request, caller: Caller, sub: str, rg: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        rid = self._rg_id(sub, rg)
        self._authorize(tenant, caller, rid, "Microsoft.Resources/subscriptions/resourceGroups/read")
        return Response.json(public(self._rg(tenant, sub, rg)))

    def head_group(self, req: Request, caller: Caller, sub: str, rg: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        rid = self._rg_id(sub, rg)
        self._authorize(tenant, caller, rid, "Microsoft.Resources/subscriptions/resourceGroups/read")
        return Response.empty(204 if rid.lower() in tenant.col("arm.resourceGroups") else 404)

    def patch_group(self, req: Request, caller: Caller, sub: str, rg: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        rid = self._rg_id(sub, rg)
        self._authorize(tenant, caller, rid, "Microsoft.Resources/subscriptions/resourceGroups/write")
        group = self._rg(tenant, sub, rg)
        body = self._body(req)
        if "tags" in body:
            if not isinstance(body["tags"], dict) or not all(isinstance(v, str) for v in body["tags"].values()):
                raise self.error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                                 "deserialized: 'tags must be an object of strings.'.")
            group["tags"] = body["tags"]
            self.sb.state.touch()
        return Response.json(public(group))

    def delete_group(self, req: Request, caller: Caller, sub: str, rg: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        rid = self._rg_id(sub, rg)
        self._authorize(tenant, caller, rid, "Microsoft.Resources/subscriptions/resourceGroups/delete")
        group = self._rg(tenant, sub, rg)
        group["properties"]["provisioningState"] = "Deleting"
        return self._start_operation(req, tenant, sub, "resourceGroupDelete", group["id"])

    # --- Key Vault vaults ---------------------------------------------------------------------------------------
    def _vault_id(self, sub: str, rg: str, name: str) -> str:
        return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}"

    def _name_taken_message(self, name: str) -> str:
        return (f"The vault name '{name}' is already in use. Vault names are globally unique so it is possible "
                f"that the name is already taken. If you are sure that the vault name was not taken then it is "
                f"possible that a vault with the same name was recently deleted but not purged after being "
                f"placed in a recoverable state. If the vault is in a recoverable state then the vault will need "
                f"to be purged before reusing the name. For more information on VaultAlreadyExists, soft delete "
                f"and purging a vault follow this link https://go.microsoft.com/fwlink/?linkid=2147740.")

    def _deleted_anywhere(self, name: str) -> tuple[Tenant, JSON] | None:
        low = name.lower()
        for t in self.sb.state.tenants.values():
            dv = t.col("arm.deletedVaults").get(low)
            if dv is not None:
                return t, dv
        return None

    def check_name(self, req: Request, caller: Caller, sub: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        self._authorize(tenant, caller, f"/subscriptions/{sub}", "Microsoft.KeyVault/checkNameAvailability/read")
        body = self._body(req)
        name, rtype = body.get("name"), body.get("type")
        if not isinstance(name, str) or not name:
            raise self.error(400, "BadRequest", "The 'name' property is required.")
        if rtype != "Microsoft.KeyVault/vaults":
            raise self.error(400, "BadRequest", f"The resource type '{rtype}' is not valid; the only valid value "
                             "is 'Microsoft.KeyVault/vaults'.")
        if not VAULT_NAME_RE.match(name):
            return Response.json({"nameAvailable": False, "reason": "AccountNameInvalid",
                                  "message": f"Vault name '{name}' is invalid. The name must be 3-24 characters "
                                             "long, begin with a letter, end with a letter or digit, and contain "
                                             "only alphanumeric characters and hyphens (no consecutive hyphens)."})
        if find_vault(self.sb.state, name) is not None or self._deleted_anywhere(name) is not None:
            return Response.json({"nameAvailable": False, "reason": "AlreadyExists",
                                  "message": self._name_taken_message(name)})
        return Response.json({"nameAvailable": True})

    def _vault_json(self, vault: JSON) -> JSON:
        return public(vault)

    def _validate_policies(self, policies: Any) -> list[JSON]:
        if not isinstance(policies, list):
            raise self.error(400, "BadRequest", "The property 'accessPolicies' must be an array.")
        out: list[JSON] = []
        if len(policies) > 1024:
            raise self.error(400, "BadRequest", "A vault can have at most 1024 access policies.")
        for i, p in enumerate(policies):
            if not isinstance(p, dict) or not is_guid(p.get("tenantId")) or not is_guid(p.get("objectId")):
                raise self.error(400, "BadRequest", f"Access policy {i}: 'tenantId' and 'objectId' must be GUIDs.")
            perms = p.get("permissions")
            if not isinstance(perms, dict):
                raise self.error(400, "BadRequest", f"Access policy {i}: 'permissions' is required.")
            clean: JSON = {}
            for kind, values in perms.items():
                if kind not in PERM_SETS or not isinstance(values, list):
                    raise self.error(400, "BadRequest", f"Access policy {i}: unknown permission kind '{kind}'.")
                bad = [v for v in values if not isinstance(v, str) or v.lower() not in PERM_SETS[kind]]
                if bad:
                    raise self.error(400, "BadRequest", f"Access policy {i}: invalid {kind} permission(s) "
                                     f"{bad!r}; valid: {sorted(PERM_SETS[kind])}.")
                clean[kind] = [v.lower() for v in values]
            entry: JSON = {"tenantId": p["tenantId"], "objectId": p["objectId"], "permissions": clean}
            if p.get("applicationId") is not None:
                if not is_guid(p["applicationId"]):
                    raise self.error(400, "BadRequest", f"Access policy {i}: 'applicationId' must be a GUID.")
                entry["applicationId"] = p["applicationId"]
            out.append(entry)
        return out

    def _apply_vault_properties(self, props: JSON, given: JSON, *, creating: bool, api_version: str) -> None:
        """Validate and merge `given` (request properties) into `props` (the stored vault properties)."""
        if "tenantId" in given or creating:
            if not is_guid(given.get("tenantId")):
                raise self.error(400, "BadRequest", "The property 'tenantId' is required and must be a GUID.")
            props["tenantId"] = given["tenantId"]
        if "sku" in given or creating:
            sku = given.get("sku")
            if (not isinstance(sku, dict) or str(sku.get("name", "")).lower() not in ("standard", "premium")
                    or sku.get("family", "A") != "A"):
                raise self.error(400, "BadRequest", "The property 'sku' is required: {\"family\": \"A\", "
                                 "\"name\": \"standard\" | \"premium\"}.")
            props["sku"] = {"family": "A", "name": str(sku["name"]).lower()}
        if "accessPolicies" in given:
            props["accessPolicies"] = self._validate_policies(given["accessPolicies"] or [])
        elif creating:
            props["accessPolicies"] = []
        for flag in ("enabledForDeployment", "enabledForDiskEncryption", "enabledForTemplateDeployment"):
            if flag in given:
                if not isinstance(given[flag], bool):
                    raise self.error(400, "BadRequest", f"The property '{flag}' must be a boolean.")
                props[flag] = given[flag]
            elif creating:
                props[flag] = False
        if given.get("enableRbacAuthorization") is not None:
            if not isinstance(given["enableRbacAuthorization"], bool):
                raise self.error(400, "BadRequest", "The property 'enableRbacAuthorization' must be a boolean.")
            props["enableRbacAuthorization"] = given["enableRbacAuthorization"]
        elif creating:
            props["enableRbacAuthorization"] = api_version[:10] >= RBAC_DEFAULT_SINCE
        if given.get("enableSoftDelete") is not None:
            if given["enableSoftDelete"] is not True:
                raise self.error(400, "BadRequest", "The property \"enableSoftDelete\" cannot be set to false. "
                                 "Enabling the soft delete for a vault is an irreversible action.")
        props["enableSoftDelete"] = True
        if given.get("softDeleteRetentionInDays") is not None:
            days = given["softDeleteRetentionInDays"]
            if isinstance(days, bool) or not isinstance(days, int) or not 7 <= days <= 90:
                raise self.error(400, "BadRequest", "The property \"softDeleteRetentionInDays\" has an invalid "
                                 "value. Valid values are in range [7, 90].")
            if not creating and days != props.get("softDeleteRetentionInDays"):
                raise self.error(400, "BadRequest", "The property \"softDeleteRetentionInDays\" cannot be "
                                 "changed once the vault is created.")
            props["softDeleteRetentionInDays"] = days
        elif creating:
            props["softDeleteRetentionInDays"] = 90
        if given.get("enablePurgeProtection") is not None:
            if given["enablePurgeProtection"] is not True:
                if props.get("enablePurgeProtection") is True or given["enablePurgeProtection"] is not False:
                    raise self.error(400, "BadRequest", "The property \"enablePurgeProtection\" cannot be set to "
                                     "false. Enabling the purge protection for a vault is an irreversible action.")
            else:
                props["enablePurgeProtection"] = True
        if given.get("publicNetworkAccess") is not None:
            if given["publicNetworkAccess"] not in ("Enabled", "Disabled"):
                raise self.error(400, "BadRequest", "The property 'publicNetworkAccess' must be 'Enabled' or "
                                 "'Disabled'.")
            props["publicNetworkAccess"] = given["publicNetworkAccess"]
        elif creating:
            props["publicNetworkAccess"] = "Enabled"

    def put_vault(self, req: Request, caller: Caller, sub: str, rg: str, name: str) -> Response:
        tenant, sub_record = self._sub(caller, sub)
        group = self._rg(tenant, sub, rg)
        vid = self._vault_id(sub, group["name"], name)
        self._authorize(tenant, caller, vid, "Microsoft.KeyVault/vaults/write")
        self._require_provider(sub_record, "Microsoft.KeyVault")
        if not VAULT_NAME_RE.match(name):
            raise self.error(400, "VaultNameNotValid", f"The vault name '{name}' is invalid. A vault's name must "
                             "be between 3-24 alphanumeric characters. The name must begin with a letter, end "
                             "with a letter or digit, and not contain consecutive hyphens. Follow this link for "
                             "more information: https://go.microsoft.com/fwlink/?linkid=2147742")
        body = self._body(req)
        given = body.get("properties")
        if not isinstance(given, dict):
            raise self.error(400, "BadRequest", "The property 'properties' is required.")
        location = self._location(body.get("location"))
        if location is None:
            raise self.error(400, "LocationRequired" if "location" not in body else "LocationNotAvailableForResourceType",
                             "The location property is required for this definition." if "location" not in body
                             else f"The provided location '{body.get('location')}' is not available for resource "
                                  f"type 'Microsoft.KeyVault/vaults'.")
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise self.error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                             "deserialized: 'tags must be an object of strings.'.")
        api_version = req.query["api-version"][0]
        vaults = tenant.col("arm.vaults")
        existing = find_vault(self.sb.state, name)
        if existing is not None and str(existing[1]["id"]).lower() != vid.lower():
            raise self.error(409, "VaultAlreadyExists", self._name_taken_message(name))
        recover = given.get("createMode") == "recover"
        if existing is None:
            deleted = self._deleted_anywhere(name)
            if deleted is not None and not recover:
                raise self.error(409, "ConflictError", "Exist soft deleted vault with the same name. ")
            if recover:
                if deleted is None or deleted[0] is not tenant:
                    raise self.error(404, "ResourceNotFound", f"A deleted vault with name '{name}' was not found "
                                     "in this subscription.")
                old = tenant.col("arm.deletedVaults").pop(name.lower())["_vault"]
                old["id"], old["location"] = vid, location
                old["properties"]["provisioningState"] = "Succeeded"
                old["systemData"] = self._system_data(caller, old.get("systemData"))
                vaults[name.lower()] = old
                self.sb.state.touch()
                return Response.json(self._vault_json(old), 200)
            props: JSON = {}
            self._apply_vault_properties(props, given, creating=True, api_version=api_version)
            props["vaultUri"] = f"{self.sb.urls['vault']}/{name}/"
            props["provisioningState"] = "Succeeded"
            vault: JSON = {"id": vid, "name": name, "type": "Microsoft.KeyVault/vaults", "location": location,
                     "tags": tags, "systemData": self._system_data(caller), "properties": props}
            vaults[name.lower()] = vault
            self.sb.state.touch()
            return Response.json(self._vault_json(vault), 201)
        vault = existing[1]
        if vault["location"] != location:
            raise self.error(400, "InvalidResourceLocation",
                             f"The resource '{name}' already exists in location '{vault['location']}' in resource "
                             f"group '{group['name']}'. A resource with the same name cannot be created in "
                             f"location '{location}'. Please select a new resource name.")
        self._apply_vault_properties(vault["properties"], given, creating=False, api_version=api_version)
        vault["tags"] = tags
        vault["systemData"] = self._system_data(caller, vault.get("systemData"))
        self.sb.state.touch()
        return Response.json(self._vault_json(vault), 200)

    def _vault(self, tenant: Tenant, sub: str, rg: str, name: str) -> JSON:
        self._rg(tenant, sub, rg)
        vault = tenant.col("arm.vaults").get(name.lower())
        if vault is None or str(vault["id"]).lower() != self._vault_id(sub, rg, name).lower():
            raise self.error(404, "ResourceNotFound", f"The Resource 'Microsoft.KeyVault/vaults/{name}' under "
                             f"resource group '{rg}' was not found. For more details please go to "
                             "https://aka.ms/ARMResourceNotFoundFix")
        return vault

    def patch_vault(self, req: Request, caller: Caller, sub: str, rg: str, name: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        self._authorize(tenant, caller, self._vault_id(sub, rg, name), "Microsoft.KeyVault/vaults/write")
        vault = self._vault(tenant, sub, rg, name)
        body = self._body(req)
        given = body.get("properties") or {}
        if not isinstance(given, dict):
            raise self.error(400, "BadRequest", "The property 'properties' must be an object.")
        self._apply_vault_properties(vault["properties"], given, creating=False,
                                     api_version=req.query["api-version"][0])
        if "tags" in body:
            if not isinstance(body["tags"], dict):
                raise self.error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                                 "deserialized: 'tags must be an object of strings.'.")
            vault["tags"] = body["tags"]
        vault["systemData"] = self._system_data(caller, vault.get("systemData"))
        self.sb.state.touch()
        return Response.json(self._vault_json(vault))

    def put_access_policies(self, req: Request, caller: Caller, sub: str, rg: str, name: str,
                            kind: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        self._authorize(tenant, caller, self._vault_id(sub, rg, name), "Microsoft.KeyVault/vaults/accessPolicies/write")
        vault = self._vault(tenant, sub, rg, name)
        if kind.lower() not in ("add", "replace", "remove"):
            raise self.error(400, "BadRequest", f"The operation kind '{kind}' is invalid; use add, replace or remove.")
        body = self._body(req)
        given = body.get("properties")
        if not isinstance(given, dict):
            raise self.error(400, "BadRequest", "The property 'properties.accessPolicies' is required.")
        policies = self._validate_policies(given.get("accessPolicies"))
        current: list[JSON] = vault["properties"].setdefault("accessPolicies", [])
        for p in policies:
            match = next((c for c in current if c["objectId"].lower() == p["objectId"].lower()
                          and c["tenantId"].lower() == p["tenantId"].lower()
                          and c.get("applicationId") == p.get("applicationId")), None)
            if kind.lower() == "replace" or match is None:
                if match is not None:
                    current.remove(match)
                if kind.lower() != "remove":
                    current.append(p)
                continue
            for perm_kind, values in p["permissions"].items():
                have = match["permissions"].setdefault(perm_kind, [])
                if kind.lower() == "add":
                    have.extend(v for v in values if v not in have)
                else:
                    match["permissions"][perm_kind] = [v for v in have if v not in values]
        self.sb.state.touch()
        return Response.json({"id": f"{vault['id']}/accessPolicies/{kind.lower()}", "type":
                              "Microsoft.KeyVault/vaults/accessPolicies", "properties": {"accessPolicies": policies}})

    def get_vault(self, req: Request, caller: Caller, sub: str, rg: str, name: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        self._authorize(tenant, caller, self._vault_id(sub, rg, name), "Microsoft.KeyVault/vaults/read")
        return Response.json(self._vault_json(self._vault(tenant, sub, rg, name)))

    def list_vaults_rg(self, req: Request, caller: Caller, sub: str, rg: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        group = self._rg(tenant, sub, rg)
        self._authorize(tenant, caller, group["id"], "Microsoft.KeyVault/vaults/read")
        prefix = str(group["id"]).lower() + "/"
        rows = [self._vault_json(v) for v in tenant.col("arm.vaults").values() if str(v["id"]).lower().startswith(prefix)]
        return self._page(req, sorted(rows, key=lambda v: str(v["name"]).lower()))

    def list_vaults_sub(self, req: Request, caller: Caller, sub: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        prefix = f"/subscriptions/{sub}/".lower()
        rows = [self._vault_json(v) for v in tenant.col("arm.vaults").values()
                if str(v["id"]).lower().startswith(prefix)
                and is_allowed(tenant, caller.object_id, v["id"], "Microsoft.KeyVault/vaults/read")]
        if not rows:
            self._authorize(tenant, caller, f"/subscriptions/{sub}", "Microsoft.KeyVault/vaults/read")
        return self._page(req, sorted(rows, key=lambda v: str(v["name"]).lower()))

    def _soft_delete(self, tenant: Tenant, name: str) -> JSON:
        vault = tenant.col("arm.vaults").pop(name.lower())
        now = self.sb.clock.now()
        days = int(vault["properties"].get("softDeleteRetentionInDays", 90))
        sub = str(vault["id"]).split("/")[2]
        deleted = {
            "id": f"/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{vault['location']}/deletedVaults/"
                  f"{vault['name']}",
            "name": vault["name"], "type": "Microsoft.KeyVault/deletedVaults",
            "properties": {"vaultId": vault["id"], "location": vault["location"], "deletionDate": iso_arm(now),
                           "scheduledPurgeDate": iso_arm(now + days * 86400), "tags": vault.get("tags", {}),
                           "purgeProtectionEnabled": bool(vault["properties"].get("enablePurgeProtection"))},
            "_vault": vault, "_purgeAt": now + days * 86400,
        }
        tenant.col("arm.deletedVaults")[name.lower()] = deleted
        self.sb.state.touch()
        return deleted

    def _purge_now(self, tenant: Tenant, name: str) -> None:
        """The vault and everything in it are gone for good; its name is free again."""
        low = name.lower()
        tenant.col("arm.deletedVaults").pop(low, None)
        for col in [c for c in list(tenant.collections) if c.startswith("kv.")]:
            items = tenant.col(col)
            for key in [k for k in items if k.split("/", 1)[0] == low]:
                del items[key]
        ras = tenant.col("arm.roleAssignments")
        for rid in [k for k, a in ras.items() if str(a["properties"]["scope"]).lower().endswith(
                f"/providers/microsoft.keyvault/vaults/{low}")]:
            del ras[rid]
        self.sb.state.touch()

    def delete_vault(self, req: Request, caller: Caller, sub: str, rg: str, name: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        self._authorize(tenant, caller, self._vault_id(sub, rg, name), "Microsoft.KeyVault/vaults/delete")
        self._rg(tenant, sub, rg)
        vault = tenant.col("arm.vaults").get(name.lower())
        if vault is None or str(vault["id"]).lower() != self._vault_id(sub, rg, name).lower():
            return Response.empty(204)
        self._soft_delete(tenant, name)
        return Response.empty(200)

    def list_deleted(self, req: Request, caller: Caller, sub: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        self._authorize(tenant, caller, f"/subscriptions/{sub}", "Microsoft.KeyVault/deletedVaults/read")
        prefix = f"/subscriptions/{sub}/".lower()
        rows = [public(d) for d in tenant.col("arm.deletedVaults").values() if str(d["id"]).lower().startswith(prefix)]
        return self._page(req, rows)

    def _deleted(self, tenant: Tenant, sub: str, loc: str, name: str) -> JSON:
        dv = tenant.col("arm.deletedVaults").get(name.lower())
        if (dv is None or not str(dv["id"]).lower().startswith(f"/subscriptions/{sub}/".lower())
                or dv["properties"]["location"].lower() != loc.lower()):
            raise self.error(404, "ResourceNotFound", f"The Resource 'Microsoft.KeyVault/locations/{loc}/"
                             f"deletedVaults/{name}' was not found. For more details please go to "
                             "https://aka.ms/ARMResourceNotFoundFix")
        return dv

    def get_deleted(self, req: Request, caller: Caller, sub: str, loc: str, name: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        self._authorize(tenant, caller, f"/subscriptions/{sub}", "Microsoft.KeyVault/locations/deletedVaults/read")
        return Response.json(public(self._deleted(tenant, sub, loc, name)))

    def purge_deleted(self, req: Request, caller: Caller, sub: str, loc: str, name: str) -> Response:
        tenant, _ = self._sub(caller, sub)
        self._authorize(tenant, caller, f"/subscriptions/{sub}",
                        "Microsoft.KeyVault/locations/deletedVaults/purge/action")
        dv = self._deleted(tenant, sub, loc, name)
        if dv["properties"].get("purgeProtectionEnabled"):
            raise self.error(409, "Conflict", f"Operation 'DeletedVaultPurge' is not allowed as the vault "
                             f"'{dv['name']}' has purge protection enabled. It will be purged on "
                             f"{dv['properties']['scheduledPurgeDate']}.")
        if any(op["kind"] == "vaultPurge" and op["target"] == name.lower() and op["status"] == "InProgress"
               for op in tenant.col("arm.operations").values()):
            raise self.error(409, "Conflict", f"A purge of the deleted vault '{dv['name']}' is already in progress.")
        return self._start_operation(req, tenant, sub, "vaultPurge", name.lower(), dv["properties"]["location"])

    # --- role definitions and assignments -------------------------------------------------------------------
    def _scope(self, caller: Caller, scope: str | None) -> tuple[Tenant, str]:
        """Validate an RBAC scope and return (tenant, canonical scope)."""
        scope = "/" + (scope or "").strip("/")
        parts = scope.strip("/").split("/")
        if scope == "/":
            tenant = self.sb.state.tenant(caller.tenant_id, by_key=False)
            if tenant is None:
                raise self.error(401, "InvalidAuthenticationTokenTenant", "The access token is from an unknown tenant.")
            return tenant, ""
        if parts[0].lower() != "subscriptions" or len(parts) < 2:
            raise self.error(400, "InvalidScope", f"The scope '{scope}' is not valid for this "
                             "operation.")
        tenant, sub = self._sub(caller, parts[1])
        canonical = f"/subscriptions/{sub['subscriptionId']}"
        if len(parts) == 2:
            return tenant, canonical
        if parts[2].lower() != "resourcegroups" or len(parts) < 4:
            raise self.error(400, "InvalidScope", f"The scope '{scope}' is not valid for this operation.")
        group = self._rg(tenant, sub["subscriptionId"], parts[3])
        if len(parts) == 4:
            return tenant, str(group["id"])
        if (len(parts) == 8 and parts[4].lower() == "providers" and parts[5].lower() == "microsoft.keyvault"
                and parts[6].lower() == "vaults"):
            vault = self._vault(tenant, sub["subscriptionId"], group["name"], parts[7])
            return tenant, str(vault["id"])
        raise self.error(404, "ResourceNotFound" if len(parts) > 4 else "InvalidScope",
                         f"The Resource '{'/'.join(parts[5:])}' under resource group '{parts[3]}' was not found. "
                         "For more details please go to https://aka.ms/ARMResourceNotFoundFix")

    def list_role_definitions(self, req: Request, caller: Caller, scope: str = "") -> Response:
        tenant, canonical = self._scope(caller, scope)
        if canonical:  # built-in definitions at the tenant root are readable by every signed-in caller
            self._authorize(tenant, caller, canonical, "Microsoft.Authorization/roleDefinitions/read")
        rows = all_role_definitions(canonical)
        flt = req.q("$filter")
        if flt:
            m = re.fullmatch(r"\s*(roleName|type)\s+eq\s+'((?:[^']|'')*)'\s*", flt)
            if m is None:
                raise self.error(400, "BadRequest",
                                 f"The filter '{flt}' is not supported. Supported filters are roleName eq "
                                 "'{value}' and type eq 'BuiltInRole'|'CustomRole'.")
            field, value = m.group(1), m.group(2).replace("''", "'")
            rows = [r for r in rows if str(r["properties"]["roleName" if field == "roleName" else "type"]).lower()
                    == value.lower()]
        return Response.json({"value": rows})

    def get_role_definition(self, req: Request, caller: Caller, guid: str, scope: str = "") -> Response:
        tenant, canonical = self._scope(caller, scope)
        if canonical:
            self._authorize(tenant, caller, canonical, "Microsoft.Authorization/roleDefinitions/read")
        definition = role_definition(canonical, guid) if is_guid(guid) else None
        if definition is None:
            raise self.error(404, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{guid}' "
                             "does not exist.")
        return Response.json(definition)

    def _ra_id(self, canonical: str, ra: str) -> str:
        return f"{canonical}/providers/Microsoft.Authorization/roleAssignments/{ra}"

    def _principal(self, tenant: Tenant, principal_id: str) -> tuple[str, bool] | None:
        """(principalType, visible) of a directory object in the tenant, or None."""
        for col, kind in (("users", "User"), ("servicePrincipals", "ServicePrincipal"), ("groups", "Group")):
            for obj in tenant.col(col).values():
                if str(obj.get("id", "")).lower() == principal_id.lower():
                    return kind, self.sb.state.visible(obj)
        return None

    def put_role_assignment(self, req: Request, caller: Caller, ra: str, scope: str = "") -> Response:
        tenant, canonical = self._scope(caller, scope)
        if not canonical:
            raise self.error(400, "InvalidScope", "Role assignments at the tenant root are not supported here.")
        if not is_guid(ra):
            raise self.error(400, "InvalidRoleAssignmentId", f"The role assignment ID '{ra}' is not valid. The "
                             "role assignment ID must be a GUID.")
        self._authorize(tenant, caller, canonical, "Microsoft.Authorization/roleAssignments/write")
        body = self._body(req)
        props = body.get("properties")
        if not isinstance(props, dict):
            raise self.error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                             "deserialized: 'properties' is required.'.")
        rd, principal, ptype = props.get("roleDefinitionId"), props.get("principalId"), props.get("principalType")
        if not isinstance(rd, str) or not is_guid(role_guid_of(rd)) or "/roledefinitions/" not in rd.lower():
            raise self.error(400, "InvalidRoleDefinitionId", f"The role definition ID '{rd}' is not valid.")
        guid = role_guid_of(rd)
        if guid not in ROLE_NAMES:
            raise self.error(400, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{guid}' "
                             "does not exist.")
        if not is_guid(principal):
            raise self.error(400, "InvalidPrincipalId", "A valid principal ID must be provided for role "
                             "assignment.")
        if ptype is not None and ptype not in ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device"):
            raise self.error(400, "InvalidPrincipalType", f"The principal type '{ptype}' is not valid.")
        found = self._principal(tenant, str(principal))
        if found is None or (not found[1] and ptype is None):
            raise self.error(400, "PrincipalNotFound", f"Principal {str(principal).replace('-', '')} does not exist "
                             f"in the directory {tenant.id}. Check that you have the correct principal ID. If you "
                             "are creating this principal and then immediately assigning a role, this error might "
                             "be related to a replication delay. In this case, set the role assignment "
                             "principalType property to a value, such as ServicePrincipal, User, or Group.  See "
                             "https://aka.ms/docs-principaltype")
        if ptype is not None and ptype != found[0]:
            raise self.error(400, "UnmatchedPrincipalType", f"The PrincipalId '{str(principal).replace('-', '')}' "
                             f"has type '{found[0]}' , which is different from specified PrincipalType '{ptype}'.")
        full_rd = f"{canonical.split('/resourceGroups/')[0] if canonical.startswith('/subscriptions/') else ''}" \
                  f"/providers/Microsoft.Authorization/roleDefinitions/{guid}"
        rid = self._ra_id(canonical, ra.lower())
        assignments = tenant.col("arm.roleAssignments")
        existing = assignments.get(rid.lower())
        if existing is not None:
            ep = existing["properties"]
            if (ep["principalId"].lower() == str(principal).lower() and role_guid_of(ep["roleDefinitionId"]) == guid):
                return Response.json(public(existing), 201)
            raise self.error(400, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, "
                             "and scope are not allowed to be updated.")
        for a in assignments.values():
            ap = a["properties"]
            if (str(ap["scope"]).lower() == canonical.lower() and ap["principalId"].lower() == str(principal).lower()
                    and role_guid_of(ap["roleDefinitionId"]) == guid):
                raise self.error(409, "RoleAssignmentExists", "The role assignment already exists.")
        now = iso_arm(self.sb.clock.now())
        record = {"id": rid, "name": ra.lower(), "type": "Microsoft.Authorization/roleAssignments",
                  "properties": {"roleDefinitionId": full_rd, "principalId": str(principal).lower(),
                                 "principalType": found[0], "scope": canonical,
                                 "condition": props.get("condition"), "conditionVersion": props.get("conditionVersion"),
                                 "createdOn": now, "updatedOn": now, "createdBy": caller.object_id,
                                 "updatedBy": caller.object_id, "delegatedManagedIdentityResourceId": None,
                                 "description": props.get("description")}}
        assignments[rid.lower()] = record
        self.sb.state.touch()
        return Response.json(public(record), 201)

    def list_role_assignments(self, req: Request, caller: Caller, scope: str = "") -> Response:
        tenant, canonical = self._scope(caller, scope)
        self._authorize(tenant, caller, canonical or "/", "Microsoft.Authorization/roleAssignments/read")
        flt = (req.q("$filter") or "").strip()
        at_scope, principal, assigned_to = False, None, None
        for clause in [c.strip() for c in re.split(r"\s+and\s+", flt, flags=re.IGNORECASE) if c.strip()]:
            if clause.lower() == "atscope()":
                at_scope = True
                continue
            m = re.fullmatch(r"principalId\s+eq\s+'([^']*)'", clause, re.IGNORECASE)
            if m:
                principal = m.group(1).lower()
                continue
            m = re.fullmatch(r"assignedTo\('([^']*)'\)", clause, re.IGNORECASE)
            if m:
                assigned_to = m.group(1).lower()
                continue
            raise self.error(400, "UnsupportedQuery", f"The filter '{flt}' is not supported. Supported filters "
                             "are atScope(), principalId eq '{id}' and assignedTo('{id}').")
        low = canonical.lower()
        rows = []
        ids = principal_ids(tenant, assigned_to) if assigned_to else None
        for a in tenant.col("arm.roleAssignments").values():
            ap = a["properties"]
            a_scope = str(ap["scope"]).lower()
            above = low == a_scope or low.startswith(a_scope + "/") or a_scope == ""
            below = a_scope.startswith(low + "/") or low == ""
            if not (above or (below and not at_scope)):
                continue
            if principal is not None and ap["principalId"].lower() != principal:
                continue
            if ids is not None and ap["principalId"].lower() not in ids:
                continue
            rows.append(public(a))
        return self._page(req, rows)

    def get_role_assignment(self, req: Request, caller: Caller, ra: str, scope: str = "") -> Response:
        tenant, canonical = self._scope(caller, scope)
        self._authorize(tenant, caller, canonical or "/", "Microsoft.Authorization/roleAssignments/read")
        record = tenant.col("arm.roleAssignments").get(self._ra_id(canonical, ra).lower())
        if record is None:
            raise self.error(404, "RoleAssignmentNotFound", f"The role assignment '{ra}' is not found.")
        return Response.json(public(record))

    def delete_role_assignment(self, req: Request, caller: Caller, ra: str, scope: str = "") -> Response:
        tenant, canonical = self._scope(caller, scope)
        self._authorize(tenant, caller, canonical or "/", "Microsoft.Authorization/roleAssignments/delete")
        record = tenant.col("arm.roleAssignments").pop(self._ra_id(canonical, ra).lower(), None)
        if record is None:
            return Response.empty(204)
        self.sb.state.touch()
        return Response.json(public(record))


"""The identity platform: login.microsoftonline.com as msal and azure-identity use it (reference §6, §2.2, §7).

Routes (documented one by one in docs/sandbox/identity.md):
  discovery     GET /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/.well-known/openid-configuration,
                GET /{tenant}/discovery/v2.0/keys, /{tenant}/discovery/keys, GET /common/discovery/instance
  authorize     GET|POST /{tenant}/oauth2/v2.0/authorize   (account picker -> consent -> form_post or redirect)
  token         POST /{tenant}/oauth2/v2.0/token  (authorization_code, refresh_token, device_code, client_credentials)
  device code   POST /{tenant}/oauth2/v2.0/devicecode, GET|POST /devicelogin
  admin consent GET|POST /{tenant}/adminconsent and /{tenant}/v2.0/adminconsent
  sign-out      GET /{tenant}/oauth2/v2.0/logout

Errors use the real AADSTS codes and the real JSON shape (`error`, `error_description` with trace and
correlation ids, `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`).  Before a redirect
URI is known to be registered, the browser routes answer with an HTML error page instead (as the real
service does for AADSTS50011), never with a redirect.

Nothing secret is kept in plaintext: authorization codes and device codes live in this backend's memory
keyed by their SHA-256; refresh tokens are kept in `state.refresh_tokens` as SHA-256 records only.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .. import signin_pages as pages
from ..catalog import DELEGATED_SCOPES, RESOURCES, resource_for, stable_id
from ..directory import (
    app_roles_granted,
    ensure_service_principal,
    find_application,
    grant_app_role,
    has_any_role,
    parse_iso,
    required_app_roles,
    resource_service_principal,
    service_principal,
    user_role_template_ids,
)
from ..http import HttpError, Request, Response
from ..state import JSON, SandboxState, Tenant
from ..tokens import b64url, new_refresh_token, sha256_hex
from .base import Backend

GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
ASSERTION_TYPE_JWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
MULTI_TENANT_AUDIENCES = frozenset({"azureadmultipleorgs", "azureadandpersonalmicrosoftaccount"})
ADMIN_CONSENT_ROLES = ("Global Administrator", "Privileged Role Administrator",
                       "Cloud Application Administrator", "Application Administrator")
CODE_LIFETIME_SECONDS = 600
ASSERTION_CLOCK_SKEW = 300
DEVICE_POLL_INTERVAL = 5
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_SCOPE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,120}$")
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ23456789"


class _Fail(Exception):
    """An AADSTS failure found while validating; the route decides how it reaches the client."""

    def __init__(self, status: int, error: str, code: int, text: str, suberror: str | None = None) -> None:
        super().__init__(f"AADSTS{code}: {text}")
        self.status, self.error, self.code, self.text, self.suberror = status, error, code, text, suberror


@dataclass
class Client:
    """Who is signing in through us: a scenario public client or an app registration."""

    client_id: str
    name: str
    redirect_uris: list[str]
    app: JSON | None = None  # the app registration, when the client is one
    home: Tenant | None = None
    public_redirects: list[str] = field(default_factory=list)
    allow_device_code: bool = True

    @property
    def first_party(self) -> bool:
        return self.app is None

    @property
    def multi_tenant(self) -> bool:
        return self.app is None or str(self.app.get("signInAudience", "AzureADMyOrg")).lower() in MULTI_TENANT_AUDIENCES

    @property
    def is_public(self) -> bool:
        """May redeem codes without a client secret (mobile/desktop platform or 'allow public client flows')."""
        return self.app is None or bool(self.app.get("isFallbackPublicClient")) or bool(self.public_redirects)


@dataclass
class Scopes:
    """A scope parameter split the way the token endpoint needs it."""

    reserved: set[str]
    by_resource: dict[str, list[str]]  # canonical resource -> scope names ('.default' kept as is)

    def single(self) -> tuple[str, list[str]]:
        if not self.by_resource:
            return "https://graph.microsoft.com", ["User.Read"]
        resource, names = next(iter(self.by_resource.items()))
        return resource, names


def _now_stamp(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def redirect_uri_matches(registered: list[str], uri: str) -> bool:
    """Exact match, except that a registered loopback `http://localhost` / `http://127.0.0.1` URI
    matches any port (RFC 8252 §7.3), as Entra does for desktop apps."""
    if uri in registered:
        return True
    try:
        got = urlsplit(uri)
        got_port = got.port
    except ValueError:
        return False
    del got_port
    if got.scheme != "http" or got.hostname not in ("localhost", "127.0.0.1"):
        return False
    for reg in registered:
        try:
            want = urlsplit(reg)
            _ = want.port
        except ValueError:
            continue
        if (want.scheme == "http" and want.hostname == got.hostname
                and want.path.rstrip("/") == got.path.rstrip("/") and want.query == got.query):
            return True
    return False


def pkce_ok(challenge: str, method: str, verifier: str) -> bool:
    if method.lower() == "plain":
        return hmac.compare_digest(challenge, verifier)
    digest = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    return hmac.compare_digest(challenge, digest)


class IdentityBackend(Backend):
    name = "login"

    def __init__(self, sandbox: Any) -> None:
        self._codes: dict[str, JSON] = {}  # sha256(code) -> authorization code record (memory only)
        self._device: dict[str, JSON] = {}  # sha256(device_code) -> device flow record (memory only)
        self._user_codes: dict[str, str] = {}  # sha256(user code) -> sha256(device_code)
        self._password_hashes: dict[str, str] | None = None  # upn -> sha256(password), from the scenario
        super().__init__(sandbox)

    @property
    def st(self) -> SandboxState:
        return self.sb.state

    @property
    def login(self) -> str:
        return self.sb.urls.get("login", "")

    @property
    def browser(self) -> str:
        """Where a person's browser is sent: the plain-HTTP browser listener when enabled, else `login`."""
        return self.sb.browser_url or self.login

    # --- routes ------------------------------------------------------------------------------------------
    def register(self) -> None:
        r = self.router
        r.add("GET", "/common/discovery/instance", self.instance_discovery)
        r.add("GET", "/common/discovery/keys", self.keys)
        r.add("GET", "/devicelogin", self.devicelogin_get)
        r.add("POST", "/devicelogin", self.devicelogin_post)
        r.add("GET", "/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration_v2)
        r.add("GET", "/{tenant}/.well-known/openid-configuration", self.openid_configuration_v1)
        r.add("GET", "/{tenant}/discovery/v2.0/keys", self.keys_for_tenant)
        r.add("GET", "/{tenant}/discovery/keys", self.keys_for_tenant)
        r.add("GET", "/{tenant}/oauth2/v2.0/authorize", self.authorize)
        r.add("POST", "/{tenant}/oauth2/v2.0/authorize", self.authorize)
        r.add("GET", "/{tenant}/oauth2/authorize", self.authorize)
        r.add("POST", "/{tenant}/oauth2/authorize", self.authorize)
        r.add("POST", "/{tenant}/oauth2/v2.0/token", self.token)
        r.add("POST", "/{tenant}/oauth2/token", self.token)
        r.add("GET", "/{tenant}/oauth2/v2.0/token", self.post_only)
        r.add("GET", "/{tenant}/oauth2/token", self.post_only)
        r.add("POST", "/{tenant}/oauth2/v2.0/devicecode", self.devicecode)
        r.add("POST", "/{tenant}/oauth2/devicecode", self.devicecode)
        r.add("GET", "/{tenant}/oauth2/v2.0/devicecode", self.post_only)
        r.add("GET", "/{tenant}/adminconsent", self.adminconsent_v1)
        r.add("POST", "/{tenant}/adminconsent", self.adminconsent_v1)
        r.add("GET", "/{tenant}/v2.0/adminconsent", self.adminconsent_v2)
        r.add("POST", "/{tenant}/v2.0/adminconsent", self.adminconsent_v2)
        r.add("GET", "/{tenant}/oauth2/v2.0/logout", self.logout)
        r.add("POST", "/{tenant}/oauth2/v2.0/logout", self.logout)

    # --- the error shapes -----------------------------------------------------------------------------
    def _ids(self, req: Request) -> tuple[str, str, str]:
        trace = req.request_id or str(uuid.uuid4())
        corr = req.headers.get("client-request-id") or str(uuid.uuid4())
        if not _GUID.match(corr):
            corr = str(uuid.uuid4())
        return trace, corr, _now_stamp(self.sb.clock.now())

    def aad_json(self, req: Request, fail: _Fail) -> Response:
        trace, corr, stamp = self._ids(req)
        body: JSON = {
            "error": fail.error,
            "error_description": f"AADSTS{fail.code}: {fail.text}\r\nTrace ID: {trace}\r\n"
                                 f"Correlation ID: {corr}\r\nTimestamp: {stamp}",
            "error_codes": [fail.code], "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
            "error_uri": f"{self.login}/error?code={fail.code}",
        }
        if fail.suberror:
            body["suberror"] = fail.suberror
        return Response.json(body, fail.status, [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")])

    def aad_page(self, req: Request, fail: _Fail) -> Response:
        trace, corr, stamp = self._ids(req)
        return Response.html(pages.error_page(fail.code, fail.text, trace_id=trace, correlation_id=corr,
                                              timestamp=stamp), status=fail.status)

    def error(self, status: int, code: str, message: str,
              headers: list[tuple[str, str]] | None = None) -> HttpError:
        """Generic errors (unknown route, faults) in the identity platform's JSON shape."""
        trace, corr, stamp = str(uuid.uuid4()), str(uuid.uuid4()), _now_stamp(self.sb.clock.now())
        num = {404: 90027, 405: 900561, 429: 50196, 500: 90033, 503: 90033}.get(status, 90033)
        err = {404: "invalid_request", 405: "invalid_request", 429: "temporarily_unavailable"}.get(
            status, "temporarily_unavailable" if status >= 500 else "invalid_request")
        body = {"error": err, "error_description": f"AADSTS{num}: {message}\r\nTrace ID: {trace}\r\n"
                                                    f"Correlation ID: {corr}\r\nTimestamp: {stamp}",
                "error_codes": [num], "timestamp": stamp, "trace_id": trace, "correlation_id": corr}
        return HttpError(status, body, headers)

    def not_found(self, req: Request) -> HttpError:
        return self.error(404, "NotFound", f"The request path {req.path!r} is not a known endpoint.")

    def method_not_allowed(self, req: Request) -> HttpError:
        return self.error(405, "MethodNotAllowed",
                          f"The endpoint only accepts the methods it documents. Received a {req.method} request.")

    def post_only(self, req: Request, tenant: str) -> Response:
        return self.aad_json(req, _Fail(400, "invalid_request", 900561,
                                        f"The endpoint only accepts POST requests. Received a {req.method} request."))

    # --- tenants and clients --------------------------------------------------------------------------
    def _tenant(self, ref: str) -> Tenant | None:
        """None for the multi-tenant aliases `common` and `organizations`; _Fail if unknown."""
        low = ref.lower()
        if low in ("common", "organizations"):
            return None
        t = self.st.tenant(ref, by_key=False)
        if t is not None:
            return t
        if not _GUID.match(ref) and "." not in ref:
            raise _Fail(400, "invalid_request", 900023,
                        f"Specified tenant identifier '{ref}' is neither a valid DNS name, nor a valid external domain.")
        raise _Fail(400, "invalid_request", 90002,
                    f"Tenant '{ref}' not found. Check to make sure you have the correct tenant ID and are signing "
                    "into the correct cloud. Check with your subscription administrator, this may happen if there "
                    "are no active subscriptions for the tenant.")

    def _client(self, client_id: str, where: str) -> Client:
        if not client_id:
            raise _Fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'client_id'.")
        for cid, pc in self.st.public_clients.items():
            if cid.lower() == client_id.lower():
                uris = [str(u) for u in pc.get("redirectUris", [])]
                return Client(cid, str(pc.get("displayName", cid)), uris, public_redirects=uris,
                              allow_device_code=bool(pc.get("allowDeviceCode", True)))
        found = find_application(self.st, client_id)
        if found is None:
            if not _GUID.match(client_id):
                raise _Fail(400, "unauthorized_client", 700038,
                            f"{client_id} is not a valid application identifier.")
            raise _Fail(400, "unauthorized_client", 700016,
                        f"Application with identifier '{client_id}' was not found in the directory '{where}'. "
                        "This can happen if the application has not been installed by the administrator of the "
                        "tenant or consented to by any user in the tenant. You may have sent your authentication "
                        "request to the wrong tenant.")
        home, app = found
        web = [str(u) for u in (app.get("web") or {}).get("redirectUris", [])]
        public = [str(u) for u in (app.get("publicClient") or {}).get("redirectUris", [])]
        spa = [str(u) for u in (app.get("spa") or {}).get("redirectUris", [])]
        return Client(str(app["appId"]), str(app.get("displayName") or app["appId"]), web + public + spa,
                      app=app, home=home, public_redirects=public)

    def _check_client_in_tenant(self, client: Client, tenant: Tenant) -> None:
        """A single-tenant app registration does not exist in other tenants (AADSTS700016)."""
        if client.app is not None and client.home is not None and tenant.id != client.home.id:
            if not client.multi_tenant and service_principal(self.st, tenant, client.client_id) is None:
                raise _Fail(400, "unauthorized_client", 700016,
                            f"Application with identifier '{client.client_id}' was not found in the directory "
                            f"'{tenant.display_name}'. This can happen if the application has not been installed "
                            "by the administrator of the tenant or consented to by any user in the tenant. You may "
                            "have sent your authentication request to the wrong tenant.")

    def _accounts(self, tenant: Tenant | None) -> list[tuple[str, str]]:
        tenants = [tenant] if tenant is not None else list(self.st.tenants.values())
        return [(str(u["userPrincipalName"]), str(u.get("displayName") or u["userPrincipalName"]))
                for t in tenants for u in t.col("users").values() if u.get("_account")]

    def _pick_user(self, tenant: Tenant | None, upn: str, client: Client) -> tuple[Tenant, JSON]:
        """The chosen account, or _Fail: unknown (50034), other tenant (50020), disabled (50057)."""
        upn = upn.strip()
        if not upn:
            raise _Fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'account'.")
        home = self.st.tenant_of_user(upn)
        where = tenant.display_name if tenant is not None else "the Microsoft services"
        if home is None:
            raise _Fail(400, "invalid_request", 50034,
                        f"The user account {upn} does not exist in the {where} directory. To sign into this "
                        "application, the account must be added to the directory.")
        user = home.user(upn)
        assert user is not None
        if tenant is not None and home.id != tenant.id:
            raise _Fail(400, "invalid_request", 50020,
                        f"User account '{upn}' from identity provider 'https://sts.windows.net/{home.id}/' does "
                        f"not exist in tenant '{tenant.display_name}' and cannot access the application "
                        f"'{client.client_id}'({client.name}) in that tenant. The account needs to be added as an "
                        "external user in the tenant first. Sign out and sign in again with a different Azure "
                        "Active Directory user account.")
        if user.get("accountEnabled") is False:
            raise _Fail(400, "invalid_grant", 50057, "The user account is disabled.")
        self._check_client_in_tenant(client, home)
        return home, user

    # --- scopes ----------------------------------------------------------------------------------------
    def _scopes(self, raw: str, tenant_name: str) -> Scopes:
        reserved: set[str] = set()
        by_resource: dict[str, list[str]] = {}
        for s in raw.split():
            if s.lower() in RESERVED_SCOPES:
                reserved.add(s.lower())
                continue
            if "/" in s:
                prefix, _, name = s.rpartition("/")
                resource = resource_for(prefix)
                if resource is None:
                    raise _Fail(400, "invalid_resource", 500011,
                                f"The resource principal named {prefix} was not found in the tenant named "
                                f"{tenant_name}. This can happen if the application has not been installed by "
                                "the administrator of the tenant or consented to by any user in the tenant. You "
                                "might have sent your authentication request to the wrong tenant.")
            else:
                resource, name = "https://graph.microsoft.com", s
            if not _SCOPE_NAME.match(name):
                raise _Fail(400, "invalid_scope", 70011,
                            f"The provided value for the input parameter 'scope' is not valid. The scope {s} is "
                            "not valid.")
            names = by_resource.setdefault(resource, [])
            if name not in names:
                names.append(name)
        return Scopes(reserved, by_resource)

    @staticmethod
    def _granted_names(resource: str, names: list[str]) -> list[str]:
        out: list[str] = []
        for n in names:
            for v in (DELEGATED_SCOPES.get(resource, []) if n == ".default" else [n]):
                if v not in out:
                    out.append(v)
        return out

    # --- delegated consent -----------------------------------------------------------------------------
    def _consent_resources(self, client: Client, scopes: Scopes) -> list[str]:
        """Which resources a user's consent covers: all of Microsoft's for its first-party clients, the
        requested ones for an app registration."""
        if client.first_party:
            return list(RESOURCES)
        return list(scopes.by_resource) or ["https://graph.microsoft.com"]

    def _has_consent(self, tenant: Tenant, client_id: str, user_id: str, resource: str) -> bool:
        sp = resource_service_principal(tenant, resource)
        for g in tenant.col("oauth2PermissionGrants").values():
            if (str(g.get("clientId", "")).lower() == client_id.lower() and g.get("resourceId") == sp["id"]
                    and (g.get("consentType") == "AllPrincipals" or g.get("principalId") == user_id)):
                return True
        return False

    def _needs_consent(self, tenant: Tenant, client: Client, user: JSON, scopes: Scopes) -> bool:
        return not all(self._has_consent(tenant, client.client_id, user["id"], r)
                       for r in self._consent_resources(client, scopes))

    def _record_consent(self, tenant: Tenant, client: Client, user: JSON, scopes: Scopes) -> None:
        if client.app is not None and client.home is not None:
            ensure_service_principal(self.st, tenant, client.home, client.app)
        grants = tenant.col("oauth2PermissionGrants")
        for resource in self._consent_resources(client, scopes):
            sp = resource_service_principal(tenant, resource)
            names = self._granted_names(resource, scopes.by_resource.get(resource, [".default"]))
            gid = stable_id(tenant.id, "grant", client.client_id.lower(), user["id"], sp["id"])
            existing = grants.get(gid)
            if existing is not None:
                merged = existing.get("scope", "").split()
                merged += [n for n in names if n not in merged]
                existing["scope"] = " ".join(merged)
                self.st.touch()
                continue
            grants[gid] = self.st.stamp({"id": gid, "clientId": client.client_id, "consentType": "Principal",
                                         "principalId": user["id"], "resourceId": sp["id"],
                                         "scope": " ".join(names)})

    def _permission_lines(self, client: Client, scopes: Scopes) -> list[str]:
        lines = ["Sign you in and read your profile"]
        if "offline_access" in scopes.reserved:
            lines.append("Maintain access to data you have given it access to")
        resources = self._consent_resources(client, scopes)
        for resource in resources:
            names = self._granted_names(resource, scopes.by_resource.get(resource, [".default"]))
            lines.append(f"{RESOURCES[resource]['name']}: {', '.join(names)}")
        return lines

    # === discovery =========================================================================================
    def openid_configuration_v2(self, req: Request, tenant: str) -> Response:
        try:
            t = self._tenant(tenant)
        except _Fail as f:
            f.error = "invalid_tenant"
            return self.aad_json(req, f)
        seg = t.id if t is not None else tenant.lower()
        iss_tid = t.id if t is not None else "{tenantid}"
        base = f"{self.login}/{seg}"
        doc = {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.login}/{iss_tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.sb.urls.get('graph', '')}/oidc/userinfo",
            "authorization_endpoint": f"{self.browser}/{seg}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True, "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
                                 "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA", "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
        return Response.json(doc)

    def openid_configuration_v1(self, req: Request, tenant: str) -> Response:
        try:
            t = self._tenant(tenant)
        except _Fail as f:
            f.error = "invalid_tenant"
            return self.aad_json(req, f)
        seg = t.id if t is not None else tenant.lower()
        base = f"{self.login}/{seg}"
        doc = {
            "token_endpoint": f"{base}/oauth2/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{self.login}/common/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"],
            "issuer": f"https://sts.windows.net/{t.id if t is not None else '{tenantid}'}/",
            "microsoft_multi_refresh_token": True,
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/devicecode",
            "http_logout_supported": True, "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
                                 "amr", "nonce", "email", "given_name", "family_name", "nickname"],
            "check_session_iframe": f"{base}/oauth2/checksession",
            "userinfo_endpoint": f"{base}/openid/userinfo",
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA", "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
        return Response.json(doc)

    def keys(self, req: Request) -> Response:
        return Response.json(self.sb.issuer.jwks())

    def keys_for_tenant(self, req: Request, tenant: str) -> Response:
        try:
            self._tenant(tenant)
        except _Fail as f:
            f.error = "invalid_tenant"
            return self.aad_json(req, f)
        return Response.json(self.sb.issuer.jwks())

    def instance_discovery(self, req: Request) -> Response:
        """What msal asks when instance discovery is left on (reference §6.1)."""
        endpoint = req.q("authorization_endpoint") or ""
        host = urlsplit(self.login).netloc
        try:
            parts = urlsplit(endpoint)
        except ValueError:
            parts = urlsplit("")
        # msal names the instance by host name only (it drops the port), so the port is not compared.
        if not endpoint or parts.scheme != "https" or (parts.hostname or "") != (urlsplit(self.login).hostname or ""):
            return self.aad_json(req, _Fail(400, "invalid_instance", 50049, "Unknown or invalid instance."))
        segs = [s for s in parts.path.split("/") if s]
        tenant = segs[0] if segs else "common"
        return Response.json({
            "tenant_discovery_endpoint": f"{self.login}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": req.q("api-version") or "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        })

    def logout(self, req: Request, tenant: str) -> Response:
        target = req.q("post_logout_redirect_uri")
        if target and urlsplit(target).scheme in ("http", "https"):
            return Response.redirect(target)
        return Response.html(pages.signed_out_page())

    # === authorize =========================================================================================
    def _params(self, req: Request) -> dict[str, str]:
        if req.method == "POST":
            return req.form()
        return {k: v[0] for k, v in req.query.items()}

    def _deliver(self, p: dict[str, str], fields: dict[str, str]) -> Response:
        """Send the authorization response to the client's redirect URI, in the response mode it asked for."""
        redirect_uri = p["redirect_uri"]
        if "state" in p:
            fields = {**fields, "state": p["state"]}
        mode = (p.get("response_mode") or "query").lower()
        if mode == "form_post":
            return Response.html(pages.form_post_page(redirect_uri, fields))
        sep = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
        return Response.redirect(redirect_uri + sep + urlencode(fields))

    def _deliver_error(self, req: Request, p: dict[str, str], error: str, fail: _Fail) -> Response:
        trace, corr, stamp = self._ids(req)
        return self._deliver(p, {
            "error": error,
            "error_description": f"AADSTS{fail.code}: {fail.text}\r\nTrace ID: {trace}\r\n"
                                 f"Correlation ID: {corr}\r\nTimestamp: {stamp}",
            "error_uri": f"{self.login}/error?code={fail.code}",
        })

    def _validate_authorize(self, p: dict[str, str], tenant: Tenant | None) -> Client:
        """Checks that must pass before anything is sent to the redirect URI (failures become pages)."""
        where = tenant.display_name if tenant is not None else "common"
        client = self._client(p.get("client_id", ""), where)
        redirect_uri = p.get("redirect_uri", "")
        if not redirect_uri:
            if not client.redirect_uris:
                raise _Fail(400, "invalid_request", 900971, "No reply address provided.")
            p["redirect_uri"] = client.redirect_uris[0]
        elif not redirect_uri_matches(client.redirect_uris, redirect_uri):
            raise _Fail(400, "invalid_request", 50011,
                        f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
                        f"URIs configured for the application '{client.client_id}'. Make sure the redirect URI "
                        "sent in the request matches one added to your application in the Azure portal. Navigate "
                        "to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.")
        if tenant is not None:
            self._check_client_in_tenant(client, tenant)
        return client

    def authorize(self, req: Request, tenant: str) -> Response:
        p = self._params(req)
        if "resource" in p and "scope" not in p:  # the v1 endpoint names one resource
            p["scope"] = p["resource"].rstrip("/") + "/.default openid"
        try:
            t = self._tenant(tenant)
            client = self._validate_authorize(p, t)
        except _Fail as f:
            return self.aad_page(req, f)
        try:
            return self._authorize_flow(req, tenant, t, client, p)
        except _Fail as f:
            error = {50020: "access_denied", 65004: "access_denied"}.get(f.code, f.error)
            if f.code in (50034, 50057):  # the real service shows these on its own page and lets you retry
                return self.aad_page(req, f)
            return self._deliver_error(req, p, error, f)

    def _authorize_flow(self, req: Request, tenant_ref: str, tenant: Tenant | None, client: Client,
                        p: dict[str, str]) -> Response:
        response_type = p.get("response_type", "")
        if not response_type:
            raise _Fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'response_type'.")
        if response_type.split() != ["code"]:
            raise _Fail(400, "unsupported_response_type", 700054,
                        f"response_type '{response_type}' is not enabled for the application.")
        mode = (p.get("response_mode") or "query").lower()
        if mode not in ("query", "fragment", "form_post"):
            p["response_mode"] = "query"
            raise _Fail(400, "invalid_request", 900144, f"The response_mode '{mode}' is not supported.")
        where = tenant.display_name if tenant is not None else "common"
        scopes = self._scopes(p.get("scope", ""), where)
        method = p.get("code_challenge_method", "plain" if p.get("code_challenge") else "")
        if method and method not in ("S256", "plain"):
            raise _Fail(400, "invalid_request", 50148,
                        f"The code_challenge_method '{method}' is not supported; use S256 or plain.")
        prompt = p.get("prompt", "").lower()
        step = p.get("step", "") if req.method == "POST" else ""
        if prompt == "none" and not step:
            raise _Fail(400, "login_required", 50058, "A silent sign-in request was sent but no user is signed in.")
        carried = {k: v for k, v in p.items() if k not in ("step", "account", "consent")}
        action = f"/{tenant_ref}/oauth2/v2.0/authorize"
        if step not in ("pick", "consent"):
            return Response.html(pages.signin_page(action=action, hidden=carried, accounts=self._accounts(tenant),
                                                   app_name=client.name, where=where,
                                                   login_hint=p.get("login_hint", "")))
        home, user = self._pick_user(tenant, p.get("account", ""), client)
        if step == "pick":
            if prompt == "consent" or self._needs_consent(home, client, user, scopes):
                return Response.html(pages.consent_page(
                    action=action, hidden={**carried, "account": user["userPrincipalName"]}, app_name=client.name,
                    publisher="unverified" if client.app is not None else "Microsoft",
                    user=user["userPrincipalName"], permissions=self._permission_lines(client, scopes)))
        elif p.get("consent") != "accept":
            raise _Fail(400, "access_denied", 65004, "User declined to consent to access the app.")
        else:
            self._record_consent(home, client, user, scopes)
        code = "1.SANDBOX." + b64url(secrets.token_bytes(48))
        self._codes[sha256_hex(code)] = {
            "tenantId": home.id, "userId": user["id"], "clientId": client.client_id,
            "redirectUri": p["redirect_uri"], "challenge": p.get("code_challenge", ""), "method": method,
            "nonce": p.get("nonce", ""), "scope": p.get("scope", ""), "expires": self.sb.clock.now() + CODE_LIFETIME_SECONDS,
            "used": False,
        }
        self._prune()
        fields = {"code": code, "client_info": self.sb.issuer.client_info(home.id, user["id"])}
        return self._deliver(p, fields)

    def _prune(self) -> None:
        now = self.sb.clock.now()
        for k in [k for k, v in self._codes.items() if v["expires"] + 3600 < now]:
            del self._codes[k]
        for k in [k for k, v in self._device.items() if v["expires"] + 3600 < now]:
            uc = self._device.pop(k)["userCodeHash"]
            self._user_codes.pop(uc, None)

    # === token =============================================================================================
    def token(self, req: Request, tenant: str) -> Response:
        try:
            return self._token(req, tenant)
        except _Fail as f:
            return self.aad_json(req, f)

    def _token(self, req: Request, tenant_ref: str) -> Response:
        form = req.form()
        basic = self._basic_auth(req)
        if basic is not None:
            form.setdefault("client_id", basic[0])
            form.setdefault("client_secret", basic[1])
        if "resource" in form and "scope" not in form:  # v1 endpoint
            form["scope"] = form["resource"].rstrip("/") + "/.default"
        t = self._tenant(tenant_ref)
        grant = form.get("grant_type", "")
        if not grant:
            raise _Fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'grant_type'.")
        if grant == "client_credentials":
            return self._client_credentials(req, tenant_ref, t, form)
        if grant not in ("authorization_code", "refresh_token", GRANT_DEVICE_CODE, "password"):
            raise _Fail(400, "unsupported_grant_type", 70003,
                        f"The app requested an unsupported grant type '{grant}'.")
        where = t.display_name if t is not None else "common"
        client = self._client(form.get("client_id", ""), where)
        if grant == "authorization_code":
            return self._grant_code(req, tenant_ref, t, client, form)
        if grant == "refresh_token":
            return self._grant_refresh(req, tenant_ref, t, client, form)
        if grant == "password":
            return self._grant_password(req, t, client, form)
        return self._grant_device(req, tenant_ref, t, client, form)

    # --- resource owner password credentials (ROPC) ---------------------------------------------------
    def _password_hash(self, upn: str) -> str | None:
        """sha256 of the account's password, for scenario users that declare `passwordSha256` (no other
        account can sign in with a password: the sandbox never holds a plain password)."""
        if self._password_hashes is None:
            from ..scenario import ScenarioError, load_scenario

            hashes: dict[str, str] = {}
            try:
                data = load_scenario(self.sb.scenario_ref)
            except (OSError, ValueError, ScenarioError):
                data = {}
            for tenant in data.get("tenants", []):
                for u in tenant.get("users", []):
                    if isinstance(u, dict) and u.get("passwordSha256") and u.get("userPrincipalName"):
                        hashes[str(u["userPrincipalName"]).lower()] = str(u["passwordSha256"]).lower()
            self._password_hashes = hashes
        return self._password_hashes.get(upn.lower())

    def _grant_password(self, req: Request, t: Tenant | None, client: Client, form: dict[str, str]) -> Response:
        """grant_type=password (msal `acquire_token_by_username_password`): for unattended runs against the
        sandbox.  Wrong or undeclared passwords → AADSTS50126, as for a wrong password in Entra ID."""
        username = self._need(form, "username")
        password = self._need(form, "password")
        tenant, user = self._pick_user(t, username, client)
        expected = self._password_hash(username)
        if expected is None or not hmac.compare_digest(expected, sha256_hex(password)):
            raise _Fail(400, "invalid_grant", 50126,
                        "Error validating credentials due to invalid username or password.")
        self._confidential_check(req, client, tenant, form, None)
        return self._user_tokens(tenant, user, client, form.get("scope", ""), form, nonce="", grant="password")

    @staticmethod
    def _basic_auth(req: Request) -> tuple[str, str] | None:
        header = req.headers.get("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return user, password

    @staticmethod
    def _need(form: dict[str, str], name: str) -> str:
        value = form.get(name, "")
        if not value:
            raise _Fail(400, "invalid_request", 900144,
                        f"The request body must contain the following parameter: '{name}'.")
        return value

    def _tenant_matches(self, path_tenant: Tenant | None, tid: str) -> None:
        if path_tenant is not None and path_tenant.id != tid:
            raise _Fail(400, "invalid_grant", 700005,
                        "Provided Authorization Code is intended to use against other tenant, thus rejected.")

    def _confidential_check(self, req: Request, client: Client, tenant: Tenant, form: dict[str, str],
                            redirect_uri: str | None) -> None:
        """Public clients redeem without a secret; a web app's code or refresh token needs its credential."""
        if client.app is None or client.home is None:
            return  # Microsoft's public clients
        if form.get("client_secret") or form.get("client_assertion"):
            self._authenticate_app(req, tenant, client.home, client.app, form)
            return
        if client.app.get("isFallbackPublicClient"):
            return
        if redirect_uri is None and client.public_redirects:
            return
        if redirect_uri is not None and redirect_uri_matches(client.public_redirects, redirect_uri):
            return
        raise _Fail(401, "invalid_client", 7000218,
                    "The request body must contain the following parameter: 'client_assertion' or "
                    "'client_secret'.")

    def _grant_code(self, req: Request, tenant_ref: str, t: Tenant | None, client: Client,
                    form: dict[str, str]) -> Response:
        code = self._need(form, "code")
        rec = self._codes.get(sha256_hex(code))
        if rec is None:
            raise _Fail(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if rec["clientId"].lower() != client.client_id.lower():
            raise _Fail(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
        self._tenant_matches(t, rec["tenantId"])
        if rec["used"]:
            raise _Fail(400, "invalid_grant", 54005,
                        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use "
                        "an existing refresh token.")
        if self.sb.clock.now() > rec["expires"]:
            raise _Fail(400, "invalid_grant", 70008,
                        "The provided authorization code or refresh token has expired due to inactivity. Send a new "
                        "interactive authorization request for this user and resource.")
        redirect_uri = form.get("redirect_uri", "")
        if redirect_uri != rec["redirectUri"]:
            raise _Fail(400, "invalid_grant", 500112,
                        "The reply address does not match the reply address provided when requesting "
                        "Authorization code.")
        if rec["challenge"]:
            verifier = form.get("code_verifier", "")
            if not verifier or not pkce_ok(rec["challenge"], rec["method"] or "plain", verifier):
                raise _Fail(400, "invalid_grant", 501481,
                            "The Code_Verifier does not match the code_challenge supplied in the authorization "
                            "request.")
        tenant = self.st.tenants.get(rec["tenantId"])
        user = tenant.col("users").get(rec["userId"]) if tenant is not None else None
        if tenant is None or user is None:
            raise _Fail(400, "invalid_grant", 50034, "The user account does not exist in the directory.")
        self._confidential_check(req, client, tenant, form, redirect_uri)
        rec["used"] = True
        scope = form.get("scope") or rec["scope"]
        return self._user_tokens(tenant, user, client, scope, form, nonce=rec["nonce"], grant="authorization_code")

    def _grant_refresh(self, req: Request, tenant_ref: str, t: Tenant | None, client: Client,
                       form: dict[str, str]) -> Response:
        token = self._need(form, "refresh_token")
        rec = self.st.refresh_tokens.get(sha256_hex(token))
        if rec is None or str(rec.get("clientId", "")).lower() != client.client_id.lower():
            raise _Fail(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        now = self.sb.clock.now()
        if rec.get("revoked"):
            raise _Fail(400, "invalid_grant", 50173,
                        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The "
                        "user might have changed or reset their password. The grant was issued on "
                        f"'{_now_stamp(float(rec.get('issuedAt', now)))}' and the TokensValidFrom date (before "
                        f"which tokens are not valid) for this user is '{_now_stamp(now)}'.")
        idle = float(self.st.settings.get("refresh_token_idle_seconds", 90 * 86400))
        last = float(rec.get("lastUsedAt") or rec.get("issuedAt") or now)
        if now - last > idle:
            raise _Fail(400, "invalid_grant", 700082,
                        "The refresh token has expired due to inactivity. The token was issued on "
                        f"{_now_stamp(float(rec.get('issuedAt', last)))} and was inactive for "
                        f"{datetime.timedelta(seconds=int(idle))}.")
        self._tenant_matches(t, str(rec.get("tenantId")))
        tenant = self.st.tenants.get(str(rec.get("tenantId")))
        user = tenant.col("users").get(str(rec.get("userId"))) if tenant is not None else None
        if tenant is None or user is None:
            raise _Fail(400, "invalid_grant", 50034, "The user account does not exist in the directory.")
        if user.get("accountEnabled") is False:
            raise _Fail(400, "invalid_grant", 50057, "The user account is disabled.")
        self._confidential_check(req, client, tenant, form, None)
        rec["lastUsedAt"] = now
        self.st.touch()
        return self._user_tokens(tenant, user, client, form.get("scope", ""), form, nonce="", grant="refresh_token")

    def _user_tokens(self, tenant: Tenant, user: JSON, client: Client, scope: str, form: dict[str, str], *,
                     nonce: str, grant: str) -> Response:
        scopes = self._scopes(scope, tenant.display_name)
        if len(scopes.by_resource) > 1:
            raise _Fail(400, "invalid_scope", 28000,
                        "Provided value for the input parameter scope is not valid because it contains more than "
                        "one resource. Scope " + scope + " is not valid.")
        resource, names = scopes.single()
        if not self._has_consent(tenant, client.client_id, user["id"], resource):
            raise _Fail(400, "invalid_grant", 65001,
                        f"The user or administrator has not consented to use the application with ID "
                        f"'{client.client_id}' named '{client.name}'. Send an interactive authorization request for "
                        "this user and resource.", suberror="consent_required")
        scp = self._granted_names(resource, names)
        lifetime = float(self.st.settings.get("token_lifetime_seconds", 3599))
        expires_in = max(1, int(self.sb.clock.real_seconds(lifetime)))
        access = self.sb.issuer.access_token(tenant_id=tenant.id, audience=resource, app_id=client.client_id,
                                             lifetime=lifetime, user=user, scopes=scp,
                                             wids=user_role_template_ids(user))
        shown = scp if resource == "https://graph.microsoft.com" else [f"{resource}/{n}" for n in scp]
        shown += sorted(scopes.reserved - {"offline_access"})
        body: JSON = {"token_type": "Bearer", "scope": " ".join(shown), "expires_in": expires_in,
                      "ext_expires_in": expires_in, "access_token": access}
        if "offline_access" in scopes.reserved or grant == "refresh_token":
            rt = new_refresh_token()
            now = self.sb.clock.now()
            self.st.refresh_tokens[sha256_hex(rt)] = {"tenantId": tenant.id, "userId": user["id"],
                                                      "clientId": client.client_id, "issuedAt": now,
                                                      "lastUsedAt": now, "revoked": False}
            self.st.touch()
            body["refresh_token"] = rt
        if "openid" in scopes.reserved or grant != "refresh_token":
            body["id_token"] = self.sb.issuer.id_token(tenant_id=tenant.id, client_id=client.client_id, user=user,
                                                       nonce=nonce or None)
        if form.get("client_info") == "1":
            body["client_info"] = self.sb.issuer.client_info(tenant.id, user["id"])
        return Response.json(body, headers=[("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")])

    # --- client credentials ------------------------------------------------------------------------------
    def _client_credentials(self, req: Request, tenant_ref: str, t: Tenant | None, form: dict[str, str]) -> Response:
        if t is None:
            raise _Fail(400, "invalid_request", 50059,
                        "No tenant-identifying information found in either the request or implied by any provided "
                        "credentials.")
        client_id = self._need(form, "client_id")
        scope = self._need(form, "scope")
        found = find_application(self.st, client_id)
        sp = service_principal(self.st, t, client_id) if found is not None else None
        if found is None or sp is None:
            raise _Fail(400, "unauthorized_client", 700016,
                        f"Application with identifier '{client_id}' was not found in the directory "
                        f"'{t.display_name}'. This can happen if the application has not been installed by the "
                        "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                        "your authentication request to the wrong tenant.")
        home, app = found
        self._authenticate_app(req, t, home, app, form)
        parts = scope.split()
        if len(parts) != 1 or not parts[0].endswith("/.default"):
            raise _Fail(400, "invalid_scope", 1002012,
                        f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                        "scope value with /.default suffixed to the resource identifier (application ID URI).")
        prefix = parts[0][: -len("/.default")]
        resource = resource_for(prefix)
        if resource is None:
            raise _Fail(400, "invalid_resource", 500011,
                        f"The resource principal named {prefix} was not found in the tenant named "
                        f"{t.display_name}. This can happen if the application has not been installed by the "
                        "administrator of the tenant or consented to by any user in the tenant. You might have sent "
                        "your authentication request to the wrong tenant.")
        roles = app_roles_granted(t, sp["id"], resource_service_principal(t, resource))
        lifetime = float(self.st.settings.get("token_lifetime_seconds", 3599))
        expires_in = max(1, int(self.sb.clock.real_seconds(lifetime)))
        access = self.sb.issuer.access_token(tenant_id=t.id, audience=resource, app_id=str(app["appId"]),
                                             lifetime=lifetime, sp_object_id=sp["id"], roles=roles)
        return Response.json({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                              "access_token": access},
                             headers=[("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")])

    def _authenticate_app(self, req: Request, tenant: Tenant, home: Tenant, app: JSON, form: dict[str, str]) -> None:
        if form.get("client_assertion") or form.get("client_assertion_type"):
            self._check_assertion(req, tenant, app, form)
            return
        secret = form.get("client_secret", "")
        if not secret:
            raise _Fail(401, "invalid_client", 7000218,
                        "The request body must contain the following parameter: 'client_assertion' or "
                        "'client_secret'.")
        digest = sha256_hex(secret)
        hashes_by_key: dict[str, str] = dict(app.get("_secretHashes") or {})
        for key_id, h in hashes_by_key.items():
            if hmac.compare_digest(str(h), digest):
                cred = next((c for c in app.get("passwordCredentials", []) if c.get("keyId") == key_id), None)
                end = (cred or {}).get("endDateTime")
                if end:
                    try:
                        expired = parse_iso(str(end)) < self.sb.clock.now()
                    except ValueError:
                        expired = False
                    if expired:
                        raise _Fail(401, "invalid_client", 7000222,
                                    f"The provided client secret keys for app '{app['appId']}' are expired. Visit "
                                    "the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, "
                                    "or consider using certificate credentials for added security: "
                                    "https://aka.ms/certCreds.")
                return
        raise _Fail(401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                    f"value, not the client secret ID, for a secret added to app '{app['appId']}'.")

    def _check_assertion(self, req: Request, tenant: Tenant, app: JSON, form: dict[str, str]) -> None:
        if form.get("client_assertion_type") != ASSERTION_TYPE_JWT:
            raise _Fail(401, "invalid_client", 700025,
                        "Client is public so neither 'client_assertion' nor 'client_secret' should be presented, or "
                        f"the client_assertion_type is not '{ASSERTION_TYPE_JWT}'.")
        assertion = self._need(form, "client_assertion")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise _Fail(401, "invalid_client", 50027,
                        "JWT token is invalid or malformed (client_assertion).") from None
        alg = str(header.get("alg", ""))
        x5t = header.get("x5t#S256") or header.get("x5t")
        use_sha256 = "x5t#S256" in header
        if alg not in ("RS256", "PS256") or not isinstance(x5t, str):
            raise _Fail(401, "invalid_client", 700027,
                        "Client assertion contains an invalid signature. [Reason - The header must name an RS256 or "
                        "PS256 signature and carry the certificate thumbprint (x5t or x5t#S256).]")
        cert: x509.Certificate | None = None
        key_cred: JSON | None = None
        for kc in app.get("keyCredentials", []):
            try:
                candidate = x509.load_der_x509_certificate(base64.b64decode(str(kc.get("key", ""))))
            except (ValueError, binascii.Error, TypeError):
                continue
            thumb = b64url(candidate.fingerprint(hashes.SHA256() if use_sha256 else hashes.SHA1()))
            if hmac.compare_digest(thumb, x5t.rstrip("=")):
                cert, key_cred = candidate, kc
                break
        if cert is None or key_cred is None:
            raise _Fail(401, "invalid_client", 700027,
                        "The certificate with identifier used to sign the client assertion is not registered on "
                        f"application. [Reason - The key was not found., Thumbprint of key used by client: '{x5t}', "
                        f"Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured "
                        f"keys for app Id '{app['appId']}'.]")
        end = key_cred.get("endDateTime")
        if end:
            try:
                if parse_iso(str(end)) < self.sb.clock.now():
                    raise _Fail(401, "invalid_client", 700027,
                                "Client assertion contains an invalid signature. [Reason - The key used is expired.]")
            except ValueError:
                pass
        public_key = cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise _Fail(401, "invalid_client", 700027,
                        "Client assertion contains an invalid signature. [Reason - The key is not an RSA key.]")
        signing_input, _, sig_b64 = assertion.rpartition(".")
        try:
            signature = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
            pad: padding.AsymmetricPadding = (padding.PKCS1v15() if alg == "RS256" else
                                               padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                           salt_length=hashes.SHA256.digest_size))
            public_key.verify(signature, signing_input.encode("ascii"), pad, hashes.SHA256())
        except (InvalidSignature, ValueError, binascii.Error, UnsupportedAlgorithm):
            raise _Fail(401, "invalid_client", 700027,
                        "Client assertion failed signature validation. [Reason - The signature does not match the "
                        "registered certificate.]") from None
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _Fail(401, "invalid_client", 50027, "JWT token is invalid or malformed (client_assertion).") from None
        if str(claims.get("iss", "")).lower() != str(app["appId"]).lower() or str(
                claims.get("sub", "")).lower() != str(app["appId"]).lower():
            raise _Fail(401, "invalid_client", 700021,
                        "Client assertion application identifier doesn't match 'client_id' parameter.")
        accepted = {f"{self.login}/{seg}/oauth2/{v}token".lower()
                    for seg in (tenant.id, *tenant.domain_names()) for v in ("v2.0/", "")}
        accepted.add(self.sb.issuer.issuer(tenant.id).lower())
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(str(a).lower().rstrip("/") in accepted for a in auds):
            raise _Fail(401, "invalid_client", 50012,
                        "Client assertion audience claim does not match Realm issuer. Review the documentation at "
                        "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
        # Clients mint assertions with their own wall clock, so lifetimes are checked against it, not the
        # (possibly accelerated) sandbox clock.
        wall = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, int | float) or not isinstance(nbf, int | float) or exp < wall - ASSERTION_CLOCK_SKEW \
                or nbf > wall + ASSERTION_CLOCK_SKEW:
            raise _Fail(401, "invalid_client", 700024,
                        f"Client assertion is not within its valid time range. Current time: {_now_stamp(wall)}, "
                        f"expiry time of assertion {exp}. Review the documentation at "
                        "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")

    # === device code =======================================================================================
    def devicecode(self, req: Request, tenant: str) -> Response:
        try:
            t = self._tenant(tenant)
            form = req.form()
            where = t.display_name if t is not None else "common"
            client = self._client(form.get("client_id", ""), where)
            if "resource" in form and "scope" not in form:
                form["scope"] = form["resource"].rstrip("/") + "/.default openid"
            scope = self._need(form, "scope")
            scopes = self._scopes(scope, where)
            if t is not None:
                self._check_client_in_tenant(client, t)
            if not client.allow_device_code:
                raise _Fail(400, "invalid_client", 7000218,
                            "The request body must contain the following parameter: 'client_assertion' or "
                            "'client_secret'.")
        except _Fail as f:
            return self.aad_json(req, f)
        device_code = "DAQAB" + b64url(secrets.token_bytes(48))
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        lifetime = float(self.st.settings.get("device_code_lifetime_seconds", 900))
        now = self.sb.clock.now()
        dh, uh = sha256_hex(device_code), sha256_hex(user_code)
        self._device[dh] = {"tenantRef": tenant, "tenantId": t.id if t is not None else None,
                            "clientId": client.client_id, "scope": scope, "expires": now + lifetime,
                            "status": "pending", "userId": None, "userTenantId": None, "lastPoll": None,
                            "userCodeHash": uh, "reserved": sorted(scopes.reserved)}
        self._user_codes[uh] = dh
        self._prune()
        uri = f"{self.browser}/devicelogin"
        expires_in = max(1, int(self.sb.clock.real_seconds(lifetime)))
        return Response.json({
            "user_code": user_code, "device_code": device_code, "verification_uri": uri,
            "expires_in": expires_in, "interval": DEVICE_POLL_INTERVAL,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code {user_code} to "
                       "authenticate.",
        })

    def _grant_device(self, req: Request, tenant_ref: str, t: Tenant | None, client: Client,
                      form: dict[str, str]) -> Response:
        device_code = form.get("device_code") or form.get("code") or ""
        if not device_code:
            raise _Fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'device_code'.")
        rec = self._device.get(sha256_hex(device_code))
        if rec is None or rec["clientId"].lower() != client.client_id.lower() or rec["status"] == "used":
            raise _Fail(400, "bad_verification_code", 70000,
                        "The provided value for the input parameter 'device_code' is not valid.")
        now = self.sb.clock.now()
        if now > rec["expires"]:
            raise _Fail(400, "expired_token", 70020,
                        "The provided value for the input parameter 'device_code' is not valid. This device code "
                        "has expired.")
        if rec["status"] == "declined":
            raise _Fail(400, "authorization_declined", 70000,
                        "The user has declined the authorization request on the verification page.")
        if rec["status"] == "pending":
            last = rec["lastPoll"]
            rec["lastPoll"] = now
            if last is not None and self.sb.clock.real_seconds(now - last) < DEVICE_POLL_INTERVAL * 0.8:
                raise _Fail(400, "slow_down", 70016,
                            f"Polling faster than the interval of {DEVICE_POLL_INTERVAL} seconds; slow down.")
            raise _Fail(400, "authorization_pending", 70016, "Pending end-user authorization.")
        tenant = self.st.tenants.get(str(rec["userTenantId"]))
        user = tenant.col("users").get(str(rec["userId"])) if tenant is not None else None
        if tenant is None or user is None:
            raise _Fail(400, "bad_verification_code", 70000,
                        "The provided value for the input parameter 'device_code' is not valid.")
        self._tenant_matches(t, tenant.id)
        self._confidential_check(req, client, tenant, form, None)
        rec["status"] = "used"
        return self._user_tokens(tenant, user, client, rec["scope"], form, nonce="", grant=GRANT_DEVICE_CODE)

    def devicelogin_get(self, req: Request) -> Response:
        prefill = re.sub(r"[^A-Za-z0-9]", "", req.q("otc") or "")[:20]  # devicelogin?otc=CODE links
        return Response.html(pages.device_code_page(action="/devicelogin", prefill=prefill))

    def devicelogin_post(self, req: Request) -> Response:
        p = req.form()
        otc = re.sub(r"[\s-]", "", p.get("otc", "")).upper()
        dh = self._user_codes.get(sha256_hex(otc)) if otc else None
        rec = self._device.get(dh) if dh else None
        if rec is None or rec["status"] != "pending":
            return Response.html(pages.device_code_page(
                action="/devicelogin", code=70000,
                message="That code didn't work. Check the code and try again."), status=400)
        if self.sb.clock.now() > rec["expires"]:
            return Response.html(pages.device_code_page(
                action="/devicelogin", code=70020,
                message="The code you entered has expired. Get a new code from the device you're trying to sign in "
                        "to and try again."), status=400)
        tenant = self.st.tenants.get(rec["tenantId"]) if rec["tenantId"] else None
        where = tenant.display_name if tenant is not None else "common"
        try:
            client = self._client(rec["clientId"], where)
        except _Fail as f:
            return self.aad_page(req, f)
        step = p.get("step", "")
        carried = {"otc": otc}
        if step not in ("pick", "consent"):
            return Response.html(pages.signin_page(action="/devicelogin", hidden=carried,
                                                   accounts=self._accounts(tenant), app_name=client.name,
                                                   where=where, heading="Pick an account"))
        try:
            home, user = self._pick_user(tenant, p.get("account", ""), client)
        except _Fail as f:
            return self.aad_page(req, f)
        scopes = self._scopes(rec["scope"], where)
        if step == "pick":
            return Response.html(pages.consent_page(
                action="/devicelogin", hidden={**carried, "account": user["userPrincipalName"]},
                app_name=client.name, publisher="unverified" if client.app is not None else "Microsoft",
                user=user["userPrincipalName"], permissions=self._permission_lines(client, scopes),
                question=f"Are you trying to sign in to {client.name}?"))
        if p.get("consent") != "accept":
            rec["status"] = "declined"
            return Response.html(pages.device_done_page(approved=False, app_name=client.name))
        self._record_consent(home, client, user, scopes)
        rec.update(status="approved", userId=user["id"], userTenantId=home.id)
        return Response.html(pages.device_done_page(approved=True, app_name=client.name))

    # === admin consent =====================================================================================
    def adminconsent_v1(self, req: Request, tenant: str) -> Response:
        return self._adminconsent(req, tenant, v2=False)

    def adminconsent_v2(self, req: Request, tenant: str) -> Response:
        return self._adminconsent(req, tenant, v2=True)

    def _adminconsent(self, req: Request, tenant_ref: str, *, v2: bool) -> Response:
        p = self._params(req)
        p["response_mode"] = "query"  # admin consent always answers with a redirect
        try:
            t = self._tenant(tenant_ref)
            where = t.display_name if t is not None else "common"
            client_id = p.get("client_id", "")
            client = self._client(client_id, where)
            if client.app is None or client.home is None:
                raise _Fail(400, "invalid_request", 90094,
                            f"The application '{client.name}' is a Microsoft application; there is nothing for an "
                            "administrator to consent to.")
            web = [str(u) for u in (client.app.get("web") or {}).get("redirectUris", [])]
            redirect_uri = p.get("redirect_uri", "")
            if not redirect_uri:
                if not web:
                    raise _Fail(400, "invalid_request", 900971, "No reply address provided.")
                p["redirect_uri"] = redirect_uri = web[0]
            if redirect_uri not in web:
                raise _Fail(400, "invalid_request", 50011,
                            f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
                            f"URIs configured for the application '{client.client_id}'. Make sure the redirect URI "
                            "sent in the request matches one added to your application in the Azure portal. Navigate "
                            "to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.")
            if t is not None:
                self._check_client_in_tenant(client, t)
        except _Fail as f:
            return self.aad_page(req, f)
        try:
            return self._adminconsent_flow(req, tenant_ref, t, client, p, v2=v2)
        except _Fail as f:
            if f.code in (50034, 50057):
                return self.aad_page(req, f)
            return self._deliver_error(req, p, "access_denied" if f.code in (50020, 65004, 90094) else f.error, f)

    def _adminconsent_flow(self, req: Request, tenant_ref: str, tenant: Tenant | None, client: Client,
                           p: dict[str, str], *, v2: bool) -> Response:
        assert client.app is not None and client.home is not None
        if v2 and not p.get("scope"):
            raise _Fail(400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'scope'.")
        step = p.get("step", "") if req.method == "POST" else ""
        carried = {k: v for k, v in p.items() if k not in ("step", "account", "consent", "response_mode")}
        action = f"/{tenant_ref}/v2.0/adminconsent" if v2 else f"/{tenant_ref}/adminconsent"
        where = tenant.display_name if tenant is not None else "common"
        if step not in ("pick", "consent"):
            return Response.html(pages.signin_page(action=action, hidden=carried, accounts=self._accounts(tenant),
                                                   app_name=client.name, where=where,
                                                   login_hint=p.get("login_hint", "")))
        home, user = self._pick_user(tenant, p.get("account", ""), client)
        if not has_any_role(user, *ADMIN_CONSENT_ROLES):
            raise _Fail(400, "access_denied", 90094,
                        "The grant requires admin permission. Only an administrator (Global Administrator, "
                        "Privileged Role Administrator, Cloud Application Administrator or Application "
                        "Administrator) can grant the application permissions this app needs.")
        wanted = required_app_roles(home, client.app)
        if step == "pick":
            lines = []
            for resource_sp, role_id in wanted:
                role = next((r for r in resource_sp.get("appRoles", []) if r.get("id") == role_id), None)
                label = role.get("displayName") or role.get("value") if role else role_id
                lines.append(f"{resource_sp.get('displayName')}: {label}")
            return Response.html(pages.consent_page(
                action=action, hidden={**carried, "account": user["userPrincipalName"]}, app_name=client.name,
                publisher="unverified", user=user["userPrincipalName"], admin=True,
                permissions=lines or ["Sign in and read user profile"]))
        if p.get("consent") != "accept":
            raise _Fail(400, "access_denied", 65004, "User declined to consent to access the app.")
        sp, _ = ensure_service_principal(self.st, home, client.home, client.app)
        for resource_sp, role_id in wanted:
            grant_app_role(self.st, home, sp, resource_sp, role_id)
        fields = {"admin_consent": "True", "tenant": home.id}
        if v2:
            fields["scope"] = p.get("scope", "")
        return self._deliver(p, fields)

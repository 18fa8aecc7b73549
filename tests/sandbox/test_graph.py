"""Graph v1.0 backend (reference §4): every route over real HTTPS, its success shapes, paging, errors and authorization."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ca_context
from tests.sandbox.support import app_token, bearer, user_token
from xtwizard.sandbox import Sandbox

SOURCE_ADMIN = "admin@northwindtraders.onmicrosoft.com"
TARGET_ADMIN = "admin@fabrikaminc.onmicrosoft.com"
HELPDESK = "helpdesk@northwind.example"
EXADMIN = "exadmin@fabrikam.example"
EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
MIGRATION_APP_BODY = {
    "displayName": "CTMM-fabrikam-to-northwind",
    "signInAudience": "AzureADMultipleOrgs",
    "web": {"redirectUris": ["https://office.com"]},
    "requiredResourceAccess": [{"resourceAppId": EXO_APP_ID, "resourceAccess": [
        {"id": "f7264778-fba9-422d-8e9e-2675a2c4b513", "type": "Role"}]}],
}


class Graph:
    """Calls the sandbox's Graph as one principal (a user of a tenant, or an app-only token)."""

    def __init__(self, sb: Sandbox, http: httpx.Client, token: str) -> None:
        self.sb, self.http, self.token = sb, http, token
        self.base = sb.info["graph_url"]

    def _url(self, path: str) -> str:
        return path if path.startswith("https://") else self.base + path

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self._url(path), headers={**bearer(self.token), **kw.pop("headers", {})}, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return self.http.post(self._url(path), headers={**bearer(self.token), **kw.pop("headers", {})}, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return self.http.patch(self._url(path), headers={**bearer(self.token), **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.delete(self._url(path), headers={**bearer(self.token), **kw.pop("headers", {})}, **kw)

    def all_pages(self, path: str, **kw: Any) -> tuple[list[dict[str, Any]], int]:
        """Follow @odata.nextLink to the end; returns (items, number of pages)."""
        items: list[dict[str, Any]] = []
        url: str | None = path
        pages = 0
        while url:
            r = self.get(url, **kw)
            assert r.status_code == 200, r.text
            data = r.json()
            items += data["value"]
            pages += 1
            url = data.get("@odata.nextLink")
            assert pages < 200, "paging did not end"
        return items, pages


def as_user(sb: Sandbox, http: httpx.Client, tenant: str, upn: str, scopes: list[str] | None = None,
            lifetime: float = 3599) -> Graph:
    return Graph(sb, http, user_token(sb, tenant, upn, scopes=scopes, lifetime=lifetime))


def as_app(sb: Sandbox, http: httpx.Client, tenant: str, app_id: str, sp_id: str, roles: list[str]) -> Graph:
    return Graph(sb, http, app_token(sb, tenant, app_id, sp_id, roles, resource="https://graph.microsoft.com"))


def graph_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert Graph's error shape and return the `error` object."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]
    inner = err["innerError"]
    assert set(inner) == {"date", "request-id", "client-request-id"}
    assert inner["request-id"] == r.headers["request-id"]
    if code is not None:
        assert err["code"] == code, err
    return err


def self_signed_der(cn: str = "CN=CTMM", days: int = 365) -> tuple[bytes, x509.Certificate]:
    der, cert, _ = self_signed(cn, days)
    return der, cert


def self_signed(cn: str = "CN=CTMM", days: int = 365) -> tuple[bytes, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn.removeprefix("CN="))])
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER), cert, key


def small_scenario(path: Any, *, sku_units: int = 1, extra_users: int = 5) -> str:
    """A one-tenant scenario with a nested scope group and a one-seat migration SKU; returns its file path."""
    users = [{"userPrincipalName": "admin@contoso.example", "displayName": "Admin", "roles": ["Global Administrator"]},
             {"userPrincipalName": "nolocation@contoso.example", "displayName": "No Location", "usageLocation": None}]
    members = []
    for i in range(extra_users):
        upn = f"user{i}@contoso.example"
        users.append({"userPrincipalName": upn, "displayName": f"User {i}", "mailbox": {}})
        members.append(upn)
    users += [{"userPrincipalName": "inner1@contoso.example", "displayName": "Inner One"},
              {"userPrincipalName": "inner2@contoso.example", "displayName": "Inner Two"}]
    data = {
        "name": "graph-small",
        "tenants": [{
            "key": "contoso", "id": "0c4a0d2e-1b3c-4d5e-8f60-718293a4b5c6", "displayName": "Contoso",
            "initialDomain": "contoso.onmicrosoft.com", "verifiedDomains": ["contoso.example"],
            "skus": [{"skuPartNumber": "Cross_tenant_user_data_migration",
                      "skuId": "946ce899-873d-44bb-9d8b-671870cbfdbf", "units": sku_units,
                      "servicePlans": [{"servicePlanName": "EXCHANGEONLINE_T2TMBXMOVE"}]}],
            "users": users,
            "groups": [
                {"displayName": "Inner Scope", "mail": "inner@contoso.example", "mailEnabled": True,
                 "securityEnabled": True, "members": ["inner1@contoso.example", "inner2@contoso.example"]},
                {"displayName": "Wave Scope", "mail": "wave@contoso.example", "mailEnabled": True,
                 "securityEnabled": True, "members": [*members, "Inner Scope"]},
            ],
        }],
    }
    file = path / "graph-small.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    return str(file)


def client_for(sb: Sandbox) -> httpx.Client:
    return httpx.Client(verify=ca_context(sb.ca_path), trust_env=False, timeout=30)


# =====================================================================================================
# Fixtures
# =====================================================================================================


@pytest.fixture(scope="module")
def _shared_sandbox() -> Any:
    sb = Sandbox("demo")
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def sandbox(_shared_sandbox: Sandbox) -> Sandbox:
    """Overrides conftest's per-test sandbox: one server for the module, its state rebuilt from the demo scenario
    before every test (the Graph backend reads `sandbox.state` on each request), which saves a server start and
    stop per test."""
    _shared_sandbox.reset()
    return _shared_sandbox


@pytest.fixture
def src(sandbox: Sandbox, http: httpx.Client) -> Graph:
    return as_user(sandbox, http, "source", SOURCE_ADMIN)


@pytest.fixture
def tgt(sandbox: Sandbox, http: httpx.Client) -> Graph:
    return as_user(sandbox, http, "target", TARGET_ADMIN)


@pytest.fixture
def helpdesk(sandbox: Sandbox, http: httpx.Client) -> Graph:
    return as_user(sandbox, http, "source", HELPDESK)


@pytest.fixture
def small(tmp_path: Any) -> Any:
    """A sandbox on the small nested-group scenario, and its admin's Graph."""
    sb = Sandbox(small_scenario(tmp_path))
    sb.start()
    client = client_for(sb)
    try:
        yield as_user(sb, client, "contoso", "admin@contoso.example")
    finally:
        client.close()
        sb.stop()


def control(sb: Sandbox, http: httpx.Client, method: str, path: str, body: Any = None) -> httpx.Response:
    return http.request(method, sb.info["control_url"] + path, json=body)


def create_app(g: Graph, **extra: Any) -> dict[str, Any]:
    r = g.post("/applications", {**MIGRATION_APP_BODY, **extra})
    assert r.status_code == 201, r.text
    return r.json()


# =====================================================================================================
# Cross-cutting: headers, error shape, routing
# =====================================================================================================

def test_request_ids_are_returned_and_client_request_id_is_echoed(src: Graph) -> None:
    r = src.get("/organization", headers={"client-request-id": "abc-123"})
    assert r.status_code == 200
    assert r.headers["client-request-id"] == "abc-123"
    uuid.UUID(r.headers["request-id"])
    r2 = src.get("/organization")
    assert r2.headers["client-request-id"] == r2.headers["request-id"] != r.headers["request-id"]
    err = graph_error(src.get("/applications/not-a-guid", headers={"client-request-id": "mine"}), 400)
    assert err["innerError"]["client-request-id"] == "mine"


def test_unknown_segment_wrong_version_and_wrong_method(src: Graph, sandbox: Sandbox, http: httpx.Client) -> None:
    err = graph_error(src.get("/frobnicate"), 400, "BadRequest")
    assert err["message"] == "Resource not found for the segment 'frobnicate'."
    r = http.get(sandbox.urls["graph"] + "/v9.9/me", headers=bearer(src.token))
    assert "Invalid version" in graph_error(r, 400, "BadRequest")["message"]
    err = graph_error(src.patch("/organization", {}), 405, "Request_BadRequest")
    assert "not allowed" in err["message"]
    graph_error(src.get("/users", params={"$bogus": "1"}), 400, "BadRequest")


@pytest.mark.parametrize("payload, fragment", [
    (b"{not json", "Unable to read JSON request payload"),
    (b"[1, 2]", "StartArray"),
    (b'"text"', "PrimitiveValue"),
    (b"", "Empty Payload"),
])
def test_unreadable_bodies_are_bad_requests(src: Graph, payload: bytes, fragment: str) -> None:
    r = src.post("/applications", content=payload, headers={"Content-Type": "application/json"})
    assert fragment in graph_error(r, 400, "BadRequest")["message"]


# =====================================================================================================
# Authentication (401) and authorization (403)
# =====================================================================================================

def test_missing_malformed_expired_wrong_audience_and_forged_tokens_are_401(sandbox: Sandbox, http: httpx.Client,
                                                                             src: Graph) -> None:
    url = sandbox.info["graph_url"] + "/me"
    cases = {
        "missing": {},
        "not bearer": {"Authorization": "Basic Zm9vOmJhcg=="},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "wrong audience": bearer(user_token(sandbox, "source", SOURCE_ADMIN, resource="https://management.azure.com")),
        "forged": bearer(src.token[:-6] + ("AAAAAA" if not src.token.endswith("AAAAAA") else "BBBBBB")),
    }
    for name, headers in cases.items():
        r = http.get(url, headers=headers)
        err = graph_error(r, 401, "InvalidAuthenticationToken")
        assert r.headers["WWW-Authenticate"].startswith("Bearer "), name
    short = user_token(sandbox, "source", SOURCE_ADMIN, lifetime=60)
    assert http.get(url, headers=bearer(short)).status_code == 200
    control(sandbox, http, "POST", "/clock", {"advance_seconds": 120})
    err = graph_error(http.get(url, headers=bearer(short)), 401, "InvalidAuthenticationToken")
    assert "expired" in err["message"]


def test_token_of_a_tenant_that_does_not_exist_is_refused(sandbox: Sandbox, http: httpx.Client) -> None:
    ghost = str(uuid.uuid4())
    token = sandbox.issuer.access_token(tenant_id=ghost, audience="https://graph.microsoft.com", app_id="x",
                                        lifetime=600, user={"id": str(uuid.uuid4()), "userPrincipalName": "a@b.c"},
                                        scopes=["User.Read"])
    err = graph_error(http.get(sandbox.info["graph_url"] + "/me", headers=bearer(token)), 401)
    assert ghost in err["message"]


def test_member_without_admin_role_reads_but_cannot_write(helpdesk: Graph, sandbox: Sandbox,
                                                         http: httpx.Client) -> None:
    for path in ("/organization", "/me", "/users", "/groups", "/subscribedSkus", "/servicePrincipals"):
        assert helpdesk.get(path).status_code == 200, path
    err = graph_error(helpdesk.post("/applications", MIGRATION_APP_BODY), 403, "Authorization_RequestDenied")
    assert err["message"] == "Insufficient privileges to complete the operation."
    graph_error(helpdesk.post("/servicePrincipals", {"appId": str(uuid.uuid4())}), 403,
                "Authorization_RequestDenied")
    own_id = helpdesk.get("/me").json()["id"]
    sku = "946ce899-873d-44bb-9d8b-671870cbfdbf"
    graph_error(helpdesk.post(f"/users/{own_id}/assignLicense", {"addLicenses": [{"skuId": sku}],
                                                                "removeLicenses": []}), 403)
    exadmin = as_user(sandbox, http, "target", EXADMIN)
    graph_error(exadmin.post("/applications", MIGRATION_APP_BODY), 403, "Authorization_RequestDenied")


def test_delegated_scopes_are_checked(sandbox: Sandbox, http: httpx.Client) -> None:
    only_me = as_user(sandbox, http, "source", SOURCE_ADMIN, scopes=["User.Read"])
    assert only_me.get("/me").status_code == 200
    graph_error(only_me.post("/applications", MIGRATION_APP_BODY), 403, "Authorization_RequestDenied")
    graph_error(only_me.get("/groups"), 403)
    me = only_me.get("/me").json()["id"]
    assert only_me.get(f"/users/{me}").status_code == 200  # User.Read reaches one's own object
    other = only_me.get("/me").json()
    assert other["userPrincipalName"] == SOURCE_ADMIN
    org = only_me.get("/organization").json()["value"][0]  # reference G1: User.Read fills three properties
    assert org["verifiedDomains"] and org["displayName"] == "Northwind Traders"
    assert org["countryLetterCode"] is None and org["tenantType"] is None


def test_app_only_tokens_need_roles_and_an_identity_in_the_tenant(src: Graph, sandbox: Sandbox,
                                                                  http: httpx.Client) -> None:
    app = create_app(src, signInAudience="AzureADMyOrg")
    sp = src.post("/servicePrincipals", {"appId": app["appId"]}).json()
    no_roles = as_app(sandbox, http, "source", app["appId"], sp["id"], [])
    graph_error(no_roles.get("/applications"), 403, "Authorization_RequestDenied")
    err = graph_error(no_roles.get("/me"), 400, "BadRequest")
    assert err["message"] == "/me request is only valid with delegated authentication flow."
    reader = as_app(sandbox, http, "source", app["appId"], sp["id"], ["Application.ReadWrite.All"])
    assert reader.get("/applications").status_code == 200
    assert reader.post("/applications", {"displayName": "made by an app"}).status_code == 201
    stranger = as_app(sandbox, http, "source", app["appId"], str(uuid.uuid4()), ["Application.ReadWrite.All"])
    graph_error(stranger.get("/applications"), 401, "Authorization_IdentityNotFound")


# =====================================================================================================
# G1 organization, G2 me and memberships
# =====================================================================================================

def test_organization_gives_tenant_id_and_domains(src: Graph, sandbox: Sandbox) -> None:
    tenant = sandbox.state.tenant("source")
    assert tenant is not None
    data = src.get("/organization").json()
    assert data["@odata.context"].endswith("/v1.0/$metadata#organization")
    (org,) = data["value"]
    assert org["id"] == tenant.id
    initial = [d for d in org["verifiedDomains"] if d["isInitial"]]
    assert [d["name"] for d in initial] == ["northwindtraders.onmicrosoft.com"]
    assert any(d["name"] == "northwind.example" and d["isDefault"] for d in org["verifiedDomains"])
    one = src.get(f"/organization/{tenant.id}", params={"$select": "id,displayName"}).json()
    assert {k for k in one if not k.startswith("@")} == {"id", "displayName"}
    graph_error(src.get(f"/organization/{uuid.uuid4()}"), 404, "Request_ResourceNotFound")


def test_me_and_directory_roles_through_transitive_member_of(src: Graph, helpdesk: Graph, sandbox: Sandbox,
                                                             http: httpx.Client) -> None:
    assert src.get("/me").json()["userPrincipalName"] == SOURCE_ADMIN
    roles = [o for o in src.get("/me/transitiveMemberOf").json()["value"]
             if o["@odata.type"] == "#microsoft.graph.directoryRole"]
    assert [r["roleTemplateId"] for r in roles] == ["62e90394-69f5-4237-9190-012177145e10"]
    assert not [o for o in helpdesk.get("/me/transitiveMemberOf").json()["value"]
                if o["@odata.type"] == "#microsoft.graph.directoryRole"]
    wave = src.get("/groups", params={"$filter": "displayName eq 'Migration Wave 1'"}).json()["value"][0]
    member = next(m for m in src.get(f"/groups/{wave['id']}/members").json()["value"]
                  if m["@odata.type"] == "#microsoft.graph.user")
    as_member = as_user(sandbox, http, "source", member["userPrincipalName"])
    groups = {o["displayName"] for o in as_member.get("/me/transitiveMemberOf").json()["value"]
              if o["@odata.type"] == "#microsoft.graph.group"}
    assert "Migration Wave 1" in groups


# =====================================================================================================
# G3-G5 applications
# =====================================================================================================

def test_create_application_returns_generated_identity(tgt: Graph, sandbox: Sandbox) -> None:
    r = tgt.post("/applications", MIGRATION_APP_BODY)
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["@odata.context"].endswith("$metadata#applications/$entity")
    uuid.UUID(app["id"])
    uuid.UUID(app["appId"])
    assert app["id"] != app["appId"]
    assert app["publisherDomain"] == "fabrikam.example"
    assert app["signInAudience"] == "AzureADMultipleOrgs"
    assert app["web"]["redirectUris"] == ["https://office.com"]
    assert app["web"]["implicitGrantSettings"] == {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False}
    assert app["requiredResourceAccess"] == MIGRATION_APP_BODY["requiredResourceAccess"]
    assert app["passwordCredentials"] == [] and app["keyCredentials"] == []
    assert app["createdDateTime"].endswith("Z")
    assert app["id"] in r.headers["Location"]
    assert tgt.get(f"/applications/{app['id']}").json()["appId"] == app["appId"]
    assert tgt.get(f"/applications(appId='{app['appId']}')").json()["id"] == app["id"]


def test_list_applications_filters_by_app_id_and_display_name(tgt: Graph) -> None:
    a = create_app(tgt)
    b = create_app(tgt, displayName="Something else")
    by_id = tgt.get("/applications", params={"$filter": f"appId eq '{a['appId']}'"}).json()["value"]
    assert [x["id"] for x in by_id] == [a["id"]]
    by_name = tgt.get("/applications", params={"$filter": "startswith(displayName,'ctmm-')"}).json()["value"]
    assert [x["id"] for x in by_name] == [a["id"]]
    both = tgt.get("/applications", params={"$filter": f"appId in ('{a['appId']}', '{b['appId']}')",
                                            "$select": "appId"}).json()
    assert sorted(x["appId"] for x in both["value"]) == sorted([a["appId"], b["appId"]])
    assert all(set(x) == {"id", "appId"} for x in both["value"])
    assert both["@odata.context"].endswith("$metadata#applications(appId)")


def test_patch_application_updates_and_rejects_unknown_or_read_only_properties(tgt: Graph) -> None:
    app = create_app(tgt)
    r = tgt.patch(f"/applications/{app['id']}", {"web": {"redirectUris": ["https://office.com",
                                                                          "https://example.com/cb"]},
                                                 "notes": "scoped to wave 1"})
    assert r.status_code == 204
    got = tgt.get(f"/applications/{app['id']}").json()
    assert got["web"]["redirectUris"] == ["https://office.com", "https://example.com/cb"]
    assert got["notes"] == "scoped to wave 1"
    err = graph_error(tgt.patch(f"/applications/{app['id']}", {"colour": "blue"}), 400, "BadRequest")
    assert err["message"].startswith("The property 'colour' does not exist on type 'microsoft.graph.application'")
    err = graph_error(tgt.patch(f"/applications/{app['id']}", {"web": {"redirectUri": "x"}}), 400)
    assert "microsoft.graph.webApplication" in err["message"]
    graph_error(tgt.patch(f"/applications/{app['id']}", {"appId": str(uuid.uuid4())}), 400, "Request_BadRequest")
    graph_error(tgt.patch(f"/applications/{app['id']}", {"_secretHashes": {}}), 400, "BadRequest")
    graph_error(tgt.patch(f"/applications/{app['id']}", {"displayName": 5}), 400, "BadRequest")
    graph_error(tgt.patch(f"/applications/{app['id']}", {"signInAudience": "Everyone"}), 400, "Request_BadRequest")
    assert tgt.get(f"/applications/{app['id']}").json()["signInAudience"] == "AzureADMultipleOrgs"


def test_invalid_ids_are_400_and_unknown_ids_are_404(tgt: Graph) -> None:
    err = graph_error(tgt.get("/applications/12345"), 400, "Request_BadRequest")
    assert err["message"] == "Invalid object identifier '12345'."
    missing = str(uuid.uuid4())
    err = graph_error(tgt.get(f"/applications/{missing}"), 404, "Request_ResourceNotFound")
    assert err["message"] == (f"Resource '{missing}' does not exist or one of its queried reference-property "
                              f"objects are not present.")
    graph_error(tgt.get(f"/applications(appId='{missing}')"), 404, "Request_ResourceNotFound")
    graph_error(tgt.get(f"/servicePrincipals/{missing}"), 404, "Request_ResourceNotFound")
    graph_error(tgt.get(f"/groups/{missing}"), 404, "Request_ResourceNotFound")
    graph_error(tgt.get("/users/nobody@fabrikam.example"), 404, "Request_ResourceNotFound")


def test_delete_application_removes_it_and_its_home_service_principal(tgt: Graph) -> None:
    app = create_app(tgt)
    sp = tgt.post("/servicePrincipals", {"appId": app["appId"]}).json()
    assert tgt.delete(f"/applications/{app['id']}").status_code == 204
    graph_error(tgt.get(f"/applications/{app['id']}"), 404)
    graph_error(tgt.get(f"/servicePrincipals/{sp['id']}"), 404)
    graph_error(tgt.delete(f"/applications/{app['id']}"), 404)


def test_certificate_credential_replaces_collection_and_key_shows_only_when_selected(tgt: Graph) -> None:
    app = create_app(tgt)
    der, cert = self_signed_der("CN=CTMM migration")
    key = base64.b64encode(der).decode()
    r = tgt.patch(f"/applications/{app['id']}", {"keyCredentials": [
        {"type": "AsymmetricX509Cert", "usage": "Verify", "key": key, "displayName": "CN=CTMM migration"}]})
    assert r.status_code == 204, r.text
    plain = tgt.get(f"/applications/{app['id']}").json()["keyCredentials"]
    assert len(plain) == 1 and plain[0]["key"] is None
    assert plain[0]["customKeyIdentifier"] == base64.b64encode(cert.fingerprint(hashes.SHA1())).decode()
    uuid.UUID(plain[0]["keyId"])
    selected = tgt.get(f"/applications/{app['id']}", params={"$select": "keyCredentials"}).json()
    assert selected["keyCredentials"][0]["key"] == key
    listed = tgt.get("/applications", params={"$select": "id,keyCredentials"}).json()["value"]
    assert all(kc["key"] is None for a in listed for kc in a["keyCredentials"])
    der2, _ = self_signed_der("CN=second")
    tgt.patch(f"/applications/{app['id']}", {"keyCredentials": [
        {"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(der2).decode()}]})
    after = tgt.get(f"/applications/{app['id']}").json()["keyCredentials"]
    assert len(after) == 1 and after[0]["displayName"] == "CN=second"


@pytest.mark.parametrize("key", ["bm90IGEgY2VydGlmaWNhdGU=", "%%%notbase64", ""])
def test_certificate_that_does_not_parse_is_refused(tgt: Graph, key: str) -> None:
    app = create_app(tgt)
    r = tgt.patch(f"/applications/{app['id']}", {"keyCredentials": [
        {"type": "AsymmetricX509Cert", "usage": "Verify", "key": key}]})
    assert r.status_code == 400
    assert tgt.get(f"/applications/{app['id']}").json()["keyCredentials"] == []


def test_add_password_returns_secret_once_and_stores_only_its_hash(tgt: Graph, sandbox: Sandbox,
                                                                  http: httpx.Client) -> None:
    app = create_app(tgt)
    r = tgt.post(f"/applications/{app['id']}/addPassword", {"passwordCredential": {"displayName": "wizard"}})
    assert r.status_code == 200, r.text
    cred = r.json()
    secret = cred["secretText"]
    assert len(secret) == 40 and cred["hint"] == secret[:3]
    start, end = (datetime.datetime.fromisoformat(cred[k].replace("Z", "+00:00"))
                  for k in ("startDateTime", "endDateTime"))
    assert 729 <= (end - start).days <= 731  # default expiry: two years
    shown = tgt.get(f"/applications/{app['id']}").json()["passwordCredentials"]
    assert shown == [{**{k: v for k, v in cred.items() if not k.startswith("@")}, "secretText": None}]
    dump = control(sandbox, http, "GET", "/state").text
    assert secret not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in dump
    by_app_id = tgt.post(f"/applications(appId='{app['appId']}')/addPassword", {})
    assert by_app_id.status_code == 200 and by_app_id.json()["secretText"] != secret


def test_remove_password(tgt: Graph, sandbox: Sandbox) -> None:
    app = create_app(tgt)
    cred = tgt.post(f"/applications/{app['id']}/addPassword", {}).json()
    graph_error(tgt.post(f"/applications/{app['id']}/removePassword", {"keyId": str(uuid.uuid4())}), 404)
    assert tgt.post(f"/applications/{app['id']}/removePassword", {"keyId": cred["keyId"]}).status_code == 204
    assert tgt.get(f"/applications/{app['id']}").json()["passwordCredentials"] == []
    tenant = sandbox.state.tenant("target")
    assert tenant is not None
    assert tenant.col("applications")[app["id"]]["_secretHashes"] == {}
    graph_error(tgt.post(f"/applications/{app['id']}/removePassword", {"keyId": "nope"}), 400, "BadRequest")


# =====================================================================================================
# G6-G9 service principals, consent by API
# =====================================================================================================

def test_find_exchange_service_principal_and_its_migration_role(src: Graph) -> None:
    found = src.get("/servicePrincipals", params={"$filter": f"appId eq '{EXO_APP_ID}'"}).json()["value"]
    assert len(found) == 1
    one = src.get(f"/servicePrincipals(appId='{EXO_APP_ID}')", params={"$select": "id,appRoles"}).json()
    assert {k for k in one if not k.startswith("@")} == {"id", "appRoles"}
    assert one["id"] == found[0]["id"]
    role = next(r for r in one["appRoles"] if r["value"] == "Mailbox.Migration")
    assert role["allowedMemberTypes"] == ["Application"]
    by_name = src.get("/servicePrincipals", params={"$filter": "displayName eq 'Office 365 Exchange Online'"})
    assert [s["id"] for s in by_name.json()["value"]] == [one["id"]]


def test_source_consent_by_api(src: Graph, tgt: Graph, sandbox: Sandbox) -> None:
    """Reference §4 note under G8: POST servicePrincipals for the target's app, then grant Mailbox.Migration."""
    target = sandbox.state.tenant("target")
    assert target is not None
    app = create_app(tgt)
    r = src.post("/servicePrincipals", {"appId": app["appId"]})
    assert r.status_code == 201, r.text
    sp = r.json()
    assert sp["appOwnerOrganizationId"] == target.id and sp["appId"] == app["appId"]
    exo = src.get(f"/servicePrincipals(appId='{EXO_APP_ID}')", params={"$select": "id,appRoles"}).json()
    role_id = next(r["id"] for r in exo["appRoles"] if r["value"] == "Mailbox.Migration")
    r = src.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo",
                 {"principalId": sp["id"], "resourceId": exo["id"], "appRoleId": role_id})
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["principalType"] == "ServicePrincipal" and grant["resourceDisplayName"] == "Office 365 Exchange Online"
    mine = src.get(f"/servicePrincipals/{sp['id']}/appRoleAssignments").json()["value"]
    assert [(a["resourceId"], a["appRoleId"]) for a in mine] == [(exo["id"], role_id)]
    on_exo = src.get(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo").json()["value"]
    assert grant["id"] in [a["id"] for a in on_exo]
    err = graph_error(src.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo",
                               {"principalId": sp["id"], "resourceId": exo["id"], "appRoleId": role_id}), 400)
    assert err["message"] == "Permission being assigned already exists on the object"
    assert src.delete(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo/{grant['id']}").status_code == 204
    assert src.get(f"/servicePrincipals/{sp['id']}/appRoleAssignments").json()["value"] == []


def test_role_assignment_errors(src: Graph, tgt: Graph, helpdesk: Graph) -> None:
    app = create_app(tgt)
    sp = src.post("/servicePrincipals", {"appId": app["appId"]}).json()
    exo = src.get(f"/servicePrincipals(appId='{EXO_APP_ID}')").json()
    err = graph_error(src.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo",
                               {"principalId": sp["id"], "resourceId": exo["id"], "appRoleId": str(uuid.uuid4())}),
                      400, "Request_BadRequest")
    assert err["message"].startswith("Permission being assigned was not found on application")
    graph_error(src.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo",
                         {"principalId": str(uuid.uuid4()), "resourceId": exo["id"],
                          "appRoleId": "f7264778-fba9-422d-8e9e-2675a2c4b513"}), 404, "Request_ResourceNotFound")
    graph_error(src.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo",
                         {"principalId": "zzz", "resourceId": exo["id"], "appRoleId": str(uuid.uuid4())}), 400)
    graph_error(helpdesk.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo",
                              {"principalId": sp["id"], "resourceId": exo["id"],
                               "appRoleId": "f7264778-fba9-422d-8e9e-2675a2c4b513"}), 403)
    graph_error(src.delete(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo/nope"), 404)


def test_service_principal_creation_errors(src: Graph, tgt: Graph) -> None:
    unknown = str(uuid.uuid4())
    err = graph_error(src.post("/servicePrincipals", {"appId": unknown}), 400, "Request_BadRequest")
    assert err["message"] == f"The appId '{unknown}' of the service principal does not reference a valid application object."
    single = create_app(tgt, signInAudience="AzureADMyOrg")
    graph_error(src.post("/servicePrincipals", {"appId": single["appId"]}), 400, "Request_BadRequest")
    assert tgt.post("/servicePrincipals", {"appId": single["appId"]}).status_code == 201
    err = graph_error(tgt.post("/servicePrincipals", {"appId": single["appId"]}), 409,
                      "Request_MultipleObjectsWithSameKeyValue")
    assert "servicePrincipalNames" in err["message"]
    graph_error(src.post("/servicePrincipals", {"appId": EXO_APP_ID}), 409)
    graph_error(src.post("/servicePrincipals", {"appId": single["appId"], "flavour": 1}), 400, "BadRequest")


def test_delete_service_principal_also_drops_its_grants(src: Graph, tgt: Graph) -> None:
    app = create_app(tgt)
    sp = src.post("/servicePrincipals", {"appId": app["appId"]}).json()
    exo = src.get(f"/servicePrincipals(appId='{EXO_APP_ID}')").json()
    src.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo",
             {"principalId": sp["id"], "resourceId": exo["id"], "appRoleId": "f7264778-fba9-422d-8e9e-2675a2c4b513"})
    assert src.delete(f"/servicePrincipals/{sp['id']}").status_code == 204
    graph_error(src.get(f"/servicePrincipals/{sp['id']}"), 404)
    assert all(a["principalId"] != sp["id"]
               for a in src.get(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo").json()["value"])


# =====================================================================================================
# Replication delay
# =====================================================================================================

def test_new_objects_are_invisible_until_replicated(src: Graph, tgt: Graph, sandbox: Sandbox,
                                                   http: httpx.Client) -> None:
    assert control(sandbox, http, "PATCH", "/settings", {"replication_delay_seconds": 30}).status_code == 200
    app = create_app(tgt)
    graph_error(tgt.get(f"/applications/{app['id']}"), 404, "Request_ResourceNotFound")
    assert app["id"] not in [a["id"] for a in tgt.get("/applications").json()["value"]]
    err = graph_error(src.post("/servicePrincipals", {"appId": app["appId"]}), 400)
    assert "does not reference a valid application object" in err["message"]
    control(sandbox, http, "POST", "/clock", {"advance_seconds": 31})
    assert tgt.get(f"/applications/{app['id']}").status_code == 200
    sp = src.post("/servicePrincipals", {"appId": app["appId"]}).json()
    graph_error(src.get(f"/servicePrincipals/{sp['id']}"), 404)
    group = src.post("/groups", {"displayName": "Late", "mailEnabled": False, "mailNickname": "late",
                                 "securityEnabled": True}).json()
    graph_error(src.get(f"/groups/{group['id']}"), 404)
    control(sandbox, http, "POST", "/clock", {"advance_seconds": 31})
    assert src.get(f"/servicePrincipals/{sp['id']}").status_code == 200
    assert src.get(f"/groups/{group['id']}").json()["displayName"] == "Late"
    exo = src.get(f"/servicePrincipals(appId='{EXO_APP_ID}')").json()
    grant = {"principalId": sp["id"], "resourceId": exo["id"], "appRoleId": "f7264778-fba9-422d-8e9e-2675a2c4b513"}
    assert src.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo", grant).status_code == 201
    assert src.get(f"/servicePrincipals/{sp['id']}/appRoleAssignments").json()["value"] == []  # not yet replicated
    graph_error(src.post(f"/servicePrincipals/{exo['id']}/appRoleAssignedTo", grant), 400)  # but already written
    control(sandbox, http, "POST", "/clock", {"advance_seconds": 31})
    assert len(src.get(f"/servicePrincipals/{sp['id']}/appRoleAssignments").json()["value"]) == 1


# =====================================================================================================
# G10-G11 groups and members
# =====================================================================================================

def test_scope_group_filter_finds_mail_enabled_security_groups_only(src: Graph) -> None:
    r = src.get("/groups", params={"$filter": "mailEnabled eq true and securityEnabled eq true",
                                   "$select": "id,displayName,mail,groupTypes,onPremisesSyncEnabled"})
    names = {g["displayName"] for g in r.json()["value"]}
    assert "Migration Wave 1" in names and "Finance Team" not in names
    assert all(set(g) == {"id", "displayName", "mail", "groupTypes", "onPremisesSyncEnabled"}
               for g in r.json()["value"])
    plain = src.get("/groups", params={"$filter": "securityEnabled eq true and mailEnabled eq false"}).json()
    assert "Finance Team" in {g["displayName"] for g in plain["value"]}
    starts = [g["displayName"] for g in
              src.get("/groups", params={"$filter": "startswith(displayName,'migration')"}).json()["value"]]
    assert "Migration Wave 1" in starts and all(n.lower().startswith("migration") for n in starts)
    assert "Finance Team" not in starts
    one = src.get("/groups", params={"$filter": "mail eq 'WAVE1@northwind.example'"}).json()["value"]
    assert [g["displayName"] for g in one] == ["Migration Wave 1"]


@pytest.mark.parametrize("flt, code, fragment", [
    ("mailEnabled eq", "BadRequest", "Syntax error at position"),
    ("mailEnabled eq 'true'", "BadRequest", "incompatible types"),
    ("colour eq 'blue'", "BadRequest", "Could not find a property named 'colour' on type 'microsoft.graph.group'"),
    ("mailEnabled ne false", "Request_UnsupportedQuery", "Unsupported or invalid query filter clause"),
    ("endswith(mail,'.example')", "Request_UnsupportedQuery", "Unsupported or invalid query filter clause"),
    ("classification eq 'x'", "Request_UnsupportedQuery", "'classification' of resource 'Group'"),
    ("displayName eq 'unterminated", "BadRequest", "unterminated string literal"),
])
def test_invalid_group_filters(src: Graph, flt: str, code: str, fragment: str) -> None:
    err = graph_error(src.get("/groups", params={"$filter": flt}), 400, code)
    assert fragment in err["message"]


def test_advanced_queries_need_consistency_level_and_count(src: Graph) -> None:
    params = {"$filter": "mailEnabled ne true", "$count": "true"}
    graph_error(src.get("/groups", params=params), 400)
    r = src.get("/groups", params=params, headers={"ConsistencyLevel": "eventual"})
    data = r.json()
    assert r.status_code == 200 and data["@odata.count"] == len(data["value"])
    assert "Finance Team" in {g["displayName"] for g in data["value"]}
    assert "Migration Wave 1" not in {g["displayName"] for g in data["value"]}


def test_select_keeps_id_and_rejects_unknown_properties(src: Graph) -> None:
    r = src.get("/groups", params={"$select": "displayName"})
    assert all(set(g) == {"id", "displayName"} for g in r.json()["value"])
    err = graph_error(src.get("/groups", params={"$select": "displayName,shoeSize"}), 400, "BadRequest")
    assert "Could not find a property named 'shoeSize'" in err["message"]


def test_members_page_with_top_until_done(small: Graph) -> None:
    group = small.get("/groups", params={"$filter": "displayName eq 'Wave Scope'"}).json()["value"][0]
    members, pages = small.all_pages(f"/groups/{group['id']}/members?$top=2&$select=id,userPrincipalName,mail")
    assert pages == 3
    users = [m for m in members if m["@odata.type"] == "#microsoft.graph.user"]
    nested = [m for m in members if m["@odata.type"] == "#microsoft.graph.group"]
    assert sorted(u["userPrincipalName"] for u in users) == [f"user{i}@contoso.example" for i in range(5)]
    assert [g["id"] for g in nested] and len({m["id"] for m in members}) == 6
    assert set(users[0]) == {"@odata.type", "id", "userPrincipalName", "mail"}
    everyone, _ = small.all_pages(f"/groups/{group['id']}/transitiveMembers?$top=3")
    upns = {m.get("userPrincipalName") for m in everyone if m["@odata.type"] == "#microsoft.graph.user"}
    assert {"inner1@contoso.example", "inner2@contoso.example"} <= upns and len(upns) == 7
    assert any(m["@odata.type"] == "#microsoft.graph.group" for m in everyone)


def test_paging_errors(small: Graph) -> None:
    group = small.get("/groups", params={"$filter": "displayName eq 'Wave Scope'"}).json()["value"][0]
    base = f"/groups/{group['id']}/members"
    for top in ("0", "1000"):
        err = graph_error(small.get(base, params={"$top": top}), 400, "Request_UnsupportedQuery")
        assert "Must be between 1 and 999 inclusive" in err["message"]
    graph_error(small.get(base, params={"$top": "two"}), 400, "BadRequest")
    graph_error(small.get(base, params={"$skiptoken": "garbage"}), 400, "Directory_ExpiredPageToken")
    link = small.get(base, params={"$top": "2"}).json()["@odata.nextLink"]
    token = link.split("$skiptoken=")[1]
    graph_error(small.get("/users", params={"$skiptoken": token}), 400, "Directory_ExpiredPageToken")
    users, pages = small.all_pages("/users?$top=4")
    assert len(users) == 9 and pages == 3
    assert len(small.get("/users").json()["value"]) == 9  # default page size 100


def test_mail_enabled_security_groups_are_read_only_in_graph(src: Graph) -> None:
    wave = src.get("/groups", params={"$filter": "displayName eq 'Migration Wave 1'"}).json()["value"][0]
    helpdesk = src.get("/users/helpdesk@northwind.example").json()
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{helpdesk['id']}"}
    err = graph_error(src.post(f"/groups/{wave['id']}/members/$ref", ref), 400, "Request_BadRequest")
    assert err["message"] == "Cannot Update a mail-enabled security groups and or distribution list."
    member = src.get(f"/groups/{wave['id']}/members").json()["value"][0]
    graph_error(src.delete(f"/groups/{wave['id']}/members/{member['id']}/$ref"), 400, "Request_BadRequest")
    graph_error(src.patch(f"/groups/{wave['id']}", {"description": "x"}), 400, "Request_BadRequest")
    err = graph_error(src.post("/groups", {"displayName": "Wave 2", "mailEnabled": True, "mailNickname": "wave2",
                                           "securityEnabled": True}), 400, "Request_BadRequest")
    assert err["message"] == "Cannot Create a mail-enabled security groups and or distribution list."
    members = src.get(f"/groups/{wave['id']}/members").json()["value"]
    assert helpdesk["id"] not in [m["id"] for m in members]


def test_security_groups_can_be_created_and_filled_through_graph(src: Graph, helpdesk: Graph) -> None:
    r = src.post("/groups", {"displayName": "Pilot", "mailEnabled": False, "mailNickname": "pilot",
                             "securityEnabled": True})
    assert r.status_code == 201, r.text
    group = r.json()
    assert group["mailEnabled"] is False and group["groupTypes"] == [] and group["mail"] is None
    alice = src.get(f"/users/{HELPDESK}").json()
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{alice['id']}"}
    assert src.post(f"/groups/{group['id']}/members/$ref", ref).status_code == 204
    graph_error(src.post(f"/groups/{group['id']}/members/$ref", ref), 400, "Request_BadRequest")
    assert [m["id"] for m in src.get(f"/groups/{group['id']}/members").json()["value"]] == [alice["id"]]
    graph_error(helpdesk.post(f"/groups/{group['id']}/members/$ref", ref), 403)
    assert src.delete(f"/groups/{group['id']}/members/{alice['id']}/$ref").status_code == 204
    assert src.get(f"/groups/{group['id']}/members").json()["value"] == []


# =====================================================================================================
# G12-G13 licenses, users, sessions
# =====================================================================================================

def test_subscribed_skus_count_actual_assignments(src: Graph) -> None:
    skus = src.get("/subscribedSkus").json()["value"]
    users = src.all_pages("/users?$select=id,assignedLicenses&$top=999")[0]
    for sku in skus:
        holders = sum(1 for u in users if any(a["skuId"] == sku["skuId"] for a in u["assignedLicenses"]))
        assert sku["consumedUnits"] == holders, sku["skuPartNumber"]
        assert {"enabled", "lockedOut", "suspended", "warning"} <= set(sku["prepaidUnits"])
    t2t = next(s for s in skus if s["skuId"] == "946ce899-873d-44bb-9d8b-671870cbfdbf")
    assert {p["servicePlanName"] for p in t2t["servicePlans"]} >= {"EXCHANGEONLINE_T2TMBXMOVE"}
    graph_error(src.get("/subscribedSkus", params={"$filter": "skuPartNumber eq 'x'"}), 400)
    only = src.get("/subscribedSkus", params={"$select": "skuId,consumedUnits"}).json()["value"]
    assert all(set(s) == {"id", "skuId", "consumedUnits"} for s in only)


def test_assign_and_remove_license_updates_consumed_units(src: Graph) -> None:
    sku_id = "946ce899-873d-44bb-9d8b-671870cbfdbf"
    users = src.all_pages("/users?$select=id,usageLocation,assignedLicenses&$top=999")[0]
    helpdesk = next(u for u in users  # any licensable user who lacks the migration license
                    if u["usageLocation"] and all(a["skuId"] != sku_id for a in u["assignedLicenses"]))

    def consumed() -> int:
        return next(s for s in src.get("/subscribedSkus").json()["value"] if s["skuId"] == sku_id)["consumedUnits"]

    before = consumed()
    r = src.post(f"/users/{helpdesk['id']}/assignLicense", {"addLicenses": [{"skuId": sku_id, "disabledPlans": []}],
                                                            "removeLicenses": []})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == helpdesk["id"]
    assert consumed() == before + 1
    details = src.get(f"/users/{helpdesk['id']}/licenseDetails").json()["value"]
    assert sku_id in [d["skuId"] for d in details]
    assert any(d["skuPartNumber"] == "Cross_tenant_user_data_migration" for d in details)
    filtered = src.get("/users", params={"$filter": f"assignedLicenses/any(x:x/skuId eq {sku_id})"}).json()
    assert helpdesk["id"] in [u["id"] for u in filtered["value"]]
    assert src.post(f"/users/{helpdesk['id']}/assignLicense", {"addLicenses": [],
                                                               "removeLicenses": [sku_id]}).status_code == 200
    assert consumed() == before
    err = graph_error(src.post(f"/users/{helpdesk['id']}/assignLicense", {"addLicenses": [],
                                                                          "removeLicenses": [sku_id]}), 400)
    assert "does not have a corresponding license" in err["message"]


def test_license_assignment_errors(small: Graph) -> None:
    sku_id = "946ce899-873d-44bb-9d8b-671870cbfdbf"
    add = {"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []}
    err = graph_error(small.post("/users/nolocation@contoso.example/assignLicense", add), 400, "Request_BadRequest")
    assert err["message"] == "License assignment cannot be done for user with invalid usage location."
    assert small.post("/users/user0@contoso.example/assignLicense", add).status_code == 200
    err = graph_error(small.post("/users/user1@contoso.example/assignLicense", add), 400, "Request_BadRequest")
    assert err["message"] == f"Subscription with SKU {sku_id} does not have any available licenses."
    bogus = str(uuid.uuid4())
    err = graph_error(small.post("/users/user1@contoso.example/assignLicense",
                                 {"addLicenses": [{"skuId": bogus}], "removeLicenses": []}), 400)
    assert err["message"] == f"License {bogus} does not correspond to a valid company License."
    graph_error(small.post("/users/user1@contoso.example/assignLicense", {"addLicenses": []}), 400)
    graph_error(small.post("/users/user1@contoso.example/assignLicense",
                           {"addLicenses": [{"skuId": sku_id, "disabledPlans": [str(uuid.uuid4())]}],
                            "removeLicenses": []}), 400)


def test_users_default_properties_select_and_lookup_by_upn(src: Graph, sandbox: Sandbox) -> None:
    alice = src.get(f"/users/{SOURCE_ADMIN.upper()}").json()
    assert alice["userPrincipalName"] == SOURCE_ADMIN
    assert "usageLocation" not in alice and "assignedLicenses" not in alice  # v1.0 default property set
    full = src.get(f"/users/{alice['id']}", params={"$select": "id,usageLocation,assignedLicenses"}).json()
    tenant = sandbox.state.tenant("source")
    assert tenant is not None
    record = tenant.col("users")[alice["id"]]
    assert full["usageLocation"] == record["usageLocation"] and full["assignedLicenses"] == record["assignedLicenses"]
    assert full["usageLocation"] and full["assignedLicenses"]
    hits = src.get("/users", params={"$filter": f"userPrincipalName eq '{SOURCE_ADMIN}'"}).json()["value"]
    assert [u["id"] for u in hits] == [alice["id"]]
    graph_error(src.get("/users/not-a-guid"), 400, "Request_BadRequest")
    ordered = src.get("/users", params={"$orderby": "displayName desc", "$select": "displayName"}).json()["value"]
    names = [u["displayName"] for u in ordered]
    assert names == sorted(names, key=str.lower, reverse=True)


def test_revoke_sign_in_sessions_revokes_refresh_tokens(src: Graph, helpdesk: Graph, sandbox: Sandbox) -> None:
    tenant = sandbox.state.tenant("source")
    assert tenant is not None
    alice = src.get(f"/users/{SOURCE_ADMIN}").json()
    record = {"tenantId": tenant.id, "userId": alice["id"], "clientId": "c", "issuedAt": 0, "lastUsedAt": 0,
              "revoked": False}
    sandbox.state.refresh_tokens["f" * 64] = record
    graph_error(helpdesk.post(f"/users/{alice['id']}/revokeSignInSessions"), 403)
    assert record["revoked"] is False
    r = src.post(f"/users/{alice['id']}/revokeSignInSessions")
    assert r.status_code == 200 and r.json()["value"] is True
    assert record["revoked"] is True
    assert helpdesk.post("/me/revokeSignInSessions").status_code == 200  # anyone may end their own sessions


# =====================================================================================================
# Throttling and $batch
# =====================================================================================================

def test_throttling_answers_429_with_retry_after_in_graph_shape(src: Graph, sandbox: Sandbox,
                                                               http: httpx.Client) -> None:
    control(sandbox, http, "POST", "/faults", {"kind": "throttle", "service": "graph", "path": "/v1.0/groups*",
                                               "count": 1, "retry_after": 9})
    r = src.get("/groups")
    err = graph_error(r, 429, "TooManyRequests")
    assert r.headers["Retry-After"] == "9" and err["innerError"]["request-id"] == r.headers["request-id"]
    assert src.get("/groups").status_code == 200


def test_batch_runs_parts_with_dependencies_and_per_part_errors(helpdesk: Graph) -> None:
    r = helpdesk.post("/$batch", {"requests": [
        {"id": "1", "method": "GET", "url": "/me"},
        {"id": "2", "method": "POST", "url": "applications", "body": {"displayName": "x"},
         "headers": {"Content-Type": "application/json"}},
        {"id": "3", "method": "GET", "url": "/organization", "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": "/organization?$select=id", "dependsOn": ["1"]},
        {"id": "5", "method": "GET", "url": "/applications/bad-id"},
        {"id": "6", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"},
        {"id": "7", "method": "POST", "url": "/$batch", "body": {"requests": []},
         "headers": {"Content-Type": "application/json"}},
    ]})
    assert r.status_code == 200, r.text
    parts = {p["id"]: p for p in r.json()["responses"]}
    assert parts["1"]["status"] == 200 and parts["1"]["body"]["userPrincipalName"] == HELPDESK
    assert parts["2"]["status"] == 403 and parts["2"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    assert parts["3"]["status"] == 424
    assert parts["4"]["status"] == 200 and set(parts["4"]["body"]["value"][0]) == {"id"}
    assert parts["5"]["status"] == 400 and parts["5"]["body"]["error"]["message"].startswith("Invalid object")
    assert parts["6"]["status"] == 400 and parts["7"]["status"] == 400
    assert all("request-id" in p["headers"] for p in parts.values())


def test_batch_parts_are_throttled_individually(src: Graph, sandbox: Sandbox, http: httpx.Client) -> None:
    control(sandbox, http, "POST", "/faults", {"kind": "throttle", "service": "graph", "path": "/v1.0/users*",
                                               "retry_after": 4})
    r = src.post("/$batch", {"requests": [{"id": "a", "method": "GET", "url": "/users"},
                                          {"id": "b", "method": "GET", "url": "/groups"}]})
    assert r.status_code == 200
    parts = {p["id"]: p for p in r.json()["responses"]}
    assert parts["a"]["status"] == 429 and parts["a"]["headers"]["Retry-After"] == "4"
    assert parts["a"]["body"]["error"]["code"] == "TooManyRequests"
    assert parts["b"]["status"] == 200


@pytest.mark.parametrize("payload, fragment", [
    ({"requests": [{"id": str(i), "method": "GET", "url": "/me"} for i in range(21)]}, "exceeds the maximum"),
    ({"requests": [{"id": "1", "method": "GET", "url": "/me"}, {"id": "1", "method": "GET", "url": "/me"}]},
     "duplicate ids"),
    ({"requests": [{"id": "1", "method": "POST", "url": "/applications", "body": {"displayName": "x"}}]},
     "does not contain Content-Type header or body"),
    ({"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}]}, "Dependency"),
    ({"requests": "nope"}, "Invalid batch payload"),
])
def test_batch_wide_errors_fail_the_whole_batch(src: Graph, payload: Any, fragment: str) -> None:
    err = graph_error(src.post("/$batch", payload), 400, "BadRequest")
    assert fragment in err["message"]


def test_batch_of_twenty_creates_are_all_applied(tgt: Graph) -> None:
    reqs = [{"id": str(i), "method": "POST", "url": "/applications", "body": {"displayName": f"app {i}"},
             "headers": {"Content-Type": "application/json"}} for i in range(20)]
    r = tgt.post("/$batch", {"requests": reqs})
    assert r.status_code == 200
    assert sorted(p["status"] for p in r.json()["responses"]) == [201] * 20
    names = {a["displayName"] for a in tgt.all_pages("/applications?$top=7")[0]}
    assert {f"app {i}" for i in range(20)} <= names


def test_search_needs_consistency_level_and_matches_word_prefixes(src: Graph) -> None:
    params = {"$search": '"displayName:wave"'}
    graph_error(src.get("/groups", params=params), 400, "Request_UnsupportedQuery")
    hits = {g["displayName"] for g in
            src.get("/groups", params=params, headers={"ConsistencyLevel": "eventual"}).json()["value"]}
    assert "Migration Wave 1" in hits and "Finance Team" not in hits
    both = {g["displayName"] for g in src.get("/groups", params={"$search": '"displayName:wave" OR "displayName:finance"'},
                                              headers={"ConsistencyLevel": "eventual"}).json()["value"]}
    assert {"Migration Wave 1", "Finance Team"} <= both and len(both) < len(src.get("/groups").json()["value"])
    graph_error(src.get("/groups", params={"$search": "wave"}, headers={"ConsistencyLevel": "eventual"}), 400,
                "Request_UnsupportedQuery")


@pytest.mark.parametrize("credential", [{"startDateTime": "9999-12-31T00:00:00Z"},
                                        {"endDateTime": "0001-01-01T00:00:00+01:00"},
                                        {"endDateTime": "yesterday"},
                                        {"startDateTime": "2030-01-02T00:00:00Z", "endDateTime": "2030-01-01T00:00:00Z"}])
def test_add_password_refuses_unusable_dates(tgt: Graph, credential: dict[str, str]) -> None:
    app = create_app(tgt)
    graph_error(tgt.post(f"/applications/{app['id']}/addPassword", {"passwordCredential": credential}), 400)
    assert tgt.get(f"/applications/{app['id']}").json()["passwordCredentials"] == []


def test_oidc_userinfo_on_the_graph_host(src: Graph, sandbox: Sandbox, http: httpx.Client) -> None:
    """The identity platform's discovery document names {graph}/oidc/userinfo (OIDC userinfo endpoint)."""
    import jwt

    r = http.get(sandbox.urls["graph"] + "/oidc/userinfo", headers=bearer(src.token))
    assert r.status_code == 200
    claims = jwt.decode(src.token, options={"verify_signature": False})
    assert r.json()["sub"] == claims["sub"] and r.json()["name"].startswith("Nora Admin")
    graph_error(http.get(sandbox.urls["graph"] + "/oidc/userinfo"), 401, "InvalidAuthenticationToken")


def test_secret_from_add_password_gets_an_app_token_whose_roles_graph_honours(tgt: Graph, sandbox: Sandbox,
                                                                            http: httpx.Client) -> None:
    """End to end with the identity platform: client_credentials with the secret, then Graph app-only calls."""
    graph_app_id = "00000003-0000-0000-c000-000000000000"
    graph_sp = tgt.get(f"/servicePrincipals(appId='{graph_app_id}')").json()
    read_all = next(r["id"] for r in graph_sp["appRoles"] if r["value"] == "Directory.Read.All")
    app = create_app(tgt, signInAudience="AzureADMyOrg", requiredResourceAccess=[
        {"resourceAppId": graph_app_id, "resourceAccess": [{"id": read_all, "type": "Role"}]}])
    sp = tgt.post("/servicePrincipals", {"appId": app["appId"]}).json()
    secret = tgt.post(f"/applications/{app['id']}/addPassword", {}).json()["secretText"]
    tenant = sandbox.state.tenant("target")
    assert tenant is not None

    def app_graph() -> Graph:
        r = http.post(f"{sandbox.urls['login']}/{tenant.id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": app["appId"], "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default"})
        assert r.status_code == 200, r.text
        return Graph(sandbox, http, r.json()["access_token"])

    graph_error(app_graph().get("/users"), 403, "Authorization_RequestDenied")
    assert tgt.post(f"/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo",
                    {"principalId": sp["id"], "resourceId": graph_sp["id"], "appRoleId": read_all}).status_code == 201
    as_daemon = app_graph()
    assert as_daemon.get("/users").status_code == 200
    graph_error(as_daemon.post("/applications", {"displayName": "nope"}), 403)
    wrong = http.post(f"{sandbox.urls['login']}/{tenant.id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": app["appId"], "client_secret": secret[:-1] + ("x" if secret[-1] != "x" else "y"),
        "scope": "https://graph.microsoft.com/.default"})
    assert wrong.status_code == 401


def test_add_key_rolls_a_certificate_over_with_a_proof_signed_by_the_current_one(tgt: Graph, sandbox: Sandbox,
                                                                                 http: httpx.Client) -> None:
    import jwt

    app = create_app(tgt)
    der, _, key = self_signed("CN=first")
    tgt.patch(f"/applications/{app['id']}", {"keyCredentials": [
        {"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(der).decode()}]})
    new_der, _, _ = self_signed("CN=second")
    new_kc = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(new_der).decode()}
    now = int(sandbox.clock.now())

    def proof(signer: Any = key, iss: str = app["id"], life: int = 600) -> str:
        return jwt.encode({"aud": "00000002-0000-0000-c000-000000000000", "iss": iss, "nbf": now, "exp": now + life},
                          signer, algorithm="ES256")

    add = f"/applications/{app['id']}/addKey"
    graph_error(tgt.post(add, {"keyCredential": new_kc, "passwordCredential": None}), 403,
                "Authorization_RequestDenied")
    for bad in (proof(signer=ec.generate_private_key(ec.SECP256R1())), proof(iss=str(uuid.uuid4())),
                proof(life=3600), "not-a-jwt"):
        err = graph_error(tgt.post(add, {"keyCredential": new_kc, "passwordCredential": None, "proof": bad}), 401)
        assert err["code"] == "Authentication_MissingOrMalformed"
    r = tgt.post(add, {"keyCredential": new_kc, "passwordCredential": None, "proof": proof()})
    assert r.status_code == 200, r.text
    added = r.json()
    assert added["key"] is None and added["displayName"] == "CN=second"
    keys = tgt.get(f"/applications/{app['id']}").json()["keyCredentials"]
    assert len(keys) == 2
    old_id = next(k["keyId"] for k in keys if k["keyId"] != added["keyId"])
    r = tgt.post(f"/applications/{app['id']}/removeKey", {"keyId": old_id, "proof": proof()})
    assert r.status_code == 204, r.text
    assert [k["keyId"] for k in tgt.get(f"/applications/{app['id']}").json()["keyCredentials"]] == [added["keyId"]]
    graph_error(tgt.post(f"/applications/{app['id']}/removeKey", {"keyId": old_id, "proof": proof()}), 401)


def test_invitation_creates_a_guest_once(tgt: Graph, sandbox: Sandbox, http: httpx.Client) -> None:
    """G14 (legacy target script): the response echoes invitedUserEmailAddress; the guest is a user of the tenant."""
    body = {"invitedUserEmailAddress": "Nora@northwind.example", "inviteRedirectUrl": "https://office.com",
            "sendInvitationMessage": True, "invitedUserMessageInfo": {"customizedMessageBody": "Welcome"}}
    r = tgt.post("/invitations", body)
    assert r.status_code == 201, r.text
    inv = r.json()
    assert inv["invitedUserEmailAddress"] == "Nora@northwind.example" and inv["status"] == "PendingAcceptance"
    assert inv["invitedUserMessageInfo"]["customizedMessageBody"] == "Welcome"
    guest = tgt.get(f"/users/{inv['invitedUser']['id']}", params={"$select": "id,userType,userPrincipalName,mail"})
    assert guest.json()["userType"] == "Guest"
    assert guest.json()["userPrincipalName"] == "Nora_northwind.example#EXT#@fabrikaminc.onmicrosoft.com"
    again = tgt.post("/invitations", body).json()
    assert again["invitedUser"]["id"] == inv["invitedUser"]["id"]
    graph_error(tgt.post("/invitations", {**body, "invitedUserEmailAddress": "not an address"}), 400)
    graph_error(tgt.post("/invitations", {"invitedUserEmailAddress": "x@y.example"}), 400)
    no_scope = as_user(sandbox, http, "target", TARGET_ADMIN, scopes=["User.Read"])
    graph_error(no_scope.post("/invitations", body), 403, "Authorization_RequestDenied")


def test_owned_by_permission_reaches_only_the_apps_the_caller_owns(tgt: Graph, sandbox: Sandbox,
                                                                  http: httpx.Client) -> None:
    other = create_app(tgt, displayName="Made by the admin")
    daemon_app = create_app(tgt, displayName="Daemon", signInAudience="AzureADMyOrg")
    daemon_sp = tgt.post("/servicePrincipals", {"appId": daemon_app["appId"]}).json()
    daemon = as_app(sandbox, http, "target", daemon_app["appId"], daemon_sp["id"], ["Application.ReadWrite.OwnedBy"])
    mine = daemon.post("/applications", {"displayName": "Owned by the daemon"}).json()
    assert daemon.patch(f"/applications/{mine['id']}", {"notes": "mine"}).status_code == 204
    assert [a["id"] for a in daemon.get("/applications").json()["value"]] == [mine["id"]]
    graph_error(daemon.get(f"/applications/{other['id']}"), 403, "Authorization_RequestDenied")
    graph_error(daemon.post(f"/applications/{other['id']}/addPassword", {}), 403)
    assert other["id"] in [a["id"] for a in tgt.get("/applications").json()["value"]]


def test_tenants_are_isolated(src: Graph, tgt: Graph) -> None:
    app = create_app(tgt)
    graph_error(src.get(f"/applications/{app['id']}"), 404, "Request_ResourceNotFound")
    graph_error(src.patch(f"/applications/{app['id']}", {"notes": "x"}), 404)
    assert app["id"] not in [a["id"] for a in src.get("/applications").json()["value"]]
    target_user = tgt.get("/me").json()["id"]
    graph_error(src.get(f"/users/{target_user}"), 404)


@pytest.mark.parametrize("path, body", [
    (f"/users/{HELPDESK}/assignLicense", {"addLicenses": [None], "removeLicenses": []}),
    ("/applications", {"displayName": "x", "keyCredentials": [None]}),
    ("/applications", {"displayName": "x", "requiredResourceAccess": [None]}),
    ("/applications", {"displayName": "x", "web": {"redirectUris": [None]}}),
    ("/groups", {"displayName": "g", "mailEnabled": False, "mailNickname": "g", "securityEnabled": True,
                 "groupTypes": None}),
])
def test_null_items_in_typed_collections_are_bad_requests(src: Graph, path: str, body: dict[str, Any]) -> None:
    err = graph_error(src.post(path, body), 400, "BadRequest")
    assert "null value" in err["message"]


def test_count_segment_counts_scope_members_with_consistency_level(small: Graph) -> None:
    """Reference §2.1: a scope group over 10,000 users needs splitting, so the wizard counts members."""
    eventual = {"ConsistencyLevel": "eventual"}
    group = small.get("/groups", params={"$filter": "displayName eq 'Wave Scope'"}).json()["value"][0]
    r = small.get(f"/groups/{group['id']}/transitiveMembers/$count", headers=eventual)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert r.text == "8"  # five users, the nested group and its two members
    assert small.get(f"/groups/{group['id']}/members/$count", headers=eventual).text == "6"
    assert small.get("/users/$count", headers=eventual).text == "9"
    assert small.get("/users/$count", params={"$filter": "startswith(displayName,'user')"},
                     headers=eventual).text == "5"
    err = graph_error(small.get("/users/$count"), 400, "Request_BadRequest")
    assert err["message"] == "$count is not currently supported."
    graph_error(small.get(f"/groups/{uuid.uuid4()}/members/$count", headers=eventual), 404)


def test_owners_may_manage_their_app_without_an_admin_role(src: Graph, helpdesk: Graph) -> None:
    app = create_app(src)
    admin = src.get("/me").json()
    owners = src.get(f"/applications/{app['id']}/owners").json()["value"]
    assert [(o["@odata.type"], o["id"]) for o in owners] == [("#microsoft.graph.user", admin["id"])]
    graph_error(helpdesk.patch(f"/applications/{app['id']}", {"notes": "x"}), 403, "Authorization_RequestDenied")
    me = helpdesk.get("/me").json()
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{me['id']}"}
    graph_error(helpdesk.post(f"/applications/{app['id']}/owners/$ref", ref), 403)
    assert src.post(f"/applications/{app['id']}/owners/$ref", ref).status_code == 204
    graph_error(src.post(f"/applications/{app['id']}/owners/$ref", ref), 400, "Request_BadRequest")
    assert helpdesk.patch(f"/applications/{app['id']}", {"notes": "owned"}).status_code == 204
    assert helpdesk.post(f"/applications/{app['id']}/addPassword", {}).status_code == 200
    graph_error(helpdesk.post("/applications", MIGRATION_APP_BODY), 403)  # owning one app is not a role
    wave = src.get("/groups", params={"$filter": "displayName eq 'Migration Wave 1'"}).json()["value"][0]
    group_ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{wave['id']}"}
    graph_error(src.post(f"/applications/{app['id']}/owners/$ref", group_ref), 400)
    assert src.delete(f"/applications/{app['id']}/owners/{me['id']}/$ref").status_code == 204
    graph_error(helpdesk.patch(f"/applications/{app['id']}", {"notes": "x"}), 403)
    graph_error(src.delete(f"/applications/{app['id']}/owners/{me['id']}/$ref"), 404)


def test_large_scope_group_pages_at_999(src: Graph, sandbox: Sandbox) -> None:
    tenant = sandbox.state.tenant("source")
    assert tenant is not None
    wave = next(g for g in tenant.col("groups").values() if g["displayName"] == "Migration Wave 1")
    eventual = {"ConsistencyLevel": "eventual"}
    before = int(src.get(f"/groups/{wave['id']}/transitiveMembers/$count", headers=eventual).text)
    for i in range(2500):
        uid = str(uuid.UUID(int=i + 1))
        tenant.col("users")[uid] = {"id": uid, "userPrincipalName": f"bulk{i}@northwind.example",
                                    "displayName": f"Bulk {i}", "mail": f"bulk{i}@northwind.example",
                                    "usageLocation": "US", "assignedLicenses": [], "_roles": []}
        wave["_members"].append(uid)
    total = before + 2500
    members, pages = src.all_pages(f"/groups/{wave['id']}/transitiveMembers?$top=999&$select=id,mail")
    assert pages == -(-total // 999) and len(members) == len({m["id"] for m in members}) == total
    count = src.get(f"/groups/{wave['id']}/transitiveMembers/$count", headers=eventual)
    assert count.text == str(total)
    bulk = src.all_pages("/users?$filter=startswith(mail,'bulk1')&$select=id&$top=999")[0]
    assert len(bulk) == 1111  # bulk1, bulk10-19, bulk100-199, bulk1000-1999

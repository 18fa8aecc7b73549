"""The identity platform's routes over plain HTTPS: discovery documents, error shapes and the AADSTS
errors a client meets (reference §6, §2.2, §7)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.sandbox.browser import ScriptedBrowser, SignInPageError, account
from tests.sandbox.test_azure_identity import admin_consent, make_certificate, register_migration_app
from xtwizard.sandbox.backends.identity import redirect_uri_matches

GRAPH_CLI = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
REDIRECT = "http://localhost:50123"
ERROR_KEYS = {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id"}


def assert_aad_error(resp: Any, status: int, error: str, code: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert ERROR_KEYS <= set(body), body
    assert body["error"] == error and body["error_codes"] == [code], body
    desc = body["error_description"]
    assert desc.startswith(f"AADSTS{code}: ") and "\r\nTrace ID: " in desc and "\r\nCorrelation ID: " in desc
    assert "\r\nTimestamp: " in desc
    return dict(body)


@pytest.fixture
def browser(sandbox: Any) -> Any:
    with ScriptedBrowser(sandbox.ca_path) as b:
        yield b


def tid(sb: Any, key: str) -> str:
    return str(sb.state.tenant(key).id)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(sb: Any, tenant: str, **params: str) -> str:
    query = {"client_id": GRAPH_CLI, "response_type": "code", "redirect_uri": REDIRECT,
             "scope": "User.Read openid profile offline_access", "state": "st-1", **params}
    return f"{sb.urls['login']}/{tenant}/oauth2/v2.0/authorize?{urlencode(query)}"


def get_code(sb: Any, browser: ScriptedBrowser, tenant_key: str = "source", **params: str) -> tuple[str, str]:
    verifier, challenge = pkce()
    url = authorize_url(sb, tid(sb, tenant_key), code_challenge=challenge, code_challenge_method="S256", **params)
    result = browser.sign_in(url, account=account(sb, tenant_key, admin=True), deliver=False)
    assert result.ok, result.params
    return result.params["code"], verifier


def redeem(sb: Any, http: Any, code: str, verifier: str, tenant_key: str = "source", **extra: str) -> Any:
    form = {"grant_type": "authorization_code", "client_id": GRAPH_CLI, "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier, "scope": "User.Read openid offline_access", "client_info": "1", **extra}
    return http.post(f"{sb.urls['login']}/{tid(sb, tenant_key)}/oauth2/v2.0/token", data=form)


# --- discovery ---------------------------------------------------------------------------------------------

def test_discovery_by_guid_and_by_domain_names_the_tenant_guid(sandbox, http):
    t = sandbox.state.tenant("source")
    login = sandbox.urls["login"]
    for ref in (t.id, t.initial_domain, t.domain_names()[-1].upper()):
        doc = http.get(f"{login}/{ref}/v2.0/.well-known/openid-configuration").json()
        assert doc["issuer"] == sandbox.issuer.issuer(t.id)
        assert doc["token_endpoint"] == f"{login}/{t.id}/oauth2/v2.0/token"
        assert doc["authorization_endpoint"] == f"{login}/{t.id}/oauth2/v2.0/authorize"
        assert doc["device_authorization_endpoint"] == f"{login}/{t.id}/oauth2/v2.0/devicecode"
        assert doc["end_session_endpoint"].startswith(login)
    keys = http.get(doc["jwks_uri"]).json()["keys"]
    assert keys[0]["kid"] == sandbox.issuer.kid and keys[0]["kty"] == "RSA"
    v1 = http.get(f"{login}/{t.initial_domain}/.well-known/openid-configuration").json()
    assert v1["token_endpoint"] == f"{login}/{t.id}/oauth2/token" and v1["issuer"] == f"https://sts.windows.net/{t.id}/"


def test_common_and_organizations_discovery(sandbox, http):
    for alias in ("common", "organizations"):
        doc = http.get(f"{sandbox.urls['login']}/{alias}/v2.0/.well-known/openid-configuration").json()
        assert doc["token_endpoint"].endswith(f"/{alias}/oauth2/v2.0/token")
        assert doc["issuer"].endswith("/{tenantid}/v2.0")


def test_unknown_tenant_is_aadsts90002_and_a_malformed_one_900023(sandbox, http):
    login = sandbox.urls["login"]
    assert_aad_error(http.get(f"{login}/contoso.example/v2.0/.well-known/openid-configuration"),
                     400, "invalid_tenant", 90002)
    assert_aad_error(http.get(f"{login}/{uuid.uuid4()}/oauth2/v2.0/token"), 400, "invalid_request", 900561)
    body = assert_aad_error(http.post(f"{login}/{uuid.uuid4()}/oauth2/v2.0/token", data={"grant_type": "x"}),
                            400, "invalid_request", 90002)
    assert body["error_uri"].endswith("code=90002")
    assert_aad_error(http.get(f"{login}/not_a_tenant/v2.0/.well-known/openid-configuration"),
                     400, "invalid_tenant", 900023)


def test_instance_discovery_for_clients_that_keep_it_on(sandbox, http):
    login = sandbox.urls["login"]
    ok = http.get(f"{login}/common/discovery/instance",
                  params={"authorization_endpoint": f"{login}/{tid(sandbox, 'source')}/oauth2/v2.0/authorize",
                          "api-version": "1.0"}).json()
    assert ok["tenant_discovery_endpoint"] == (f"{login}/{tid(sandbox, 'source')}/v2.0/.well-known/"
                                               "openid-configuration")
    bad = http.get(f"{login}/common/discovery/instance",
                   params={"authorization_endpoint": "https://login.evil.example/x/oauth2/v2.0/authorize"})
    assert_aad_error(bad, 400, "invalid_instance", 50049)


def test_msal_with_instance_discovery_pointed_at_the_sandbox(sandbox):
    import msal

    from tests.sandbox.browser import requests_session

    app = msal.PublicClientApplication(GRAPH_CLI, authority=f"{sandbox.urls['login']}/{tid(sandbox, 'source')}",
                                       instance_discovery=f"{sandbox.urls['login']}/common/discovery/instance",
                                       http_client=requests_session(sandbox.ca_path))
    flow = app.initiate_device_flow(["User.Read"])
    assert "user_code" in flow


def test_unknown_route_and_wrong_method_keep_the_error_shape(sandbox, http):
    login = sandbox.urls["login"]
    r = http.get(f"{login}/{tid(sandbox, 'source')}/oauth2/v2.0/nothing")
    assert r.status_code == 404 and ERROR_KEYS <= set(r.json())
    r = http.delete(f"{login}/{tid(sandbox, 'source')}/oauth2/v2.0/token")
    assert r.status_code == 405 and r.json()["error_codes"] == [900561]


# --- authorize ---------------------------------------------------------------------------------------------

def test_sign_in_page_lists_only_the_tenants_accounts_and_is_accessible(sandbox, http):
    r = http.get(authorize_url(sandbox, tid(sandbox, "source"), response_mode="form_post"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<html lang="en">' in page and 'id="signin"' in page and 'label for="account-upn"' in page
    assert account(sandbox, "source", admin=True) in page
    assert account(sandbox, "target", admin=True) not in page
    common = http.get(authorize_url(sandbox, "common")).text
    assert account(sandbox, "source", admin=True) in common and account(sandbox, "target", admin=True) in common


def test_loopback_redirect_uris_match_any_port_other_uris_exactly():
    assert redirect_uri_matches(["http://localhost"], "http://localhost:8400")
    assert redirect_uri_matches(["http://localhost"], "http://localhost:8400/")
    assert redirect_uri_matches(["http://127.0.0.1/cb"], "http://127.0.0.1:9/cb")
    assert not redirect_uri_matches(["http://localhost"], "http://localhost.evil.example:8400")
    assert not redirect_uri_matches(["http://localhost"], "https://localhost:8400")
    assert not redirect_uri_matches(["http://localhost/cb"], "http://localhost:8400/other")
    assert not redirect_uri_matches(["https://office.com"], "https://office.com/x")
    assert not redirect_uri_matches(["http://localhost"], "http://localhost:notaport")


def test_unknown_client_is_an_error_page_not_a_redirect(sandbox, http):
    r = http.get(authorize_url(sandbox, tid(sandbox, "source"), client_id=str(uuid.uuid4())))
    assert r.status_code == 400 and 'data-error-code="700016"' in r.text and "location" not in r.headers


def test_form_post_and_query_delivery(sandbox, browser):
    url = authorize_url(sandbox, tid(sandbox, "source"), response_mode="form_post")
    posted = browser.sign_in(url, account=account(sandbox, "source", admin=True), deliver=False)
    assert posted.delivery == "form_post" and set(posted.params) == {"code", "state", "client_info"}
    client_info = json.loads(base64.urlsafe_b64decode(posted.params["client_info"] + "=="))
    assert client_info["utid"] == tid(sandbox, "source")
    queried = browser.sign_in(authorize_url(sandbox, tid(sandbox, "source")),
                              account=account(sandbox, "source", admin=True), deliver=False)
    assert queried.delivery == "redirect" and queried.pages == ["signin"]  # consent was given the first time


def test_prompt_none_cannot_sign_in_silently(sandbox, http):
    r = http.get(authorize_url(sandbox, tid(sandbox, "source"), prompt="none"))
    assert r.status_code == 302
    assert "error=login_required" in r.headers["location"] and "AADSTS50058" in r.headers["location"]
    assert r.headers["location"].startswith(REDIRECT + "?")


def test_unknown_upn_stays_on_an_error_page(sandbox, browser):
    with pytest.raises(SignInPageError) as info:
        browser.sign_in(authorize_url(sandbox, tid(sandbox, "source")), account="ghost@northwind.example",
                        other_account=True)
    assert info.value.code == 50034


# --- token: authorization code -----------------------------------------------------------------------------

def test_code_redemption_shape_and_one_time_use(sandbox, browser, http):
    code, verifier = get_code(sandbox, browser, nonce="n-123")
    r = redeem(sandbox, http, code, verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"token_type", "scope", "expires_in", "ext_expires_in", "access_token", "refresh_token", "id_token",
            "client_info"} <= set(body)
    assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int) and body["expires_in"] == 3599
    idt = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert idt["nonce"] == "n-123" and idt["aud"] == GRAPH_CLI
    header = jwt.get_unverified_header(body["access_token"])
    key = jwt.PyJWKSet.from_dict(sandbox.issuer.jwks())[header["kid"]]
    at = jwt.decode(body["access_token"], key.key, algorithms=["RS256"], audience="https://graph.microsoft.com")
    assert "62e90394-69f5-4237-9190-012177145e10" in at["wids"]  # the admin's Global Administrator role
    assert_aad_error(redeem(sandbox, http, code, verifier), 400, "invalid_grant", 54005)


def test_refresh_tokens_are_stored_only_as_hashes(sandbox, browser, http, tmp_path):
    code, verifier = get_code(sandbox, browser)
    rt = redeem(sandbox, http, code, verifier).json()["refresh_token"]
    sandbox.state.save(str(tmp_path))
    saved = (tmp_path / "state.json").read_text()
    assert rt not in saved and code not in saved
    assert hashlib.sha256(rt.encode()).hexdigest() in saved


def test_pkce_mismatch_is_aadsts501481(sandbox, browser, http):
    code, _ = get_code(sandbox, browser)
    assert_aad_error(redeem(sandbox, http, code, "x" * 43), 400, "invalid_grant", 501481)


def test_code_expires_after_ten_minutes_on_the_sandbox_clock(sandbox, browser, http):
    code, verifier = get_code(sandbox, browser)
    http.post(sandbox.info["control_url"] + "/clock", json={"advance_seconds": 601})
    assert_aad_error(redeem(sandbox, http, code, verifier), 400, "invalid_grant", 70008)


def test_redirect_uri_must_match_the_authorize_request(sandbox, browser, http):
    code, verifier = get_code(sandbox, browser)
    assert_aad_error(redeem(sandbox, http, code, verifier, redirect_uri="http://localhost:1"),
                     400, "invalid_grant", 500112)


def test_code_of_one_tenant_is_refused_at_another(sandbox, browser, http):
    code, verifier = get_code(sandbox, browser, "source")
    assert_aad_error(redeem(sandbox, http, code, verifier, tenant_key="target"), 400, "invalid_grant", 700005)


def test_refresh_token_rotates_and_serves_any_resource(sandbox, browser, http):
    code, verifier = get_code(sandbox, browser)
    rt = redeem(sandbox, http, code, verifier).json()["refresh_token"]
    url = f"{sandbox.urls['login']}/{tid(sandbox, 'source')}/oauth2/v2.0/token"
    for scope, aud in (("https://outlook.office365.com/.default", "https://outlook.office365.com"),
                       ("https://management.core.windows.net//.default", "https://management.azure.com")):
        r = http.post(url, data={"grant_type": "refresh_token", "client_id": GRAPH_CLI, "refresh_token": rt,
                                 "scope": scope + " offline_access"})
        assert r.status_code == 200, r.text
        assert jwt.decode(r.json()["access_token"], options={"verify_signature": False})["aud"] == aud
        assert r.json()["refresh_token"] != rt
        rt = r.json()["refresh_token"]
    two = http.post(url, data={"grant_type": "refresh_token", "client_id": GRAPH_CLI, "refresh_token": rt,
                               "scope": "https://outlook.office365.com/.default https://vault.azure.net/.default"})
    assert_aad_error(two, 400, "invalid_scope", 28000)


def test_token_request_errors(sandbox, http):
    url = f"{sandbox.urls['login']}/{tid(sandbox, 'source')}/oauth2/v2.0/token"
    assert_aad_error(http.post(url, data={}), 400, "invalid_request", 900144)
    assert_aad_error(http.post(url, data={"grant_type": "urn:ietf:params:oauth:grant-type:saml1_1-bearer", "client_id": GRAPH_CLI}),
                     400, "unsupported_grant_type", 70003)
    assert_aad_error(http.post(url, data={"grant_type": "refresh_token", "client_id": str(uuid.uuid4()),
                                          "refresh_token": "x"}), 400, "unauthorized_client", 700016)
    assert_aad_error(http.post(url, data={"grant_type": "refresh_token", "client_id": GRAPH_CLI}),
                     400, "invalid_request", 900144)
    assert_aad_error(http.post(url, data={"grant_type": "refresh_token", "client_id": GRAPH_CLI,
                                          "refresh_token": "0.SANDBOX.forged"}), 400, "invalid_grant", 9002313)
    assert_aad_error(http.post(url, json={"grant_type": "client_credentials"}), 400, "invalid_request", 900144)


# --- an app registration signing users in (delegated) ------------------------------------------------------

def test_app_registration_needs_consent_per_resource_aadsts65001(sandbox, browser, http):
    app = register_migration_app(sandbox)
    with sandbox.state.lock:
        app["isFallbackPublicClient"] = True
        app["publicClient"] = {"redirectUris": ["http://localhost"]}
    verifier, challenge = pkce()
    url = authorize_url(sandbox, tid(sandbox, "source"), client_id=app["appId"], code_challenge=challenge,
                        code_challenge_method="S256")
    walked = browser.sign_in(url, account=account(sandbox, "source", admin=False), deliver=False)
    assert walked.pages == ["signin", "consent"]
    ok = http.post(f"{sandbox.urls['login']}/{tid(sandbox, 'source')}/oauth2/v2.0/token",
                   data={"grant_type": "authorization_code", "client_id": app["appId"], "code": walked.params["code"],
                         "redirect_uri": REDIRECT, "code_verifier": verifier, "scope": "User.Read offline_access"})
    assert ok.status_code == 200, ok.text
    # The user's consent created the app's service principal in the source tenant.
    sps = sandbox.state.tenant("source").col("servicePrincipals").values()
    assert any(sp["appId"] == app["appId"] for sp in sps)
    other = http.post(f"{sandbox.urls['login']}/{tid(sandbox, 'source')}/oauth2/v2.0/token",
                      data={"grant_type": "refresh_token", "client_id": app["appId"],
                            "refresh_token": ok.json()["refresh_token"],
                            "scope": "https://management.azure.com/.default"})
    body = assert_aad_error(other, 400, "invalid_grant", 65001)
    assert body["suberror"] == "consent_required"


# --- client credentials ------------------------------------------------------------------------------------

def test_client_credentials_errors(sandbox, http, browser):
    app = register_migration_app(sandbox, secret="right")
    target = tid(sandbox, "target")
    url = f"{sandbox.urls['login']}/{target}/oauth2/v2.0/token"
    base = {"grant_type": "client_credentials", "client_id": app["appId"]}
    assert_aad_error(http.post(url, data={**base, "client_secret": "wrong", "scope": "https://outlook.office365.com/.default"}),
                     401, "invalid_client", 7000215)
    assert_aad_error(http.post(url, data={**base, "scope": "https://outlook.office365.com/.default"}),
                     401, "invalid_client", 7000218)
    assert_aad_error(http.post(url, data={**base, "client_secret": "right", "scope": "https://outlook.office365.com/Mail.Read"}),
                     400, "invalid_scope", 1002012)
    assert_aad_error(http.post(url, data={**base, "client_secret": "right", "scope": "https://unknown.example/.default"}),
                     400, "invalid_resource", 500011)
    common = f"{sandbox.urls['login']}/common/oauth2/v2.0/token"
    assert_aad_error(http.post(common, data={**base, "client_secret": "right", "scope": "https://outlook.office365.com/.default"}),
                     400, "invalid_request", 50059)


def assertion(app_id: str, key: Any, cert: Any, aud: str, *, exp_delta: int = 600) -> str:
    from cryptography.hazmat.primitives import hashes

    x5t = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).rstrip(b"=").decode()
    now = int(time.time())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return jwt.encode({"aud": aud, "iss": app_id, "sub": app_id, "jti": str(uuid.uuid4()), "nbf": now - 10,
                       "exp": now + exp_delta}, pem, algorithm="RS256", headers={"x5t": x5t})


def test_certificate_assertion_checks_audience_and_lifetime(sandbox, http):
    key, cert = make_certificate()
    app = register_migration_app(sandbox, cert=cert)
    target = tid(sandbox, "target")
    url = f"{sandbox.urls['login']}/{target}/oauth2/v2.0/token"
    base = {"grant_type": "client_credentials", "client_id": app["appId"], "scope": "https://graph.microsoft.com/.default",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    good = http.post(url, data={**base, "client_assertion": assertion(app["appId"], key, cert, url)})
    assert good.status_code == 200, good.text
    assert_aad_error(http.post(url, data={**base, "client_assertion": assertion(app["appId"], key, cert,
                                                                                 "https://elsewhere.example/token")}),
                     401, "invalid_client", 50012)
    assert_aad_error(http.post(url, data={**base, "client_assertion": assertion(app["appId"], key, cert, url,
                                                                                 exp_delta=-3600)}),
                     401, "invalid_client", 700024)
    tampered = assertion(app["appId"], key, cert, url)
    head, payload, sig = tampered.split(".")
    forged_payload = base64.urlsafe_b64encode(json.dumps(
        {"aud": url, "iss": app["appId"], "sub": app["appId"], "exp": int(time.time()) + 600}).encode()).rstrip(b"=")
    assert_aad_error(http.post(url, data={**base, "client_assertion": f"{head}.{forged_payload.decode()}.{sig}"}),
                     401, "invalid_client", 700027)
    assert_aad_error(http.post(url, data={**base, "client_assertion": "not-a-jwt"}), 401, "invalid_client", 50027)


# --- admin consent -----------------------------------------------------------------------------------------

def test_admin_consent_page_lists_the_application_permissions(sandbox, http, browser):
    app = register_migration_app(sandbox, secret="x")
    source = sandbox.state.tenant("source")
    url = (f"{sandbox.urls['login']}/{source.id}/adminconsent?client_id={app['appId']}"
           "&redirect_uri=https://office.com")
    page = http.get(url).text
    assert 'id="signin"' in page
    picked = http.post(f"{sandbox.urls['login']}/{source.id}/adminconsent",
                       data={"client_id": app["appId"], "redirect_uri": "https://office.com", "step": "pick",
                             "account": account(sandbox, "source", admin=True)})
    assert "Office 365 Exchange Online: Move mailboxes between organizations" in picked.text
    assert 'id="consent"' in picked.text


def test_admin_consent_refused_for_a_non_admin(sandbox, browser):
    app = register_migration_app(sandbox, secret="x")
    result = admin_consent(sandbox, app, browser, account=account(sandbox, "source", admin=False))
    assert result.params["error"] == "access_denied" and "AADSTS90094" in result.params["error_description"]
    assert result.params["state"] == "s-42"


def test_admin_consent_declined(sandbox, browser):
    app = register_migration_app(sandbox, secret="x")
    result = admin_consent(sandbox, app, browser, consent=False)
    assert result.params["error"] == "access_denied" and "AADSTS65004" in result.params["error_description"]
    sps = sandbox.state.tenant("source").col("servicePrincipals").values()
    assert not any(sp["appId"] == app["appId"] for sp in sps)


def test_admin_consent_v2_echoes_scope_and_is_idempotent(sandbox, browser):
    app = register_migration_app(sandbox, secret="x")
    source = sandbox.state.tenant("source")
    url = (f"{sandbox.urls['login']}/{source.id}/v2.0/adminconsent?"
           + urlencode({"client_id": app["appId"], "scope": "https://outlook.office365.com/.default",
                        "redirect_uri": "https://office.com", "state": "v2"}))
    for _ in range(2):
        result = browser.sign_in(url, account=account(sandbox, "source", admin=True))
        assert result.params == {"admin_consent": "True", "tenant": source.id,
                                 "scope": "https://outlook.office365.com/.default", "state": "v2"}
    grants = [a for a in source.col("appRoleAssignments").values() if a["appRoleId"] == "f7264778-fba9-422d-8e9e-2675a2c4b513"]
    assert len(grants) == 1


def test_admin_consent_with_a_wrong_redirect_uri_or_unknown_app(sandbox, http):
    app = register_migration_app(sandbox, secret="x")
    login, source = sandbox.urls["login"], tid(sandbox, "source")
    r = http.get(f"{login}/{source}/adminconsent?client_id={app['appId']}&redirect_uri=https://evil.example")
    assert r.status_code == 400 and 'data-error-code="50011"' in r.text and "location" not in r.headers
    r = http.get(f"{login}/{source}/adminconsent?client_id={uuid.uuid4()}&redirect_uri=https://office.com")
    assert r.status_code == 400 and 'data-error-code="700016"' in r.text


# --- device code -------------------------------------------------------------------------------------------

def test_device_code_polling_pending_slow_down_and_bad_codes(sandbox, http, browser):
    login, source = sandbox.urls["login"], tid(sandbox, "source")
    flow = http.post(f"{login}/{source}/oauth2/v2.0/devicecode",
                     data={"client_id": GRAPH_CLI, "scope": "User.Read openid offline_access"}).json()
    assert {"device_code", "user_code", "verification_uri", "expires_in", "interval", "message"} <= set(flow)
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": GRAPH_CLI,
            "device_code": flow["device_code"]}
    url = f"{login}/{source}/oauth2/v2.0/token"
    assert_aad_error(http.post(url, data=poll), 400, "authorization_pending", 70016)
    assert http.post(url, data=poll).json()["error"] == "slow_down"
    http.post(sandbox.info["control_url"] + "/clock", json={"advance_seconds": 6})
    assert http.post(url, data=poll).json()["error"] == "authorization_pending"
    assert_aad_error(http.post(url, data={**poll, "device_code": "DAQAB-forged"}), 400, "bad_verification_code", 70000)
    with pytest.raises(SignInPageError):
        browser.device_login(flow["verification_uri"], "WRONGCODE", account=account(sandbox, "source", admin=True))
    assert browser.device_login(flow["verification_uri"], flow["user_code"].lower(),
                                account=account(sandbox, "source", admin=True)) == "approved"
    http.post(sandbox.info["control_url"] + "/clock", json={"advance_seconds": 6})
    done = http.post(url, data=poll)
    assert done.status_code == 200 and "refresh_token" in done.json()
    assert_aad_error(http.post(url, data=poll), 400, "bad_verification_code", 70000)


def test_devicecode_endpoint_errors(sandbox, http):
    login = sandbox.urls["login"]
    assert_aad_error(http.post(f"{login}/{tid(sandbox, 'source')}/oauth2/v2.0/devicecode", data={"scope": "User.Read"}),
                     400, "invalid_request", 900144)
    assert_aad_error(http.post(f"{login}/{tid(sandbox, 'source')}/oauth2/v2.0/devicecode",
                               data={"client_id": GRAPH_CLI}), 400, "invalid_request", 900144)
    assert_aad_error(http.post(f"{login}/nowhere.example/oauth2/v2.0/devicecode",
                               data={"client_id": GRAPH_CLI, "scope": "User.Read"}), 400, "invalid_request", 90002)


def test_device_login_link_prefills_the_code(sandbox, http):
    page = http.get(f"{sandbox.urls['login']}/devicelogin", params={"otc": "ABCD2345\"><script>"}).text
    assert 'value="ABCD2345script"' in page


# --- faults and restarts ----------------------------------------------------------------------------------

def test_injected_throttling_keeps_the_identity_error_shape(sandbox, http):
    ctl = sandbox.info["control_url"]
    http.post(ctl + "/faults", json={"kind": "throttle", "service": "login", "path": "*/token", "count": 1,
                                     "retry_after": 3})
    url = f"{sandbox.urls['login']}/{tid(sandbox, 'source')}/oauth2/v2.0/token"
    r = http.post(url, data={"grant_type": "client_credentials"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert ERROR_KEYS <= set(r.json()) and r.json()["error"] == "temporarily_unavailable"
    assert http.post(url, data={"grant_type": "client_credentials"}).status_code == 400  # storm used up


def test_refresh_tokens_survive_a_restart_with_a_state_dir(tmp_path):
    import ssl

    import httpx

    from xtwizard.sandbox import Sandbox
    from xtwizard.sandbox.tokens import TokenRejected

    def client(sb: Sandbox) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=sb.ca_path), trust_env=False)

    first = Sandbox("demo", state_dir=str(tmp_path))
    first.start()
    try:
        with ScriptedBrowser(first.ca_path) as b, client(first) as http:
            code, verifier = get_code(first, b)
            body = redeem(first, http, code, verifier).json()
    finally:
        first.stop()
    second = Sandbox("demo", state_dir=str(tmp_path))
    second.start()
    try:
        with client(second) as http:
            url = f"{second.urls['login']}/{tid(second, 'source')}/oauth2/v2.0/token"
            r = http.post(url, data={"grant_type": "refresh_token", "client_id": GRAPH_CLI,
                                     "refresh_token": body["refresh_token"], "scope": "https://vault.azure.net/.default"})
            assert r.status_code == 200, r.text
            # The old access token was signed with the previous run's key: resources refuse it now.
            with pytest.raises(TokenRejected, match="signature"):
                second.issuer.validate("Bearer " + body["access_token"], "https://graph.microsoft.com")
    finally:
        second.stop()


def test_web_app_redeems_its_code_only_with_its_secret(sandbox, browser, http):
    app = register_migration_app(sandbox, secret="web-secret")
    source = tid(sandbox, "source")
    query = {"client_id": app["appId"], "response_type": "code", "redirect_uri": "https://office.com",
             "scope": "https://graph.microsoft.com/User.Read offline_access openid", "state": "w"}
    url = f"{sandbox.urls['login']}/{source}/oauth2/v2.0/authorize?{urlencode(query)}"
    walked = browser.sign_in(url, account=account(sandbox, "source", admin=True))
    assert walked.redirect_uri == "https://office.com" and walked.delivered_status is None  # not fetched
    form = {"grant_type": "authorization_code", "client_id": app["appId"], "code": walked.params["code"],
            "redirect_uri": "https://office.com", "scope": "https://graph.microsoft.com/User.Read"}
    token_url = f"{sandbox.urls['login']}/{source}/oauth2/v2.0/token"
    assert_aad_error(http.post(token_url, data=form), 401, "invalid_client", 7000218)
    assert_aad_error(http.post(token_url, data={**form, "client_secret": "nope"}), 401, "invalid_client", 7000215)
    ok = http.post(token_url, data={**form, "client_secret": "web-secret"})
    assert ok.status_code == 200, ok.text
    at = jwt.decode(ok.json()["access_token"], options={"verify_signature": False})
    assert at["appid"] == app["appId"] and at["scp"] == "User.Read" and at["tid"] == source


def test_single_tenant_app_does_not_exist_in_other_tenants(sandbox, http):
    app = register_migration_app(sandbox, secret="x")
    with sandbox.state.lock:
        app["signInAudience"] = "AzureADMyOrg"
        app["publicClient"] = {"redirectUris": ["http://localhost"]}
    query = {"client_id": app["appId"], "response_type": "code", "redirect_uri": REDIRECT, "scope": "User.Read"}
    other = http.get(f"{sandbox.urls['login']}/{tid(sandbox, 'source')}/oauth2/v2.0/authorize", params=query)
    assert other.status_code == 400 and 'data-error-code="700016"' in other.text
    home = http.get(f"{sandbox.urls['login']}/{tid(sandbox, 'target')}/oauth2/v2.0/authorize", params=query)
    assert home.status_code == 200 and 'id="signin"' in home.text

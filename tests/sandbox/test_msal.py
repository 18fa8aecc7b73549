"""msal 1.39 against the sandbox's identity platform, changed only by documented knobs (reference §6.5, §6.6):
authority on the sandbox host, instance discovery off, an http_client that trusts the sandbox CA."""

from __future__ import annotations

import threading
import webbrowser
from typing import Any

import jwt
import msal
import pytest

from tests.sandbox.browser import ScriptedBrowser, SignInPageError, account, requests_session
from xtwizard.sandbox.directory import revoke_user_sessions

GRAPH_CLI = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
EXO_PS = "fb78d390-0c51-40cd-8e17-fdbfab77341b"
RESOURCE_SCOPES = {
    "https://graph.microsoft.com": "https://graph.microsoft.com/.default",
    "https://management.azure.com": "https://management.azure.com/.default",
    "https://vault.azure.net": "https://vault.azure.net/.default",
    "https://outlook.office365.com": "https://outlook.office365.com/.default",
}


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def tenant_id(sb: Any, key: str) -> str:
    t = sb.state.tenant(key)
    assert t is not None
    return str(t.id)


def app_for(sb: Any, tenant: str, client_id: str = GRAPH_CLI) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(client_id, authority=f"{sb.urls['login']}/{tenant}",
                                        instance_discovery=False, http_client=requests_session(sb.ca_path))


@pytest.fixture
def browser(sandbox: Any) -> Any:
    with ScriptedBrowser(sandbox.ca_path) as b:
        yield b


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch, browser: ScriptedBrowser) -> dict[str, Any]:
    """Patch webbrowser.open so that msal's 'open a browser' runs the scripted browser in a thread
    against msal's own loopback listener. Configure the walk through the returned dict."""
    plan: dict[str, Any] = {"account": None, "consent": True, "other_account": False, "results": [], "errors": []}

    def fake_open(url: str, *args: Any, **kwargs: Any) -> bool:
        def walk() -> None:
            try:
                plan["results"].append(browser.sign_in(url, account=plan["account"], consent=plan["consent"],
                                                       other_account=plan["other_account"]))
            except (SignInPageError, AssertionError, LookupError) as exc:
                plan["errors"].append(exc)
        threading.Thread(target=walk, daemon=True).start()
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    return plan


def token_posts(http: Any, sb: Any) -> int:
    rows = http.get(sb.info["control_url"] + "/requests").json()["value"]
    return sum(1 for r in rows if r["method"] == "POST" and r["path"].endswith("/oauth2/v2.0/token"))


# --- sign-in ---------------------------------------------------------------------------------------------

def test_interactive_sign_in_walks_picker_and_consent_then_form_post(sandbox, interactive):
    tid = tenant_id(sandbox, "source")
    upn = account(sandbox, "source", admin=True)
    interactive["account"] = upn
    app = app_for(sandbox, tid)
    result = app.acquire_token_interactive(["User.Read"], timeout=30)
    assert "access_token" in result, result
    walked = interactive["results"][0]
    assert walked.delivery == "form_post" and walked.delivered_status == 200
    assert walked.pages == ["signin", "consent"]
    at = claims(result["access_token"])
    assert at["tid"] == tid and at["aud"] == "https://graph.microsoft.com" and at["upn"] == upn
    assert "User.Read" in at["scp"].split()
    assert result["id_token_claims"]["preferred_username"] == upn
    assert app.get_accounts()[0]["home_account_id"] == f"{at['oid']}.{tid}"
    grants = sandbox.state.tenant("source").col("oauth2PermissionGrants").values()
    assert any(g["clientId"] == GRAPH_CLI and g["principalId"] == at["oid"] for g in grants)

    # A second sign-in of the same user to the same client is not asked for consent again.
    again = app.acquire_token_interactive(["User.Read"], timeout=30, prompt="select_account")
    assert "access_token" in again
    assert interactive["results"][1].pages == ["signin"]


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")
def test_auth_code_flow_by_query_redirect(sandbox, browser):
    tid = tenant_id(sandbox, "target")
    upn = account(sandbox, "target", admin=True)
    app = app_for(sandbox, tid, EXO_PS)
    flow = app.initiate_auth_code_flow(["https://outlook.office365.com/.default"],
                                       redirect_uri="http://localhost:53111")
    walked = browser.sign_in(flow["auth_uri"], account=upn, deliver=False)
    assert walked.delivery == "redirect" and walked.redirect_uri == "http://localhost:53111"
    assert walked.params["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, walked.params)
    assert "access_token" in result, result
    at = claims(result["access_token"])
    assert at["aud"] == "https://outlook.office365.com" and at["tid"] == tid and at["appid"] == EXO_PS


def test_typed_upn_under_use_another_account(sandbox, browser):
    tid = tenant_id(sandbox, "source")
    upn = account(sandbox, "source", admin=False)
    app = app_for(sandbox, tid)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri="http://localhost:53112",
                                       response_mode="form_post")
    walked = browser.sign_in(flow["auth_uri"], account=upn.upper(), other_account=True, deliver=False)
    result = app.acquire_token_by_auth_code_flow(flow, walked.params)
    assert result["id_token_claims"]["preferred_username"] == upn


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")
def test_organizations_authority_gives_the_users_home_tenant(sandbox, browser):
    upn = account(sandbox, "target", admin=True)
    app = app_for(sandbox, "organizations")
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri="http://localhost:53113")
    walked = browser.sign_in(flow["auth_uri"], account=upn, deliver=False)
    result = app.acquire_token_by_auth_code_flow(flow, walked.params)
    assert claims(result["access_token"])["tid"] == tenant_id(sandbox, "target")


def test_device_code_flow_walked_on_the_verification_page(sandbox, browser):
    tid = tenant_id(sandbox, "source")
    upn = account(sandbox, "source", admin=True)
    app = app_for(sandbox, tid)
    flow = app.initiate_device_flow(["User.Read"])
    assert flow["user_code"] in flow["message"] and flow["verification_uri"].startswith(sandbox.urls["login"])
    assert flow["interval"] == 5
    assert browser.device_login(flow["verification_uri"], flow["user_code"], account=upn) == "approved"
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    assert claims(result["access_token"])["upn"] == upn


# --- one sign-in, every resource; refresh ---------------------------------------------------------------

def test_one_sign_in_gives_silent_tokens_for_graph_arm_key_vault_and_exchange(sandbox, interactive):
    tid = tenant_id(sandbox, "target")
    interactive["account"] = account(sandbox, "target", admin=True)
    app = app_for(sandbox, tid)
    assert "access_token" in app.acquire_token_interactive(["User.Read"], timeout=30)
    acct = app.get_accounts()[0]
    for resource, scope in RESOURCE_SCOPES.items():
        result = app.acquire_token_silent([scope], account=acct)
        assert result is not None and "access_token" in result, (scope, result)
        at = claims(result["access_token"])
        assert at["aud"] == resource and at["tid"] == tid
    # The Key Vault token is accepted by the sandbox's own validator for that audience.
    kv = app.acquire_token_silent([RESOURCE_SCOPES["https://vault.azure.net"]], account=acct)
    assert sandbox.issuer.validate("Bearer " + kv["access_token"], "https://vault.azure.net").tenant_id == tid


def test_msal_refreshes_a_short_lived_token_with_the_refresh_token_grant(sandbox, interactive, http):
    tid = tenant_id(sandbox, "source")
    interactive["account"] = account(sandbox, "source", admin=True)
    app = app_for(sandbox, tid)
    first = app.acquire_token_interactive(["User.Read"], timeout=30)
    acct = app.get_accounts()[0]
    # A long-lived token is served from msal's cache: no request reaches the token endpoint.
    before = token_posts(http, sandbox)
    cached = app.acquire_token_silent(["User.Read"], account=acct)
    assert cached["access_token"] == first["access_token"] and token_posts(http, sandbox) == before

    r = http.patch(sandbox.info["control_url"] + "/settings", json={"token_lifetime_seconds": 120})
    assert r.status_code == 200
    short = app.acquire_token_silent(["https://management.azure.com/.default"], account=acct)
    assert short["expires_in"] <= 120
    before = token_posts(http, sandbox)
    refreshed = app.acquire_token_silent(["https://management.azure.com/.default"], account=acct)
    assert refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != short["access_token"]
    assert token_posts(http, sandbox) == before + 1


# --- errors ----------------------------------------------------------------------------------------------

def test_user_of_another_tenant_gets_aadsts50020(sandbox, interactive):
    interactive.update(account=account(sandbox, "target", admin=True), other_account=True)
    app = app_for(sandbox, tenant_id(sandbox, "source"))
    result = app.acquire_token_interactive(["User.Read"], timeout=30)
    assert result["error"] == "access_denied"
    assert result["error_description"].startswith("AADSTS50020:")


def test_declined_consent_is_access_denied_aadsts65004(sandbox, interactive):
    interactive.update(account=account(sandbox, "source", admin=True), consent=False)
    app = app_for(sandbox, tenant_id(sandbox, "source"))
    result = app.acquire_token_interactive(["User.Read"], timeout=30)
    assert result["error"] == "access_denied" and "AADSTS65004" in result["error_description"]
    assert app.get_accounts() == []


def test_revoked_sessions_make_the_refresh_token_invalid_grant(sandbox, interactive):
    tid = tenant_id(sandbox, "source")
    interactive["account"] = account(sandbox, "source", admin=True)
    app = app_for(sandbox, tid)
    first = app.acquire_token_interactive(["User.Read"], timeout=30)
    oid = claims(first["access_token"])["oid"]
    with sandbox.state.lock:
        assert revoke_user_sessions(sandbox.state, sandbox.state.tenant(tid), oid) >= 1
    result = app.acquire_token_silent_with_error(["https://management.azure.com/.default"],
                                                 account=app.get_accounts()[0])
    assert result["error"] == "invalid_grant" and 50173 in result["error_codes"]
    assert app.acquire_token_silent(["https://management.azure.com/.default"], account=app.get_accounts()[0]) is None


def test_idle_refresh_token_expires_with_aadsts700082(sandbox, interactive, http):
    interactive["account"] = account(sandbox, "source", admin=True)
    app = app_for(sandbox, tenant_id(sandbox, "source"))
    app.acquire_token_interactive(["User.Read"], timeout=30)
    http.patch(sandbox.info["control_url"] + "/settings", json={"refresh_token_idle_seconds": 3600})
    http.post(sandbox.info["control_url"] + "/clock", json={"advance_seconds": 3700})
    result = app.acquire_token_silent_with_error(["https://vault.azure.net/.default"], account=app.get_accounts()[0])
    assert result["error"] == "invalid_grant" and 700082 in result["error_codes"]


def test_unknown_tenant_fails_discovery(sandbox):
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        app_for(sandbox, "no-such-tenant.example")


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")
def test_wrong_redirect_uri_shows_aadsts50011_and_does_not_redirect(sandbox, browser):
    app = app_for(sandbox, tenant_id(sandbox, "source"))
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri="https://attacker.example/callback")
    with pytest.raises(SignInPageError) as info:
        browser.sign_in(flow["auth_uri"], account=account(sandbox, "source", admin=True))
    assert info.value.code == 50011 and info.value.status == 400
    assert "https://attacker.example/callback" in info.value.message


def test_device_code_declined(sandbox, browser):
    app = app_for(sandbox, tenant_id(sandbox, "source"))
    flow = app.initiate_device_flow(["User.Read"])
    upn = account(sandbox, "source", admin=True)
    assert browser.device_login(flow["verification_uri"], flow["user_code"], account=upn, consent=False) == "declined"
    result = app.acquire_token_by_device_flow(flow)
    assert result["error"] == "authorization_declined"


def test_device_code_expires_on_the_sandbox_clock(sandbox, browser, http):
    app = app_for(sandbox, tenant_id(sandbox, "source"))
    flow = app.initiate_device_flow(["User.Read"])
    http.post(sandbox.info["control_url"] + "/clock", json={"advance_seconds": 901})
    result = app.acquire_token_by_device_flow(flow)
    assert result["error"] == "expired_token" and 70020 in result["error_codes"]
    with pytest.raises(SignInPageError) as info:
        browser.device_login(flow["verification_uri"], flow["user_code"], account=account(sandbox, "source", admin=True))
    assert info.value.code in (70000, 70020)

"""TenantSession (cloud/auth.py) against the sandbox's identity platform, walked by the scripted browser."""

from __future__ import annotations

import threading

import jwt
import keyring.backends.fail
import pytest

from tests.sandbox.browser import ScriptedBrowser
from xtwizard.cloud.auth import SignInError, TenantSession
from xtwizard.cloud.endpoints import sandbox_endpoints
from xtwizard.cloud.tokenstore import TokenStore
from xtwizard.sandbox.directory import revoke_user_sessions

TARGET_ADMIN = "admin@fabrikaminc.onmicrosoft.com"


def _session(sandbox, tmp_path, slot="target"):
    store = TokenStore(slot, tmp_path, backend=keyring.backends.fail.Keyring())
    return TenantSession(slot, sandbox_endpoints(sandbox.info), store)


def _browser_signing_in(sandbox, account, consent=True, results=None):
    def open_browser(url):
        def walk():
            with ScriptedBrowser(sandbox.ca_path) as b:
                r = b.sign_in(url, account=account, consent=consent)
                if results is not None:
                    results.append(r)
        threading.Thread(target=walk, daemon=True).start()
    return open_browser


def test_browser_sign_in_then_silent_tokens_for_every_service(sandbox, tmp_path):
    s = _session(sandbox, tmp_path)
    account = s.sign_in_browser(_browser_signing_in(sandbox, TARGET_ADMIN), threading.Event(), timeout=60)
    target = sandbox.state.tenant("target")
    assert account.tenant_id == target.id and account.username == TARGET_ADMIN
    ep = s.endpoints
    for resource in (ep.graph_resource, ep.arm_resource, ep.vault_resource, ep.exchange_resource):
        claims = jwt.decode(s.access_token(resource), options={"verify_signature": False})
        assert claims["tid"] == target.id
        assert claims["aud"].rstrip("/") == resource
    assert s.store.persistent is False  # fail backend: memory only, and the session still works


def test_cancel_while_waiting_for_the_browser(sandbox, tmp_path):
    s = _session(sandbox, tmp_path)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SignInError) as err:
        s.sign_in_browser(lambda url: None, cancel, timeout=60)
    assert err.value.kind == "cancelled"


def test_declined_consent_is_reported_as_declined(sandbox, tmp_path):
    s = _session(sandbox, tmp_path)
    with pytest.raises(SignInError) as err:
        s.sign_in_browser(_browser_signing_in(sandbox, TARGET_ADMIN, consent=False), threading.Event(), timeout=60)
    assert err.value.kind == "declined"


def test_revoked_sign_in_needs_a_new_sign_in(sandbox, tmp_path):
    s = _session(sandbox, tmp_path)
    s.sign_in_browser(_browser_signing_in(sandbox, TARGET_ADMIN), threading.Event(), timeout=60)
    t = sandbox.state.tenant("target")
    with sandbox.state.lock:
        revoke_user_sessions(sandbox.state, t, t.user(TARGET_ADMIN)["id"])
    with pytest.raises(SignInError) as err:
        s.access_token(s.endpoints.arm_resource, force_refresh=True)
    assert err.value.kind == "needs_sign_in" and err.value.code == "AADSTS50173"


def test_sign_out_forgets_the_account(sandbox, tmp_path):
    s = _session(sandbox, tmp_path)
    s.sign_in_browser(_browser_signing_in(sandbox, TARGET_ADMIN), threading.Event(), timeout=60)
    s.sign_out()
    assert s.account is None
    with pytest.raises(SignInError):
        s.access_token(s.endpoints.graph_resource)


def test_sign_in_through_the_plain_http_browser_pages(tmp_path):
    """--demo sends the person's real browser to the HTTP sign-in pages; tokens still come over HTTPS."""
    from xtwizard.sandbox import Sandbox

    with Sandbox("demo", browser_http=True) as sb:
        s = _session(sb, tmp_path)
        opened = []

        def open_browser(url):
            opened.append(url)
            _browser_signing_in(sb, TARGET_ADMIN)(url)

        account = s.sign_in_browser(open_browser, threading.Event(), timeout=60)
        assert opened[0].startswith(sb.info["browser_url"] + "/")
        assert account.username == TARGET_ADMIN
        assert s.endpoints.admin_consent_url("t", "c", "https://office.com").startswith(sb.info["browser_url"])


def test_browser_closed_ends_with_a_timeout_that_says_what_to_do(sandbox, tmp_path):
    s = _session(sandbox, tmp_path)
    with pytest.raises(SignInError) as err:
        s.sign_in_browser(lambda url: None, threading.Event(), timeout=0.3)  # nobody finishes in the browser
    assert err.value.kind == "timeout" and "start the sign-in again" in str(err.value)

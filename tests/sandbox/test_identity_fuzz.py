"""Fuzzing the identity platform's routes: whatever arrives, the answer is the service's own error shape
(JSON with AADSTS fields, or the HTML error page for browser routes) with a 4xx status, never a 500,
never a traceback, never a hang."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xtwizard.sandbox import Sandbox

ERROR_KEYS = {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id"}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, Any]]:
    sb = Sandbox("demo")
    sb.start()
    source = sb.state.tenant("source")
    client = httpx.Client(verify=ssl.create_default_context(cafile=sb.ca_path), trust_env=False, timeout=10)
    try:
        yield {"sb": sb, "http": client, "tid": source.id, "domain": source.initial_domain}
    finally:
        client.close()
        sb.stop()


FIELD_NAMES = ["grant_type", "client_id", "code", "redirect_uri", "code_verifier", "refresh_token", "scope",
               "device_code", "client_secret", "client_assertion", "client_assertion_type", "client_info",
               "resource", "response_type", "response_mode", "state", "nonce", "prompt", "code_challenge",
               "code_challenge_method", "step", "account", "consent", "login_hint", "otc"]
VALUES = ["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code",
          "14d82eec-204b-4c2f-b7e8-296a70dab67e", "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "http://localhost",
          "http://localhost:1234", "https://office.com", "code", "form_post", "query", "fragment", "none", "consent",
          "pick", "accept", "cancel", "User.Read offline_access openid", "https://graph.microsoft.com/.default",
          "https://vault.azure.net//.default", "S256", "plain", "1", "admin@northwindtraders.onmicrosoft.com",
          "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", ""]
field_name = st.one_of(st.sampled_from(FIELD_NAMES), st.text(min_size=1, max_size=12))
field_value = st.one_of(st.sampled_from(VALUES), st.text(max_size=60))
fields = st.dictionaries(field_name, field_value, max_size=8)


def tenant_segment(env: dict[str, Any]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([env["tid"], env["domain"], "common", "organizations", "consumers"]),
                     st.text(min_size=1, max_size=40))


def check(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    ctype = resp.headers.get("content-type", "")
    if resp.status_code >= 400:
        assert 400 <= resp.status_code < 500
        if ctype.startswith("application/json"):
            body = resp.json()
            assert ERROR_KEYS <= set(body), body
            assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
        else:
            assert ctype.startswith("text/html") and 'id="error"' in resp.text, resp.text[:300]
    elif resp.status_code in (301, 302, 303):
        assert resp.headers.get("location")
    assert "Traceback" not in resp.text


@given(data=st.data())
@FUZZ
def test_token_endpoint(env, data):
    tenant = data.draw(tenant_segment(env))
    body = data.draw(fields)
    resp = env["http"].post(f"{env['sb'].urls['login']}/{quote(tenant, safe='')}/oauth2/v2.0/token", data=body)
    check(resp)
    assert resp.headers["content-type"].startswith("application/json")
    if resp.status_code == 200:
        assert resp.json()["token_type"] == "Bearer"


@given(data=st.data(), raw=st.binary(max_size=300))
@FUZZ
def test_token_and_devicecode_with_raw_bodies(env, data, raw):
    path = data.draw(st.sampled_from(["oauth2/v2.0/token", "oauth2/v2.0/devicecode", "oauth2/token"]))
    resp = env["http"].post(f"{env['sb'].urls['login']}/{env['tid']}/{path}", content=raw,
                            headers={"Content-Type": data.draw(st.sampled_from(
                                ["application/x-www-form-urlencoded", "application/json", "text/plain"]))})
    check(resp)


@given(data=st.data())
@FUZZ
def test_devicecode_endpoint(env, data):
    tenant = data.draw(tenant_segment(env))
    resp = env["http"].post(f"{env['sb'].urls['login']}/{quote(tenant, safe='')}/oauth2/v2.0/devicecode",
                            data=data.draw(fields))
    check(resp)


@given(data=st.data())
@FUZZ
def test_authorize_and_admin_consent(env, data):
    tenant = data.draw(tenant_segment(env))
    route = data.draw(st.sampled_from(["oauth2/v2.0/authorize", "adminconsent", "v2.0/adminconsent",
                                       "oauth2/authorize"]))
    method = data.draw(st.sampled_from(["GET", "POST"]))
    params = data.draw(fields)
    url = f"{env['sb'].urls['login']}/{quote(tenant, safe='')}/{route}"
    resp = (env["http"].get(url, params=params) if method == "GET" else env["http"].post(url, data=params))
    check(resp)


@given(data=st.data())
@FUZZ
def test_discovery_and_device_login(env, data):
    tenant = data.draw(tenant_segment(env))
    login = env["sb"].urls["login"]
    seg = quote(tenant, safe="")
    for url in (f"{login}/{seg}/v2.0/.well-known/openid-configuration", f"{login}/{seg}/.well-known/openid-configuration",
                f"{login}/{seg}/discovery/v2.0/keys"):
        check(env["http"].get(url))
    check(env["http"].get(f"{login}/common/discovery/instance", params=data.draw(fields)))
    check(env["http"].post(f"{login}/devicelogin", data=data.draw(fields)))

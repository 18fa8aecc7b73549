"""Hypothesis fuzzing of every ARM and Key Vault route: bodies, query strings and path segments.

Whatever arrives, the sandbox must answer like the service: a status below 500 and, for errors, the
service's own error shape -- never a traceback, a 500 or a hang.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ca_context
from tests.sandbox.support import bearer, user_token
from tests.sandbox.test_arm_helpers import (
    ADMIN,
    ARM,
    READER,
    SUB,
    VAULT,
    grant,
    make_vault,
    oid,
    start_azure_sandbox,
    vault_id,
)
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.catalog import AZURE_ROLES

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)


class Fuzz:
    """A running sandbox with a resource group, an RBAC vault, an access-policy vault and one certificate."""

    def __init__(self, sb: Sandbox, client: httpx.Client) -> None:
        self.sb, self.client = sb, client
        self.admin_oid, self.reader_oid = oid(sb, ADMIN), oid(sb, READER)
        admin_arm = bearer(user_token(sb, "target", ADMIN, ARM))
        admin_kv = bearer(user_token(sb, "target", ADMIN, VAULT))
        # Mostly the Owner / Administrator, so that requests get past the front door into the handlers.
        self.arm_auth = [admin_arm] * 6 + [bearer(user_token(sb, "target", READER, ARM)),
                         {}, bearer(user_token(sb, "target", ADMIN, VAULT)), {"Authorization": "Bearer x.y.z"}]
        self.kv_auth = [admin_kv] * 6 + [bearer(user_token(sb, "target", READER, VAULT)),
                        {}, bearer(user_token(sb, "target", ADMIN, ARM)),
                        bearer(user_token(sb, "source", "admin@contosoltd.onmicrosoft.com", VAULT))]


def _fuzz_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    sb = start_azure_sandbox(tmp_path_factory.mktemp("fuzz"))
    try:
        with httpx.Client(verify=ca_context(sb.ca_path), trust_env=False, timeout=15) as c:
            make_vault(sb, c, "kv-fuzz", rg="rg-fuzz").raise_for_status()
            t = sb.state.tenant("target")
            assert t is not None
            make_vault(sb, c, "kv-fuzz-ap", rg="rg-fuzz", rbac=False, extra={"accessPolicies": [
                {"tenantId": t.id, "objectId": oid(sb, ADMIN), "permissions": {"certificates": ["all"],
                                                                               "secrets": ["all"]}}]}
                       ).raise_for_status()
            grant(sb, c, vault_id("kv-fuzz", "rg-fuzz"), AZURE_ROLES["Key Vault Administrator"], oid(sb, ADMIN)
                  ).raise_for_status()
            h = bearer(user_token(sb, "target", ADMIN, VAULT))
            c.post(f"{sb.urls['vault']}/kv-fuzz/certificates/known/create?api-version=2026-04-01", headers=h,
                   json={"policy": {"x509_props": {"subject": "CN=known"}}}).raise_for_status()
            yield Fuzz(sb, c)
    finally:
        sb.stop()


@pytest.fixture(scope="module")
def arm_fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    """Its own sandbox: ARM fuzzing deletes vaults and groups that the Key Vault fuzzing needs."""
    yield from _fuzz_sandbox(tmp_path_factory)


@pytest.fixture(scope="module")
def kv_fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    yield from _fuzz_sandbox(tmp_path_factory)


# --- strategies ---------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**6, max_value=10**6) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
segment = st.one_of(st.sampled_from(["", "x", "kv-fuzz", "rg-fuzz", "known", "00000000-0000-0000-0000-000000000000",
                                     "..", "%2F", "a" * 130]),
                    st.text(alphabet=string.ascii_letters + string.digits + "-_.~!$&'()*+,;=:@ ", max_size=20))
api_versions = st.sampled_from([None, "", "2022-12-01", "2022-04-01", "2026-05-15", "2023-07-01", "7.4",
                                "2026-04-01", "bogus", "2099-01-01"])


def query(extra: dict[str, str], api: str | None) -> str:
    params = dict(extra)
    if api is not None:
        params["api-version"] = api
    return "?" + urlencode(params) if params else ""


queries = st.just({}) | st.dictionaries(st.sampled_from(["$filter", "$top", "$skiptoken", "maxresults", "includePending", "x",
                                           "api-version"]),
                          st.one_of(st.text(max_size=30), st.sampled_from(
                              ["atScope()", "principalId eq 'x'", "roleName eq 'Owner'", "assignedTo('y')",
                               "2", "-1", "99999999999", "true"])), max_size=3)


def check(r: httpx.Response, method: str) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400 and method != "HEAD" and r.content:
        body = r.json()
        assert isinstance(body, dict) and set(body) == {"error"}, body
        assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)


def arm_bodies(fz: Fuzz) -> st.SearchStrategy[Any]:
    principal = st.sampled_from([fz.admin_oid, fz.reader_oid, "00000000-0000-0000-0000-000000000001", "nope", 5])
    role = st.sampled_from([f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{g}"
                            for g in AZURE_ROLES.values()] + ["x", "/roleDefinitions/" + "1" * 36, None])
    vault_props = st.dictionaries(st.sampled_from([
        "tenantId", "sku", "accessPolicies", "enableRbacAuthorization", "enableSoftDelete",
        "softDeleteRetentionInDays", "enablePurgeProtection", "publicNetworkAccess", "createMode",
        "enabledForDeployment"]), json_values | st.just({"family": "A", "name": "premium"})
        | st.just([{"tenantId": fz.sb.state.tenant("target").id, "objectId": fz.reader_oid,  # type: ignore[union-attr]
                    "permissions": {"secrets": ["get"], "certificates": ["bogus"]}}]), max_size=6)
    return st.one_of(
        json_values,
        st.fixed_dictionaries({"location": st.sampled_from(["eastus", "West US", "nowhere", 3, None])},
                              optional={"tags": json_values, "properties": vault_props}),
        st.fixed_dictionaries({"properties": st.fixed_dictionaries(
            {"roleDefinitionId": role, "principalId": principal},
            optional={"principalType": st.sampled_from(["User", "Group", "ServicePrincipal", "Robot", 1])})}),
        st.fixed_dictionaries({"name": st.text(max_size=30), "type": st.sampled_from(
            ["Microsoft.KeyVault/vaults", "x", None])}),
    )


ARM_ROUTES = [
    ("GET", "/subscriptions"), ("GET", "/tenants"), ("GET", "/subscriptions/{sub}"),
    ("GET", "/subscriptions/{sub}/locations"), ("GET", "/subscriptions/{sub}/operationresults/{a}"),
    ("GET", "/subscriptions/{sub}/resourcegroups"), ("GET", "/subscriptions/{sub}/providers/{a}"),
    ("POST", "/subscriptions/{sub}/providers/{a}/register"),
    *[(m, "/subscriptions/{sub}/resourcegroups/{rg}") for m in ("PUT", "GET", "HEAD", "PATCH", "DELETE")],
    ("POST", "/subscriptions/{sub}/providers/Microsoft.KeyVault/checkNameAvailability"),
    ("GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults"),
    ("GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{a}/deletedVaults/{name}"),
    ("POST", "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{a}/deletedVaults/{name}/purge"),
    ("GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{a}/operationResults/{a}"),
    ("GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults"),
    ("GET", "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults"),
    *[(m, "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}")
      for m in ("PUT", "PATCH", "GET", "DELETE")],
    ("PUT", "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}/accessPolicies/{a}"),
    ("GET", "{scope}/providers/Microsoft.Authorization/roleDefinitions"),
    ("GET", "{scope}/providers/Microsoft.Authorization/roleDefinitions/{a}"),
    ("GET", "{scope}/providers/Microsoft.Authorization/roleAssignments"),
    *[(m, "{scope}/providers/Microsoft.Authorization/roleAssignments/{a}") for m in ("PUT", "GET", "DELETE")],
]


@FUZZ
@given(data=st.data())
def test_arm_routes_answer_in_arm_shape(arm_fuzz: Fuzz, data: st.DataObject) -> None:
    fuzz = arm_fuzz
    method, template = data.draw(st.sampled_from(ARM_ROUTES))
    values = {
        "sub": data.draw(st.sampled_from([SUB] * 5 + [SUB.upper(), "not-a-guid", "11111111-2222-3333-4444-555555555555"])),
        "rg": data.draw(st.sampled_from(["rg-fuzz"] * 3 + ["rg-new"]) | segment),
        "name": data.draw(st.sampled_from(["kv-fuzz", "kv-fuzz-ap", "kv-new-one"] * 2) | segment),
        "a": data.draw(segment),
        "scope": data.draw(st.sampled_from(["", f"/subscriptions/{SUB}", f"/subscriptions/{SUB}/resourceGroups/rg-fuzz",
                                            vault_id("kv-fuzz", "rg-fuzz"), "/subscriptions/x/y",
                                            f"/subscriptions/{SUB}/resourceGroups/rg-fuzz/providers/A/b/c"])),
    }
    path = template
    for key, value in values.items():
        path = path.replace("{" + key + "}", value if key == "scope" else quote(value, safe=""))
    good = ("2026-05-15" if "KeyVault" in template else "2022-04-01" if "Authorization" in template
            else "2022-12-01")
    q = query(data.draw(queries), data.draw(st.sampled_from([good] * 6) | api_versions))
    headers = dict(data.draw(st.sampled_from(fuzz.arm_auth)))
    raw = data.draw(st.sampled_from([False] * 5 + [True]))
    content = data.draw(st.binary(max_size=40)) if raw else json.dumps(data.draw(arm_bodies(fuzz))).encode()
    r = fuzz.client.request(method, f"{fuzz.sb.urls['arm']}{path}{q}", headers=headers,
                            content=content if method in ("PUT", "PATCH", "POST") else None)
    check(r, method)


def kv_bodies() -> st.SearchStrategy[Any]:
    x509_props = st.dictionaries(st.sampled_from(["subject", "sans", "ekus", "key_usage", "validity_months"]),
                                 json_values | st.sampled_from([
                                     "CN=ok", "CN=a, O=b, C=USA", "C=US", "E=me@x", "CN=\\,x", "=x", "CN=",
                                     {"dns_names": ["a.example", 3]}, {"ipAddresses": ["300.1.1.1"]},
                                     {"upns": ["u" * 200]}, ["digitalSignature", "nope"], ["1.2.3", "x"], 1200, 1201]),
                                 max_size=4)
    key_props = st.dictionaries(st.sampled_from(["kty", "key_size", "crv", "exportable", "reuse_key"]),
                                json_values | st.sampled_from(["RSA", "EC", "P-384", "P-999", 2048, 1024, "oct"]),
                                max_size=4)
    policy = st.fixed_dictionaries({}, optional={
        "x509_props": x509_props, "key_props": key_props,
        "issuer": st.fixed_dictionaries({"name": st.sampled_from(["Self", "Unknown", "Other", 4])}),
        "secret_props": st.fixed_dictionaries({"contentType": st.sampled_from(
            ["application/x-pkcs12", "application/x-pem-file", "text/plain"])}),
        "lifetime_actions": json_values, "attributes": json_values})
    # Near-valid policies reach issuance (subject parsing, SANs, key generation) rather than the validators.
    near_valid = st.fixed_dictionaries({"policy": st.fixed_dictionaries({"x509_props": st.fixed_dictionaries(
        {"subject": st.lists(st.tuples(
            st.sampled_from(["CN", "O", "OU", "C", "E", "DC", "SERIALNUMBER", "L", "ST", "cn"]),
            st.text(alphabet=string.ascii_letters + string.digits + " .-_@", min_size=1, max_size=20)
            | st.text(min_size=1, max_size=80)), min_size=1, max_size=3).map(
                lambda parts: ", ".join(f"{k}={v}" for k, v in parts))},
        optional={"sans": st.fixed_dictionaries({}, optional={
            "dns_names": st.lists(st.text(max_size=20), max_size=2),
            "emails": st.lists(st.text(max_size=20), max_size=2),
            "upns": st.lists(st.text(max_size=20), max_size=2),
            "uris": st.lists(st.text(max_size=20), max_size=2)}),
            "validity_months": st.integers(min_value=-1, max_value=1300),
            "key_usage": st.lists(st.sampled_from(["digitalSignature", "keyEncipherment", "encipherOnly",
                                                   "keyAgreement", "cRLSign"]), max_size=3),
            "ekus": st.lists(st.sampled_from(["1.3.6.1.5.5.7.3.1", "2.5.29.37.0", "1.2"]), max_size=2)}),
    }, optional={"key_props": st.fixed_dictionaries({
        # EC keys mostly: RSA key generation is what makes issuance slow.
        "kty": st.sampled_from(["EC", "EC", "EC-HSM", "RSA"]), "crv": st.sampled_from(["P-256", "P-384", "P-256K"]),
    }, optional={"reuse_key": st.booleans()})})}, optional={"tags": st.dictionaries(st.text(max_size=5),
                                                                                    st.text(max_size=5), max_size=2)})
    return st.one_of(json_values, near_valid, near_valid, st.fixed_dictionaries(
        {"policy": policy}, optional={"tags": json_values, "attributes": json_values}))


KV_ROUTES = [
    ("GET", "/certificates"), ("POST", "/certificates/{name}/create"), ("GET", "/certificates/{name}/pending"),
    ("DELETE", "/certificates/{name}/pending"), ("GET", "/certificates/{name}/policy"),
    ("GET", "/certificates/{name}/versions"), ("GET", "/certificates/{name}/"), ("GET", "/certificates/{name}"),
    ("GET", "/certificates/{name}/{a}"), ("DELETE", "/certificates/{name}"), ("GET", "/deletedcertificates"),
    ("GET", "/deletedcertificates/{name}"), ("DELETE", "/deletedcertificates/{name}"),
    ("POST", "/deletedcertificates/{name}/recover"), ("GET", "/secrets"), ("GET", "/secrets/{name}"),
    ("GET", "/secrets/{name}/{a}"), ("PUT", "/certificates/{name}"), ("GET", "/{a}"),
]


@FUZZ
@given(data=st.data())
def test_key_vault_routes_answer_in_key_vault_shape(kv_fuzz: Fuzz, data: st.DataObject) -> None:
    fuzz = kv_fuzz
    method, template = data.draw(st.sampled_from(KV_ROUTES))
    vault = data.draw(st.sampled_from(["kv-fuzz"] * 3 + ["kv-fuzz-ap"] * 2 + ["KV-FUZZ", "no-such-vault"]))
    path = template.replace("{name}", quote(data.draw(st.sampled_from(["known", "fresh", "Known"] * 5) | segment),
                                            safe="")).replace("{a}", quote(data.draw(segment), safe=""))
    q = query(data.draw(queries), data.draw(st.sampled_from(["2026-04-01"] * 6) | api_versions))
    headers = dict(data.draw(st.sampled_from(fuzz.kv_auth)))
    raw = data.draw(st.sampled_from([False] * 5 + [True]))
    content = data.draw(st.binary(max_size=40)) if raw else json.dumps(data.draw(kv_bodies())).encode()
    r = fuzz.client.request(method, f"{fuzz.sb.urls['vault']}/{vault}{path}{q}", headers=headers,
                            content=content if method in ("PUT", "POST") else None)
    check(r, method)
    if method == "POST" and r.status_code == 202:
        # Let issuance happen on a later request, through whatever path it takes.
        fuzz.sb.clock.advance(5)
    if r.status_code == 401:
        assert r.headers["WWW-Authenticate"].startswith('Bearer authorization="')


@settings(FUZZ, max_examples=60)  # each accepted policy generates a real key pair
@given(body=kv_bodies())
def test_certificate_policies_issue_or_are_refused_cleanly(kv_fuzz: Fuzz, body: Any) -> None:
    """Every policy the create call accepts must also issue, and its certificate and PFX must be readable."""
    fuzz = kv_fuzz
    fuzz.serial = getattr(fuzz, "serial", 0) + 1
    name = f"policy-{fuzz.serial}"
    base = f"{fuzz.sb.urls['vault']}/kv-fuzz"
    h = fuzz.kv_auth[0]
    r = fuzz.client.post(f"{base}/certificates/{name}/create?api-version=2026-04-01", headers=h,
                         content=json.dumps(body).encode())
    check(r, "POST")
    if r.status_code != 202:
        assert r.status_code == 400, r.text
        return
    fuzz.sb.clock.advance(5)
    op = fuzz.client.get(f"{base}/certificates/{name}/pending?api-version=2026-04-01", headers=h)
    assert op.status_code == 200
    if op.json()["issuer"]["name"] != "Self":
        return
    if op.json()["status"] == "failed":  # refused at issuance: reported in the operation's error, as Key Vault does
        assert op.json()["error"]["code"] and op.json()["error"]["message"]
        return
    assert op.json()["status"] == "completed", op.text
    cert = fuzz.client.get(f"{base}/certificates/{name}/?api-version=2026-04-01", headers=h)
    assert cert.status_code == 200, cert.text
    secret = fuzz.client.get(f"{base}/secrets/{name}?api-version=2026-04-01", headers=h)
    assert secret.status_code == 200, secret.text

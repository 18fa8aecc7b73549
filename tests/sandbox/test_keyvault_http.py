"""Key Vault data-plane shapes the SDK tests do not pin down: the challenge, token errors, api-versions,
the certificate's PKCS#12 secret, access-policy vaults, paging, restarts (reference §5.2, §1.4)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.conftest import ca_context
from tests.sandbox import test_arm_helpers as helpers
from tests.sandbox.support import bearer, user_token
from tests.sandbox.test_arm_helpers import (
    ADMIN,
    KV_API,
    NOBODY,
    READER,
    SOURCE_SUB,
    SRC_ADMIN,
    VAULT,
    grant,
    kv_headers,
    make_vault,
    oid,
    start_azure_sandbox,
    vault_id,
)
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.backends.keyvault import can_read_certificate, parse_object_id
from xtwizard.sandbox.catalog import AZURE_ROLES
from xtwizard.sandbox.directory import resource_service_principal

# The shared fixtures, used by name.
azure_server, azure, client = helpers.azure_server, helpers.azure, helpers.client
DP = "2026-04-01"
POLICY = {"policy": {"issuer": {"name": "Self"}, "x509_props": {"subject": "CN=ctmm", "validity_months": 12}}}


def vurl(sb: Sandbox, vault: str, path: str, api: str | None = DP) -> str:
    return f"{sb.urls['vault']}/{vault}{path}" + (f"?api-version={api}" if api else "")


def err(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


def issue(sb: Sandbox, c: httpx.Client, vault: str, name: str, body: dict[str, Any] | None = None,
          upn: str = ADMIN) -> dict[str, Any]:
    r = c.post(vurl(sb, vault, f"/certificates/{name}/create"), headers=kv_headers(sb, upn), json=body or POLICY)
    assert r.status_code == 202, r.text
    c.post(sb.info["control_url"] + "/clock", json={"advance_seconds": 5}).raise_for_status()
    got = c.get(vurl(sb, vault, f"/certificates/{name}/"), headers=kv_headers(sb, upn))
    assert got.status_code == 200, got.text
    return dict(got.json())


@pytest.fixture
def vault(azure: Sandbox, client: httpx.Client) -> str:
    make_vault(azure, client, "kv-data").raise_for_status()
    grant(azure, client, vault_id("kv-data"), AZURE_ROLES["Key Vault Administrator"], oid(azure, ADMIN)
          ).raise_for_status()
    return "kv-data"


def test_challenge_without_a_token_has_the_exact_form(azure: Sandbox, client: httpx.Client, vault: str) -> None:
    r = client.post(vurl(azure, vault, "/certificates/x/create"), json=POLICY)
    assert r.status_code == 401
    tenant_id = azure.state.tenant("target").id  # type: ignore[union-attr]
    assert r.headers["WWW-Authenticate"] == (f'Bearer authorization="{azure.urls["login"]}/{tenant_id}", '
                                             f'resource="https://vault.azure.net"')
    assert r.json() == {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP "
                                                                     "token."}}


def test_token_errors_use_akv_messages_and_repeat_the_challenge(azure: Sandbox, client: httpx.Client,
                                                                vault: str) -> None:
    target = vurl(azure, vault, "/certificates")
    graph = user_token(azure, "target", ADMIN, "https://graph.microsoft.com")
    r = client.get(target, headers=bearer(graph))
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    assert err(r) == {"code": "Unauthorized", "message": "AKV10022: Invalid audience. Expected "
                                                         "https://vault.azure.net, found: https://graph.microsoft.com."}
    expired = user_token(azure, "target", ADMIN, VAULT, lifetime=-5)
    r = client.get(target, headers=bearer(expired))
    assert r.status_code == 401 and "TokenExpired" in err(r)["message"]
    other_tenant = user_token(azure, "source", SRC_ADMIN, VAULT)
    r = client.get(target, headers=bearer(other_tenant))
    assert r.status_code == 401 and err(r)["message"].startswith("AKV10032: Invalid issuer.")
    forged = user_token(azure, "target", ADMIN, VAULT)[:-4] + "AAAA"
    r = client.get(target, headers=bearer(forged))
    assert r.status_code == 401 and "AKV10046" in err(r)["message"]


@pytest.mark.parametrize("api", ["7.4", "7.6", "2025-07-01", "2026-04-01", "2016-10-01"])
def test_supported_api_versions(azure: Sandbox, client: httpx.Client, vault: str, api: str) -> None:
    assert client.get(vurl(azure, vault, "/certificates", api), headers=kv_headers(azure)).status_code == 200


def test_missing_or_unknown_api_version(azure: Sandbox, client: httpx.Client, vault: str) -> None:
    r = client.get(vurl(azure, vault, "/certificates", None), headers=kv_headers(azure))
    assert r.status_code == 400 and err(r)["code"] == "BadParameter"
    r = client.get(vurl(azure, vault, "/certificates", "9.9"), headers=kv_headers(azure))
    assert r.status_code == 400 and "(9.9) is not recognized" in err(r)["message"]


def test_unknown_or_soft_deleted_vault_is_not_found(azure: Sandbox, client: httpx.Client, vault: str) -> None:
    r = client.get(vurl(azure, "no-such-vault", "/certificates"), headers=kv_headers(azure))
    assert r.status_code == 404 and err(r)["code"] == "VaultNotFound"
    client.delete(f"{azure.urls['arm']}{vault_id(vault)}?api-version={KV_API}",
                  headers=bearer(user_token(azure, "target", ADMIN, "https://management.azure.com"))
                  ).raise_for_status()
    assert client.get(vurl(azure, vault, "/certificates"), headers=kv_headers(azure)).status_code == 404


def test_certificate_secret_is_a_pfx_with_the_private_key(azure: Sandbox, client: httpx.Client, vault: str) -> None:
    cert = issue(azure, client, vault, "pfx-cert")
    version = cert["id"].rsplit("/", 1)[-1]
    assert cert["sid"] == f"https://kv-data.vault.azure.net/secrets/pfx-cert/{version}"
    assert cert["contentType"] == "application/x-pkcs12"
    assert cert["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"
    for path in ("/secrets/pfx-cert", f"/secrets/pfx-cert/{version}"):
        r = client.get(vurl(azure, vault, path), headers=kv_headers(azure))
        assert r.status_code == 200, r.text
        secret = r.json()
        assert secret["contentType"] == "application/x-pkcs12" and secret["managed"] is True
        assert secret["kid"].endswith(f"/keys/pfx-cert/{version}")
        key, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret["value"]), None)
        assert leaf is not None and key is not None
        assert leaf.public_bytes(serialization.Encoding.DER) == base64.b64decode(cert["cer"])
        assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    missing = client.get(vurl(azure, vault, "/secrets/pfx-cert/" + "0" * 32), headers=kv_headers(azure))
    assert missing.status_code == 404 and err(missing)["code"] == "SecretNotFound"
    listed = client.get(vurl(azure, vault, "/secrets"), headers=kv_headers(azure)).json()["value"]
    assert [s["id"] for s in listed] == ["https://kv-data.vault.azure.net/secrets/pfx-cert"]


def test_pem_content_type(azure: Sandbox, client: httpx.Client, vault: str) -> None:
    body = {"policy": {**POLICY["policy"], "secret_props": {"contentType": "application/x-pem-file"},
                       "key_props": {"kty": "EC", "crv": "P-256"}}}
    issue(azure, client, vault, "pem-cert", body)
    secret = client.get(vurl(azure, vault, "/secrets/pem-cert"), headers=kv_headers(azure)).json()
    assert secret["contentType"] == "application/x-pem-file"
    assert "BEGIN PRIVATE KEY" in secret["value"] and "BEGIN CERTIFICATE" in secret["value"]
    leaf = x509.load_pem_x509_certificate(secret["value"].encode())
    assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_secrets_user_reads_the_secret_but_not_the_certificate(azure: Sandbox, client: httpx.Client,
                                                               vault: str) -> None:
    issue(azure, client, vault, "split")
    grant(azure, client, vault_id(vault), AZURE_ROLES["Key Vault Secrets User"], oid(azure, READER)).raise_for_status()
    assert client.get(vurl(azure, vault, "/secrets/split"), headers=kv_headers(azure, READER)).status_code == 200
    r = client.get(vurl(azure, vault, "/certificates/split"), headers=kv_headers(azure, READER))
    assert r.status_code == 403
    e = err(r)
    assert e["code"] == "Forbidden" and e["innererror"] == {"code": "ForbiddenByRbac"}
    assert "Action: 'Microsoft.KeyVault/vaults/certificates/read'" in e["message"]
    assert "Resource: '/subscriptions/" in e["message"] and "/certificates/split'" in e["message"]


def test_access_policy_vault_checks_the_callers_permissions(azure: Sandbox, client: httpx.Client) -> None:
    tenant = azure.state.tenant("target")
    assert tenant is not None
    exo_sp = resource_service_principal(tenant, "https://outlook.office365.com")
    policies = [
        {"tenantId": tenant.id, "objectId": oid(azure, ADMIN), "permissions": {"certificates": ["all"],
                                                                               "secrets": ["get"]}},
        {"tenantId": tenant.id, "objectId": oid(azure, READER), "permissions": {"certificates": ["get", "list"]}},
        {"tenantId": tenant.id, "objectId": exo_sp["id"], "permissions": {"certificates": ["get", "list"],
                                                                          "secrets": ["get", "list"]}},
    ]
    make_vault(azure, client, "kv-policy", rbac=False, extra={"accessPolicies": policies}).raise_for_status()
    issue(azure, client, "kv-policy", "exo-cert")
    assert client.get(vurl(azure, "kv-policy", "/certificates/exo-cert"),
                      headers=kv_headers(azure, READER)).status_code == 200
    r = client.post(vurl(azure, "kv-policy", "/certificates/mine/create"), headers=kv_headers(azure, READER),
                    json=POLICY)
    assert r.status_code == 403 and err(r)["innererror"] == {"code": "AccessDenied"}
    assert "does not have certificates create permission on key vault 'kv-policy;location=eastus'" in err(r)["message"]
    r = client.get(vurl(azure, "kv-policy", "/secrets/exo-cert"), headers=kv_headers(azure, READER))
    assert r.status_code == 403 and "secrets get permission" in err(r)["message"]
    # Owner of the subscription, but no policy entry: refused.
    nobody = client.get(vurl(azure, "kv-policy", "/certificates"), headers=kv_headers(azure, NOBODY))
    assert nobody.status_code == 403
    # What the Exchange backend asks for the deprecated AppSecretKeyVaultUrl path (reference §1.4 Verify-KeyVault).
    assert can_read_certificate(azure.state, "kv-policy", exo_sp["id"]) is True
    assert can_read_certificate(azure.state, "kv-policy", oid(azure, READER)) is False
    assert can_read_certificate(azure.state, "no-such-vault", exo_sp["id"]) is False


def test_object_ids_match_the_deprecated_script_regex_and_parse_back(azure: Sandbox, client: httpx.Client,
                                                                     vault: str) -> None:
    import re

    cert = issue(azure, client, vault, "AppSecret1")
    pattern = r"^https://[a-zA-Z_0-9\-]+\.vault\.azure\.net(:443){0,1}/certificates/[a-zA-Z_0-9\-]+/[a-zA-Z_0-9]+$"
    assert re.match(pattern, cert["id"])
    assert parse_object_id(cert["id"]) == ("kv-data", "certificates", "AppSecret1", cert["id"].rsplit("/", 1)[-1])
    assert parse_object_id(f"{azure.urls['vault']}/KV-Data/secrets/AppSecret1") == (
        "kv-data", "secrets", "AppSecret1", None)


def test_invalid_names_and_policies(azure: Sandbox, client: httpx.Client, vault: str) -> None:
    h = kv_headers(azure)
    r = client.post(vurl(azure, vault, "/certificates/bad_name/create"), headers=h, json=POLICY)
    assert r.status_code == 400 and err(r) == {"code": "BadParameter",
                                               "message": "The request URI contains an invalid name: bad_name"}
    for body in ({}, {"policy": "x"}, {"policy": {"x509_props": {"subject": "nonsense"}}},
                 {"policy": {"x509_props": {"subject": "CN=a"}, "key_props": {"key_size": 1024}}},
                 {"policy": {"x509_props": {"subject": "CN=a", "validity_months": 0}}},
                 {"policy": {"x509_props": {"subject": "CN=a"}, "issuer": {"name": "DigiCert"}}}):
        r = client.post(vurl(azure, vault, "/certificates/ok/create"), headers=h, json=body)
        assert r.status_code == 400 and err(r)["code"] == "BadParameter", (body, r.text)
    r = client.post(vurl(azure, vault, "/certificates/ok/create"), headers=h, content=b"{nope")
    assert r.status_code == 400
    assert client.get(vurl(azure, vault, "/certificates/ok/pending"), headers=h).status_code == 404


def test_pending_operation_shape(azure: Sandbox, client: httpx.Client, vault: str) -> None:
    r = client.post(vurl(azure, vault, "/certificates/op/create"), headers=kv_headers(azure), json=POLICY)
    op = r.json()
    assert op["status"] == "inProgress" and op["issuer"] == {"name": "Self"}
    assert op["id"] == "https://kv-data.vault.azure.net/certificates/op/pending"
    assert op["target"] == "https://kv-data.vault.azure.net/certificates/op"
    csr = x509.load_der_x509_csr(base64.b64decode(op["csr"]))
    assert csr.subject.rfc4514_string() == "CN=ctmm" and csr.is_signature_valid
    again = client.post(vurl(azure, vault, "/certificates/op/create"), headers=kv_headers(azure), json=POLICY)
    assert again.status_code == 409
    unknown = {"policy": {**POLICY["policy"], "issuer": {"name": "Unknown"}}}
    client.post(vurl(azure, vault, "/certificates/manual/create"), headers=kv_headers(azure), json=unknown)
    client.post(azure.info["control_url"] + "/clock", json={"advance_seconds": 3600}).raise_for_status()
    assert client.get(vurl(azure, vault, "/certificates/op/pending"), headers=kv_headers(azure)).json()[
        "status"] == "completed"
    # An 'Unknown' issuer waits for a merge that never comes: the operation stays in progress.
    assert client.get(vurl(azure, vault, "/certificates/manual/pending"), headers=kv_headers(azure)).json()[
        "status"] == "inProgress"


def test_list_pages_with_next_link(azure: Sandbox, client: httpx.Client, vault: str) -> None:
    h = kv_headers(azure)
    for i in range(5):
        client.post(vurl(azure, vault, f"/certificates/page{i}/create"), headers=h, json=POLICY).raise_for_status()
    client.post(azure.info["control_url"] + "/clock", json={"advance_seconds": 5}).raise_for_status()
    seen: list[str] = []
    next_url: str | None = vurl(azure, vault, "/certificates") + "&maxresults=2"
    pages = 0
    while next_url:
        page = client.get(next_url, headers=h).json()
        seen += [item["id"].rsplit("/", 1)[-1] for item in page["value"]]
        next_url = page.get("nextLink")
        pages += 1
    assert pages == 3 and seen == [f"page{i}" for i in range(5)]
    bad = client.get(vurl(azure, vault, "/certificates") + "&maxresults=99", headers=h)
    assert bad.status_code == 400


def test_public_network_access_disabled(azure: Sandbox, client: httpx.Client) -> None:
    make_vault(azure, client, "kv-private", extra={"publicNetworkAccess": "Disabled"}).raise_for_status()
    r = client.get(vurl(azure, "kv-private", "/certificates"), headers=kv_headers(azure))
    assert r.status_code == 403 and err(r)["innererror"] == {"code": "ForbiddenByConnection"}


def test_other_tenant_vault_uses_its_own_tenant_in_the_challenge(azure: Sandbox, client: httpx.Client) -> None:
    make_vault(azure, client, "kv-source", sub=SOURCE_SUB, upn=SRC_ADMIN, tenant="source").raise_for_status()
    r = client.get(vurl(azure, "kv-source", "/certificates"))
    source_id = azure.state.tenant("source").id  # type: ignore[union-attr]
    assert r.headers["WWW-Authenticate"].startswith(f'Bearer authorization="{azure.urls["login"]}/{source_id}"')


def test_private_keys_are_never_saved_and_a_restart_says_so(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    sb = start_azure_sandbox(tmp_path)
    try:
        sb.state_dir = str(state_dir)  # save into a directory like --state-dir does
        with httpx.Client(verify=ca_context(sb.ca_path), trust_env=False) as c:
            make_vault(sb, c, "kv-restart").raise_for_status()
            grant(sb, c, vault_id("kv-restart"), AZURE_ROLES["Key Vault Administrator"], oid(sb, ADMIN)
                  ).raise_for_status()
            issue(sb, c, "kv-restart", "kept")
            assert c.get(vurl(sb, "kv-restart", "/secrets/kept"), headers=kv_headers(sb)).status_code == 200
    finally:
        sb.stop()
    saved = (state_dir / "state.json").read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in saved and "_unsaved" not in saved
    assert "kv-restart/kept" in json.dumps(json.loads(saved))
    with Sandbox("demo", state_dir=str(state_dir)) as again, httpx.Client(verify=ca_context(again.ca_path),
                                                                        trust_env=False) as c:
        assert c.get(vurl(again, "kv-restart", "/certificates/kept"), headers=kv_headers(again)).status_code == 200
        r = c.get(vurl(again, "kv-restart", "/secrets/kept"), headers=kv_headers(again))
        assert r.status_code == 404 and "keeps private keys only in memory" in err(r)["message"]


def test_app_only_token_of_a_service_principal_is_authorized_by_rbac(azure: Sandbox, client: httpx.Client,
                                                                      vault: str) -> None:
    from tests.sandbox.support import app_token

    issue(azure, client, vault, "for-app")
    tenant = azure.state.tenant("target")
    assert tenant is not None
    exo_sp = resource_service_principal(tenant, "https://outlook.office365.com")
    token = app_token(azure, "target", exo_sp["appId"], exo_sp["id"], [], resource=VAULT)
    refused = client.get(vurl(azure, vault, "/secrets/for-app"), headers=bearer(token))
    assert refused.status_code == 403 and f"oid={exo_sp['id']}" in err(refused)["message"]
    grant(azure, client, vault_id(vault), AZURE_ROLES["Key Vault Secrets User"], exo_sp["id"]).raise_for_status()
    assert client.get(vurl(azure, vault, "/secrets/for-app"), headers=bearer(token)).status_code == 200
    assert can_read_certificate(azure.state, vault, exo_sp["id"]) is False  # secrets only, no certificate read


@pytest.mark.parametrize("subject", ["C=ÄÖ", "SERIALNUMBER=ü", "CN=" + "x" * 65, "CN=a, XX=b", "CN"])
def test_subjects_x509_cannot_encode_are_refused_not_crashed(azure: Sandbox, client: httpx.Client, vault: str,
                                                              subject: str) -> None:
    r = client.post(vurl(azure, vault, "/certificates/odd/create"), headers=kv_headers(azure),
                    json={"policy": {"x509_props": {"subject": subject}}})
    assert r.status_code == 400 and err(r)["code"] == "BadParameter"
    assert "not a valid X.500 distinguished name" in err(r)["message"]

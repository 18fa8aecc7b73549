"""Unattended sign-in against the sandbox: OAuth ROPC (grant_type=password) through msal."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests

from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.scenario import load_scenario

pytestmark = pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning")

PASSWORD = "Rehearse-only-2026"
CLIENT = "fb78d390-0c51-40cd-8e17-fdbfab77341b"  # Exchange Online PowerShell's public client (the default)


def scenario_with_passwords(folder: Path) -> str:
    """The demo with a password (hash) for both admins."""
    data = load_scenario("demo")
    for t in data["tenants"]:
        for u in t["users"]:
            if u["userPrincipalName"].startswith("admin@"):
                u["passwordSha256"] = hashlib.sha256(PASSWORD.encode()).hexdigest()
    path = folder / "demo-passwords.json"
    path.write_text(json.dumps(data))
    return str(path)


def grant_tenant_wide_consent(sb: Sandbox, client_id: str = CLIENT) -> None:
    """What an admin's earlier tenant-wide consent to the sign-in client leaves behind (ROPC cannot ask)."""
    from xtwizard.sandbox.catalog import RESOURCES, stable_id
    from xtwizard.sandbox.directory import resource_service_principal

    for key in ("source", "target"):
        t = sb.state.tenant(key)
        assert t is not None
        for resource in RESOURCES:
            sp = resource_service_principal(t, resource)
            gid = stable_id(t.id, "grant", client_id.lower(), "all", sp["id"])
            t.col("oauth2PermissionGrants")[gid] = {"id": gid, "clientId": client_id, "consentType": "AllPrincipals",
                                                    "principalId": None, "resourceId": sp["id"],
                                                    "scope": ".default"}
    sb.state.touch()


@pytest.fixture
def pw_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(scenario_with_passwords(tmp_path))
    sb.start()
    grant_tenant_wide_consent(sb)
    try:
        yield sb
    finally:
        sb.stop()


def _app(sb: Sandbox) -> msal.PublicClientApplication:
    http = requests.Session()
    http.trust_env = False
    http.verify = sb.ca_path
    return msal.PublicClientApplication(CLIENT, authority=f"{sb.info['authority_host']}/organizations",
                                        instance_discovery=False, http_client=http)


def test_msal_username_password_gets_tokens_for_a_declared_account(pw_sandbox: Any) -> None:
    app = _app(pw_sandbox)
    result = app.acquire_token_by_username_password("admin@fabrikaminc.onmicrosoft.com", PASSWORD,
                                                    scopes=["https://graph.microsoft.com/.default"])
    assert "access_token" in result, result
    assert result["id_token_claims"]["tid"] == pw_sandbox.state.tenant("target").id
    # the account is cached: later tokens for other resources come silently (refresh token)
    account = app.get_accounts()[0]
    other = app.acquire_token_silent(["https://outlook.office365.com/.default"], account)
    assert other and "access_token" in other


@pytest.mark.parametrize("upn, password", [
    ("admin@fabrikaminc.onmicrosoft.com", "wrong"),
    ("exadmin@fabrikam.example", PASSWORD),  # declares no password: never signs in this way
])
def test_wrong_or_undeclared_password_is_refused(pw_sandbox: Any, upn: str, password: str) -> None:
    result = _app(pw_sandbox).acquire_token_by_username_password(upn, password,
                                                                 scopes=["https://graph.microsoft.com/.default"])
    assert result.get("error") == "invalid_grant"
    assert "AADSTS50126" in result.get("error_description", "")


def test_without_consent_ropc_says_so(tmp_path: Path) -> None:
    with Sandbox(scenario_with_passwords(tmp_path)) as sb:
        result = _app(sb).acquire_token_by_username_password("admin@fabrikaminc.onmicrosoft.com", PASSWORD,
                                                             scopes=["https://graph.microsoft.com/.default"])
    assert "AADSTS65001" in result.get("error_description", "")


def test_the_scenario_file_holds_only_a_hash(tmp_path: Path) -> None:
    assert PASSWORD not in Path(scenario_with_passwords(tmp_path)).read_text()

"""azure-identity 1.27 credentials against the sandbox's identity platform (reference §6.5): interactive
browser, device code, and the migration app's client secret and certificate after the source admin's
consent (reference §2.2)."""

from __future__ import annotations

import base64
import datetime
import threading
import uuid
import webbrowser
from typing import Any

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    DeviceCodeCredential,
    InteractiveBrowserCredential,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.sandbox.browser import ScriptedBrowser, account
from xtwizard.sandbox.catalog import EXCHANGE_APP_ID, MAILBOX_MIGRATION_ROLE_ID
from xtwizard.sandbox.directory import ensure_service_principal, iso
from xtwizard.sandbox.tokens import sha256_hex

EXO = "https://outlook.office365.com/.default"


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def make_certificate(days: int = 365) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xtwizard migration test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return key, cert


def register_migration_app(sb: Any, *, secret: str | None = None, secret_expired: bool = False,
                           cert: x509.Certificate | None = None) -> dict[str, Any]:
    """A multitenant app in the target tenant asking for Exchange's Mailbox.Migration, as the Learn
    procedure registers it (reference §2.2), written straight into sandbox state."""
    with sb.state.lock:
        target = sb.state.tenant("target")
        now = sb.clock.now()
        app: dict[str, Any] = {
            "id": str(uuid.uuid4()), "appId": str(uuid.uuid4()), "displayName": "Cross-tenant mailbox migration",
            "signInAudience": "AzureADMultipleOrgs", "web": {"redirectUris": ["https://office.com"]},
            "requiredResourceAccess": [{"resourceAppId": EXCHANGE_APP_ID,
                                        "resourceAccess": [{"id": MAILBOX_MIGRATION_ROLE_ID, "type": "Role"}]}],
            "passwordCredentials": [], "keyCredentials": [], "_secretHashes": {},
        }
        if secret is not None:
            key_id = str(uuid.uuid4())
            end = now - 60 if secret_expired else now + 180 * 86400
            app["passwordCredentials"].append({"keyId": key_id, "displayName": "migration",
                                               "endDateTime": iso(end), "hint": secret[:3]})
            app["_secretHashes"][key_id] = sha256_hex(secret)
        if cert is not None:
            app["keyCredentials"].append({
                "keyId": str(uuid.uuid4()), "type": "AsymmetricX509Cert", "usage": "Verify",
                "key": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
                "endDateTime": iso(now + 365 * 86400),
            })
        target.col("applications")[app["id"]] = app
        ensure_service_principal(sb.state, target, target, app)
    return app


def admin_consent(sb: Any, app: dict[str, Any], browser: ScriptedBrowser, **kwargs: Any) -> Any:
    source = sb.state.tenant("source")
    url = (f"{sb.urls['login']}/{source.initial_domain}/adminconsent?client_id={app['appId']}"
           f"&redirect_uri=https://office.com&state=s-42")
    return browser.sign_in(url, account=kwargs.pop("account", account(sb, "source", admin=True)), **kwargs)


def common(sb: Any) -> dict[str, Any]:
    return {"authority": sb.urls["login"], "disable_instance_discovery": True, "connection_verify": sb.ca_path}


@pytest.fixture
def browser(sandbox: Any) -> Any:
    with ScriptedBrowser(sandbox.ca_path) as b:
        yield b


def test_interactive_browser_credential(sandbox, browser, monkeypatch):
    tid = sandbox.state.tenant("target").id
    upn = account(sandbox, "target", admin=True)
    walked: list[Any] = []

    def fake_open(url: str, *args: Any, **kwargs: Any) -> bool:
        threading.Thread(target=lambda: walked.append(browser.sign_in(url, account=upn)), daemon=True).start()
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    cred = InteractiveBrowserCredential(tenant_id=tid, client_id="04b07795-8ddb-461a-bbee-02f9e1bf7b46",
                                        timeout=30, **common(sandbox))
    token = cred.get_token("https://management.azure.com/.default")
    at = claims(token.token)
    assert at["aud"] == "https://management.azure.com" and at["tid"] == tid and at["upn"] == upn
    assert walked[0].delivery == "form_post" and walked[0].delivered_status == 200
    # The same credential then serves another resource silently from its refresh token.
    kv = claims(cred.get_token("https://vault.azure.net/.default").token)
    assert kv["aud"] == "https://vault.azure.net" and len(walked) == 1


def test_device_code_credential(sandbox, browser):
    tid = sandbox.state.tenant("source").id
    upn = account(sandbox, "source", admin=True)
    prompts: list[str] = []

    def prompt(verification_uri: str, user_code: str, expires_on: Any) -> None:
        prompts.append(user_code)
        assert browser.device_login(verification_uri, user_code, account=upn) == "approved"

    cred = DeviceCodeCredential(tenant_id=tid, prompt_callback=prompt, **common(sandbox))
    at = claims(cred.get_token("https://graph.microsoft.com/.default").token)
    assert prompts and at["tid"] == tid and at["upn"] == upn


def test_client_secret_after_admin_consent_in_the_source(sandbox, browser):
    app = register_migration_app(sandbox, secret="s3cret-value~with.chars")
    source = sandbox.state.tenant("source")
    before = ClientSecretCredential(source.id, app["appId"], "s3cret-value~with.chars", **common(sandbox))
    # No service principal in the source yet: the app is unknown there.
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        before.get_token(EXO)

    consented = admin_consent(sandbox, app, browser)
    assert consented.params == {"admin_consent": "True", "tenant": source.id, "state": "s-42"}
    assert consented.delivery == "redirect" and consented.redirect_uri == "https://office.com"

    cred = ClientSecretCredential(source.id, app["appId"], "s3cret-value~with.chars", **common(sandbox))
    at = claims(cred.get_token(EXO).token)
    assert at["roles"] == ["Mailbox.Migration"] and at["tid"] == source.id and at["appid"] == app["appId"]
    assert at["aud"] == "https://outlook.office365.com" and at["idtyp"] == "app"

    wrong = ClientSecretCredential(source.id, app["appId"], "not-the-secret", **common(sandbox))
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token(EXO)


def test_expired_client_secret(sandbox, browser):
    app = register_migration_app(sandbox, secret="old-secret", secret_expired=True)
    admin_consent(sandbox, app, browser)
    cred = ClientSecretCredential(sandbox.state.tenant("source").id, app["appId"], "old-secret", **common(sandbox))
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000222"):
        cred.get_token(EXO)


def test_certificate_credential_after_admin_consent(sandbox, browser, tmp_path):
    key, cert = make_certificate()
    app = register_migration_app(sandbox, cert=cert)
    admin_consent(sandbox, app, browser)
    pem = tmp_path / "migration.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    source = sandbox.state.tenant("source")
    cred = CertificateCredential(source.id, app["appId"], certificate_path=str(pem), **common(sandbox))
    at = claims(cred.get_token(EXO).token)
    assert at["roles"] == ["Mailbox.Migration"] and at["tid"] == source.id

    # A certificate that is not registered on the app is refused.
    other_key, other_cert = make_certificate()
    other = tmp_path / "other.pem"
    other.write_bytes(other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())
                      + other_cert.public_bytes(serialization.Encoding.PEM))
    bad = CertificateCredential(source.id, app["appId"], certificate_path=str(other), **common(sandbox))
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        bad.get_token(EXO)


def test_app_token_in_its_home_tenant_has_no_roles_until_granted(sandbox):
    app = register_migration_app(sandbox, secret="home-secret")
    target = sandbox.state.tenant("target")
    cred = ClientSecretCredential(target.id, app["appId"], "home-secret", **common(sandbox))
    at = claims(cred.get_token(EXO).token)
    assert at["tid"] == target.id and at["roles"] == []

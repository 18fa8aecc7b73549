"""azure-keyvault-certificates against the sandbox vault, with only the documented knobs (reference §5.2, §6.6)."""

from __future__ import annotations

import datetime
import threading

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.certificates import CertificateClient, CertificatePolicy, KeyVaultCertificate
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.sandbox import test_arm_helpers as helpers
from tests.sandbox.support import StaticCredential
from tests.sandbox.test_arm_helpers import (
    ADMIN,
    READER,
    grant,
    make_vault,
    oid,
    vault_id,
)
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.catalog import AZURE_ROLES

# The shared fixtures, used by name.
azure_server, azure, client = helpers.azure_server, helpers.azure, helpers.client


def cert_client(sb: Sandbox, vault: str, upn: str = ADMIN) -> CertificateClient:
    return CertificateClient(vault_url=f"{sb.urls['vault']}/{vault}", credential=StaticCredential(sb, "target", upn),
                             verify_challenge_resource=False, connection_verify=sb.ca_path)


def advance(c: httpx.Client, sb: Sandbox, seconds: float) -> None:
    c.post(sb.info["control_url"] + "/clock", json={"advance_seconds": seconds}).raise_for_status()


def create_and_wait(sb: Sandbox, c: httpx.Client, kc: CertificateClient, name: str,
                    policy: CertificatePolicy) -> KeyVaultCertificate:
    """Start issuance, move the sandbox clock past the issue time while the poller waits, and return the result."""
    poller = kc.begin_create_certificate(name, policy, _polling_interval=0.05)
    assert poller.status().lower() == "inprogress"
    advance(c, sb, sb.state.settings["certificate_issue_seconds"] + 1)
    result = poller.result(timeout=30)
    assert isinstance(result, KeyVaultCertificate)
    return result


@pytest.fixture
def rbac_vault(azure: Sandbox, client: httpx.Client) -> str:
    make_vault(azure, client, "xt-certs").raise_for_status()
    grant(azure, client, vault_id("xt-certs"), AZURE_ROLES["Key Vault Certificates Officer"],
          oid(azure, ADMIN)).raise_for_status()
    return "xt-certs"


def test_create_certificate_poll_and_get_a_real_self_signed_x509(azure: Sandbox, client: httpx.Client,
                                                                 rbac_vault: str) -> None:
    kc = cert_client(azure, rbac_vault)
    issued_at = azure.clock.now()
    cert = create_and_wait(azure, client, kc, "xt-migration", CertificatePolicy(
        issuer_name="Self", subject="CN=xtwizard-test", validity_in_months=12))
    parsed = x509.load_der_x509_certificate(bytes(cert.cer or b""))
    assert parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "xtwizard-test"
    assert parsed.issuer == parsed.subject
    days = (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days
    assert 364 <= days <= 366
    assert abs(parsed.not_valid_before_utc.timestamp() - issued_at) < 120  # issued on the sandbox clock
    ekus = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in ekus and ExtendedKeyUsageOID.CLIENT_AUTH in ekus
    assert cert.name == "xt-migration" and cert.properties.version
    assert cert.id == f"https://xt-certs.vault.azure.net/certificates/xt-migration/{cert.properties.version}"
    assert cert.policy is not None and cert.policy.subject == "CN=xtwizard-test"
    assert cert.properties.x509_thumbprint and len(cert.properties.x509_thumbprint) == 20

    again = kc.get_certificate("xt-migration")
    assert again.cer == cert.cer
    by_version = kc.get_certificate_version("xt-migration", cert.properties.version or "")
    assert by_version.id == cert.id
    assert [p.name for p in kc.list_properties_of_certificates()] == ["xt-migration"]
    assert [p.version for p in kc.list_properties_of_certificate_versions("xt-migration")] == [cert.properties.version]


def test_policy_options_are_honoured(azure: Sandbox, client: httpx.Client, rbac_vault: str) -> None:
    kc = cert_client(azure, rbac_vault)
    policy = CertificatePolicy(issuer_name="Self", subject="CN=app.fabrikam.example, O=Fabrikam",
                               validity_in_months=3, key_size=3072, san_dns_names=["app.fabrikam.example"],
                               enhanced_key_usage=["1.3.6.1.5.5.7.3.2"])
    cert = create_and_wait(azure, client, kc, "client-auth", policy)
    parsed = x509.load_der_x509_certificate(bytes(cert.cer or b""))
    assert parsed.public_key().key_size == 3072  # type: ignore[union-attr]
    assert parsed.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Fabrikam"
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["app.fabrikam.example"]
    assert list(parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert 88 <= (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days <= 93


def test_operation_stays_in_progress_until_sandbox_time_passes(azure: Sandbox, client: httpx.Client,
                                                               rbac_vault: str) -> None:
    kc = cert_client(azure, rbac_vault)
    kc.begin_create_certificate("slow", CertificatePolicy.get_default(), _polling_interval=30)
    assert kc.get_certificate_operation("slow").status == "inProgress"
    with pytest.raises(ResourceNotFoundError):
        kc.get_certificate("slow")
    advance(client, azure, azure.state.settings["certificate_issue_seconds"] + 1)
    assert kc.get_certificate_operation("slow").status == "completed"
    assert kc.get_certificate("slow").policy.subject == "CN=DefaultPolicy"  # type: ignore[union-attr]


def test_delete_soft_deletes_and_the_poller_finishes(azure: Sandbox, client: httpx.Client, rbac_vault: str) -> None:
    kc = cert_client(azure, rbac_vault)
    create_and_wait(azure, client, kc, "to-delete", CertificatePolicy.get_default())
    poller = kc.begin_delete_certificate("to-delete", _polling_interval=0)
    poller.wait(timeout=30)
    deleted = poller.result()
    assert deleted.name == "to-delete" and deleted.recovery_id
    assert deleted.scheduled_purge_date is not None and deleted.scheduled_purge_date > datetime.datetime.now(
        datetime.UTC) + datetime.timedelta(days=80)
    with pytest.raises(ResourceNotFoundError):
        kc.get_certificate("to-delete")
    assert [d.name for d in kc.list_deleted_certificates()] == ["to-delete"]
    with pytest.raises(HttpResponseError) as conflict:
        kc.begin_create_certificate("to-delete", CertificatePolicy.get_default())
    assert conflict.value.status_code == 409 and "deleted but recoverable" in str(conflict.value.message)
    kc.purge_deleted_certificate("to-delete")
    assert list(kc.list_deleted_certificates()) == []


def test_subscription_owner_without_data_role_is_refused_until_granted(azure: Sandbox, client: httpx.Client) -> None:
    make_vault(azure, client, "xt-locked").raise_for_status()
    kc = cert_client(azure, "xt-locked")
    with pytest.raises(HttpResponseError) as refused:
        kc.begin_create_certificate("nope", CertificatePolicy.get_default())
    assert refused.value.status_code == 403
    assert "Microsoft.KeyVault/vaults/certificates/create/action" in str(refused.value.message)
    assert "Caller is not authorized to perform action on resource" in str(refused.value.message)

    grant(azure, client, vault_id("xt-locked"), AZURE_ROLES["Key Vault Certificates Officer"],
          oid(azure, ADMIN)).raise_for_status()
    cert = create_and_wait(azure, client, cert_client(azure, "xt-locked"), "now-allowed",
                           CertificatePolicy.get_default())
    assert cert.cer


def test_reader_role_on_the_vault_reads_but_cannot_create(azure: Sandbox, client: httpx.Client,
                                                          rbac_vault: str) -> None:
    create_and_wait(azure, client, cert_client(azure, rbac_vault), "shared", CertificatePolicy.get_default())
    grant(azure, client, vault_id(rbac_vault), AZURE_ROLES["Key Vault Reader"], oid(azure, READER)).raise_for_status()
    reader = cert_client(azure, rbac_vault, READER)
    assert reader.get_certificate("shared").cer
    with pytest.raises(HttpResponseError) as refused:
        reader.begin_create_certificate("mine", CertificatePolicy.get_default())
    assert refused.value.status_code == 403


def test_concurrent_clients_do_not_break_the_vault(azure: Sandbox, client: httpx.Client, rbac_vault: str) -> None:
    kc = cert_client(azure, rbac_vault)
    errors: list[BaseException] = []

    def make(i: int) -> None:
        try:
            kc.begin_create_certificate(f"c{i}", CertificatePolicy.get_default(), _polling_interval=30)
        except HttpResponseError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    advance(client, azure, 10)
    assert sorted(p.name or "" for p in kc.list_properties_of_certificates()) == [f"c{i}" for i in range(6)]


def test_app_signed_in_by_the_identity_platform_works_once_granted(azure: Sandbox, client: httpx.Client,
                                                                   rbac_vault: str) -> None:
    """End to end: a client-secret credential of a target-tenant app gets real tokens from the sandbox's
    identity platform; ARM and the vault authorize its service principal by role assignments only."""
    import uuid

    from azure.identity import ClientSecretCredential

    from xtwizard.sandbox.directory import ensure_service_principal, iso
    from xtwizard.sandbox.tokens import sha256_hex

    tenant = azure.state.tenant("target")
    assert tenant is not None
    secret = "sandbox-test-secret-" + uuid.uuid4().hex
    key_id = str(uuid.uuid4())
    with azure.state.lock:
        app = {"id": str(uuid.uuid4()), "appId": str(uuid.uuid4()), "displayName": "xtwizard automation",
               "signInAudience": "AzureADMyOrg", "requiredResourceAccess": [], "keyCredentials": [],
               "passwordCredentials": [{"keyId": key_id, "displayName": "test",
                                        "endDateTime": iso(azure.clock.now() + 86400), "hint": secret[:3]}],
               "_secretHashes": {key_id: sha256_hex(secret)}}
        tenant.col("applications")[app["id"]] = app
        sp, _ = ensure_service_principal(azure.state, tenant, tenant, app)
    credential = ClientSecretCredential(tenant.id, app["appId"], secret, authority=azure.urls["login"],
                                        connection_verify=azure.ca_path, disable_instance_discovery=True)
    arm_token = credential.get_token("https://management.azure.com/.default").token
    listed = client.get(f"{azure.urls['arm']}/subscriptions?api-version=2022-12-01",
                        headers={"Authorization": f"Bearer {arm_token}"})
    assert listed.status_code == 200 and listed.json()["value"] == []

    kc = CertificateClient(vault_url=f"{azure.urls['vault']}/{rbac_vault}", credential=credential,
                           verify_challenge_resource=False, connection_verify=azure.ca_path)
    with pytest.raises(HttpResponseError) as refused:
        kc.begin_create_certificate("app-cert", CertificatePolicy.get_default())
    assert refused.value.status_code == 403 and f"oid={sp['id']}" in str(refused.value.message)

    grant(azure, client, f"/subscriptions/{helpers.SUB}", AZURE_ROLES["Reader"], sp["id"]).raise_for_status()
    grant(azure, client, vault_id(rbac_vault), AZURE_ROLES["Key Vault Certificates Officer"], sp["id"]
          ).raise_for_status()
    listed = client.get(f"{azure.urls['arm']}/subscriptions?api-version=2022-12-01",
                        headers={"Authorization": f"Bearer {arm_token}"})
    assert [s["subscriptionId"] for s in listed.json()["value"]] == [helpers.SUB]
    cert = create_and_wait(azure, client, kc, "app-cert", CertificatePolicy.get_default())
    assert cert.cer

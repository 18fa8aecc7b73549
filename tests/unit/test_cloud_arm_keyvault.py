"""ArmClient (cloud/arm.py) and KeyVaultCertificates (cloud/keyvault.py) against the sandbox over HTTPS,
including the whole Key Vault certificate path: vault -> role -> certificate -> app keyCredentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading

import pytest
from cryptography import x509

from tests.unit.cloud_support import (
    EXADMIN,
    TARGET_ADMIN,
    MintedTokens,
    RecordedSleep,
    advance,
    endpoints_of,
    fault,
    module_sandbox,
    request_log,
    run,
)
from xtwizard.cloud.arm import (
    KEY_VAULT_CERTIFICATES_OFFICER,
    ArmClient,
    ArmError,
    role_assignment_name,
)
from xtwizard.cloud.graph import EXCHANGE_APP_ID, GraphClient
from xtwizard.cloud.keyvault import KeyVaultCertificates, KeyVaultError, TokenProviderCredential, _jwt_expiry

_shared_sandbox, sandbox = module_sandbox()

SUBSCRIPTION = "3f1c2a4e-6b8d-4e0f-a2c4-6e8a0c2e4a33"
RG = "xtwizard-ctmm"


def arm(sb, policy, upn=TARGET_ADMIN, tokens=None, sleep=None):
    return ArmClient(endpoints_of(sb), policy, tokens or MintedTokens(sb, "target", upn), tenant="target",
                     sleep=sleep)


def clock_sleep(sb):
    """A recorded sleep that moves the sandbox clock instead of waiting: ARM operations finish on it."""
    return RecordedSleep(on_sleep=lambda seconds: advance(sb, seconds + 0.01))


def test_subscriptions_locations_and_resource_group(sandbox):
    target_id = sandbox.state.tenant("target").id

    async def go(policy):
        a = arm(sandbox, policy)
        subs = await a.subscriptions(target_id)
        other = await a.subscriptions("00000000-0000-0000-0000-00000000dead")
        locations = await a.locations(SUBSCRIPTION)
        created = await a.ensure_resource_group(SUBSCRIPTION, RG, locations[0].name)
        again = await a.ensure_resource_group(SUBSCRIPTION, RG, locations[-1].name)
        return subs, other, locations, created, again

    subs, other, locations, created, again = run(go, sandbox)
    assert [s.subscription_id for s in subs] == [SUBSCRIPTION] and subs[0].display_name == "Fabrikam Production"
    assert other == []
    assert locations and all(loc.name and loc.display_name for loc in locations)
    assert created.created and created.name == RG
    assert not again.created and again.location == created.location  # adopted, not moved


def test_no_azure_role_is_authorization_failed(sandbox):
    async def go(policy):
        a = arm(sandbox, policy, upn=EXADMIN)
        subs = await a.subscriptions()
        with pytest.raises(ArmError) as err:
            await a.ensure_resource_group(SUBSCRIPTION, RG, "westeurope")
        return subs, err.value

    subs, err = run(go, sandbox)
    assert subs == []
    assert err.status == 403 and err.code == "AuthorizationFailed" and EXADMIN in err.message


def test_missing_vault_is_404_and_find_says_none(sandbox):
    async def go(policy):
        a = arm(sandbox, policy)
        await a.ensure_resource_group(SUBSCRIPTION, RG, "westeurope")
        found = await a.find_vault(SUBSCRIPTION, RG, "xtw-none")
        with pytest.raises(ArmError) as err:
            await a.get_vault(SUBSCRIPTION, RG, "xtw-none")
        return found, err.value

    found, err = run(go, sandbox)
    assert found is None and err.status == 404 and err.code


def test_401_refreshes_once_and_throttling_is_waited_out(sandbox):
    tokens = MintedTokens(sandbox, "target", TARGET_ADMIN)
    tokens.stale = 1
    fault(sandbox, kind="throttle", service="arm", count=2, retry_after=3)
    sleep = RecordedSleep()

    async def go(policy):
        return await arm(sandbox, policy, tokens=tokens).subscriptions()

    subs = run(go, sandbox, sleep)
    assert [s.subscription_id for s in subs] == [SUBSCRIPTION]
    assert sleep.waits == [3.0, 3.0]
    assert [c[1] for c in tokens.calls] == [False, True]
    statuses = [r["status"] for r in request_log(sandbox, "arm")]
    assert statuses.count(429) == 2 and statuses.count(401) == 1 and statuses[-1] == 200


def test_role_assignment_is_idempotent(sandbox):
    async def go(policy):
        a = arm(sandbox, policy)
        g = GraphClient(endpoints_of(sandbox), policy, MintedTokens(sandbox, "target", TARGET_ADMIN))
        exadmin = await g.get_user(EXADMIN)
        await a.ensure_resource_group(SUBSCRIPTION, RG, "westeurope")
        scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"
        reader = await a.role_definition_by_name(scope, "Reader")
        assert reader is not None
        first = await a.assign_role(scope, reader.id, exadmin.id)
        second = await a.assign_role(scope, reader.id, exadmin.id)
        listed = await a.role_assignments(scope, principal_id=exadmin.id)
        effective = await a.role_assignments(f"/subscriptions/{SUBSCRIPTION}", assigned_to=exadmin.id)
        assert first is not None and first.id in {x.id for x in effective}
        await a.delete_role_assignment(first.id)
        # The same grant made earlier under another name (by the portal, say) is fine too.
        other = await a._send("PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/"
                              "6b0e4b8e-2f7a-4b53-9f5b-1b8c2e6e0c11", "x", api_version="2022-04-01",
                              json={"properties": {"roleDefinitionId": reader.id, "principalId": exadmin.id}},
                              ok=(201, 409))
        third = await a.assign_role(scope, reader.id, exadmin.id)
        none = await a.role_definition_by_name(scope, "No Such Role")
        return first, second, listed, other, third, none, reader

    first, second, listed, other, third, none, reader = run(go, sandbox)
    assert first is not None and second is not None and first.id == second.id
    assert [x.id for x in listed] == [first.id]
    assert first.name == role_assignment_name(first.scope, reader.id, first.principal_id)
    assert other.status_code == 201 and third is None  # 409 RoleAssignmentExists -> fine
    assert none is None


def test_jwt_expiry_reading():
    assert _jwt_expiry("a.b") is None and _jwt_expiry("x.!!!.y") is None
    payload = base64.urlsafe_b64encode(b'{"exp": 1700000000}').decode().rstrip("=")
    assert _jwt_expiry(f"h.{payload}.s") == 1700000000


def test_credential_refuses_to_block_its_own_loop():
    async def token_for(resource, *, force_refresh=False):
        return "t"

    async def go():
        cred = TokenProviderCredential(token_for)
        with pytest.raises(RuntimeError):
            cred.get_token("https://vault.azure.net/.default")
        token = await asyncio.to_thread(cred.get_token, "https://vault.azure.net/.default")
        return token

    token = asyncio.run(go())
    assert token.token == "t" and token.expires_on > 0


def test_key_vault_certificate_path_end_to_end(sandbox):
    """Vault by ARM, Certificates Officer for the admin, a certificate, its DER into the app's keyCredentials;
    then clean-up: certificate, vault (soft-deleted, name blocked), purge (name free again)."""
    name = "xtw-kv-e2e"
    target_id = sandbox.state.tenant("target").id
    sleep = clock_sleep(sandbox)
    tokens = MintedTokens(sandbox, "target", TARGET_ADMIN)
    ep = endpoints_of(sandbox)

    async def go(policy):
        a = arm(sandbox, policy, tokens=tokens, sleep=sleep)
        g = GraphClient(ep, policy, tokens, tenant="target")
        assert (await a.check_vault_name(SUBSCRIPTION, name)).available
        await a.ensure_resource_group(SUBSCRIPTION, RG, "westeurope")
        vault = await a.create_vault(SUBSCRIPTION, RG, name, location="westeurope", tenant_id=target_id)
        got = await a.get_vault(SUBSCRIPTION, RG, name)
        me = await g.me()
        kv = KeyVaultCertificates(ep, name, TokenProviderCredential(tokens), polling_interval=0.02)
        try:
            # Owner of the subscription is not enough for the data plane of an RBAC vault.
            with pytest.raises(KeyVaultError) as refused:
                await kv.abegin_create_self_signed("ctmm", "CN=fabrikam_northwind")
            officer = await a.role_definition_by_name(vault.id, "Key Vault Certificates Officer")
            assert officer is not None and officer.name == KEY_VAULT_CERTIFICATES_OFFICER
            await a.assign_role(vault.id, officer.id, me.id)
            creation = await kv.abegin_create_self_signed("ctmm", "CN=fabrikam_northwind")
            with pytest.raises(KeyVaultError) as early:  # the vault issues on the sandbox clock, not yet
                await kv.await_certificate(creation, timeout=0.05)
            advance(sandbox, 30)
            cert = await kv.await_certificate(creation, timeout=30)
            again = await kv.aget("ctmm")
            app = await g.create_application({
                "displayName": "CTMM-kv", "signInAudience": "AzureADMultipleOrgs",
                "web": {"redirectUris": ["https://office.com"]},
                "requiredResourceAccess": [{"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [
                    {"id": "f7264778-fba9-422d-8e9e-2675a2c4b513", "type": "Role"}]}]})
            await g.set_key_credentials(app.id, [cert.key_credential()])
            keys = await g.get_application_key_credentials(app.id)
            listed = await g.get_application(app.id)
            await kv.adelete("ctmm")
            gone = await kv.afind("ctmm")
        finally:
            await kv.aclose()
        await a.delete_vault(SUBSCRIPTION, RG, name)
        deleted = await a.deleted_vaults(SUBSCRIPTION)
        blocked = await a.check_vault_name(SUBSCRIPTION, name)
        dv = next(d for d in deleted if d.name == name)
        await a.purge_deleted_vault(SUBSCRIPTION, dv.location, name)
        free = await a.check_vault_name(SUBSCRIPTION, name)
        return vault, got, refused.value, early.value, cert, again, keys, listed, gone, blocked, free

    vault, got, refused, early, cert, again, keys, listed, gone, blocked, free = run(go, sandbox, sleep)
    assert early.status == 408
    assert vault.rbac_authorization and vault.name == name and got.id == vault.id
    assert vault.resource_group == RG and vault.tenant_id == target_id
    assert refused.status == 403 and refused.code == "Forbidden"
    parsed = x509.load_der_x509_certificate(cert.der)
    assert parsed.subject.rfc4514_string() == "CN=fabrikam_northwind"
    months = (parsed.not_valid_after_utc - parsed.not_valid_before_utc).days
    assert 360 <= months <= 370
    assert cert.thumbprint == hashlib.sha1(cert.der).digest() and again.der == cert.der
    # The certificate identifier is what the deprecated -AppSecretKeyVaultUrl takes (reference §1.4, §5.2).
    assert name in cert.id and cert.version and cert.id.endswith(f"/certificates/ctmm/{cert.version}")
    assert len(keys) == 1 and base64.b64decode(keys[0]["key"]) == cert.der
    assert listed.key_credentials[0].type == "AsymmetricX509Cert" and listed.key_credentials[0].usage == "Verify"
    assert gone is None
    assert not blocked.available and free.available
    assert sleep.waits  # the purge was waited for through the injected sleep, not the wall clock


def test_credential_is_asked_from_the_sdk_thread(sandbox):
    """The SDK runs on a worker thread and gets its token from the loop through the seam (no second cache)."""
    tokens = MintedTokens(sandbox, "target", TARGET_ADMIN)
    threads: list[str] = []
    original = tokens.__call__

    class Spy:
        async def __call__(self, resource, *, force_refresh=False):
            threads.append(threading.current_thread().name)
            return await original(resource, force_refresh=force_refresh)

    async def go(policy):
        kv = KeyVaultCertificates(endpoints_of(sandbox), "xtw-missing", TokenProviderCredential(Spy()),
                                  polling_interval=0.01)
        try:
            with pytest.raises(KeyVaultError) as err:
                await kv.aget("nothing")
            return err.value
        finally:
            await kv.aclose()

    err = run(go, sandbox)
    assert err.status == 404
    assert threads and all(t == threading.main_thread().name for t in threads)
    assert tokens.calls and tokens.calls[0][0] == "https://vault.azure.net"


def test_lists_follow_next_link(sandbox):
    sandbox.state.settings["arm_page_size"] = 1

    async def go(policy):
        a = arm(sandbox, policy)
        g = GraphClient(endpoints_of(sandbox), policy, MintedTokens(sandbox, "target", TARGET_ADMIN))
        exadmin = await g.get_user(EXADMIN)
        await a.ensure_resource_group(SUBSCRIPTION, RG, "westeurope")
        scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"
        for role in ("Reader", "Contributor", "Key Vault Reader"):
            definition = await a.role_definition_by_name(scope, role)
            assert definition is not None
            await a.assign_role(scope, definition.id, exadmin.id)
        return await a.role_assignments(scope, principal_id=exadmin.id)

    listed = run(go, sandbox)
    assert len(listed) == 3
    pages = [r for r in request_log(sandbox, "arm") if r["method"] == "GET" and r["route"].endswith("roleAssignments")]
    assert len(pages) == 3


# --- long-running operations (ARM's two polling styles) ------------------------------------------------------
def _mock_arm(answers, sleep):
    import httpx

    from xtwizard.cloud.endpoints import PUBLIC_CLOUD
    from xtwizard.cloud.http import HttpPolicy

    seen: list[str] = []

    def handler(request):
        seen.append(f"{request.method} {request.url.path}")
        return answers.pop(0)

    async def token_for(resource, *, force_refresh=False):
        return "t"

    policy = HttpPolicy(transport=httpx.MockTransport(handler), sleep=sleep)
    return ArmClient(PUBLIC_CLOUD, policy, token_for, sleep=sleep), policy, seen


def test_azure_async_operation_is_polled_until_succeeded():
    import httpx
    op = "https://management.azure.com/subscriptions/s/providers/Microsoft.KeyVault/operations/1?api-version=x"
    answers = [httpx.Response(201, headers={"Azure-AsyncOperation": op, "Retry-After": "4"},
                              json={"properties": {"provisioningState": "Creating"}}),
               httpx.Response(200, headers={"Retry-After": "2"}, json={"status": "InProgress"}),
               httpx.Response(200, json={"status": "Succeeded"}),
               httpx.Response(200, json={"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v",
                                         "name": "v", "location": "westeurope",
                                         "properties": {"vaultUri": "https://v.vault.azure.net/",
                                                        "provisioningState": "Succeeded",
                                                        "enableRbacAuthorization": True}})]
    sleep = RecordedSleep()

    async def go():
        a, policy, seen = _mock_arm(answers, sleep)
        try:
            return await a.create_vault("s", "rg", "v", location="westeurope", tenant_id="t"), seen
        finally:
            await policy.aclose()

    vault, seen = asyncio.run(go())
    assert vault.provisioning_state == "Succeeded" and vault.resource_group == "rg"
    assert sleep.waits == [4.0, 2.0]
    assert [s.split()[0] for s in seen] == ["PUT", "GET", "GET", "GET"]


def test_failed_operation_raises_with_its_error():
    import httpx

    from xtwizard.cloud.arm import OperationFailed
    op = "https://management.azure.com/operations/2"
    answers = [httpx.Response(202, headers={"Azure-AsyncOperation": op}),
               httpx.Response(200, json={"status": "Failed", "error": {"code": "VaultQuotaExceeded",
                                                                       "message": "Too many vaults."}})]
    sleep = RecordedSleep()

    async def go():
        a, policy, _ = _mock_arm(answers, sleep)
        try:
            with pytest.raises(OperationFailed) as err:
                await a.create_vault("s", "rg", "v", location="westeurope", tenant_id="t")
            return err.value
        finally:
            await policy.aclose()

    err = asyncio.run(go())
    assert err.code == "VaultQuotaExceeded" and err.message == "Too many vaults."
    assert sleep.waits == [10.0]  # no Retry-After: a sensible default, through the injected sleep


def test_location_polling_ends_on_200():
    import httpx
    loc = "https://management.azure.com/subscriptions/s/operationresults/3"
    answers = [httpx.Response(202, headers={"Location": loc, "Retry-After": "15"}),
               httpx.Response(202, headers={"Location": loc, "Retry-After": "5"}),
               httpx.Response(200)]
    sleep = RecordedSleep()

    async def go():
        a, policy, seen = _mock_arm(answers, sleep)
        try:
            await a.delete_resource_group("s", "rg")
            return seen
        finally:
            await policy.aclose()

    seen = asyncio.run(go())
    assert sleep.waits == [15.0, 5.0] and seen[-1] == "GET /subscriptions/s/operationresults/3"


@pytest.mark.parametrize("challenge_cached", [False, True])
def test_vault_refusing_a_token_gets_one_forced_refresh(sandbox, challenge_cached):
    from azure.keyvault.certificates._shared import HttpChallengeCache

    HttpChallengeCache.clear()
    ep = endpoints_of(sandbox)
    target_id = sandbox.state.tenant("target").id

    async def vault(policy):
        a = arm(sandbox, policy)
        await a.ensure_resource_group(SUBSCRIPTION, RG, "westeurope")
        await a.create_vault(SUBSCRIPTION, RG, "xtw-kv-401", location="westeurope", tenant_id=target_id)

    run(vault, sandbox)

    async def find(policy, tokens):
        kv = KeyVaultCertificates(ep, "xtw-kv-401", TokenProviderCredential(tokens), polling_interval=0.01)
        try:
            with pytest.raises(KeyVaultError) as err:
                await kv.afind("nothing")
            return err.value
        finally:
            await kv.aclose()

    if challenge_cached:  # a client has already met this vault's challenge
        run(lambda p: find(p, MintedTokens(sandbox, "target", TARGET_ADMIN)), sandbox)
    tokens = MintedTokens(sandbox, "target", TARGET_ADMIN)
    tokens.stale = 1
    err = run(lambda p: find(p, tokens), sandbox)
    assert err.status == 403  # the refreshed token was accepted; the admin just has no data-plane role yet
    assert tokens.calls == [("https://vault.azure.net", False), ("https://vault.azure.net", True)]

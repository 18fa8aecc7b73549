"""The clients over a real TenantSession (msal, signed in through the sandbox's pages by the scripted browser):
the token-provider seam as the app wires it, including a forced refresh after the service said 401."""

from __future__ import annotations

import asyncio
import threading

import keyring.backends.fail

from tests.sandbox.browser import ScriptedBrowser
from tests.unit.cloud_support import TARGET_ADMIN, endpoints_of, policy_for, request_log
from xtwizard.cloud.auth import TenantSession
from xtwizard.cloud.exchange import ExchangeClient
from xtwizard.cloud.graph import GLOBAL_ADMINISTRATOR, GraphClient
from xtwizard.cloud.keyvault import TokenProviderCredential
from xtwizard.cloud.service import session_token_provider
from xtwizard.cloud.tokenstore import TokenStore


def _signed_in(sandbox, tmp_path) -> TenantSession:
    store = TokenStore("target", tmp_path, backend=keyring.backends.fail.Keyring())
    session = TenantSession("target", endpoints_of(sandbox), store)

    def open_browser(url: str) -> None:
        def walk() -> None:
            with ScriptedBrowser(sandbox.ca_path) as b:
                b.sign_in(url, account=TARGET_ADMIN, consent=True)
        threading.Thread(target=walk, daemon=True).start()

    session.sign_in_browser(open_browser, threading.Event(), timeout=60)
    return session


def test_clients_over_a_signed_in_session(sandbox, tmp_path):
    session = _signed_in(sandbox, tmp_path)
    token_for = session_token_provider(session)
    target = sandbox.state.tenant("target")

    async def go():
        policy = policy_for(sandbox)
        try:
            g = GraphClient(endpoints_of(sandbox), policy, token_for, tenant="target")
            x = ExchangeClient(endpoints_of(sandbox), policy, token_for, tenant=target.id, admin_upn=TARGET_ADMIN)
            org = await g.organization()
            roles = await g.my_directory_roles()
            dehydrated = await x.is_dehydrated()
            cred = TokenProviderCredential(token_for)
            vault_token = await asyncio.to_thread(cred.get_token, "https://vault.azure.net/.default")
            return org, roles, dehydrated, vault_token
        finally:
            await policy.aclose()

    org, roles, dehydrated, vault_token = asyncio.run(go())
    assert org.tenant_id == target.id
    assert GLOBAL_ADMINISTRATOR in {r.role_template_id for r in roles}
    assert dehydrated is True
    assert vault_token.token and vault_token.expires_on > 0


def test_a_rejected_token_is_refreshed_through_the_session(sandbox, tmp_path):
    """A cached token the service refuses (as after a signing-key rollover) is replaced by one forced refresh
    through msal's refresh token."""
    session = _signed_in(sandbox, tmp_path)
    token_for = session_token_provider(session)
    stale = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdGFsZSJ9.c3RhbGU"
    calls: list[bool] = []

    async def flaky(resource: str, *, force_refresh: bool = False) -> str:
        calls.append(force_refresh)
        return await token_for(resource, force_refresh=force_refresh) if force_refresh else stale

    async def go():
        policy = policy_for(sandbox)
        try:
            return await GraphClient(endpoints_of(sandbox), policy, flaky).me()
        finally:
            await policy.aclose()

    me = asyncio.run(go())
    assert me.user_principal_name == TARGET_ADMIN
    assert calls == [False, True]
    graph_rows = [r["status"] for r in request_log(sandbox, "graph")]
    assert graph_rows[-2:] == [401, 200]

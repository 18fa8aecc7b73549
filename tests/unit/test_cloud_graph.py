"""GraphClient (cloud/graph.py) against the sandbox's Graph over real HTTPS."""

from __future__ import annotations

import logging

import pytest

from tests.unit.cloud_support import (
    HELPDESK,
    SOURCE_ADMIN,
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
from xtwizard.cloud.graph import (
    EXCHANGE_APP_ID,
    GLOBAL_ADMINISTRATOR,
    GraphClient,
    GraphError,
    SubscribedSku,
    cross_tenant_migration_units_available,
    find_cross_tenant_migration_skus,
    is_cross_tenant_migration_sku,
)

_shared_sandbox, sandbox = module_sandbox()

MIGRATION_APP = {
    "displayName": "CTMM-fabrikam-to-northwind",
    "signInAudience": "AzureADMultipleOrgs",
    "web": {"redirectUris": ["https://office.com"]},
    "requiredResourceAccess": [{"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [
        {"id": "f7264778-fba9-422d-8e9e-2675a2c4b513", "type": "Role"}]}],
}


def graph(sb, policy, tenant="target", upn=TARGET_ADMIN, tokens=None):
    return GraphClient(endpoints_of(sb), policy, tokens or MintedTokens(sb, tenant, upn), tenant=tenant)


def test_organization_me_and_roles(sandbox):
    async def go(policy):
        g = graph(sandbox, policy)
        return await g.organization(), await g.me(), await g.my_directory_roles()

    org, me, roles = run(go, sandbox)
    target = sandbox.state.tenant("target")
    assert org.tenant_id == target.id
    assert org.initial_domain == "fabrikaminc.onmicrosoft.com"
    assert "fabrikam.example" in {d.name for d in org.verified_domains}
    assert me.user_principal_name == TARGET_ADMIN
    assert GLOBAL_ADMINISTRATOR in {r.role_template_id for r in roles}


def test_no_role_user_has_no_directory_roles_and_gets_403_creating_an_app(sandbox):
    async def go(policy):
        g = graph(sandbox, policy, "source", HELPDESK)
        roles = await g.my_directory_roles()
        with pytest.raises(GraphError) as err:
            await g.create_application(MIGRATION_APP)
        return roles, err.value

    roles, err = run(go, sandbox)
    assert roles == []
    assert err.status == 403 and err.code == "Authorization_RequestDenied"
    assert err.request_id  # something an admin can quote to support


def test_application_lifecycle_with_secret_and_lookup(sandbox):
    async def go(policy):
        g = graph(sandbox, policy)
        app = await g.create_application(MIGRATION_APP)
        by_app_id = await g.get_application_by_app_id(app.app_id)
        listed = await g.list_applications(display_name=MIGRATION_APP["displayName"])
        secret = await g.add_password(app.id, "xtwizard migration")
        with_secret = await g.get_application(app.id)
        await g.remove_password(app.id, secret.key_id)
        without = await g.get_application(app.id)
        await g.delete_application(app.id)
        gone = await g.get_application_by_app_id(app.app_id)
        return app, by_app_id, listed, secret, with_secret, without, gone

    app, by_app_id, listed, secret, with_secret, without, gone = run(go, sandbox)
    assert app.redirect_uris == ("https://office.com",) and app.sign_in_audience == "AzureADMultipleOrgs"
    assert by_app_id is not None and by_app_id.id == app.id
    assert [a.id for a in listed] == [app.id]
    assert len(secret.secret_text) >= 16 and secret.secret_text not in repr(secret)
    assert [p.key_id for p in with_secret.password_credentials] == [secret.key_id]
    assert without.password_credentials == ()
    assert gone is None


def test_missing_application_is_a_404_graph_error(sandbox):
    async def go(policy):
        with pytest.raises(GraphError) as err:
            await graph(sandbox, policy).get_application("00000000-0000-0000-0000-000000000001")
        return err.value

    err = run(go, sandbox)
    assert err.status == 404 and err.code == "Request_ResourceNotFound"


def test_service_principals_and_app_role_grant(sandbox):
    async def go(policy):
        g = graph(sandbox, policy)
        app = await g.create_application(MIGRATION_APP)
        sp = await g.create_service_principal(app.app_id)
        exo = await g.get_service_principal_by_app_id(EXCHANGE_APP_ID)
        assert exo is not None
        role = exo.app_role("Mailbox.Migration")
        assert role is not None
        grant = await g.grant_app_role(exo.id, sp.id, role.id)
        held = await g.app_role_assignments(sp.id)
        on_exo = await g.app_role_assigned_to(exo.id)
        again = await g.get_service_principal(sp.id)
        listed = await g.list_service_principals(odata_filter=f"appId eq '{app.app_id}'")
        await g.revoke_app_role(exo.id, grant.id)
        after = await g.app_role_assignments(sp.id)
        await g.delete_service_principal(sp.id)
        missing = await g.get_service_principal_by_app_id(app.app_id)
        return app, sp, role, grant, held, on_exo, again, listed, after, missing

    app, sp, role, grant, held, on_exo, again, listed, after, missing = run(go, sandbox)
    assert role.id == "f7264778-fba9-422d-8e9e-2675a2c4b513"
    assert sp.app_id == app.app_id and again.id == sp.id and [s.id for s in listed] == [sp.id]
    assert grant.principal_id == sp.id and grant.app_role_id == role.id
    assert [a.id for a in held] == [grant.id]
    assert grant.id in {a.id for a in on_exo}
    assert after == [] and missing is None


def test_scope_groups_and_members_across_pages(sandbox):
    async def go(policy):
        g = graph(sandbox, policy, "source", SOURCE_ADMIN)
        groups = await g.mail_enabled_security_groups()
        wave = next(x for x in groups if x.display_name == "Migration Wave 1")
        one = await g.get_group(wave.id)
        members = await g.group_members(wave.id)
        paged = await g.group_members(wave.id, page_size=2)
        transitive = await g.group_members(wave.id, transitive=True, page_size=2)
        return groups, one, members, paged, transitive

    groups, one, members, paged, transitive = run(go, sandbox)
    # Finance Team is not mail-enabled and All Staff is a distribution list: neither can scope a move.
    assert [g.display_name for g in groups] == ["Migration Wave 1"]
    assert one.display_name == "Migration Wave 1" and one.mail
    assert len(members) == 25 and {m.kind for m in members} == {"user"}
    assert "alice@northwind.example" in {m.user_principal_name for m in members}
    assert [m.id for m in paged] == [m.id for m in members]
    assert {m.id for m in members} <= {m.id for m in transitive}
    pages = [r for r in request_log(sandbox, "graph") if r["route"].endswith("/members")]
    assert len(pages) >= 1 + (len(members) + 1) // 2


def test_users_licenses_and_assignment(sandbox):
    async def go(policy):
        g = graph(sandbox, policy, "source", SOURCE_ADMIN)
        skus = await g.subscribed_skus()
        users = await g.list_users(select=["id", "userPrincipalName", "displayName", "usageLocation"], page_size=3)
        someone = next(u for u in users if u.usage_location and u.user_principal_name != SOURCE_ADMIN)
        migration = find_cross_tenant_migration_skus(skus)[0]
        before = {d.sku_id for d in await g.license_details(someone.id)}
        if migration.sku_id in before:
            await g.assign_license(someone.id, remove=[migration.sku_id])
        await g.assign_license(someone.id, add=[migration.sku_id])
        after = await g.license_details(someone.id)
        one = await g.get_user(someone.user_principal_name)
        skus_after = await g.subscribed_skus()
        return skus, users, someone, after, one, skus_after, migration

    skus, users, someone, after, one, skus_after, migration = run(go, sandbox)
    assert len(users) > 3
    assert one.id == someone.id
    assert migration.sku_id in {d.sku_id for d in after}
    assert cross_tenant_migration_units_available(skus) >= 1
    assert cross_tenant_migration_units_available(skus_after) <= cross_tenant_migration_units_available(skus)


def test_assign_license_without_usage_location_is_a_400(sandbox):
    source = sandbox.state.tenant("source")
    with sandbox.state.lock:
        source.user(HELPDESK)["usageLocation"] = None

    async def go(policy):
        g = graph(sandbox, policy, "source", SOURCE_ADMIN)
        skus = await g.subscribed_skus()
        with pytest.raises(GraphError) as err:
            await g.assign_license(HELPDESK, add=[find_cross_tenant_migration_skus(skus)[0].sku_id])
        return err.value

    err = run(go, sandbox)
    assert err.status == 400 and "usage location" in err.message


@pytest.mark.parametrize("part", ["Cross_tenant_user_data_migration", "CROSSTENANTUSERDATAMIGRATION",
                                  "cross-tenant-user-data-migration", "CSP_CROSS_TENANT_USER_DATA_MIGRATION"])
def test_migration_sku_matches_part_number_spellings(part):
    sku = SubscribedSku("x", "00000000-0000-0000-0000-000000000000", part, "Enabled", 3, 10, ())
    assert is_cross_tenant_migration_sku(sku) and sku.available_units == 7


def test_other_skus_do_not_match_and_overconsumed_counts_zero():
    assert not is_cross_tenant_migration_sku(SubscribedSku("x", "1", "SPB", "Enabled", 0, 5, ()))
    assert SubscribedSku("x", "1", "Cross_tenant_user_data_migration", "Enabled", 12, 10, ()).available_units == 0


def test_401_refreshes_the_token_once(sandbox):
    tokens = MintedTokens(sandbox, "target", TARGET_ADMIN)
    tokens.stale = 1

    async def go(policy):
        return await graph(sandbox, policy, tokens=tokens).organization()

    org = run(go, sandbox)
    assert org.tenant_id == sandbox.state.tenant("target").id
    assert [c[1] for c in tokens.calls] == [False, True]
    assert [r["status"] for r in request_log(sandbox, "graph")] == [401, 200]


def test_401_after_refresh_is_reported_not_looped(sandbox):
    tokens = MintedTokens(sandbox, "target", TARGET_ADMIN)
    tokens.always_stale = True

    async def go(policy):
        with pytest.raises(GraphError) as err:
            await graph(sandbox, policy, tokens=tokens).me()
        return err.value

    err = run(go, sandbox)
    assert err.status == 401 and err.code == "InvalidAuthenticationToken"
    assert len(tokens.calls) == 2 and len(request_log(sandbox, "graph")) == 2


def test_throttling_storm_is_waited_out(sandbox):
    fault(sandbox, kind="throttle", service="graph", path="/v1.0/subscribedSkus*", count=3, retry_after=4)
    sleep = RecordedSleep()

    async def go(policy):
        return await graph(sandbox, policy, "source", SOURCE_ADMIN).subscribed_skus()

    skus = run(go, sandbox, sleep)
    assert find_cross_tenant_migration_skus(skus)
    assert sleep.waits == [4.0, 4.0, 4.0]
    assert [r["status"] for r in request_log(sandbox, "graph")] == [429, 429, 429, 200]


def test_batch_answers_in_request_order(sandbox):
    async def go(policy):
        return await graph(sandbox, policy).batch([
            {"url": "/organization"}, {"url": "/me"},
            {"url": "/applications/00000000-0000-0000-0000-000000000001"},
            {"method": "POST", "url": "/applications", "body": MIGRATION_APP}])

    answers = run(go, sandbox)
    assert [a.id for a in answers] == ["1", "2", "3", "4"]
    assert [a.status for a in answers] == [200, 200, 404, 201]
    assert answers[3].body["displayName"] == MIGRATION_APP["displayName"]


def test_new_service_principal_waits_for_replication(sandbox):
    """With a replication delay the new app is not there yet: a 400 names it; after the delay it works."""
    from tests.unit.cloud_support import control

    control(sandbox, "PATCH", "/settings", {"replication_delay_seconds": 30})

    async def first(policy):
        g = graph(sandbox, policy)
        app = await g.create_application(MIGRATION_APP)
        with pytest.raises(GraphError) as err:
            await g.create_service_principal(app.app_id)
        return app, err.value

    app, err = run(first, sandbox)
    assert err.status == 400 and "valid application object" in err.message
    advance(sandbox, 31)

    async def second(policy):
        return await graph(sandbox, policy).create_service_principal(app.app_id)

    assert run(second, sandbox).app_id == app.app_id


def test_client_secret_never_reaches_a_log_or_the_request_log(sandbox, caplog):
    caplog.set_level(logging.DEBUG)

    async def go(policy):
        g = graph(sandbox, policy)
        app = await g.create_application(MIGRATION_APP)
        return await g.add_password(app.id, "xtwizard")

    secret = run(go, sandbox)
    assert secret.secret_text
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert "addPassword" in logged  # the call was logged, by its route template
    assert secret.secret_text not in logged
    rows = request_log(sandbox)
    assert rows and all(secret.secret_text not in repr(r) for r in rows)


def test_a_next_link_to_another_host_is_not_followed():
    """The token goes with every request, so links are followed only on Graph's own origin."""
    import asyncio

    import httpx

    from xtwizard.cloud.endpoints import PUBLIC_CLOUD
    from xtwizard.cloud.http import HttpPolicy

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.host))
        return httpx.Response(200, json={"value": [{"id": "1"}], "@odata.nextLink": "https://evil.example/v1.0/x"})

    async def token_for(resource, *, force_refresh=False):
        return "t"

    async def go():
        policy = HttpPolicy(transport=httpx.MockTransport(handler), sleep=RecordedSleep())
        try:
            with pytest.raises(GraphError) as err:
                await GraphClient(PUBLIC_CLOUD, policy, token_for).list_users()
            return err.value
        finally:
            await policy.aclose()

    err = asyncio.run(go())
    assert err.code == "UntrustedLink" and seen == ["graph.microsoft.com"]

"""ExchangeClient (cloud/exchange.py) against the sandbox's InvokeCommand over real HTTPS."""

from __future__ import annotations

import base64
import json
import logging

import httpx
import pytest

from tests.unit.cloud_support import (
    EXADMIN,
    HELPDESK,
    SOURCE_ADMIN,
    TARGET_ADMIN,
    MintedTokens,
    RecordedSleep,
    endpoints_of,
    fault,
    module_sandbox,
    request_log,
    run,
)
from xtwizard.cloud.exchange import (
    CmdletResult,
    ExchangeClient,
    ExchangeError,
    encode_credential,
    encode_csv_data,
    hashtable,
    is_concurrency_limited,
    parse_error,
    strip_annotations,
)
from xtwizard.cloud.graph import EXCHANGE_APP_ID, GraphClient
from xtwizard.cloud.http import HttpPolicy, RetryPolicy

_shared_sandbox, sandbox = module_sandbox()

SOURCE_DOMAIN = "northwindtraders.onmicrosoft.com"
TARGET_DOMAIN = "fabrikaminc.onmicrosoft.com"


def exo(sb, policy, tenant="target", upn=TARGET_ADMIN, tokens=None, page_size=1000):
    t = sb.state.tenant(tenant)
    return ExchangeClient(endpoints_of(sb), policy, tokens or MintedTokens(sb, tenant, upn), tenant=t.id,
                          admin_upn=upn, page_size=page_size)


def gr(sb, policy, tenant="target", upn=TARGET_ADMIN):
    return GraphClient(endpoints_of(sb), policy, MintedTokens(sb, tenant, upn), tenant=tenant)


# --- the wire ---------------------------------------------------------------------------------------------
def test_dehydrated_target_is_hydrated_once(sandbox):
    async def go(policy):
        x = exo(sandbox, policy)
        before = await x.is_dehydrated()
        await x.enable_organization_customization()
        after = await x.is_dehydrated()
        with pytest.raises(ExchangeError) as err:
            await x.enable_organization_customization()
        return before, after, err.value

    before, after, err = run(go, sandbox)
    assert before is True and after is False
    assert err.status == 400 and "already enabled for customization" in err.message
    assert err.exception_type.endswith("Exception") and err.cmdlet == "Enable-OrganizationCustomization"


def test_headers_and_body_are_the_documented_ones(sandbox):
    seen: list[httpx.Request] = []

    async def go(policy):
        async def hook(request: httpx.Request) -> None:
            seen.append(request)
        policy.client.event_hooks["request"].append(hook)
        return await exo(sandbox, policy).accepted_domains()

    domains = run(go, sandbox)
    assert {d.domain_name for d in domains} >= {TARGET_DOMAIN, "fabrikam.example"}
    assert any(d.initial and d.domain_name == TARGET_DOMAIN for d in domains)
    req = seen[0]
    assert req.method == "POST" and req.url.path.endswith(f"/{sandbox.state.tenant('target').id}/InvokeCommand")
    assert req.headers["X-CmdletName"] == "Get-AcceptedDomain"
    assert req.headers["X-AnchorMailbox"] == f"UPN:{TARGET_ADMIN}"
    assert req.headers["Prefer"] == "odata.maxpagesize=1000"
    assert req.headers["X-ResponseFormat"] == "json"
    assert req.headers["Authorization"].startswith("Bearer ")
    assert json.loads(req.content) == {"CmdletInput": {"CmdletName": "Get-AcceptedDomain", "Parameters": {}}}


def test_paging_re_posts_the_same_body_and_strips_annotations(sandbox):
    seen: list[httpx.Request] = []

    async def go(policy):
        async def hook(request: httpx.Request) -> None:
            seen.append(request)
        everything = await exo(sandbox, policy, "source", SOURCE_ADMIN).invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
        policy.client.event_hooks["request"].append(hook)
        paged = await exo(sandbox, policy, "source", SOURCE_ADMIN, page_size=4).invoke(
            "Get-Mailbox", {"ResultSize": "Unlimited"})
        return everything, paged

    everything, paged = run(go, sandbox)
    assert len(everything) > 8
    assert [r["Guid"] for r in paged] == [r["Guid"] for r in everything]
    assert len(seen) == -(-len(everything) // 4)
    assert len({r.content for r in seen}) == 1  # the same body every time
    assert "$skiptoken" in str(seen[1].url)
    assert not any("@" in k for r in paged for k in r)


def test_select_projects_the_output_on_every_page(sandbox):
    async def go(policy):
        x = exo(sandbox, policy, "source", SOURCE_ADMIN, page_size=4)
        one = await x.invoke("Get-Mailbox", {"Identity": "alice@northwind.example"},
                             select=["ExchangeGuid", "PrimarySmtpAddress"])
        many = await x.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=["ExchangeGuid", "PrimarySmtpAddress"])
        everything = await exo(sandbox, policy, "source", SOURCE_ADMIN).invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
        return one, many, everything

    one, many, everything = run(go, sandbox)
    assert len(one) == 1 and set(one[0]) == {"ExchangeGuid", "PrimarySmtpAddress"}
    assert [r["ExchangeGuid"] for r in many] == [r["ExchangeGuid"] for r in everything]  # each page once
    assert all(set(r) == {"ExchangeGuid", "PrimarySmtpAddress"} for r in many)


def test_not_found_becomes_a_typed_error(sandbox):
    async def go(policy):
        with pytest.raises(ExchangeError) as err:
            await exo(sandbox, policy).mail_users("nobody@fabrikam.example")
        return err.value

    err = run(go, sandbox)
    assert err.status == 400
    assert err.ex_id == "Ex6F9304"
    assert err.exception_type == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    assert err.short_type == "ManagementObjectNotFoundException"
    assert "nobody@fabrikam.example" in err.message and "couldn't be found" in err.message


def test_user_without_exchange_role_is_refused_with_403(sandbox):
    async def go(policy):
        with pytest.raises(ExchangeError) as err:
            await exo(sandbox, policy, "source", HELPDESK).accepted_domains()
        return err.value

    err = run(go, sandbox)
    assert err.status == 403 and err.short_type == "CmdletAccessDeniedException"
    assert HELPDESK in err.message


def test_unknown_parameter_is_a_parameter_binding_error(sandbox):
    async def go(policy):
        with pytest.raises(ExchangeError) as err:
            await exo(sandbox, policy).invoke("Get-MailUser", {"NoSuchParameter": 1})
        return err.value

    err = run(go, sandbox)
    assert err.short_type == "ParameterBindingException" and "NoSuchParameter" in err.message


def test_401_refreshes_the_token_once(sandbox):
    tokens = MintedTokens(sandbox, "target", TARGET_ADMIN)
    tokens.stale = 1

    async def go(policy):
        return await exo(sandbox, policy, tokens=tokens).is_dehydrated()

    assert run(go, sandbox) is True
    assert [c for c in tokens.calls] == [("https://outlook.office365.com", False),
                                         ("https://outlook.office365.com", True)]
    assert [r["status"] for r in request_log(sandbox, "exchange")] == [401, 200]


def test_throttling_storm_is_waited_out(sandbox):
    fault(sandbox, kind="throttle", service="exchange", count=3, retry_after=2)
    sleep = RecordedSleep()

    async def go(policy):
        return await exo(sandbox, policy).accepted_domains()

    assert run(go, sandbox, sleep)
    assert sleep.waits == [2.0, 2.0, 2.0]
    assert [r["status"] for r in request_log(sandbox, "exchange")] == [429, 429, 429, 200]


def test_a_storm_longer_than_the_retries_ends_as_an_error_with_the_text(sandbox):
    fault(sandbox, kind="throttle", service="exchange", count=50, retry_after=1)
    sleep = RecordedSleep()

    async def go(policy):
        with pytest.raises(ExchangeError) as err:
            await exo(sandbox, policy).accepted_domains()
        return err.value

    err = run(go, sandbox, sleep)
    assert err.status == 429 and "maximum number of concurrent requests" in err.message
    assert len(sleep.waits) == RetryPolicy().max_attempts - 1


def test_concurrency_message_is_retryable_whatever_the_status():
    """Exchange may send its concurrency message with a status the policy does not retry by itself."""
    body = {"error": {"code": "BadRequest", "message": "You have reached the maximum number of concurrent requests "
                                                       "per tenant. Please wait and try again"}}
    answers = [httpx.Response(400, json=body), httpx.Response(200, json={"value": [{"IsDehydrated": False}]})]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    sleep = RecordedSleep()

    async def token_for(resource, *, force_refresh=False):
        return "t"

    async def go():
        from xtwizard.cloud.endpoints import PUBLIC_CLOUD
        policy = HttpPolicy(transport=httpx.MockTransport(handler), sleep=sleep,
                            retry=RetryPolicy(base_delay=0.01))
        try:
            x = ExchangeClient(PUBLIC_CLOUD, policy, token_for, tenant="t", admin_upn="a@b")
            return await x.is_dehydrated()
        finally:
            await policy.aclose()

    import asyncio
    assert asyncio.run(go()) is False
    assert len(sleep.waits) == 1 and answers == []
    assert not is_concurrency_limited(httpx.Response(400, json={"error": {"message": "other"}}))


# --- error parsing fallbacks (reference §3.4) -----------------------------------------------------------
def test_parse_error_details_message():
    resp = httpx.Response(500, json={"error": {"code": "InternalServerError", "message": "Error executing cmdlet",
                                               "details": [{"code": "Client", "target": "", "message":
                                                            "Ex6F9304|Microsoft.Exchange.Configuration.Tasks."
                                                            "ManagementObjectNotFoundException|The operation "
                                                            "couldn't be performed because object 'x' couldn't be "
                                                            "found on 'AM0PR.PROD.OUTLOOK.COM'."}]}})
    err = parse_error(resp, "Set-MailUser")
    assert (err.status, err.ex_id, err.short_type) == (500, "Ex6F9304", "ManagementObjectNotFoundException")
    assert err.message.startswith("The operation couldn't be performed") and err.code == "InternalServerError"
    assert "Set-MailUser" in str(err)


def test_parse_error_falls_back_to_internal_exception_then_message():
    inner = httpx.Response(400, headers={"X-ExceptionType": "TaskException"}, json={"error": {
        "code": "BadRequest", "message": "Error executing cmdlet",
        "innererror": {"message": "Error executing cmdlet", "type": "ODataServiceException",
                       "internalexception": {"message": "It broke.", "type": "System.Exception"}}}})
    err = parse_error(inner)
    assert err.message == "It broke." and err.exception_type == "TaskException" and err.ex_id == ""
    # PowerShell clients read the keys case-insensitively; so do we.
    upper = httpx.Response(400, json={"Error": {"Message": "Plain text only", "InnerError": {}}})
    assert parse_error(upper).message == "Plain text only"
    html = httpx.Response(502, text="<html>Bad gateway</html>")
    err = parse_error(html)
    assert err.status == 502 and "Bad gateway" in err.message


def test_warnings_come_back_with_the_result(sandbox):
    async def go(policy):
        x = exo(sandbox, policy)
        await x.enable_organization_customization()
        alice = (await x.mail_users("alice@fabrikam.example"))[0]
        # Setting what is already there changes nothing, and Exchange says so in a warning.
        return await x.set_mail_user("alice@fabrikam.example", exchange_guid=alice.exchange_guid)

    result = run(go, sandbox)
    assert isinstance(result, CmdletResult) and result == []
    assert result.warnings and all(w.startswith("WARNING") for w in result.warnings)


# --- the encoders and helpers -------------------------------------------------------------------------------
def test_csv_data_is_base64_of_a_csv_with_an_email_address_header():
    value = encode_csv_data([{"EmailAddress": "a@x.example"}, {"EmailAddress": "b@x.example"}])
    assert base64.b64decode(value).decode("utf-8") == "EmailAddress\r\na@x.example\r\nb@x.example\r\n"
    assert base64.b64decode(encode_csv_data("EmailAddress\nz@x\n")) == b"EmailAddress\nz@x\n"


def test_credential_is_user_name_and_password():
    assert encode_credential("app-id", "s3cret") == {"UserName": "app-id", "Password": "s3cret"}


def test_hashtable_and_strip_annotations():
    assert hashtable(add="x500:/o=a") == {"@odata.type": "#Exchange.GenericHashTable", "Add": ["x500:/o=a"]}
    assert hashtable(remove=["a", "b"])["Remove"] == ["a", "b"]
    assert strip_annotations({"A@odata.type": "#Guid", "A": "1", "B": [{"C@odata.type": "x", "C": 2}]}) == \
        {"A": "1", "B": [{"C": 2}]}


# --- the cross-tenant setup, end to end -----------------------------------------------------------------------
MIGRATION_APP = {
    "displayName": "CTMM-fabrikam-to-northwind",
    "signInAudience": "AzureADMultipleOrgs",
    "web": {"redirectUris": ["https://office.com"]},
    "requiredResourceAccess": [{"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [
        {"id": "f7264778-fba9-422d-8e9e-2675a2c4b513", "type": "Role"}]}],
}


async def _migration_app(sb, policy):
    """Target app + secret, and the source's consent by API (reference §4 G6+G8)."""
    tg = gr(sb, policy)
    app = await tg.create_application(MIGRATION_APP)
    await tg.create_service_principal(app.app_id)
    secret = await tg.add_password(app.id, "xtwizard")
    sg = gr(sb, policy, "source", SOURCE_ADMIN)
    sp = await sg.create_service_principal(app.app_id)
    exo_sp = await sg.get_service_principal_by_app_id(EXCHANGE_APP_ID)
    assert exo_sp is not None
    role = exo_sp.app_role("Mailbox.Migration")
    assert role is not None
    await sg.grant_app_role(exo_sp.id, sp.id, role.id)
    return app, secret


def test_cross_tenant_setup_and_a_batch(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    source_id = sandbox.state.tenant("source").id
    target_id = sandbox.state.tenant("target").id

    async def go(policy):
        app, secret = await _migration_app(sandbox, policy)
        tx = exo(sandbox, policy)
        sx = exo(sandbox, policy, "source", SOURCE_ADMIN)
        await tx.enable_organization_customization()
        inbound = await tx.new_organization_relationship("fabrikam-northwind", [source_id], capabilities=["Inbound"])
        outbound = await sx.new_organization_relationship(
            "northwind-fabrikam", [target_id], capabilities=["RemoteOutbound"], oauth_application_id=app.app_id,
            published_scopes=["Migration Wave 1"])
        await tx.set_organization_relationship("fabrikam-northwind",
                                               {"MailboxMoveCapability": "Inbound, RemoteOutbound"})
        both = (await tx.organization_relationships("fabrikam-northwind"))[0]
        endpoint = await tx.new_migration_endpoint("Northwind", remote_tenant=SOURCE_DOMAIN,
                                                   application_id=app.app_id, secret=secret.secret_text)
        endpoints = await tx.migration_endpoints()
        test = await tx.test_migration_server_availability("Northwind", "alice@fabrikam.example")
        groups = await sx.distribution_groups(security_only=True)
        members = await sx.distribution_group_members("Migration Wave 1")
        mailbox = (await sx.mailboxes("alice@northwind.example"))[0]
        mail_user = (await tx.mail_users("alice@fabrikam.example"))[0]
        batch = await tx.new_migration_batch("Wave1", source_endpoint="Northwind",
                                             target_delivery_domain=TARGET_DOMAIN, users=["alice@fabrikam.example"])
        batches = await tx.migration_batches()
        users = await tx.migration_users(batch_id="Wave1")
        stats = await tx.migration_user_statistics("alice@fabrikam.example")
        await tx.start_migration_batch("Wave1")
        started = (await tx.migration_batches("Wave1"))[0]
        await tx.stop_migration_batch("Wave1")
        await tx.remove_migration_batch("Wave1")
        after_remove = {b.identity for b in await tx.migration_batches()}
        return (app, secret, inbound, outbound, both, endpoint, endpoints, test, groups, members, mailbox,
                mail_user, batch, batches, users, stats, started, after_remove)

    (app, secret, inbound, outbound, both, endpoint, endpoints, test, groups, members, mailbox, mail_user, batch,
     batches, users, stats, started, after_remove) = run(go, sandbox)
    assert inbound.names_tenant(source_id) and inbound.has_capability("Inbound")
    assert outbound.has_capability("RemoteOutbound") and outbound.oauth_application_id == app.app_id
    assert outbound.mailbox_move_published_scopes
    assert both.has_capability("Inbound") and both.has_capability("RemoteOutbound")
    assert endpoint.application_id == app.app_id and endpoint.remote_tenant == SOURCE_DOMAIN
    assert {"Northwind", "Northwind-Pilot"} <= {e.identity for e in endpoints}
    assert test.ok, test
    assert "Migration Wave 1" in {g.name for g in groups}
    assert mailbox.primary_smtp_address in {m.primary_smtp_address for m in members}
    assert mail_user.exchange_guid == mailbox.exchange_guid
    assert batch.identity == "Wave1" and {"Wave1", "Pilot"} <= {b.identity for b in batches}
    assert [u.identity for u in users] == ["alice@fabrikam.example"]
    assert stats
    assert started.status
    assert "Wave1" not in after_remove
    # The secret went to Graph's answer and into one request body; never into a log or the request log.
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert "New-MigrationEndpoint" in logged and secret.secret_text not in logged
    assert all(secret.secret_text not in repr(r) for r in request_log(sandbox))


def test_wrong_secret_fails_the_endpoint_without_echoing_the_secret(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-secret-" + "x" * 25

    async def go(policy):
        app, _secret = await _migration_app(sandbox, policy)
        tx = exo(sandbox, policy)
        with pytest.raises(ExchangeError) as err:
            await tx.new_migration_endpoint("Northwind", remote_tenant=SOURCE_DOMAIN, application_id=app.app_id,
                                            secret=wrong)
        return err.value

    err = run(go, sandbox)
    assert err.short_type == "MigrationPermanentException"
    assert wrong not in str(err) and wrong not in err.message
    assert wrong not in "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)


def test_remote_tenant_equal_to_own_tenant_is_refused(sandbox):
    async def go(policy):
        app, secret = await _migration_app(sandbox, policy)
        with pytest.raises(ExchangeError) as err:
            await exo(sandbox, policy).new_migration_endpoint("Self", remote_tenant=TARGET_DOMAIN,
                                                              application_id=app.app_id, secret=secret.secret_text)
        return err.value

    err = run(go, sandbox)
    assert "resource tenant and the accessing tenant cannot be equal" in err.message


def test_mail_user_create_stamp_and_remove_relationship(sandbox):
    async def go(policy):
        tx = exo(sandbox, policy, upn=EXADMIN)
        await tx.enable_organization_customization()
        created = await tx.new_mail_user("Test Person", external_email_address="test.person@northwind.example",
                                         microsoft_online_services_id="test.person@fabrikam.example",
                                         primary_smtp_address="test.person@fabrikam.example")
        x500 = "x500:/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=test"
        await tx.set_mail_user("test.person@fabrikam.example", add_addresses=[x500])
        stamped = (await tx.mail_users("test.person@fabrikam.example"))[0]
        await tx.set_mail_user("test.person@fabrikam.example", remove_addresses=[x500])
        unstamped = (await tx.mail_users("test.person@fabrikam.example"))[0]
        rel = await tx.new_organization_relationship("tmp", ["11111111-2222-3333-4444-555555555555"],
                                                     capabilities=["Inbound"])
        await tx.remove_organization_relationship(rel.identity)
        left = await tx.organization_relationships()
        return created, x500, stamped, unstamped, left

    created, x500, stamped, unstamped, left = run(go, sandbox)
    assert created.primary_smtp_address == "test.person@fabrikam.example"
    assert x500.lower() in {a.lower() for a in stamped.email_addresses}
    assert x500.lower() not in {a.lower() for a in unstamped.email_addresses}
    assert "tmp" not in {r.name for r in left}


async def _ready_pair(sb, policy):
    """Both organization relationships and the endpoint, as the wizard's setup leaves them."""
    source_id = sb.state.tenant("source").id
    target_id = sb.state.tenant("target").id
    app, secret = await _migration_app(sb, policy)
    tx = exo(sb, policy)
    sx = exo(sb, policy, "source", SOURCE_ADMIN)
    await tx.enable_organization_customization()
    await tx.new_organization_relationship("fabrikam-northwind", [source_id], capabilities=["Inbound"])
    await sx.new_organization_relationship("northwind-fabrikam", [target_id], capabilities=["RemoteOutbound"],
                                           oauth_application_id=app.app_id, published_scopes=["Migration Wave 1"])
    await tx.new_migration_endpoint("Northwind", remote_tenant=SOURCE_DOMAIN, application_id=app.app_id,
                                    secret=secret.secret_text)
    return tx, sx


def test_batch_syncs_then_completes_on_the_sandbox_clock(sandbox):
    from tests.unit.cloud_support import advance

    async def go(policy):
        tx, _sx = await _ready_pair(sandbox, policy)
        await tx.new_migration_batch("Wave1", source_endpoint="Northwind", target_delivery_domain=TARGET_DOMAIN,
                                     users=["alice@fabrikam.example"], auto_start=True)
        seen = []
        for _ in range(72):
            status = (await tx.migration_users("alice@fabrikam.example"))[0].status
            seen.append(status)
            if status == "Synced":
                break
            advance(sandbox, 3600)
        await tx.complete_migration_batch("Wave1")
        for _ in range(72):
            user = (await tx.migration_users("alice@fabrikam.example"))[0]
            if user.status.startswith("Completed"):
                break
            advance(sandbox, 3600)
        batch = (await tx.migration_batches("Wave1"))[0]
        stats = await tx.migration_user_statistics("alice@fabrikam.example")
        return seen, user, batch, stats

    seen, user, batch, stats = run(go, sandbox)
    assert seen[-1] == "Synced" and len(seen) > 1
    assert user.status.startswith("Completed") and user.batch_id == "Wave1"
    assert batch.status.startswith("Completed")
    assert stats.get("Status", "").startswith("Completed")


def test_a_next_link_to_another_host_is_not_followed():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.host))
        return httpx.Response(200, json={"value": [{"Name": "a"}],
                                         "@odata.nextLink": "https://evil.example/adminapi/beta/t/InvokeCommand"})

    async def token_for(resource, *, force_refresh=False):
        return "t"

    async def go():
        from xtwizard.cloud.endpoints import PUBLIC_CLOUD
        policy = HttpPolicy(transport=httpx.MockTransport(handler), sleep=RecordedSleep())
        try:
            with pytest.raises(ExchangeError) as err:
                await ExchangeClient(PUBLIC_CLOUD, policy, token_for, tenant="t", admin_upn="a@b").mailboxes()
            return err.value
        finally:
            await policy.aclose()

    import asyncio
    err = asyncio.run(go())
    assert err.code == "UntrustedLink" and seen == ["outlook.office365.com"]


def test_the_same_next_link_twice_stops_paging():
    same = "https://outlook.office365.com/adminapi/beta/t/InvokeCommand?$skiptoken=again"
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"value": [{"Name": "a"}], "@odata.nextLink": same})

    async def token_for(resource, *, force_refresh=False):
        return "t"

    async def go():
        from xtwizard.cloud.endpoints import PUBLIC_CLOUD
        policy = HttpPolicy(transport=httpx.MockTransport(handler), sleep=RecordedSleep())
        try:
            with pytest.raises(ExchangeError) as err:
                await ExchangeClient(PUBLIC_CLOUD, policy, token_for, tenant="t", admin_upn="a@b").mailboxes()
            return err.value
        finally:
            await policy.aclose()

    import asyncio
    err = asyncio.run(go())
    assert err.code == "PagingLoop" and len(seen) == 2


def test_a_dropped_connection_is_resent_for_get_cmdlets_only(sandbox):
    from xtwizard.cloud.http import NetworkUnavailable

    fault(sandbox, kind="drop", service="exchange", count=1)

    async def read(policy):
        return await exo(sandbox, policy).accepted_domains()

    assert run(read, sandbox)  # resent after the drop
    fault(sandbox, kind="drop", service="exchange", count=1)

    async def write(policy):
        with pytest.raises(NetworkUnavailable) as err:
            await exo(sandbox, policy).new_mail_user("Dropped", external_email_address="d@northwind.example",
                                                     microsoft_online_services_id="d@fabrikam.example")
        return err.value

    err = run(write, sandbox)
    assert err.service == "exchange" and "New-MailUser" in err.route
    # The cmdlet may or may not have run: it was not sent a second time.
    assert sum(1 for r in request_log(sandbox, "exchange") if r["method"] == "POST") == 3

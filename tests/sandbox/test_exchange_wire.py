"""InvokeCommand over HTTPS (reference §3): authorization, body, paging, warnings, errors, throttling."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sandbox.support import bearer, user_token
from tests.sandbox.test_exchange_support import SOURCE_ADMIN, TARGET_ADMIN, Exo


def test_get_mailbox_has_the_real_response_shape(sandbox, http):
    src = Exo(sandbox, http, "source", SOURCE_ADMIN)
    r = src.call("Get-Mailbox", {"Identity": "alice@northwind.example"})
    assert r.status_code == 200
    body = r.json()
    assert body["@odata.context"].endswith("/$metadata#Collection(Exchange.Mailbox)")
    [mbx] = body["value"]
    assert mbx["ExchangeGuid@odata.type"] == "#Guid" and mbx["EmailAddresses@odata.type"] == "#Collection(String)"
    assert mbx["PrimarySmtpAddress"] == "alice@northwind.example"
    assert "SMTP:alice@northwind.example" in mbx["EmailAddresses"]
    assert mbx["LegacyExchangeDN"].startswith("/o=ExchangeLabs/")
    assert "ExchangeT2TMbxMove" in mbx["PersistedCapabilities"]
    assert not any(k.startswith("_") for k in mbx)


def test_tenant_in_path_by_domain_and_select(sandbox, http):
    src = Exo(sandbox, http, "source", SOURCE_ADMIN, path_tenant="northwindtraders.onmicrosoft.com")
    r = src.http.post(src.url + "?$select=Name,ExchangeGuid",
                      json={"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"Identity": "alice"}}},
                      headers=bearer(src.token))
    assert r.status_code == 200
    assert {k for k in r.json()["value"][0] if "@" not in k} == {"Name", "ExchangeGuid"}


def test_missing_and_wrong_audience_tokens_are_refused(sandbox, http):
    src = Exo(sandbox, http, "source", SOURCE_ADMIN)
    r = http.post(src.url, json={"CmdletInput": {"CmdletName": "Get-Mailbox"}})
    assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
    assert r.json()["error"]["code"] == "Unauthorized"
    graph = user_token(sandbox, "source", SOURCE_ADMIN, "https://graph.microsoft.com")
    r = http.post(src.url, json={"CmdletInput": {"CmdletName": "Get-Mailbox"}}, headers=bearer(graph))
    assert r.status_code == 401 and "audience" in r.json()["error"]["message"]


def test_token_of_another_tenant_and_unknown_tenant(sandbox, http):
    tgt = Exo(sandbox, http, "target", TARGET_ADMIN)
    src_url = f"{sandbox.info['exchange_url']}/{sandbox.state.tenant('source').id}/InvokeCommand"
    r = tgt.call("Get-Mailbox", url=src_url)
    assert r.status_code == 401
    r = tgt.call("Get-Mailbox", url=f"{sandbox.info['exchange_url']}/nowhere.onmicrosoft.com/InvokeCommand")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NotFound"


def test_user_without_an_exchange_role_gets_access_denied(sandbox, http):
    helpdesk = Exo(sandbox, http, "source", "helpdesk@northwind.example")
    etype, text = helpdesk.fail("Get-Mailbox", status=403)
    assert etype == "CmdletAccessDeniedException"
    assert "isn't assigned to any management roles" in text
    exadmin = Exo(sandbox, http, "target", TARGET_ADMIN)  # Exchange Administrator, not Global Administrator
    assert exadmin.ok("Get-OrganizationConfig")[0]["IsDehydrated"] is True


def test_body_and_cmdlet_errors(sandbox, http):
    src = Exo(sandbox, http, "source", SOURCE_ADMIN)
    r = http.post(src.url, content=b"{not json", headers=bearer(src.token))
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    r = http.post(src.url, json={"Cmdlet": "Get-Mailbox"}, headers=bearer(src.token))
    assert r.status_code == 400
    assert src.fail("Get-Mailboxes")[0] == "CommandNotFoundException"
    etype, text = src.fail("Get-Mailbox", Identity="alice", Colour="blue")
    assert (etype, text) == ("ParameterBindingException",
                             "A parameter cannot be found that matches parameter name 'Colour'.")
    etype, text = src.fail("Get-Mailbox", Identity="nobody@northwind.example")
    assert etype == "ManagementObjectNotFoundException"
    assert text.startswith("The operation couldn't be performed because object 'nobody@northwind.example' couldn't be "
                           "found on '")
    assert "Boolean parameters accept only Boolean values" in src.fail(
        "Set-Mailbox", Identity="iris.jensen@northwind.example", LitigationHoldEnabled="maybe")[1]
    assert "missing mandatory parameters: Identity" in src.fail("Get-MailboxStatistics")[1]
    r = http.get(src.url, headers=bearer(src.token))
    assert r.status_code == 405 and "error" in r.json()


def test_paging_by_reposting_the_same_body(sandbox, http):
    src = Exo(sandbox, http, "source", SOURCE_ADMIN)
    params = {"ResultSize": "Unlimited"}
    first = src.call("Get-Recipient", params, headers={"Prefer": "odata.maxpagesize=7"}).json()
    seen = [v["Guid"] for v in first["value"]]
    assert len(seen) == 7
    link = first["@odata.nextLink"]
    assert "/InvokeCommand?$skiptoken=" in link
    while link:
        page = src.call("Get-Recipient", params, url=link, headers={"Prefer": "odata.maxpagesize=7"}).json()
        seen += [v["Guid"] for v in page["value"]]
        link = page.get("@odata.nextLink")
    everything = src.ok("Get-Recipient", ResultSize="Unlimited")
    assert seen == [v["Guid"] for v in everything] and len(set(seen)) == len(seen) > 30
    # a different body on the same link, or a link older than 30 minutes, is refused
    again = src.call("Get-Recipient", params, headers={"Prefer": "odata.maxpagesize=7"}).json()["@odata.nextLink"]
    r = src.call("Get-Mailbox", params, url=again)
    assert r.status_code == 400 and "Expired or Invalid pagination request" in r.text
    sandbox.clock.advance(31 * 60)
    r = src.call("Get-Recipient", params, url=again, headers={"Prefer": "odata.maxpagesize=7"})
    assert r.status_code == 400
    assert "Expired or Invalid pagination request. Default Expiry time is 00:30:00" in r.json()["error"]["details"][0][
        "message"]


def test_default_result_size_warns(sandbox, http):
    src = Exo(sandbox, http, "source", SOURCE_ADMIN)
    r = src.call("Get-Recipient", {"ResultSize": 3})
    assert len(r.json()["value"]) == 3 and "@adminapi.warnings" not in r.json()
    r = src.call("Set-Mailbox", {"Identity": "alice@northwind.example", "LitigationHoldEnabled": False})
    body = r.json()
    assert body["value"] == [] and body["adminapi.warnings@odata.type"] == "#Collection(String)"
    assert "no settings of 'Alice Andersen' have been modified" in body["@adminapi.warnings"][0]


def test_throttling_storm_with_retry_after_then_recovery(sandbox, http):
    src = Exo(sandbox, http, "source", SOURCE_ADMIN)
    http.post(sandbox.info["control_url"] + "/faults",
              json={"kind": "throttle", "service": "exchange", "count": 2, "retry_after": 5})
    for _ in range(2):
        r = src.call("Get-OrganizationConfig")
        assert r.status_code == 429 and r.headers["Retry-After"] == "5"
        assert "maximum number of concurrent requests per tenant" in r.json()["error"]["message"]
    assert src.call("Get-OrganizationConfig").status_code == 200


def test_internal_errors_keep_the_odata_shape(sandbox, http):
    src = Exo(sandbox, http, "source", SOURCE_ADMIN)
    http.post(sandbox.info["control_url"] + "/faults", json={"kind": "error", "service": "exchange", "count": 1})
    r = src.call("Get-OrganizationConfig")
    assert r.status_code == 503 and r.json()["error"]["code"] == "ServiceUnavailable"


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                       lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
                       max_leaves=8)
NAMES = st.sampled_from(["Get-Mailbox", "Set-MailUser", "New-MigrationBatch", "New-MigrationEndpoint",
                         "New-OrganizationRelationship", "Get-MigrationUser", "Add-DistributionGroupMember",
                         "New-MailUser", "Complete-MigrationBatch"]) | st.text(max_size=15)
PARAMS = st.dictionaries(st.sampled_from(["Identity", "Name", "CSVData", "Credentials", "EmailAddresses",
                                          "ExchangeGuid", "MailboxMoveCapability", "ResultSize", "AutoStart",
                                          "DomainNames", "MaxConcurrentMigrations", "CompleteAfter", "Bogus"]),
                         JSONISH, max_size=4)
BODIES = st.one_of(JSONISH, st.fixed_dictionaries({"CmdletInput": st.fixed_dictionaries(
    {"CmdletName": NAMES, "Parameters": PARAMS | JSONISH})}))


def test_fuzzed_bodies_always_get_the_error_shape_never_5xx(sandbox, http):
    tgt = Exo(sandbox, http, "target", "admin@fabrikaminc.onmicrosoft.com")
    headers = bearer(tgt.token)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(BODIES)
    def check(body):
        r = http.post(tgt.url, content=json.dumps(body).encode(), headers=headers)
        assert r.status_code < 500, r.text
        if r.status_code != 200:
            err = r.json()["error"]
            assert isinstance(err["code"], str) and isinstance(err["message"], str)
            for d in err.get("details", []):
                assert d["message"].count("|") >= 2

    check()


def test_app_only_tokens_need_exchange_manage_as_app(sandbox, http):
    from tests.sandbox.support import app_token

    t = sandbox.state.tenant("target")
    url = f"{sandbox.info['exchange_url']}/{t.id}/InvokeCommand"
    body = {"CmdletInput": {"CmdletName": "Get-OrganizationConfig", "Parameters": {}}}
    without = app_token(sandbox, "target", "11111111-1111-1111-1111-111111111111", "sp-1", roles=[])
    r = http.post(url, json=body, headers=bearer(without))
    assert r.status_code == 403 and "CmdletAccessDeniedException" in r.json()["error"]["details"][0]["message"]
    with_role = app_token(sandbox, "target", "11111111-1111-1111-1111-111111111111", "sp-1",
                          roles=["Exchange.ManageAsApp"])
    assert http.post(url, json=body, headers=bearer(with_role)).status_code == 200


def test_exchange_state_survives_a_restart(tmp_path):
    import httpx

    from tests.conftest import ca_context
    from xtwizard.sandbox import Sandbox

    state_dir = str(tmp_path / "state")
    with Sandbox("demo", state_dir=state_dir) as sb, httpx.Client(verify=ca_context(sb.ca_path),
                                                                  trust_env=False) as c:
        tgt = Exo(sb, c, "target", TARGET_ADMIN)
        tgt.ok("Enable-OrganizationCustomization")
        tgt.ok("New-MailUser", Name="Kept Across Restarts", ExternalEmailAddress="kept@northwind.example",
               PrimarySmtpAddress="kept@fabrikam.example")
    with Sandbox("demo", state_dir=state_dir) as sb, httpx.Client(verify=ca_context(sb.ca_path),
                                                                  trust_env=False) as c:
        tgt = Exo(sb, c, "target", TARGET_ADMIN)
        assert tgt.one("Get-OrganizationConfig")["IsDehydrated"] is False
        assert tgt.one("Get-MailUser", Identity="kept@fabrikam.example")["Name"] == "Kept Across Restarts"
        assert [b["Identity"] for b in tgt.ok("Get-MigrationBatch")] == ["Pilot"]


def test_fuzzed_csv_and_recipient_values_on_a_set_up_org(sandbox, http):
    """Deeper paths: a ready endpoint, so CSV parsing, batch creation and Set-MailUser values get exercised."""
    import base64

    from tests.sandbox.test_exchange_support import setup_org

    _src, tgt, _ = setup_org(sandbox, http)
    csv_text = st.lists(st.sampled_from(["EmailAddress", "carla.diaz@fabrikam.example", "x@y", "\x00", '"', ",",
                                         "\r\n", "\n", "é", "a@b.c", " "]), max_size=12).map("".join)
    from xtwizard.sandbox.exchange.cmdlets import REGISTRY

    plausible = st.sampled_from(["NorthwindMove", "Wave", "ella.fischer@fabrikam.example", "Northwind", "Pilot",
                                 "Migration Wave 1", tgt.tenant.id, "2030-01-01T00:00:00Z", "Inbound", "Security",
                                 "RecoverableItems", "Unlimited"])
    any_cmdlet = st.sampled_from(sorted(c.name for c in REGISTRY.values())).flatmap(
        lambda name: st.builds(lambda params: {"CmdletInput": {"CmdletName": name, "Parameters": params}},
                               st.dictionaries(st.sampled_from(sorted(REGISTRY[name.lower()].params) or ["Identity"]),
                                               plausible | JSONISH, max_size=4)))
    bodies = st.one_of(
        any_cmdlet,
        st.builds(lambda name, text, start: {"CmdletInput": {"CmdletName": "New-MigrationBatch", "Parameters": {
            "Name": name, "SourceEndpoint": "NorthwindMove", "TargetDeliveryDomain": "fabrikaminc.onmicrosoft.com",
            "AutoStart": start, "CSVData": base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()}}},
            st.text(min_size=1, max_size=70), csv_text, st.booleans()),
        st.builds(lambda value, key: {"CmdletInput": {"CmdletName": "Set-MailUser", "Parameters": {
            "Identity": "ella.fischer@fabrikam.example", key: value}}},
            JSONISH, st.sampled_from(["EmailAddresses", "PrimarySmtpAddress", "ExternalEmailAddress", "ArchiveGuid",
                                      "ExchangeGuid", "Name"])))

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def check(body):
        r = http.post(tgt.url, content=json.dumps(body).encode(), headers=bearer(tgt.token))
        assert r.status_code in (200, 400, 403), r.text
        sandbox.clock.advance(7200)
        listing = http.post(tgt.url, json={"CmdletInput": {"CmdletName": "Get-MigrationUser",
                                                            "Parameters": {"ResultSize": "Unlimited"}}},
                            headers=bearer(tgt.token))
        assert listing.status_code == 200, listing.text

    check()

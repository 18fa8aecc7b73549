"""The move service on the sandbox clock: statuses, progress, incremental syncs, transient failures that
recover, stop/resume, credentials revoked mid-move, and 10,000 migration users listed with paging."""

from __future__ import annotations

import json
import math
import os
import resource

import httpx
import pytest

from tests.conftest import ca_context
from tests.sandbox.support import user_token
from tests.sandbox.test_exchange_support import Exo, csv_data, setup_org
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.generate import scenario

DELIVERY = "fabrikaminc.onmicrosoft.com"
CARLA = "carla.diaz@fabrikam.example"  # 800 MB, clean


def batch(tgt, name: str, *addresses: str, **extra) -> dict:
    return tgt.one("New-MigrationBatch", Name=name, SourceEndpoint="NorthwindMove", CSVData=csv_data(*addresses),
                   TargetDeliveryDomain=DELIVERY, **extra)


def stats(tgt, who: str = CARLA) -> dict:
    return tgt.one("Get-MigrationUserStatistics", Identity=who)


def test_statuses_progress_and_incremental_syncs(sandbox, http):
    _src, tgt, _ = setup_org(sandbox, http)
    batch(tgt, "B", CARLA)
    assert stats(tgt)["Status"] == "Queued"
    assert tgt.ok("Get-MoveRequest") == []
    tgt.ok("Start-MigrationBatch", Identity="B")
    sandbox.clock.advance(30)
    assert stats(tgt)["Status"] == "Validating"
    sandbox.clock.advance(600)
    first = stats(tgt)
    assert first["Status"] == "Syncing" and 10 <= first["PercentageComplete"] < 95
    move = tgt.one("Get-MoveRequest", Identity=CARLA)
    assert move["Status"] == "InProgress" and move["Flags"].startswith("CrossTenant")
    sandbox.clock.advance(300)
    second = stats(tgt)
    assert second["PercentageComplete"] > first["PercentageComplete"]

    def nbytes(s: str) -> int:
        return int(s.split("(")[1].split(" ")[0].replace(",", ""))

    assert nbytes(second["BytesTransferred"]) > nbytes(first["BytesTransferred"])
    sandbox.clock.advance(3600)
    synced = stats(tgt)
    assert synced["Status"] == "Synced" and synced["PercentageComplete"] == 95
    assert nbytes(synced["BytesTransferred"]) == nbytes(synced["EstimatedTotalTransferSize"]) == 800 * 2**20
    assert tgt.one("Get-MigrationBatch", Identity="B")["Status"] == "Synced"
    last = synced["LastSuccessfulSyncTime"]
    sandbox.clock.advance(86400 + 60)
    again = stats(tgt)
    assert again["Status"] == "Synced" and again["LastSuccessfulSyncTime"] > last  # a daily incremental sync
    # per-user CompleteAfter: completes at that time, not before
    tgt.ok("Set-MigrationUser", Identity=CARLA, CompleteAfter="2000-01-01T00:00:00Z")
    assert stats(tgt)["Status"] == "Completing"
    sandbox.clock.advance(900)
    done = tgt.one("Get-MoveRequestStatistics", Identity=CARLA, IncludeReport=True)
    assert done["Status"] == "Completed" and done["PercentComplete"] == 100
    assert any("completed" in line for line in done["Report"])
    assert tgt.one("Get-Mailbox", Identity=CARLA)["RecipientTypeDetails"] == "UserMailbox"


def test_move_speed_setting_speeds_the_service_up(sandbox, http):
    _src, tgt, _ = setup_org(sandbox, http)
    http.patch(sandbox.info["control_url"] + "/settings", json={"move_speed": 100})
    batch(tgt, "Fast", "dan.evans@fabrikam.example", AutoStart=True, AutoComplete=True)
    sandbox.clock.advance(15 * 60)  # 10.5 GB would take 10 hours at speed 1
    assert stats(tgt, "dan.evans@fabrikam.example")["Status"] == "Completed"


def test_injected_transient_failure_shows_then_recovers(sandbox, http):
    _src, tgt, _ = setup_org(sandbox, http)
    r = http.post(sandbox.info["control_url"] + "/faults",
                  json={"kind": "error", "service": "mrs", "path": f"/T/{CARLA}", "count": 2})
    assert r.status_code == 201
    batch(tgt, "T", CARLA, AutoStart=True)
    sandbox.clock.advance(120)  # validation; the two failures come at a third and two thirds of the copy
    seen = []
    for _ in range(40):
        s = tgt.one("Get-MoveRequestStatistics", Identity=CARLA)
        seen.append((s["StatusDetail"], s["Status"]))
        if s["StatusDetail"] == "TransientFailure":
            assert "MigrationTransientException" in s["Message"]
            assert stats(tgt)["Status"] == "Syncing"  # the migration user is not failed
        sandbox.clock.advance(300)
    assert ("TransientFailure", "InProgress") in seen
    assert seen[-1] == ("AutoSuspended", "AutoSuspended")
    assert stats(tgt)["Status"] == "Synced"


def test_stop_and_resume_keep_progress(sandbox, http):
    _src, tgt, _ = setup_org(sandbox, http)
    batch(tgt, "S", "dan.evans@fabrikam.example", AutoStart=True)
    sandbox.clock.advance(3 * 3600)
    before = stats(tgt, "dan.evans@fabrikam.example")["PercentageComplete"]
    tgt.ok("Stop-MigrationBatch", Identity="S")
    sandbox.clock.advance(10 * 3600)
    stopped = stats(tgt, "dan.evans@fabrikam.example")
    assert stopped["Status"] == "Stopped" and stopped["PercentageComplete"] == before
    assert tgt.one("Get-MoveRequest", Identity="dan.evans@fabrikam.example")["Status"] == "Suspended"
    tgt.ok("Start-MigrationBatch", Identity="S")
    sandbox.clock.advance(300)
    assert stats(tgt, "dan.evans@fabrikam.example")["PercentageComplete"] >= before


def test_secret_removed_mid_move_fails_completion_until_restored(sandbox, http):
    _src, tgt, app_id = setup_org(sandbox, http)
    batch(tgt, "C", CARLA, AutoStart=True)
    sandbox.clock.advance(2 * 3600)
    assert stats(tgt)["Status"] == "Synced"
    app = next(a for a in sandbox.state.tenant("target").col("applications").values() if a["appId"] == app_id)
    saved = dict(app["_secretHashes"])
    app["_secretHashes"].clear()  # an admin removed the client secret
    tgt.ok("Complete-MigrationBatch", Identity="C")
    sandbox.clock.advance(3600)
    failed = stats(tgt)
    assert failed["Status"] == "CompletionFailed" and "AADSTS7000215" in failed["ErrorSummary"]
    app["_secretHashes"].update(saved)
    tgt.ok("Start-MigrationBatch", Identity="C")
    sandbox.clock.advance(3600)
    assert stats(tgt)["Status"] == "Completed"


def test_missing_target_relationship_fails_every_user_with_the_pull_error(sandbox, http):
    _src, tgt, _ = setup_org(sandbox, http)
    tgt.ok("Set-OrganizationRelationship", Identity="Northwind", MailboxMoveEnabled=False)
    batch(tgt, "R", CARLA, "ella.fischer@fabrikam.example", AutoStart=True)
    sandbox.clock.advance(3600)
    for u in tgt.ok("Get-MigrationUser", BatchId="R"):
        assert u["Status"] == "Failed"
        assert u["ErrorSummary"].startswith("MigrationPermanentException: Your organization does not authorize 'pull'")
    assert tgt.one("Get-MigrationBatch", Identity="R")["Status"] == "Failed"


@pytest.mark.slow
def test_ten_thousand_migration_users_are_listed_in_eleven_requests(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(scenario(10_000)))
    rss_before = _rss_mb()
    with Sandbox(str(path)) as sb, httpx.Client(verify=ca_context(sb.ca_path), trust_env=False, timeout=120) as http:
        tenant = sb.state.tenant("target")
        exo_url = f"{sb.info['exchange_url']}/{tenant.id}/InvokeCommand"
        admin = "admin@litwarebig.onmicrosoft.com"

        def call(name, params, url=exo_url):
            token = user_token(sb, "target", admin, "https://outlook.office365.com")
            return http.post(url, json={"CmdletInput": {"CmdletName": name, "Parameters": params}},
                             headers={"Authorization": f"Bearer {token}", "Prefer": "odata.maxpagesize=1000"})

        src = Exo(sb, http, "source", "admin@contosobig.onmicrosoft.com")
        sb_app = _big_org(sb, http, src, call)
        addresses = [m["PrimarySmtpAddress"] for m in _all(call, "Get-MailUser")]
        assert len(addresses) == 10_000
        for i in range(5):
            r = call("New-MigrationBatch", {"Name": f"Wave {i}", "SourceEndpoint": "Big", "TargetDeliveryDomain":
                                            "litwarebig.onmicrosoft.com", "AutoStart": True,
                                            "CSVData": csv_data(*addresses[i * 2000:(i + 1) * 2000])})
            assert r.status_code == 200, r.text
        sb.clock.advance(3600)
        seq = http.get(sb.info["control_url"] + "/requests").json()["last"]
        listed = _all(call, "Get-MigrationUser", {"ResultSize": "Unlimited"})
        log = http.get(sb.info["control_url"] + f"/requests?since={seq}&limit=100").json()["value"]
        requests = [row for row in log if row["service"] == "exchange"]
        assert len(listed) == 10_000 and len({u["Guid"] for u in listed}) == 10_000
        assert len(requests) <= math.ceil(10_000 / 1000) + 1
        statuses = [u["Status"] for u in listed]
        assert set(statuses) <= {"Queued", "Syncing", "Synced"}
        assert statuses.count("Syncing") <= 100 < statuses.count("Queued")  # MaxConcurrentMigrations of the endpoint
        rss_after = _rss_mb()
        report = tmp_path.parent / "exchange-memory.txt"
        report.write_text(f"peak RSS {rss_after:.0f} MB (before sandbox {rss_before:.0f} MB), app {sb_app}\n")
        print(f"\n10k scenario: process peak RSS {rss_after:.0f} MB, before the sandbox {rss_before:.0f} MB")
        assert rss_after - rss_before < 1500


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 if os.name == "posix" else 0.0


def _all(call, name, params=None):
    params = params or {"ResultSize": "Unlimited"}
    body = call(name, params).json()
    rows = list(body["value"])
    while body.get("@odata.nextLink"):
        body = call(name, params, url=body["@odata.nextLink"]).json()
        rows += body["value"]
    return rows


def _big_org(sb, http, src, call) -> str:
    import uuid

    from tests.sandbox.test_exchange_support import APP_SECRET, MAILBOX_MIGRATION_ROLE_ID, sha256_hex
    from xtwizard.sandbox.directory import (
        ensure_service_principal,
        grant_app_role,
        resource_service_principal,
    )

    st = sb.state
    target, source = st.tenant("target"), st.tenant("source")
    app_id, key_id = str(uuid.uuid4()), str(uuid.uuid4())
    app = {"id": str(uuid.uuid4()), "appId": app_id, "displayName": "big", "passwordCredentials": [{"keyId": key_id}],
           "_secretHashes": {key_id: sha256_hex(APP_SECRET)}}
    with st.lock:
        target.col("applications")[app["id"]] = app
        ensure_service_principal(st, target, target, app)
        sp, _ = ensure_service_principal(st, source, target, app)
        grant_app_role(st, source, sp, resource_service_principal(source, "https://outlook.office365.com"),
                       MAILBOX_MIGRATION_ROLE_ID)
    assert call("New-MigrationEndpoint", {"Name": "Big", "ExchangeRemoteMove": True, "RemoteServer": "outlook.office.com",
                                          "RemoteTenant": "contosobig.onmicrosoft.com", "ApplicationId": app_id,
                                          "Credentials": {"UserName": app_id, "Password": APP_SECRET}}).status_code == 200
    assert call("New-OrganizationRelationship", {"Name": "Contoso", "DomainNames": [source.id], "Enabled": True,
                                                 "MailboxMoveEnabled": True,
                                                 "MailboxMoveCapability": "Inbound"}).status_code == 200
    src.ok("New-OrganizationRelationship", Name="Litware", DomainNames=[target.id], Enabled=True,
           MailboxMoveEnabled=True, MailboxMoveCapability="RemoteOutbound", OAuthApplicationId=app_id,
           MailboxMovePublishedScopes=["Migration Scope"])
    return app_id


def test_story_reused_free_busy_relationship_without_the_tenant_guid(sandbox, http):
    """Demo story: 'Fabrikam Free-Busy' names domains, not the tenant ID; reusing it fails the move."""
    from tests.sandbox.test_exchange_support import SOURCE_ADMIN, TARGET_ADMIN, register_app

    src, tgt = Exo(sandbox, http, "source", SOURCE_ADMIN), Exo(sandbox, http, "target", TARGET_ADMIN)
    app_id = register_app(sandbox)
    tgt.ok("Enable-OrganizationCustomization")
    tgt.ok("New-MigrationEndpoint", Name="NorthwindMove", ExchangeRemoteMove=True, RemoteServer="outlook.office.com",
           RemoteTenant="northwindtraders.onmicrosoft.com", ApplicationId=app_id,
           Credentials={"UserName": app_id, "Password": "sandbox-secret-value-1234567890"})
    tgt.ok("New-OrganizationRelationship", Name="Northwind", DomainNames=[src.tenant.id], Enabled=True,
           MailboxMoveEnabled=True, MailboxMoveCapability="Inbound")
    src.ok("Set-OrganizationRelationship", Identity="Fabrikam Free-Busy", MailboxMoveEnabled=True,
           MailboxMoveCapability="RemoteOutbound", OAuthApplicationId=app_id,
           MailboxMovePublishedScopes=["Migration Wave 1"])
    batch(tgt, "FB", CARLA, AutoStart=True)
    sandbox.clock.advance(600)
    failed = stats(tgt)
    assert failed["Status"] == "Failed" and "RemoteOutbound" in failed["ErrorSummary"]
    src.ok("Set-OrganizationRelationship", Identity="Fabrikam Free-Busy",
           DomainNames={"@odata.type": "#Exchange.GenericHashTable", "Add": [tgt.tenant.id]})
    tgt.ok("Start-MigrationBatch", Identity="FB")
    sandbox.clock.advance(3 * 3600)
    assert stats(tgt)["Status"] == "Synced"


def test_story_pilot_batch_endpoint_has_a_dead_credential(sandbox, http):
    """Demo story: starting the consultant's Pilot batch fails Rosa: its endpoint's app no longer exists."""
    _src, tgt, _ = setup_org(sandbox, http)
    tgt.ok("Start-MigrationBatch", Identity="Pilot")
    sandbox.clock.advance(600)
    rosa = stats(tgt, "rosa.schmidt@fabrikam.example")
    assert rosa["Status"] == "Failed" and "AADSTS700016" in rosa["ErrorSummary"]
    assert tgt.one("Get-MigrationBatch", Identity="Pilot")["Status"] == "Failed"


def test_secret_expiring_while_synced_fails_the_next_incremental_sync(sandbox, http):
    """Landscape §C.1 #3: the secret must cover the whole sync window."""
    import datetime

    _src, tgt, app_id = setup_org(sandbox, http)
    batch(tgt, "W", CARLA, AutoStart=True)
    sandbox.clock.advance(2 * 3600)
    assert stats(tgt)["Status"] == "Synced"
    app = next(a for a in sandbox.state.tenant("target").col("applications").values() if a["appId"] == app_id)
    soon = datetime.datetime.fromtimestamp(sandbox.clock.now() + 3 * 86400, datetime.UTC)
    app["passwordCredentials"][0]["endDateTime"] = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    sandbox.clock.advance(2 * 86400)
    assert stats(tgt)["Status"] == "Synced"  # two incremental syncs still fine
    sandbox.clock.advance(2 * 86400)
    failed = stats(tgt)
    assert (failed["Status"], failed["StatusSummary"]) == ("IncrementalFailed", "Failed")
    assert "AADSTS7000222" in failed["ErrorSummary"]
    app["passwordCredentials"][0]["endDateTime"] = "2099-01-01T00:00:00Z"  # a new secret, in effect
    tgt.ok("Start-MigrationBatch", Identity="W")
    assert stats(tgt)["Status"] == "Synced"
    tgt.ok("Complete-MigrationBatch", Identity="W")
    sandbox.clock.advance(3600)
    assert stats(tgt)["Status"] == "Completed"


def test_generated_scenario_plants_each_problem_kind(tmp_path):
    """generate.scenario(n, problems=k): k users of each kind fail with their exception; the rest complete."""
    path = tmp_path / "gen.json"
    path.write_text(json.dumps(scenario(14, problems=1)))
    with Sandbox(str(path)) as sb, httpx.Client(verify=ca_context(sb.ca_path), trust_env=False, timeout=60) as http:
        tenant = sb.state.tenant("target")
        url = f"{sb.info['exchange_url']}/{tenant.id}/InvokeCommand"

        def call(name, params, url=url):
            token = user_token(sb, "target", "admin@litwarebig.onmicrosoft.com", "https://outlook.office365.com")
            return http.post(url, json={"CmdletInput": {"CmdletName": name, "Parameters": params}},
                             headers={"Authorization": f"Bearer {token}"})

        _big_org(sb, http, Exo(sb, http, "source", "admin@contosobig.onmicrosoft.com"), call)
        csv = [f"{u['mailNickname']}@litware-big.example" for u in scenario(14)["tenants"][0]["users"][1:]]
        r = call("New-MigrationBatch", {"Name": "G", "SourceEndpoint": "Big", "CSVData": csv_data(*csv),
                                        "TargetDeliveryDomain": "litwarebig.onmicrosoft.com", "AutoStart": True,
                                        "AutoComplete": True})
        assert r.status_code == 200, r.text
        sb.clock.advance(3 * 86400)
        rows = call("Get-MigrationUser", {"ResultSize": "Unlimited"}).json()["value"]
        kinds = sorted((r["ErrorSummary"] or "").split(":", 1)[0] for r in rows if r["Status"] != "Completed")
        assert kinds == sorted(["MigrationPermanentException", "CrossTenantMigrationWithoutLicensePermanentException",
                                "MailboxNotInCrossTenantMigrationScopeException", "MissingExchangeGuidException",
                                "MigrationPermanentException", "MigrationRecipientNotFoundException"])
        assert sum(r["Status"] == "Completed" for r in rows) == 14 - 6


def test_max_concurrent_migrations_queues_the_rest(sandbox, http):
    _src, tgt, _ = setup_org(sandbox, http)
    tgt.ok("Set-MigrationEndpoint", Identity="NorthwindMove", MaxConcurrentMigrations=1)
    batch(tgt, "Q", CARLA, "ella.fischer@fabrikam.example", AutoStart=True)  # 800 MB, then 450 MB
    sandbox.clock.advance(600)
    assert stats(tgt)["Status"] == "Syncing"
    ella = stats(tgt, "ella.fischer@fabrikam.example")
    assert ella["Status"] == "Queued" and ella["PercentageComplete"] == 0
    assert tgt.one("Get-MoveRequest", Identity="ella.fischer@fabrikam.example")["Status"] == "Queued"
    sandbox.clock.advance(3600)  # Carla's 800 MB copy (~47 min) is over: Ella got the slot
    assert stats(tgt)["Status"] == "Synced"
    assert stats(tgt, "ella.fischer@fabrikam.example")["Status"] in ("Syncing", "Synced")
    sandbox.clock.advance(3600)
    assert stats(tgt, "ella.fischer@fabrikam.example")["Status"] == "Synced"


def test_objects_removed_mid_move_fail_the_user_not_the_service(sandbox, http):
    src, tgt, _ = setup_org(sandbox, http)
    batch(tgt, "X", CARLA, "ella.fischer@fabrikam.example", AutoStart=True, AutoComplete=True)
    sandbox.clock.advance(600)
    src.ok("Remove-Mailbox", Identity="carla.diaz@northwind.example")
    tgt.ok("Remove-MailUser", Identity="ella.fischer@fabrikam.example")
    sandbox.clock.advance(2 * 3600)
    rows = {u["Identity"]: u for u in tgt.ok("Get-MigrationUser", BatchId="X")}
    assert rows[CARLA]["Status"] == "CompletionFailed" and "no longer exists" in rows[CARLA]["ErrorSummary"]
    assert rows["ella.fischer@fabrikam.example"]["ErrorSummary"].startswith("MigrationRecipientNotFoundException")

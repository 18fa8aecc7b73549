"""Each cmdlet's success path and its documented failures (reference §2.3-§2.7, §3.6)."""

from __future__ import annotations

import base64

from tests.sandbox.test_exchange_support import (
    APP_SECRET,
    SOURCE_ADMIN,
    TARGET_ADMIN,
    Exo,
    csv_data,
    grant_consent,
    register_app,
    setup_org,
)

HT = "#Exchange.GenericHashTable"


def exos(sandbox, http):
    return Exo(sandbox, http, "source", SOURCE_ADMIN), Exo(sandbox, http, "target", TARGET_ADMIN)


# --- organization ------------------------------------------------------------------------------------------
def test_dehydrated_target_needs_enable_organization_customization_once(sandbox, http):
    _src, tgt = exos(sandbox, http)
    assert tgt.one("Get-OrganizationConfig")["IsDehydrated"] is True
    etype, text = tgt.fail("New-OrganizationRelationship", Name="Contoso", DomainNames=["contoso.onmicrosoft.com"],
                           WhatIf=True)  # the scripts' probe (reference §1.2 step 0b)
    assert etype == "InvalidOperationInDehydratedContextException" and "Enable-OrganizationCustomization" in text
    assert tgt.ok("Enable-OrganizationCustomization") == []
    assert tgt.one("Get-OrganizationConfig")["IsDehydrated"] is False
    assert "already enabled for customization" in tgt.fail("Enable-OrganizationCustomization")[1]
    assert tgt.ok("New-OrganizationRelationship", Name="Contoso", DomainNames=["contoso.onmicrosoft.com"],
                  WhatIf=True) == []
    assert tgt.ok("Get-OrganizationRelationship") == []
    assert [r["Name"] for r in _src.ok("Get-OrganizationRelationship")] == ["Fabrikam Free-Busy"]


def test_accepted_domains(sandbox, http):
    src, _ = exos(sandbox, http)
    names = {d["DomainName"]: d for d in src.ok("Get-AcceptedDomain")}
    assert set(names) == {"northwindtraders.onmicrosoft.com", "northwind.example"}
    assert names["northwind.example"]["Default"] is True


# --- recipients ---------------------------------------------------------------------------------------------
def test_mailbox_statistics_and_recoverable_items(sandbox, http):
    src, _ = exos(sandbox, http)
    stats = src.one("Get-MailboxStatistics", Identity="dan.evans@northwind.example")
    assert stats["TotalItemSize"] == "7.617 GB (8,178,892,800 bytes)"
    assert stats["TotalDeletedItemSize"].endswith("(943,718,400 bytes)")
    archive = src.one("Get-MailboxStatistics", Identity="dan.evans@northwind.example", Archive=True)
    assert archive["IsArchiveMailbox"] is True
    folders = src.ok("Get-MailboxFolderStatistics", Identity="dan.evans@northwind.example",
                     FolderScope="RecoverableItems")
    assert {"Deletions", "Purges", "Versions", "SubstrateHolds"} <= {f["Name"] for f in folders}
    assert src.fail("Get-MailboxStatistics", Identity="carla.diaz@northwind.example", Archive=True)[0] == \
        "TaskException"
    shared = src.ok("Get-Mailbox", RecipientTypeDetails=["SharedMailbox"], ResultSize="Unlimited")
    assert {m["PrimarySmtpAddress"] for m in shared} == {"sales@northwind.example", "frontdesk@northwind.example"}


def test_holds_archives_and_license_capability_as_the_validation_script_reads_them(sandbox, http):
    src, _ = exos(sandbox, http)
    assert src.one("Get-Mailbox", Identity="iris.jensen@northwind.example")["LitigationHoldEnabled"] is True
    quinn = src.one("Get-Mailbox", Identity="quinn.roberts@northwind.example")
    assert sum("AuxArchive" in loc for loc in quinn["MailboxLocations"]) == 13
    hugo = src.one("Get-Mailbox", Identity="hugo.ivanov@northwind.example")
    assert "ExchangeT2TMbxMove" not in hugo["PersistedCapabilities"]


def test_identity_ambiguous_and_set_user(sandbox, http):
    _, tgt = exos(sandbox, http)
    etype, text = tgt.fail("Get-Recipient", Identity="Chris Green")
    assert etype == "ManagementObjectAmbiguousException" and "matches multiple entries" in text
    assert tgt.one("Get-Recipient", Identity="c.green@fabrikam.example")["RecipientTypeDetails"] == "MailUser"
    uwe = tgt.one("Get-User", Identity="uwe.vogel@fabrikam.example")
    assert uwe["PreviousRecipientTypeDetails"] == "UserMailbox"
    tgt.ok("Set-User", Identity="uwe.vogel@fabrikam.example", PermanentlyClearPreviousMailboxInfo=True)
    assert tgt.one("Get-User", Identity="uwe.vogel@fabrikam.example")["PreviousRecipientTypeDetails"] == "None"
    users = tgt.ok("Get-User", ResultSize="Unlimited")
    assert any(u["RecipientTypeDetails"] == "User" for u in users)  # the admins have no mailbox


def test_new_set_remove_mail_user(sandbox, http):
    src, tgt = exos(sandbox, http)
    created = tgt.one("New-MailUser", Name="Olivia Perez", Alias="olivia.perez",
                      ExternalEmailAddress="olivia.perez@northwind.example",
                      PrimarySmtpAddress="olivia.perez@fabrikam.example",
                      MicrosoftOnlineServicesID="olivia.perez@fabrikam.example", Password="P@ssw0rd-not-kept")
    assert created["RecipientTypeDetails"] == "MailUser"
    assert created["ExternalEmailAddress"] == "SMTP:olivia.perez@northwind.example"
    assert created["ExchangeGuid"] == "00000000-0000-0000-0000-000000000000"
    assert "smtp:olivia.perez@fabrikaminc.onmicrosoft.com" in created["EmailAddresses"]
    assert "P@ssw0rd" not in str(sandbox.state.to_json())
    # the Entra user exists too (Graph sees what Exchange created)
    assert sandbox.state.tenant("target").user("olivia.perez@fabrikam.example") is not None
    assert tgt.fail("New-MailUser", Name="Olivia Perez", ExternalEmailAddress="x@northwind.example")[0] == \
        "ADObjectAlreadyExistsException"
    etype, text = tgt.fail("New-MailUser", Name="Olivia Two", ExternalEmailAddress="o2@northwind.example",
                           PrimarySmtpAddress="olivia.perez@fabrikam.example")
    assert etype == "RecipientTaskException" and "is already being used" in text
    source = src.one("Get-Mailbox", Identity="olivia.perez@northwind.example")
    tgt.ok("Set-MailUser", Identity="olivia.perez@fabrikam.example", ExchangeGuid=source["ExchangeGuid"],
           EmailAddresses={"@odata.type": HT, "Add": [f"X500:{source['LegacyExchangeDN']}", "smtp:op@fabrikam.example"]})
    mu = tgt.one("Get-MailUser", Identity="olivia.perez@fabrikam.example")
    assert mu["ExchangeGuid"] == source["ExchangeGuid"]
    assert f"X500:{source['LegacyExchangeDN']}" in mu["EmailAddresses"] and "smtp:op@fabrikam.example" in mu[
        "EmailAddresses"]
    tgt.ok("Set-MailUser", Identity="olivia.perez@fabrikam.example",
           EmailAddresses={"@odata.type": HT, "Remove": "smtp:op@fabrikam.example"})
    assert "smtp:op@fabrikam.example" not in tgt.one("Get-MailUser", Identity="Olivia Perez")["EmailAddresses"]
    assert "Guid should contain 32 digits" in tgt.fail("Set-MailUser", Identity="Olivia Perez", ExchangeGuid="nope")[1]
    assert "hash table key 'Replace' isn't valid" in tgt.fail(
        "Set-MailUser", Identity="Olivia Perez", EmailAddresses={"@odata.type": HT, "Replace": ["a@b.c"]})[1]
    # Set-MailUser on a mailbox: not found (reference §2.9)
    assert tgt.fail("Set-MailUser", Identity="chris.green@fabrikam.example", DisplayName="x")[0] == \
        "ManagementObjectNotFoundException"
    tgt.ok("Remove-MailUser", Identity="olivia.perez@fabrikam.example")
    assert tgt.fail("Get-MailUser", Identity="olivia.perez@fabrikam.example")[0] == "ManagementObjectNotFoundException"
    assert sandbox.state.tenant("target").user("olivia.perez@fabrikam.example") is None


def test_external_address_without_primary_becomes_the_primary(sandbox, http):
    _, tgt = exos(sandbox, http)
    mu = tgt.one("New-MailUser", Name="Hasty Admin", ExternalEmailAddress="hasty@northwind.example")
    assert mu["PrimarySmtpAddress"] == "hasty@northwind.example"  # landscape §B.1 #15


def test_distribution_groups_and_membership(sandbox, http):
    src, _ = exos(sandbox, http)
    group = src.one("New-DistributionGroup", Name="Migration Wave 2", Type="Security",
                    PrimarySmtpAddress="wave2@northwind.example", Members=["carla.diaz@northwind.example"])
    assert group["RecipientTypeDetails"] == "MailUniversalSecurityGroup"
    graph_group = sandbox.state.tenant("source").col("groups")[group["ExternalDirectoryObjectId"]]
    assert graph_group["mailEnabled"] is True and graph_group["securityEnabled"] is True
    src.ok("Add-DistributionGroupMember", Identity="Migration Wave 2", Member="ella.fischer@northwind.example")
    names = {m["PrimarySmtpAddress"] for m in src.ok("Get-DistributionGroupMember", Identity="Migration Wave 2")}
    assert names == {"carla.diaz@northwind.example", "ella.fischer@northwind.example"}
    assert src.fail("Add-DistributionGroupMember", Identity="Migration Wave 2",
                    Member="ella.fischer@northwind.example")[0] == "MemberAlreadyExistsException"
    src.ok("Remove-DistributionGroupMember", Identity="Migration Wave 2", Member="ella.fischer@northwind.example")
    assert src.fail("Remove-DistributionGroupMember", Identity="Migration Wave 2",
                    Member="ella.fischer@northwind.example")[0] == "MemberNotFoundException"
    assert src.fail("New-DistributionGroup", Name="Migration Wave 2")[0] == "ADObjectAlreadyExistsException"
    assert src.fail("New-DistributionGroup", Name="x", Type="Secret")[1].startswith(
        "Cannot process argument transformation on parameter 'Type'")
    # 'Finance Team' is not mail-enabled: Exchange does not know it
    assert src.fail("Get-DistributionGroup", Identity="Finance Team")[0] == "ManagementObjectNotFoundException"
    src.ok("Remove-DistributionGroup", Identity="Migration Wave 2")
    assert group["ExternalDirectoryObjectId"] not in sandbox.state.tenant("source").col("groups")


# --- organization relationships ------------------------------------------------------------------------------
def test_organization_relationships(sandbox, http):
    src, tgt = exos(sandbox, http)
    rel = src.one("New-OrganizationRelationship", Name="Fabrikam", DomainNames=[tgt.tenant.id], Enabled=True,
                  MailboxMoveEnabled=True, MailboxMoveCapability="RemoteOutbound",
                  OAuthApplicationId="11111111-2222-3333-4444-555555555555",
                  MailboxMovePublishedScopes=["Migration Wave 1"])
    assert rel["MailboxMoveCapability"] == "RemoteOutbound" and rel["MailboxMovePublishedScopes"] == [
        "Migration Wave 1"]
    r = src.call("Set-OrganizationRelationship", {"Identity": "Fabrikam", "MailboxMoveCapability": ["Inbound",
                                                                                                    "RemoteOutbound"],
                                                  "MailboxMovePublishedScopes": ["Finance Team"]})
    assert r.status_code == 200
    assert "Access scope specified 'Finance Team' is not a security group" in r.json()["@adminapi.warnings"][0]
    got = src.one("Get-OrganizationRelationship", Identity="Fabrikam")
    assert got["MailboxMoveCapability"] == "Inbound, RemoteOutbound" and got["MailboxMovePublishedScopes"] == []
    etype, text = src.fail("Set-OrganizationRelationship", Identity="Fabrikam",
                           MailboxMovePublishedScopes=["Migration Wave 1", "All Staff", "Finance Team"])
    assert text == "The given count of areas (3) exceeds the allowed limit of 1"
    src.ok("Set-OrganizationRelationship", Identity="Fabrikam",
           MailboxMovePublishedScopes={"@odata.type": HT, "Add": ["Migration Wave 1"]})
    assert src.one("Get-OrganizationRelationship", Identity="Fabrikam")["MailboxMovePublishedScopes"] == [
        "Migration Wave 1"]
    assert "Unable to match the identifier name Sideways" in src.fail(
        "Set-OrganizationRelationship", Identity="Fabrikam", MailboxMoveCapability="Sideways")[1]
    assert src.fail("New-OrganizationRelationship", Name="Fabrikam", DomainNames=["x.example"])[0] == \
        "ADObjectAlreadyExistsException"
    assert "already used by the organization relationship" in src.fail(
        "New-OrganizationRelationship", Name="Other", DomainNames=[tgt.tenant.id])[1]
    assert src.fail("Set-OrganizationRelationship", Identity="Fabrikam", Name="Fabrikam Free-Busy")[0] == \
        "ADObjectAlreadyExistsException"
    src.ok("Remove-OrganizationRelationship", Identity="Fabrikam")
    assert src.fail("Get-OrganizationRelationship", Identity="Fabrikam")[0] == "ManagementObjectNotFoundException"


# --- migration endpoints -------------------------------------------------------------------------------------
def _endpoint(tgt, app_id, **extra):
    params = {"Name": "NorthwindMove", "ExchangeRemoteMove": True, "RemoteServer": "outlook.office.com",
              "RemoteTenant": "northwindtraders.onmicrosoft.com", "ApplicationId": app_id,
              "Credentials": {"UserName": app_id, "Password": APP_SECRET}} | extra
    return params


def test_new_migration_endpoint_verifies_the_credential_against_the_source(sandbox, http):
    _, tgt = exos(sandbox, http)
    app_id = register_app(sandbox, consent=False)
    etype, text = tgt.fail("New-MigrationEndpoint", **_endpoint(tgt, app_id))
    assert etype == "MigrationPermanentException" and "AADSTS700016" in text  # source admin has not consented
    grant_consent(sandbox, app_id)
    assert "AADSTS7000215" in tgt.fail("New-MigrationEndpoint", **_endpoint(
        tgt, app_id, Credentials={"UserName": app_id, "Password": "wrong"}))[1]
    assert tgt.fail("New-MigrationEndpoint", **_endpoint(tgt, app_id, RemoteTenant="fabrikam.example"))[1] == \
        "ASSERT: The resource tenant and the accessing tenant cannot be equal."
    assert tgt.fail("New-MigrationEndpoint", **_endpoint(tgt, app_id, MaxConcurrentMigrations=250))[0] == \
        "MaximumConcurrentMigrationLimitExceededException"  # 100 (Pilot) + 250 > 300
    ep = tgt.one("New-MigrationEndpoint", **_endpoint(tgt, app_id, Credentials=f"{app_id}:{APP_SECRET}"))
    assert ep["EndpointType"] == "ExchangeRemoteMove" and ep["ApplicationId"] == app_id and ep["IsRemote"] is True
    assert APP_SECRET not in str(sandbox.state.to_json())
    assert tgt.fail("New-MigrationEndpoint", **_endpoint(tgt, app_id))[0] == "ADObjectAlreadyExistsException"
    assert [e["Identity"] for e in tgt.ok("Get-MigrationEndpoint")] == ["Northwind-Pilot", "NorthwindMove"]
    etype, text = tgt.fail("Get-MigrationEndpoint", Identity="Northwind")
    assert (etype, text) == ("ManagementObjectNotFoundException", "The migration endpoint 'Northwind' couldn't be found.")
    assert "used by the migration batch 'Pilot'" in tgt.fail("Remove-MigrationEndpoint", Identity="Northwind-Pilot")[1]
    tgt.ok("Set-MigrationEndpoint", Identity="NorthwindMove", MaxConcurrentMigrations=50)
    assert tgt.one("Get-MigrationEndpoint", Identity="NorthwindMove")["MaxConcurrentMigrations"] == 50
    tgt.ok("Remove-MigrationEndpoint", Identity="NorthwindMove")


def test_expired_secret_and_skip_verification(sandbox, http):
    _, tgt = exos(sandbox, http)
    app_id = register_app(sandbox, secret_days=1)
    sandbox.clock.advance(2 * 86400)
    assert "AADSTS7000222" in tgt.fail("New-MigrationEndpoint", **_endpoint(tgt, app_id))[1]
    assert tgt.one("New-MigrationEndpoint", **_endpoint(tgt, app_id, SkipVerification=True))["Identity"] == \
        "NorthwindMove"


def test_credentials_wire_forms(sandbox, http):
    _, tgt = exos(sandbox, http)
    app_id = register_app(sandbox)
    assert "PSCredential" in tgt.fail("New-MigrationEndpoint", **_endpoint(tgt, app_id, Credentials=42))[1]
    tgt.one("New-MigrationEndpoint", **_endpoint(tgt, app_id, Credentials={
        "@odata.type": "#Exchange.PSCredential", "userName": app_id, "password": APP_SECRET}))


def test_migration_server_availability(sandbox, http):
    src, tgt, _ = setup_org(sandbox, http)
    ok = tgt.one("Test-MigrationServerAvailability", Endpoint="NorthwindMove", TestMailbox="carla.diaz@fabrikam.example")
    assert ok["Result"] == "Success"
    bad = tgt.one("Test-MigrationServerAvailability", Endpoint="NorthwindMove",
                  TestMailbox="gina.hoffman@fabrikam.example")
    assert bad["Result"] == "Failed" and "MailboxNotInCrossTenantMigrationScopeException" in bad["ErrorDetail"]
    # the source address is not a target MailUser (reference §2.5)
    assert tgt.fail("Test-MigrationServerAvailability", Endpoint="NorthwindMove",
                    TestMailbox="carla.diaz@northwind.example")[0] == "ManagementObjectNotFoundException"
    src.ok("Remove-OrganizationRelationship", Identity="Fabrikam")
    res = tgt.one("Test-MigrationServerAvailability", Endpoint="NorthwindMove")
    assert res["Result"] == "Failed" and "RemoteOutbound" in res["ErrorDetail"]


# --- batches -------------------------------------------------------------------------------------------------
def test_new_migration_batch_validation(sandbox, http):
    _src, tgt, _ = setup_org(sandbox, http)
    base = {"SourceEndpoint": "NorthwindMove", "TargetDeliveryDomain": "fabrikaminc.onmicrosoft.com"}
    no_col = base64.b64encode(b"Mail\r\nx@fabrikam.example\r\n").decode()
    assert "required column 'EmailAddress'" in tgt.fail("New-MigrationBatch", Name="B", CSVData=no_col, **base)[1]
    big = csv_data(*[f"u{i}@fabrikam.example" for i in range(2001)])
    assert "at most 2000 users" in tgt.fail("New-MigrationBatch", Name="B", CSVData=big, **base)[1]
    dup = csv_data("carla.diaz@fabrikam.example", "CARLA.DIAZ@fabrikam.example")
    assert "more than once" in tgt.fail("New-MigrationBatch", Name="B", CSVData=dup, **base)[1]
    assert "System.Byte[]" in tgt.fail("New-MigrationBatch", Name="B", CSVData="***", **base)[1]
    assert tgt.fail("New-MigrationBatch", Name="B", CSVData=csv_data("carla.diaz@fabrikam.example"),
                    SourceEndpoint="Nope", TargetDeliveryDomain="fabrikaminc.onmicrosoft.com")[1] == \
        "The migration endpoint 'Nope' couldn't be found."
    assert "missing mandatory parameters: CSVData" in tgt.fail("New-MigrationBatch", Name="B", **base)[1]
    as_ints = list(b"EmailAddress\ncarla.diaz@fabrikam.example\n")  # the other plausible byte[] encoding
    batch = tgt.one("New-MigrationBatch", Name="B", CSVData=as_ints, **base)
    assert batch["Status"] == "Created" and batch["TotalCount"] == 1 and batch["Type"] == "ExchangeRemoteMove"
    assert "already exists" in tgt.fail("New-MigrationBatch", Name="b", CSVData=as_ints, **base)[1]
    user = tgt.one("Get-MigrationUser", Identity="carla.diaz@fabrikam.example")
    assert (user["Status"], user["BatchId"]) == ("Queued", "B")
    assert tgt.fail("Complete-MigrationBatch", Identity="B")[0] == "MigrationPermanentException"
    tgt.ok("Start-MigrationBatch", Identity="B")
    assert "Stop it first" in tgt.fail("Remove-MigrationBatch", Identity="B")[1]
    tgt.ok("Stop-MigrationBatch", Identity="B")
    assert tgt.one("Get-MigrationBatch", Identity="B")["Status"] == "Stopped"
    assert tgt.ok("Get-MigrationUser", Status="Stopped")[0]["Identity"] == "carla.diaz@fabrikam.example"
    tgt.ok("Remove-MigrationBatch", Identity="B")
    assert tgt.fail("Get-MigrationBatch", Identity="B")[0] == "ManagementObjectNotFoundException"
    assert [b["Identity"] for b in tgt.ok("Get-MigrationBatch")] == ["Pilot"]


def test_key_vault_certificate_endpoint_needs_exchange_to_read_the_vault(sandbox, http):
    """The deprecated AppSecretKeyVaultUrl path (reference §1.2 step 6, §2.2): Exchange reads the certificate."""
    from tests.sandbox.support import bearer, user_token
    from tests.sandbox.test_arm_helpers import ADMIN, grant, make_vault, oid, vault_id
    from xtwizard.sandbox.catalog import AZURE_ROLES
    from xtwizard.sandbox.directory import resource_service_principal

    _, tgt = exos(sandbox, http)
    app_id = register_app(sandbox)
    make_vault(sandbox, http, "kv-ctmm").raise_for_status()
    grant(sandbox, http, vault_id("kv-ctmm"), AZURE_ROLES["Key Vault Administrator"], oid(sandbox, ADMIN)
          ).raise_for_status()
    kv = bearer(user_token(sandbox, "target", ADMIN, "https://vault.azure.net"))
    base = f"{sandbox.urls['vault']}/kv-ctmm/certificates/ctmm"
    r = http.post(base + "/create?api-version=7.4", headers=kv, json={"policy": {
        "issuer": {"name": "Self"}, "x509_props": {"subject": "CN=ctmm", "validity_months": 12}}})
    assert r.status_code == 202, r.text
    sandbox.clock.advance(5)
    cert_id = http.get(base + "/?api-version=7.4", headers=kv).json()["id"]
    params = {k: v for k, v in _endpoint(tgt, app_id).items() if k != "Credentials"} | {"AppSecretKeyVaultUrl": cert_id}
    etype, text = tgt.fail("New-MigrationEndpoint", **params)
    assert etype == "KeyVaultFailureErrorException" and text.startswith("Error finding certificate 'ctmm'")
    exo_sp = resource_service_principal(sandbox.state.tenant("target"), "https://outlook.office365.com")
    grant(sandbox, http, vault_id("kv-ctmm"), AZURE_ROLES["Key Vault Certificate User"], exo_sp["id"]
          ).raise_for_status()
    assert tgt.one("New-MigrationEndpoint", **params)["AppSecretKeyVaultUrl"] == cert_id


def test_new_mail_user_needs_an_accepted_upn_domain(sandbox, http):
    _, tgt = exos(sandbox, http)
    etype, text = tgt.fail("New-MailUser", Name="Wrong Domain", ExternalEmailAddress="wd@northwind.example",
                           MicrosoftOnlineServicesID="wd@northwind.example")
    assert etype == "TaskException" and "isn't an accepted domain" in text


def test_licensing_a_mail_user_too_early_provisions_a_colliding_mailbox(sandbox, http):
    """Landscape §B.1 #8 and reference §2.6: license only after the ExchangeGuid is stamped."""
    src, tgt = exos(sandbox, http)
    target = sandbox.state.tenant("target")
    spb = next(k for k, v in target.col("subscribedSkus").items() if v["skuPartNumber"] == "SPB")
    # Jonas's MailUser has no ExchangeGuid yet: a licence makes Exchange provision a new mailbox
    target.user("jonas.keller@fabrikam.example")["assignedLicenses"].append({"skuId": spb, "disabledPlans": []})
    sandbox.state.touch()  # what Graph's assignLicense does after writing
    jonas = tgt.one("Get-Recipient", Identity="jonas.keller@fabrikam.example")
    assert jonas["RecipientTypeDetails"] == "UserMailbox"
    # Mia's MailUser has the ExchangeGuid: it stays a MailUser, and the licence scrubs the non-accepted proxy
    target.user("mia.nowak@fabrikam.example")["assignedLicenses"].append({"skuId": spb, "disabledPlans": []})
    sandbox.state.touch()
    mia = tgt.one("Get-Recipient", Identity="mia.nowak@fabrikam.example")
    assert mia["RecipientTypeDetails"] == "MailUser"
    assert "smtp:mia.nowak@northwind.example" not in mia["EmailAddresses"]
    assert mia["ExchangeGuid"] == src.one("Get-Mailbox", Identity="mia.nowak@northwind.example")["ExchangeGuid"]
    # Exchange's own later write to the licensed MailUser is looked at too (only that recipient is walked again)
    tgt.ok("Set-MailUser", Identity="mia.nowak@fabrikam.example",
           EmailAddresses={"add": ["smtp:mia.alias@northwind.example", "smtp:mia.alias@fabrikam.example"]})
    mia = tgt.one("Get-Recipient", Identity="mia.nowak@fabrikam.example")
    assert "smtp:mia.alias@northwind.example" not in mia["EmailAddresses"]
    assert "smtp:mia.alias@fabrikam.example" in mia["EmailAddresses"]
    # and a MailUser made by New-MailUser, then licensed through the directory, becomes a mailbox
    tgt.ok("New-MailUser", Name="Late Licence", ExternalEmailAddress="late@northwind.example",
           MicrosoftOnlineServicesID="late@fabrikam.example", PrimarySmtpAddress="late@fabrikam.example")
    assert tgt.one("Get-Recipient", Identity="late@fabrikam.example")["RecipientTypeDetails"] == "MailUser"
    target.user("LATE@fabrikam.example")["assignedLicenses"].append({"skuId": spb, "disabledPlans": []})
    sandbox.state.touch()
    assert tgt.one("Get-Recipient", Identity="late@fabrikam.example")["RecipientTypeDetails"] == "UserMailbox"


def test_hydration_can_take_a_while_to_apply(sandbox, http):
    sandbox.state.tenant("target").exchange_seed["hydrationDelayMinutes"] = 30
    _, tgt = exos(sandbox, http)
    tgt.ok("Enable-OrganizationCustomization")
    assert tgt.one("Get-OrganizationConfig")["IsDehydrated"] is False
    etype, text = tgt.fail("New-OrganizationRelationship", Name="Northwind", DomainNames=["x.example"])
    assert etype == "InvalidOperationInDehydratedContextException" and "not yet taken effect" in text
    sandbox.clock.advance(31 * 60)
    assert tgt.one("New-OrganizationRelationship", Name="Northwind", DomainNames=["x.example"])["Name"] == "Northwind"

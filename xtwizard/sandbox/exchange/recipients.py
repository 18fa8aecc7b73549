"""Organization, recipients, users, MailUsers and distribution groups (reference §2.3, §2.6, §3.6)."""

from __future__ import annotations

import uuid

from ..directory import iso as graph_iso
from ..state import JSON, public
from . import store
from .cmdlets import Ctx, Lazy, cmdlet, result_size
from .errors import (
    ALREADY_EXISTS,
    DEHYDRATED,
    PROXY_EXISTS,
    TASK,
    CmdletError,
    name_in_use,
    not_found,
)
from .params import ID, SW, B, L, M, MultiValue, Param, S, enum, req
from .store import MAILBOX_TYPES, ZERO_GUID, recipients
from .wire import byte_quantified

RESULT = {"ResultSize": S}
GROUP_TYPES = ("MailUniversalSecurityGroup", "MailUniversalDistributionGroup")


# --- output shapes --------------------------------------------------------------------------------------
def recipient_out(ctx: Ctx, r: JSON, kind: str = "recipient") -> JSON:
    out = public(r)
    out["PersistedCapabilities"] = store.persisted_capabilities(ctx.state, ctx.tenant, r)
    out["WhenCreated"] = graph_iso(r["WhenCreated"]) if isinstance(r.get("WhenCreated"), float | int) else None
    if r.get("RecipientTypeDetails") in MAILBOX_TYPES:  # an archive that grows auxiliary archives on its own
        out["AutoExpandingArchiveEnabled"] = bool(store.aux_archive_count(r) or r.get("_auxArchiveAppearsDuringMove"))
    if kind == "user":
        out = {k: out.get(k) for k in ("Name", "Identity", "DisplayName", "UserPrincipalName", "RecipientType",
                                       "RecipientTypeDetails", "PreviousRecipientTypeDetails",
                                       "ExternalDirectoryObjectId", "Guid", "WindowsEmailAddress", "IsDirSynced")}
    return out


def org_config(ctx: Ctx) -> JSON:
    return ctx.tenant.col("exchange.org")["config"]


def require_hydrated(ctx: Ctx) -> None:
    c = org_config(ctx)
    if c["IsDehydrated"]:
        raise CmdletError(DEHYDRATED, "The operation on this object is not supported. Please run "
                                      "Enable-OrganizationCustomization before performing this operation.")
    if ctx.now < float(c.get("_hydratedAt") or 0.0):
        raise CmdletError(DEHYDRATED, "Organization settings customization has been enabled, but this has not yet "
                                      "taken effect. This normally resolves itself shortly; try again later.")


@cmdlet("Get-OrganizationConfig", {"Identity": ID}, "OrganizationConfig")
def get_organization_config(ctx: Ctx) -> list[JSON]:
    c = org_config(ctx)
    return [{k: v for k, v in public(c).items() if k != "MigrationLimits"}]


@cmdlet("Enable-OrganizationCustomization", {})
def enable_organization_customization(ctx: Ctx) -> list[JSON]:
    c = org_config(ctx)
    if not c["IsDehydrated"]:
        raise CmdletError(TASK, "This operation is not required. Organization is already enabled for customization.")
    c["IsDehydrated"] = False
    # Hydration can take a while to apply (scenario "exchange": {"hydrationDelayMinutes": N}; default 0).
    c["_hydratedAt"] = ctx.now + 60 * float((ctx.tenant.exchange_seed or {}).get("hydrationDelayMinutes", 0))
    ctx.state.touch()
    return []


@cmdlet("Get-AcceptedDomain", {"Identity": ID}, "AcceptedDomain")
def get_accepted_domain(ctx: Ctx) -> list[JSON]:
    out = []
    for d in ctx.tenant.domains:
        out.append({"Name": d["name"], "Identity": d["name"], "DomainName": d["name"],
                    "DomainType": "Authoritative", "Default": bool(d.get("isDefault")),
                    "InitialDomain": bool(d.get("isInitial")), "Guid": str(uuid.uuid5(uuid.NAMESPACE_DNS, d["name"]))})
    ident = ctx.p("Identity")
    if ident:
        out = [d for d in out if d["Name"].lower() == ident.lower()]
        if not out:
            raise not_found(ident)
    return out


def _list(ctx: Ctx, types: tuple[str, ...], kind: str = "recipient", archive_only: bool = False) -> Lazy:
    ident = ctx.p("Identity")
    wanted = ctx.p("RecipientTypeDetails")
    if wanted:
        types = tuple(t for t in types if t.lower() in (w.lower() for w in wanted))
    if ident:
        items = [store.resolve(ctx.tenant, ident, types)]
    else:
        items = [r for r in recipients(ctx.tenant).values() if r["RecipientTypeDetails"] in types]
    if archive_only:
        items = [r for r in items if r.get("ArchiveGuid", ZERO_GUID) != ZERO_GUID]
    return Lazy(items if ident else result_size(ctx, items), lambda r: recipient_out(ctx, r, kind))


@cmdlet("Get-Mailbox", {"Identity": ID, "RecipientTypeDetails": L, "Archive": SW, **RESULT}, "Mailbox")
def get_mailbox(ctx: Ctx) -> Lazy:
    return _list(ctx, MAILBOX_TYPES, archive_only=bool(ctx.p("Archive")))


@cmdlet("Set-Mailbox", {"Identity": req("identity"), "LitigationHoldEnabled": B, "RemoveDelayHoldApplied": SW,
                        "RemoveDelayReleaseHoldApplied": SW, "DisplayName": S}, "Mailbox")
def set_mailbox(ctx: Ctx) -> list[JSON]:
    r = store.resolve(ctx.tenant, ctx.p("Identity"), MAILBOX_TYPES)
    before = dict(r)
    if ctx.given("LitigationHoldEnabled"):
        r["LitigationHoldEnabled"] = bool(ctx.p("LitigationHoldEnabled"))
    if ctx.p("RemoveDelayHoldApplied"):
        r["DelayHoldApplied"] = False
    if ctx.p("RemoveDelayReleaseHoldApplied"):
        r["DelayReleaseHoldApplied"] = False
    if ctx.p("DisplayName"):
        r["DisplayName"] = ctx.p("DisplayName")
    _no_change_warning(ctx, before, r)
    return []


@cmdlet("Remove-Mailbox", {"Identity": req("identity")})
def remove_mailbox(ctx: Ctx) -> list[JSON]:
    r = store.resolve(ctx.tenant, ctx.p("Identity"), MAILBOX_TYPES)
    _delete_recipient_and_user(ctx, r)
    return []


def _delete_recipient_and_user(ctx: Ctx, r: JSON) -> None:
    """Removing a mailbox or MailUser in Exchange Online deletes its Entra user too."""
    recipients(ctx.tenant).pop(r["Guid"], None)
    uid = r.get("ExternalDirectoryObjectId")
    if uid and uid in ctx.tenant.col("users"):
        del ctx.tenant.col("users")[uid]
        for g in ctx.tenant.col("groups").values():
            if uid in g.get("_members", []):
                g["_members"].remove(uid)
    store.changed(ctx.tenant)
    ctx.state.touch()


@cmdlet("Get-MailboxStatistics", {"Identity": req("identity"), "Archive": SW}, "MailboxStatistics")
def get_mailbox_statistics(ctx: Ctx) -> list[JSON]:
    r = store.resolve(ctx.tenant, ctx.p("Identity"), MAILBOX_TYPES)
    sizes = r.get("_sizes") or {}
    archive = bool(ctx.p("Archive")) or (r.get("ArchiveGuid") == ctx.p("Identity"))
    if archive and r.get("ArchiveGuid") == ZERO_GUID:
        raise CmdletError(TASK, f"The mailbox '{r['Name']}' doesn't have an archive.")
    total = int(sizes.get("archive" if archive else "primary", 0))
    return [{"DisplayName": r["DisplayName"], "Identity": r["ArchiveGuid"] if archive else r["ExchangeGuid"],
             "MailboxGuid": r["ArchiveGuid"] if archive else r["ExchangeGuid"],
             "ItemCount": int(sizes.get("archiveItems" if archive else "items", 0)),
             "TotalItemSize": byte_quantified(total),
             "TotalDeletedItemSize": byte_quantified(0 if archive else int(sizes.get("deleted", 0))),
             "DeletedItemCount": 0, "IsArchiveMailbox": archive, "MailboxTypeDetail": r["RecipientTypeDetails"],
             "LastLogonTime": None}]


@cmdlet("Get-MailboxFolderStatistics", {"Identity": req("identity"), "FolderScope": enum(
    "All", "RecoverableItems", "Inbox", "Calendar", "Archive", "DeletedItems"), "Archive": SW}, "MailboxFolder")
def get_mailbox_folder_statistics(ctx: Ctx) -> list[JSON]:
    ident = ctx.p("Identity")
    r = store.resolve(ctx.tenant, ident, MAILBOX_TYPES)
    sizes = r.get("_sizes") or {}
    archive = bool(ctx.p("Archive")) or r.get("ArchiveGuid", "").lower() == ident.lower()
    deleted = 0 if archive else int(sizes.get("deleted", 0))
    holds = int(sizes.get("substrateHolds", 0)) if archive else 0
    rows = [("Recoverable Items", "RecoverableItemsRoot", 0, 0), ("Deletions", "RecoverableItemsDeletions",
            deleted, deleted // 40000), ("DiscoveryHolds", "RecoverableItemsDiscoveryHolds", 0, 0),
            ("Purges", "RecoverableItemsPurges", 0, 0), ("SubstrateHolds", "RecoverableItemsSubstrateHolds",
            holds * 30000, holds), ("Versions", "RecoverableItemsVersions", 0, 0)]
    scope = (ctx.p("FolderScope") or "All")
    if scope not in ("All", "RecoverableItems"):
        rows = []
    return [{"Name": n, "FolderPath": "/" + n, "FolderType": ft, "ItemsInFolder": items,
             "FolderSize": byte_quantified(size), "Identity": f"{r['Name']}\\{n}"} for n, ft, size, items in rows]


@cmdlet("Get-Recipient", {"Identity": ID, "RecipientTypeDetails": L, **RESULT}, "Recipient")
def get_recipient(ctx: Ctx) -> Lazy:
    return _list(ctx, (*MAILBOX_TYPES, "MailUser", *GROUP_TYPES))


@cmdlet("Get-User", {"Identity": ID, "RecipientTypeDetails": L, **RESULT}, "User")
def get_user(ctx: Ctx) -> list[JSON]:
    by_user = {r.get("ExternalDirectoryObjectId"): r for r in recipients(ctx.tenant).values()}
    rows = []
    for u in ctx.tenant.col("users").values():
        r = by_user.get(u["id"])
        if r is not None:
            rows.append(recipient_out(ctx, r, "user"))
        else:
            rows.append({"Name": u.get("displayName"), "Identity": u.get("displayName"),
                         "DisplayName": u.get("displayName"), "UserPrincipalName": u["userPrincipalName"],
                         "RecipientType": "User", "RecipientTypeDetails": "User",
                         "PreviousRecipientTypeDetails": "None", "ExternalDirectoryObjectId": u["id"],
                         "Guid": u["id"], "WindowsEmailAddress": u.get("mail"), "IsDirSynced": False})
    ident = ctx.p("Identity")
    if ident:
        low = ident.lower()
        rows = [x for x in rows if low in (str(x.get("Name", "")).lower(), str(x["UserPrincipalName"]).lower(),
                                           str(x["Guid"]).lower(), str(x["ExternalDirectoryObjectId"]).lower())]
        if not rows:
            raise not_found(ident)
        if len(rows) > 1:
            from .errors import ambiguous
            raise ambiguous(ident)
        return rows
    return result_size(ctx, rows)


@cmdlet("Set-User", {"Identity": req("identity"), "PermanentlyClearPreviousMailboxInfo": SW, "DisplayName": S},
        "User")
def set_user(ctx: Ctx) -> list[JSON]:
    r = store.resolve(ctx.tenant, ctx.p("Identity"))
    before = dict(r)
    if ctx.p("PermanentlyClearPreviousMailboxInfo"):
        if r["RecipientTypeDetails"] in MAILBOX_TYPES:
            raise CmdletError(TASK, f"The user '{r['Name']}' has a mailbox; previous mailbox information can only "
                                    "be cleared for users and mail users.")
        r["PreviousRecipientTypeDetails"] = "None"
    if ctx.p("DisplayName"):
        r["DisplayName"] = ctx.p("DisplayName")
    _no_change_warning(ctx, before, r)
    return []


def _no_change_warning(ctx: Ctx, before: JSON, after: JSON) -> None:
    if before == after:
        ctx.warnings.append(f"The command completed successfully but no settings of '{after['Name']}' have been "
                            "modified.")
    else:
        store.changed(ctx.tenant)
        ctx.state.touch()


# --- MailUsers -------------------------------------------------------------------------------------------
@cmdlet("Get-MailUser", {"Identity": ID, **RESULT}, "MailUser")
def get_mail_user(ctx: Ctx) -> Lazy:
    return _list(ctx, ("MailUser",))


def _addr(value: str) -> str:
    return value.split(":", 1)[1] if value.lower().startswith("smtp:") else value


def _check_proxy_free(ctx: Ctx, address: str, own_guid: str | None) -> None:
    owner = store.owner_of_address(ctx.tenant, address)
    if owner is not None and owner != own_guid:
        other = recipients(ctx.tenant)[owner]
        raise CmdletError(PROXY_EXISTS, f"The proxy address \"SMTP:{address}\" is already being used by the proxy "
                                        f"addresses or LegacyExchangeDN of \"{other['Name']}\". Please choose "
                                        "another proxy address.")


def _check_address(address: str) -> None:
    local, at, domain = address.partition("@")
    if not at or not local or "." not in domain or " " in address:
        from .errors import DATA_VALIDATION
        raise CmdletError(DATA_VALIDATION, f"\"{address}\" isn't a valid SMTP address. The domain name can't "
                                           "contain spaces and it has to have a prefix and a suffix, such as "
                                           "example.com.")


@cmdlet("New-MailUser", {"Name": req("string"), "ExternalEmailAddress": req("string"),
                         "MicrosoftOnlineServicesID": S, "PrimarySmtpAddress": S, "FirstName": S, "LastName": S,
                         "DisplayName": S, "Alias": S, "Password": Param("secure")}, "MailUser")
def new_mail_user(ctx: Ctx) -> list[JSON]:
    t = ctx.tenant
    name = ctx.p("Name")
    if any(recipients(t)[g]["Name"].lower() == name.lower() for g in store.index(t).get(name.lower(), [])):
        raise name_in_use(name)
    external = _addr(ctx.p("ExternalEmailAddress"))
    _check_address(external)
    alias = ctx.p("Alias") or "".join(ch for ch in name if ch.isalnum() or ch in "._-") or "mailuser"
    upn = ctx.p("MicrosoftOnlineServicesID") or f"{alias}@{t.initial_domain}"
    _check_address(upn)
    if not t.owns_domain(upn.rsplit("@", 1)[1]):
        raise CmdletError(TASK, f"The domain '{upn.rsplit('@', 1)[1]}' of MicrosoftOnlineServicesID '{upn}' isn't an "
                                "accepted domain of this organization.")
    if t.user(upn) is not None:
        raise CmdletError(ALREADY_EXISTS, f"The user principal name \"{upn}\" is already being used.")
    # Without -PrimarySmtpAddress the external address becomes the primary (landscape §B.1 #15).
    primary = _addr(ctx.p("PrimarySmtpAddress") or external)
    _check_address(primary)
    addresses = [f"SMTP:{primary}"]
    delivery = f"{alias}@{t.initial_domain}"
    if delivery.lower() != primary.lower():
        addresses.append(f"smtp:{delivery}")
    for a in addresses:
        _check_proxy_free(ctx, _addr(a), None)
    uid = str(uuid.uuid4())
    display = ctx.p("DisplayName") or name
    t.col("users")[uid] = ctx.state.stamp({
        "id": uid, "userPrincipalName": upn, "displayName": display, "givenName": ctx.p("FirstName"),
        "surname": ctx.p("LastName"), "mail": primary, "mailNickname": alias, "accountEnabled": True,
        "usageLocation": None, "userType": "Member", "jobTitle": None, "assignedLicenses": [],
        "proxyAddresses": addresses, "_roles": [], "_account": False, "_mailbox": None, "_story": None,
    })
    r: JSON = {
        "Name": name, "Identity": name, "Alias": alias, "DisplayName": display,
        "Guid": store.new_recipient_guid(t, name), "RecipientTypeDetails": "MailUser", "RecipientType": "MailUser",
        "PrimarySmtpAddress": primary, "WindowsEmailAddress": primary, "UserPrincipalName": upn,
        "ExternalDirectoryObjectId": uid, "LegacyExchangeDN": store.legacy_dn(t, alias), "IsDirSynced": False,
        "HiddenFromAddressListsEnabled": False, "ExchangeGuid": ZERO_GUID, "ArchiveGuid": ZERO_GUID,
        "ArchiveStatus": "None", "ArchiveName": [], "MailboxLocations": [], "LitigationHoldEnabled": False,
        "DelayHoldApplied": False, "DelayReleaseHoldApplied": False, "ComplianceTagHoldApplied": False,
        "InPlaceHolds": [], "RecoverableItemsQuota": "30 GB (32,212,254,720 bytes)",
        "ExternalEmailAddress": f"SMTP:{external}", "EmailAddresses": addresses, "WhenCreated": ctx.now,
        "PreviousRecipientTypeDetails": "None", "_sizes": None, "_transientFailures": 0,
        "_auxArchiveAppearsDuringMove": False, "_beingMovedUntil": None,
    }
    r["ExchangeObjectId"] = r["Guid"]
    recipients(t)[r["Guid"]] = r
    store.reindex(t, r["Guid"], None)
    ctx.state.touch()
    return [recipient_out(ctx, r)]


def _normalise_proxy(value: str) -> str:
    if ":" not in value:
        return "smtp:" + value
    prefix, _, rest = value.partition(":")
    if prefix.lower() == "smtp":
        return ("SMTP:" if prefix == "SMTP" else "smtp:") + rest
    return prefix.upper() + ":" + rest if prefix.lower() == "x500" else value


@cmdlet("Set-MailUser", {"Identity": req("identity"), "ExchangeGuid": Param("guid"), "ArchiveGuid": Param("guid"),
                         "EmailAddresses": M, "PrimarySmtpAddress": S, "ExternalEmailAddress": S, "DisplayName": S,
                         "Name": S, "EnableLitigationHoldForMigration": SW}, "MailUser")
def set_mail_user(ctx: Ctx) -> list[JSON]:
    t = ctx.tenant
    r = store.resolve(t, ctx.p("Identity"), ("MailUser",))
    before = {k: (list(v) if isinstance(v, list) else v) for k, v in r.items()}
    for key in ("ExchangeGuid", "ArchiveGuid"):
        if ctx.given(key):
            value = ctx.p(key) or ZERO_GUID
            if value != ZERO_GUID:
                clash = [o for o in (recipients(t)[g] for g in store.index(t).get(value.lower(), []))
                         if o is not r and value in (o.get("ExchangeGuid"), o.get("ArchiveGuid"))]
                if clash:
                    raise CmdletError(TASK, f"The {key} '{value}' is already used by '{clash[0]['Name']}'.")
            r[key] = value
    if ctx.given("EmailAddresses"):
        mv: MultiValue = ctx.p("EmailAddresses")
        mv = MultiValue(None if mv.replace is None else [_normalise_proxy(v) for v in mv.replace],
                        [_normalise_proxy(v) for v in mv.add], [_normalise_proxy(v) for v in mv.remove])
        new = mv.apply(r["EmailAddresses"], lambda a, b: a.lower() == b.lower())
        for a in new:
            if a.lower().startswith("smtp:"):
                _check_address(a[5:])
                _check_proxy_free(ctx, a[5:], r["Guid"])
        primaries = [a for a in new if a.startswith("SMTP:")]
        if len(primaries) > 1:
            raise CmdletError(TASK, "Only one primary SMTP address (SMTP:) is allowed in EmailAddresses.")
        if not primaries:
            primaries = [f"SMTP:{r['PrimarySmtpAddress']}"]
            new = [a for a in new if a.lower() != primaries[0].lower()] + primaries
        r["EmailAddresses"] = new
        r["PrimarySmtpAddress"] = primaries[0][5:]
    if ctx.p("PrimarySmtpAddress"):
        primary = _addr(ctx.p("PrimarySmtpAddress"))
        _check_address(primary)
        _check_proxy_free(ctx, primary, r["Guid"])
        rest = [("smtp:" + a[5:]) if a.startswith("SMTP:") else a for a in r["EmailAddresses"]
                if a.lower() != f"smtp:{primary.lower()}"]
        r["EmailAddresses"] = [f"SMTP:{primary}", *rest]
        r["PrimarySmtpAddress"] = primary
        r["WindowsEmailAddress"] = primary
    if ctx.given("ExternalEmailAddress"):
        ext = ctx.p("ExternalEmailAddress")
        if ext:
            _check_address(_addr(ext))
        r["ExternalEmailAddress"] = f"SMTP:{_addr(ext)}" if ext else None
    for key in ("DisplayName", "Name"):
        if ctx.p(key):
            if key == "Name" and any(o is not r and o["Name"].lower() == ctx.p(key).lower()
                                     for o in recipients(t).values()):
                raise name_in_use(ctx.p(key))
            r[key] = ctx.p(key)
    if ctx.p("EnableLitigationHoldForMigration"):
        r["RecoverableItemsQuota"] = "100 GB (107,374,182,400 bytes)"
    if before == r:
        _no_change_warning(ctx, before, r)
    else:
        store.reindex(t, r["Guid"], before)
        ctx.state.touch()
    return []


@cmdlet("Remove-MailUser", {"Identity": req("identity")})
def remove_mail_user(ctx: Ctx) -> list[JSON]:
    r = store.resolve(ctx.tenant, ctx.p("Identity"), ("MailUser",))
    _delete_recipient_and_user(ctx, r)
    return []


# --- distribution groups -----------------------------------------------------------------------------------
@cmdlet("Get-DistributionGroup", {"Identity": ID, "RecipientTypeDetails": L, **RESULT}, "DistributionGroup")
def get_distribution_group(ctx: Ctx) -> Lazy:
    return _list(ctx, GROUP_TYPES)


@cmdlet("New-DistributionGroup", {"Name": req("string"), "Type": enum("Distribution", "Security"), "Alias": S,
                                  "DisplayName": S, "PrimarySmtpAddress": S, "Members": L, "ManagedBy": L,
                                  "Notes": S}, "DistributionGroup")
def new_distribution_group(ctx: Ctx) -> list[JSON]:
    t = ctx.tenant
    name = ctx.p("Name")
    if any(r["Name"].lower() == name.lower() for r in recipients(t).values()):
        raise name_in_use(name)
    alias = ctx.p("Alias") or "".join(ch for ch in name if ch.isalnum() or ch in "._-") or "group"
    primary = _addr(ctx.p("PrimarySmtpAddress") or f"{alias}@{t.initial_domain}")
    _check_address(primary)
    _check_proxy_free(ctx, primary, None)
    members = [_member_object_id(ctx, m) for m in (ctx.p("Members") or [])]
    gid = str(uuid.uuid4())
    security = (ctx.p("Type") or "Distribution") == "Security"
    group = ctx.state.stamp({
        "id": gid, "displayName": ctx.p("DisplayName") or name, "description": ctx.p("Notes"),
        "mailEnabled": True, "securityEnabled": security, "groupTypes": [], "mail": primary, "mailNickname": alias,
        "onPremisesSyncEnabled": None, "createdDateTime": graph_iso(ctx.now), "_members": members, "_story": None,
    })
    t.col("groups")[gid] = group
    r = store.add_group_recipient(t, group)
    r["Name"] = r["Identity"] = name
    r["WhenCreated"] = ctx.now
    store.changed(t)
    ctx.state.touch()
    return [recipient_out(ctx, r)]


@cmdlet("Remove-DistributionGroup", {"Identity": req("identity"), "BypassSecurityGroupManagerCheck": SW})
def remove_distribution_group(ctx: Ctx) -> list[JSON]:
    r = store.resolve(ctx.tenant, ctx.p("Identity"), GROUP_TYPES)
    recipients(ctx.tenant).pop(r["Guid"], None)
    ctx.tenant.col("groups").pop(r.get("ExternalDirectoryObjectId") or "", None)
    store.changed(ctx.tenant)
    ctx.state.touch()
    return []


def _group(ctx: Ctx) -> tuple[JSON, JSON]:
    r = store.resolve(ctx.tenant, ctx.p("Identity"), GROUP_TYPES)
    group = ctx.tenant.col("groups").get(r.get("ExternalDirectoryObjectId") or "")
    if group is None:
        raise not_found(ctx.p("Identity"))
    return r, group


def _member_object_id(ctx: Ctx, ident: str) -> str:
    try:
        return str(store.resolve(ctx.tenant, ident)["ExternalDirectoryObjectId"])
    except CmdletError:
        user = ctx.tenant.user(ident)
        if user is None:
            raise
        return str(user["id"])


@cmdlet("Get-DistributionGroupMember", {"Identity": req("identity"), **RESULT}, "ReducedRecipient")
def get_distribution_group_member(ctx: Ctx) -> list[JSON]:
    _r, group = _group(ctx)
    by_oid = {r.get("ExternalDirectoryObjectId"): r for r in recipients(ctx.tenant).values()}
    out: list[JSON] = []
    for oid in group.get("_members", []):
        r = by_oid.get(oid)
        if r is not None:
            out.append({k: r.get(k) for k in ("Name", "Identity", "DisplayName", "Alias", "PrimarySmtpAddress",
                                              "RecipientType", "RecipientTypeDetails", "ExternalDirectoryObjectId",
                                              "Guid")})
            continue
        u = ctx.tenant.col("users").get(oid)
        if u is not None:
            out.append({"Name": u.get("displayName"), "Identity": u.get("displayName"),
                        "DisplayName": u.get("displayName"), "Alias": u.get("mailNickname"),
                        "PrimarySmtpAddress": None, "RecipientType": "User", "RecipientTypeDetails": "User",
                        "ExternalDirectoryObjectId": oid, "Guid": oid})
    return result_size(ctx, out)


@cmdlet("Add-DistributionGroupMember", {"Identity": req("identity"), "Member": req("identity"),
                                        "BypassSecurityGroupManagerCheck": SW})
def add_distribution_group_member(ctx: Ctx) -> list[JSON]:
    r, group = _group(ctx)
    oid = _member_object_id(ctx, ctx.p("Member"))
    if oid in group["_members"]:
        raise CmdletError("Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException",
                          f"The recipient \"{ctx.p('Member')}\" is already a member of the group \"{r['Name']}\".")
    group["_members"].append(oid)
    ctx.state.touch()
    return []


@cmdlet("Remove-DistributionGroupMember", {"Identity": req("identity"), "Member": req("identity"),
                                           "BypassSecurityGroupManagerCheck": SW})
def remove_distribution_group_member(ctx: Ctx) -> list[JSON]:
    r, group = _group(ctx)
    oid = _member_object_id(ctx, ctx.p("Member"))
    if oid not in group["_members"]:
        raise CmdletError("Microsoft.Exchange.Management.Tasks.MemberNotFoundException",
                          f"Couldn't find object \"{ctx.p('Member')}\". Please make sure that it was spelled "
                          f"correctly or specify a different object. The recipient isn't a member of \"{r['Name']}\".")
    group["_members"].remove(oid)
    ctx.state.touch()
    return []

"""Exchange objects of each tenant, built from the scenario on first touch, and identity resolution.

Collections (in the tenant, saved with the state):
  exchange.org             {"config": organization config}
  exchange.recipients      Guid -> recipient (mailboxes, MailUsers, mail-enabled groups) in Get-Recipient shape
  exchange.orgRelationships, exchange.endpoints, exchange.batches, exchange.migrationUsers   Guid -> object

A recipient is linked to its Entra object by ExternalDirectoryObjectId = the Graph user/group id, so group
membership and licences are read live from the directory (what Graph writes, Exchange sees).  Private keys:
`_sizes` (bytes and item counts), `_auxArchives`, and the scenario's planted behaviours (`_transientFailures`,
`_auxArchiveAppearsDuringMove`, `_beingMovedUntil`).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable

from ..catalog import CROSS_TENANT_MIGRATION_SKU_ID, stable_id
from ..state import JSON, SandboxState, Tenant
from .errors import ambiguous, not_found

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
DEFAULT_QUOTA = 30 * (1 << 30)
MB = 1 << 20
LICENSE_CAPABILITY = "ExchangeT2TMbxMove"
MAILBOX_TYPES = ("UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox")
RECIPIENT_TYPE = {"UserMailbox": "UserMailbox", "SharedMailbox": "UserMailbox", "RoomMailbox": "UserMailbox",
                  "EquipmentMailbox": "UserMailbox", "MailUser": "MailUser",
                  "MailUniversalSecurityGroup": "MailUniversalSecurityGroup",
                  "MailUniversalDistributionGroup": "MailUniversalDistributionGroup"}

_versions: weakref.WeakKeyDictionary[Tenant, int] = weakref.WeakKeyDictionary()


def recipients(t: Tenant) -> dict[str, JSON]:
    return t.col("exchange.recipients")


def changed(t: Tenant) -> None:
    """Call after any change to a tenant's recipients (invalidates the identity index)."""
    _versions[t] = _versions.get(t, 0) + 1


def legacy_dn(t: Tenant, alias: str) -> str:
    h = hashlib.md5((t.id + alias).encode(), usedforsecurity=False).hexdigest()
    return ("/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
            f"cn={h}-{alias[:8]}")


def smtp_addresses(r: JSON) -> list[str]:
    return [a.split(":", 1)[1] for a in r.get("EmailAddresses", []) if a.lower().startswith("smtp:")]


def has_license(state: SandboxState, t: Tenant, r: JSON) -> bool:
    user = t.col("users").get(r.get("ExternalDirectoryObjectId") or "")
    return user is not None and any(a.get("skuId") == CROSS_TENANT_MIGRATION_SKU_ID
                              for a in user.get("assignedLicenses", []))


# --- building from the scenario ----------------------------------------------------------------------------
def ensure(state: SandboxState) -> None:
    pending = [t for t in state.tenants.values() if "config" not in t.col("exchange.org")]
    if not pending:
        return
    later: list[tuple[Tenant, JSON, JSON]] = []
    for t in pending:
        seed = t.exchange_seed or {}
        t.col("exchange.org")["config"] = {
            "Name": t.initial_domain.split(".")[0], "DisplayName": t.display_name, "Identity": t.initial_domain,
            "Guid": stable_id(t.id, "exchange-org"), "IsDehydrated": bool(seed.get("isDehydrated", False)),
            "MigrationLimits": {"MaxConcurrentMigrations": int(seed.get("maxConcurrentMigrations", 300))},
        }
        for user in t.col("users").values():
            mbx = user.get("_mailbox")
            if not isinstance(mbx, dict):
                continue
            if mbx.get("prepareFrom"):
                later.append((t, user, mbx))
            else:
                _add_recipient(state, t, user, mbx, None)
        for group in t.col("groups").values():
            if group.get("mailEnabled") and "Unified" not in group.get("groupTypes", []):
                add_group_recipient(t, group)
        changed(t)
    by_address: dict[str, tuple[Tenant, JSON]] = {}
    for t in state.tenants.values():
        for r in recipients(t).values():
            for a in [*smtp_addresses(r), str(r.get("UserPrincipalName") or "")]:
                by_address.setdefault(a.lower(), (t, r))
    for t, user, mbx in later:
        src = by_address.get(str(mbx["prepareFrom"]).lower())
        _add_recipient(state, t, user, mbx, src)
        changed(t)
    for t in pending:
        for i, row in enumerate((t.exchange_seed or {}).get("organizationRelationships", [])):
            name = str(row.get("Name") or f"Organization relationship {i + 1}")
            rid = stable_id(t.id, "orgrel", name)
            t.col("exchange.orgRelationships")[rid] = {
                "Name": name, "Identity": name, "Guid": rid,
                "DomainNames": list(row.get("DomainNames", [])), "Enabled": bool(row.get("Enabled", True)),
                "MailboxMoveEnabled": bool(row.get("MailboxMoveEnabled", False)),
                "MailboxMoveCapability": row.get("MailboxMoveCapability", "None"),
                "OAuthApplicationId": row.get("OAuthApplicationId"),
                "MailboxMovePublishedScopes": list(row.get("MailboxMovePublishedScopes", [])),
                "FreeBusyAccessEnabled": False, "WhenCreated": state.clock.now(),
            }
        _seed_migration_objects(state, t)
    state.touch()


def _seed_migration_objects(state: SandboxState, t: Tenant) -> None:
    """Endpoints and (never started) batches left in the tenant by an earlier attempt."""
    seed = t.exchange_seed or {}
    by_name: dict[str, str] = {}
    for i, row in enumerate(seed.get("migrationEndpoints", [])):
        name = str(row.get("Name") or f"Endpoint {i + 1}")
        row = {**row, "Name": name}
        gid = stable_id(t.id, "endpoint", name.lower())
        by_name[name.lower()] = gid
        t.col("exchange.endpoints")[gid] = {
            "Identity": row["Name"], "Name": row["Name"], "Guid": gid, "EndpointType": "ExchangeRemoteMove",
            "RemoteServer": row.get("RemoteServer"), "RemoteTenant": row.get("RemoteTenant"),
            "ApplicationId": row.get("ApplicationId"), "AppSecretKeyVaultUrl": row.get("AppSecretKeyVaultUrl"),
            "IsRemote": True, "MaxConcurrentMigrations": int(row.get("MaxConcurrentMigrations", 100)),
            "MaxConcurrentIncrementalSyncs": 20, "Username": row.get("ApplicationId"), "UseAutoDiscover": False,
            "LastModifiedTime": None, "_credentialHash": "0" * 64}
    for i, row in enumerate(seed.get("migrationBatches", [])):
        ep = by_name.get(str(row.get("SourceEndpoint", "")).lower())
        if ep is None:  # a batch needs an endpoint of the same scenario; without one it is left out
            continue
        row = {**row, "Name": str(row.get("Name") or f"Batch {i + 1}")}
        gid = stable_id(t.id, "batch", str(row["Name"]).lower())
        batch: JSON = {"Identity": row["Name"], "Guid": gid, "SourceEndpoint": row["SourceEndpoint"], "_endpoint": ep,
                       "TargetDeliveryDomain": row.get("TargetDeliveryDomain"), "_created": state.clock.now() - 86400 * 30,
                       "_state": "created", "_autoComplete": False, "_completeAfter": None, "_startAfter": None,
                       "NotificationEmails": [], "SubmittedByUser": None, "_users": []}
        for addr in row.get("users", []):
            ug = stable_id(gid, "user", str(addr).lower())
            t.col("exchange.migrationUsers")[ug] = {"Identity": addr, "Guid": ug, "_batch": gid, "_phase": "created",
                                                    "_phaseStart": batch["_created"], "_report": []}
            batch["_users"].append(ug)
        t.col("exchange.batches")[gid] = batch


def _add_recipient(state: SandboxState, t: Tenant, user: JSON, mbx: JSON,
                   src: tuple[Tenant, JSON] | None) -> JSON:
    upn = user["userPrincipalName"]
    alias = user.get("mailNickname") or upn.split("@")[0]
    rtd = mbx.get("recipientTypeDetails", "UserMailbox")
    primary = mbx.get("primarySmtpAddress") or user.get("mail") or upn
    addresses = [f"SMTP:{primary}"]
    if not primary.lower().endswith("@" + t.initial_domain.lower()):
        addresses.append(f"smtp:{alias}@{t.initial_domain}")
    addresses += [a for a in mbx.get("emailAddresses", [])]
    omit = set(mbx.get("omit", []))
    r: JSON = {
        "Name": user.get("displayName") or alias, "Alias": alias, "DisplayName": user.get("displayName") or alias,
        "Guid": stable_id(t.id, "recipient", upn.lower()), "RecipientTypeDetails": rtd,
        "RecipientType": RECIPIENT_TYPE.get(rtd, rtd), "PrimarySmtpAddress": primary,
        "WindowsEmailAddress": primary, "UserPrincipalName": upn, "ExternalDirectoryObjectId": user["id"],
        "LegacyExchangeDN": legacy_dn(t, alias), "IsDirSynced": False, "HiddenFromAddressListsEnabled": False,
        "ExchangeGuid": mbx.get("exchangeGuid") or stable_id(t.id, "exchangeGuid", upn.lower()),
        "ArchiveGuid": ZERO_GUID, "ArchiveStatus": "None", "ArchiveName": [], "MailboxLocations": [],
        "LitigationHoldEnabled": bool(mbx.get("litigationHold", False)),
        "DelayHoldApplied": bool(mbx.get("delayHold", False)),
        "DelayReleaseHoldApplied": bool(mbx.get("delayReleaseHold", False)),
        "ComplianceTagHoldApplied": bool(mbx.get("complianceTagHold", False)),
        "InPlaceHolds": list(mbx.get("inPlaceHolds", [])), "RecoverableItemsQuota": "30 GB (32,212,254,720 bytes)",
        "ExternalEmailAddress": mbx.get("externalEmailAddress"), "WhenCreated": state.clock.now() - 400 * 86400,
        "_sizes": {"primary": int(float(mbx.get("sizeMB", 500)) * MB), "items": int(mbx.get("items", 4000)),
                   "archive": int(float(mbx.get("archiveSizeMB", 0)) * MB),
                   "archiveItems": int(mbx.get("archiveItems", 0)),
                   "deleted": int(float(mbx.get("deletedMB", 20)) * MB),
                   "substrateHolds": int(mbx.get("substrateHoldsItems", 0))},
        "_transientFailures": int(mbx.get("transientFailures", 0)),
        "_auxArchiveAppearsDuringMove": bool(mbx.get("auxArchiveAppearsDuringMove", False)),
        "_beingMovedUntil": (state.clock.now() + float(mbx["alreadyBeingMovedHours"]) * 3600
                             if mbx.get("alreadyBeingMovedHours") else None),
        "PreviousRecipientTypeDetails": mbx.get("previousRecipientTypeDetails", "None"),
    }
    if mbx.get("archive") or mbx.get("archiveGuid") or mbx.get("archiveSizeMB"):
        set_archive(t, r, mbx.get("archiveGuid") or stable_id(t.id, "archiveGuid", upn.lower()),
                    int(mbx.get("auxArchives", 0)))
    if rtd == "MailUser":
        r["_sizes"] = None
        if src is not None:
            s = src[1]
            if "exchangeGuid" not in omit:
                r["ExchangeGuid"] = s["ExchangeGuid"]
            if s["ArchiveGuid"] != ZERO_GUID and "archiveGuid" not in omit:
                r["ArchiveGuid"] = s["ArchiveGuid"]
            if "x500" not in omit:
                r["EmailAddresses"] = addresses + [f"X500:{s['LegacyExchangeDN']}"] + \
                    [a for a in s.get("EmailAddresses", []) if a.lower().startswith("x500:")]
            else:
                r["EmailAddresses"] = addresses
            if "deliveryDomainProxy" in omit:
                r["EmailAddresses"] = [a for a in r["EmailAddresses"]
                                       if not a.lower().endswith("@" + t.initial_domain.lower())]
            r["ExternalEmailAddress"] = f"SMTP:{s['PrimarySmtpAddress']}"
        if "exchangeGuid" in omit or src is None and not mbx.get("exchangeGuid"):
            r["ExchangeGuid"] = ZERO_GUID
        r.setdefault("EmailAddresses", addresses)
    else:
        r["EmailAddresses"] = addresses
    r.setdefault("EmailAddresses", addresses)
    r["Identity"] = r["Name"]
    r["ExchangeObjectId"] = r["Guid"]
    recipients(t)[r["Guid"]] = r
    return r


def set_archive(t: Tenant, r: JSON, archive_guid: str, aux: int) -> None:
    r["ArchiveGuid"] = archive_guid
    r["ArchiveStatus"] = "Active"
    r["ArchiveName"] = [f"In-Place Archive - {r['DisplayName']}"]
    r["MailboxLocations"] = [f"1;{r['ExchangeGuid']};Primary;{t.initial_domain};NAMPR01DG001",
                             f"1;{archive_guid};MainArchive;{t.initial_domain};NAMPR01DG002"]
    for i in range(aux):
        r["MailboxLocations"].append(f"1;{stable_id(archive_guid, 'aux', str(i))};AuxArchive;{t.initial_domain};"
                                     f"NAMPR01DG{3 + i:03d}")


def aux_archive_count(r: JSON) -> int:
    return sum(1 for loc in r.get("MailboxLocations", []) if "auxarchive" in loc.lower())


def add_group_recipient(t: Tenant, group: JSON) -> JSON:
    security = bool(group.get("securityEnabled"))
    rtd = "MailUniversalSecurityGroup" if security else "MailUniversalDistributionGroup"
    alias = group.get("mailNickname") or group["displayName"].replace(" ", "")
    primary = group.get("mail") or f"{alias}@{t.initial_domain}"
    r: JSON = {
        "Name": group["displayName"], "Identity": group["displayName"], "DisplayName": group["displayName"],
        "Alias": alias, "Guid": stable_id(t.id, "recipient-group", group["id"]), "RecipientTypeDetails": rtd,
        "RecipientType": rtd, "GroupType": "Universal, SecurityEnabled" if security else "Universal",
        "PrimarySmtpAddress": primary, "EmailAddresses": [f"SMTP:{primary}"],
        "ExternalDirectoryObjectId": group["id"], "LegacyExchangeDN": legacy_dn(t, alias), "IsDirSynced": False,
        "ManagedBy": [], "MemberJoinRestriction": "Closed", "MemberDepartRestriction": "Closed",
        "WhenCreated": 1705309200.0,
    }
    r["ExchangeObjectId"] = r["Guid"]
    recipients(t)[r["Guid"]] = r
    return r


# --- identity resolution -----------------------------------------------------------------------------------
_index_cache: weakref.WeakKeyDictionary[Tenant, tuple[int, dict[str, list[str]]]] = weakref.WeakKeyDictionary()


def index(t: Tenant) -> dict[str, list[str]]:
    """lower-cased identity value -> recipient Guids (Name, Alias, addresses, UPN, GUIDs, DNs)."""
    v = _versions.get(t, 0)
    cached = _index_cache.get(t)
    if cached is not None and cached[0] == v:
        return cached[1]
    idx: dict[str, list[str]] = {}
    for g, r in recipients(t).items():
        for k in _keys(g, r):
            idx.setdefault(k, []).append(g)
    _index_cache[t] = (v, idx)
    return idx


def _keys(g: str, r: JSON) -> set[str]:
    keys = {r.get("Name"), r.get("Alias"), r.get("DisplayName"), r.get("UserPrincipalName"), g,
            r.get("ExternalDirectoryObjectId"), r.get("LegacyExchangeDN"), r.get("PrimarySmtpAddress")}
    if r.get("ExchangeGuid") not in (None, ZERO_GUID):
        keys.add(r["ExchangeGuid"])
    if r.get("ArchiveGuid") not in (None, ZERO_GUID):
        keys.add(r["ArchiveGuid"])
    keys.update(smtp_addresses(r))
    return {str(k).lower() for k in keys if k}


def reindex(t: Tenant, guid: str, before: JSON | None) -> None:
    """One recipient created (`before` None) or changed: update the identity index in place instead of
    `changed(t)`, whose full rebuild on the next lookup makes a run of thousands of writes quadratic."""
    _dirty.setdefault(t, set()).add(guid)  # for reconcile_licenses
    cached = _index_cache.get(t)
    if cached is None or cached[0] != _versions.get(t, 0):
        changed(t)  # no current index: the next lookup builds one
        return
    idx = cached[1]
    if before is not None:
        for k in _keys(guid, before):
            guids = idx.get(k)
            if guids and guid in guids:
                guids.remove(guid)
                if not guids:
                    del idx[k]
    r = recipients(t).get(guid)
    if r is not None:
        for k in _keys(guid, r):
            idx.setdefault(k, []).append(guid)


def owner_of_address(t: Tenant, address: str) -> str | None:
    """The Guid of the recipient that has this SMTP proxy, if any."""
    for g in index(t).get(address.lower(), []):
        if address.lower() in (a.lower() for a in smtp_addresses(recipients(t)[g])):
            return g
    return None


def resolve(t: Tenant, identity: str, types: tuple[str, ...] | None = None, *,
            what: str | None = None) -> JSON:
    """One recipient by identity, restricted to RecipientTypeDetails in `types`; Exchange's errors otherwise."""
    guids = index(t).get(identity.strip().lower(), [])
    found = [recipients(t)[g] for g in dict.fromkeys(guids)]
    if types is not None:
        found = [r for r in found if r["RecipientTypeDetails"] in types]
    if not found:
        raise not_found(what or identity)
    if len(found) > 1:
        raise ambiguous(identity)
    return found[0]


def member_ids(t: Tenant, group_id: str, seen: set[str] | None = None) -> set[str]:
    """Entra object ids of a group's members, transitively (nested groups are 'supported', reference §2.1)."""
    seen = seen if seen is not None else set()
    out: set[str] = set()
    group = t.col("groups").get(group_id)
    if group is None or group_id in seen:
        return out
    seen.add(group_id)
    for m in group.get("_members", []):
        if m in t.col("groups"):
            out |= member_ids(t, m, seen)
        else:
            out.add(m)
    return out


def persisted_capabilities(state: SandboxState, t: Tenant, r: JSON) -> list[str]:
    caps = ["BPOS_S_Standard"] if r["RecipientTypeDetails"] in MAILBOX_TYPES else []
    if has_license(state, t, r):
        caps.append(LICENSE_CAPABILITY)
    return caps


def new_recipient_guid(t: Tenant, name: str) -> str:
    base = stable_id(t.id, "recipient", name.lower())
    n = 0
    g = base
    while g in recipients(t):
        n += 1
        g = stable_id(t.id, "recipient", name.lower(), str(n))
    return g


def has_exchange_plan(t: Tenant, user: JSON) -> bool:
    """Does one of the user's licences carry an Exchange Online mailbox plan (EXCHANGE_S_*)?"""
    skus = t.col("subscribedSkus")
    for a in user.get("assignedLicenses", []):
        sku = skus.get(a.get("skuId") or "")
        disabled = set(a.get("disabledPlans") or [])
        for plan in (sku or {}).get("servicePlans", []):
            if str(plan.get("servicePlanName", "")).upper().startswith("EXCHANGE_S_") and \
                    plan.get("servicePlanId") not in disabled:
                return True
    return False


_reconciled: weakref.WeakKeyDictionary[SandboxState, int] = weakref.WeakKeyDictionary()
_settled: weakref.WeakKeyDictionary[SandboxState, int] = weakref.WeakKeyDictionary()
_walked: weakref.WeakKeyDictionary[Tenant, int] = weakref.WeakKeyDictionary()  # identity-index version walked
_dirty: weakref.WeakKeyDictionary[Tenant, set[str]] = weakref.WeakKeyDictionary()  # written one by one since


def settled(state: SandboxState) -> None:
    """Call after an Exchange cmdlet has run: every change so far was made by Exchange, whose recipient writes
    are tracked (`reindex`, `changed`).  Any other write (Graph's licences, a test writing the state) moves
    `state.changes` past this mark."""
    _settled[state] = state.changes


def reconcile_licenses(state: SandboxState) -> None:
    """What Exchange does when Entra licences change (reference §2.6, landscape §B.1 #8): an Exchange licence on
    a MailUser without an ExchangeGuid provisions a new, empty mailbox (which later collides with the move: 'already
    has a primary mailbox'); on a MailUser with an ExchangeGuid it scrubs SMTP proxies of non-accepted domains.

    Every recipient is looked at after a write from outside Exchange (`settled`) or a wholesale change of the
    tenant's recipients (`changed`); after Exchange's own writes of single recipients (`reindex`), only those.
    Walking every recipient after every write made each request cost more as the tenant grew."""
    if _reconciled.get(state) == state.changes:
        return  # nothing was written since the last look (state.changes moves on every write)
    outside = _settled.get(state) != state.changes
    for t in state.tenants.values():
        dirty = _dirty.pop(t, set())
        rs = recipients(t)
        everyone = outside or _walked.get(t) != _versions.get(t, 0)
        if _reconcile(t, rs.values() if everyone else [rs[g] for g in dirty if g in rs]):
            changed(t)
            state.touch()
        _walked[t] = _versions.get(t, 0)
    if not outside:
        settled(state)  # its own writes are tracked (`changed`)
    _reconciled[state] = state.changes


def _reconcile(t: Tenant, rs: Iterable[JSON]) -> bool:
    """Apply the licence rules to these recipients; whether any changed."""
    users = t.col("users")
    touched = False
    for r in rs:
        if r.get("RecipientTypeDetails") != "MailUser" or r.get("_migratedTo"):
            continue
        user = users.get(r.get("ExternalDirectoryObjectId") or "")
        if user is None or not has_exchange_plan(t, user):
            continue
        if r.get("ExchangeGuid") in (None, ZERO_GUID):
            r.update({"RecipientTypeDetails": "UserMailbox", "RecipientType": "UserMailbox",
                      "ExchangeGuid": stable_id(t.id, "provisioned", r["Guid"]), "ExternalEmailAddress": None,
                      "_sizes": {"primary": 0, "items": 0, "archive": 0, "archiveItems": 0, "deleted": 0,
                                 "substrateHolds": 0}})
            touched = True
        else:
            kept = [a for a in r.get("EmailAddresses", []) if not a.lower().startswith("smtp:")
                    or t.owns_domain(a.rsplit("@", 1)[-1])]
            if kept != r.get("EmailAddresses"):
                r["EmailAddresses"] = kept
                touched = True
    return touched

"""Organization relationships (reference §2.3 item 3, §2.4, §1.2 step 12, §1.3) and the checks the move
service makes on them (reference §1.4 Verify-OrganizationRelationship, §2.9)."""

from __future__ import annotations

from ..state import JSON, SandboxState, Tenant, public
from . import store
from .cmdlets import Ctx, cmdlet
from .errors import TASK, CmdletError, MoveFailure, name_in_use, not_found
from .params import ID, SW, B, M, MultiValue, Param, S, req
from .recipients import require_hydrated
from .wire import iso

CAPABILITIES = ("None", "Inbound", "Outbound", "RemoteInbound", "RemoteOutbound")
CAP = Param("enumset", False, CAPABILITIES)
SPEC = {"DomainNames": M, "Enabled": B, "MailboxMoveEnabled": B, "MailboxMoveCapability": CAP,
        "OAuthApplicationId": S, "MailboxMovePublishedScopes": M, "FreeBusyAccessEnabled": B,
        "FreeBusyAccessLevel": S, "TargetApplicationUri": S, "TargetAutodiscoverEpr": S}


def relationships(t: Tenant) -> dict[str, JSON]:
    return t.col("exchange.orgRelationships")


def capabilities(rel: JSON) -> set[str]:
    return {c.strip().lower() for c in str(rel.get("MailboxMoveCapability") or "").split(",") if c.strip()}


def rel_out(rel: JSON) -> JSON:
    out = public(rel)
    out["WhenCreated"] = iso(rel.get("WhenCreated"))
    return out


def find(t: Tenant, identity: str) -> JSON:
    low = identity.lower()
    for rel in relationships(t).values():
        if low in (rel["Name"].lower(), rel["Guid"].lower()):
            return rel
    raise not_found(identity)


def _caps_text(values: list[str]) -> str:
    vals = [v for v in dict.fromkeys(values) if v != "None"]
    return ", ".join(vals) if vals else "None"


def _apply(ctx: Ctx, rel: JSON, creating: bool) -> None:
    t = ctx.tenant
    if ctx.given("DomainNames"):
        mv: MultiValue = ctx.p("DomainNames")
        domains = mv.apply(rel.get("DomainNames", []))
        if not domains:
            raise CmdletError(TASK, "The DomainNames parameter can't be empty.")
        if len(domains) > 238:
            raise CmdletError(TASK, "You can't specify more than 238 domains in one request.")
        for other in relationships(t).values():
            if other is rel:
                continue
            clash = {d.lower() for d in other["DomainNames"]} & {d.lower() for d in domains}
            if clash:
                raise CmdletError(TASK, f"The domain '{sorted(clash)[0]}' is already used by the organization "
                                        f"relationship '{other['Name']}'.")
        rel["DomainNames"] = domains
    for key in ("Enabled", "MailboxMoveEnabled", "FreeBusyAccessEnabled"):
        if ctx.given(key):
            rel[key] = bool(ctx.p(key))
    if ctx.given("MailboxMoveCapability"):
        rel["MailboxMoveCapability"] = _caps_text(ctx.p("MailboxMoveCapability") or ["None"])
    if ctx.given("OAuthApplicationId"):
        rel["OAuthApplicationId"] = ctx.p("OAuthApplicationId")
    if ctx.given("MailboxMovePublishedScopes"):
        mv = ctx.p("MailboxMovePublishedScopes")
        wanted = mv.apply(rel.get("MailboxMovePublishedScopes", []))
        if len(wanted) > 1:
            raise CmdletError(TASK, f"The given count of areas ({len(wanted)}) exceeds the allowed limit of 1")
        kept: list[str] = []
        for scope in wanted:
            try:
                group = store.resolve(t, scope, ("MailUniversalSecurityGroup", "MailUniversalDistributionGroup"))
            except CmdletError:
                group = None
            if group is None or group["RecipientTypeDetails"] != "MailUniversalSecurityGroup":
                ctx.warnings.append(f"Access scope specified '{scope}' is not a security group. This scope will not "
                                    "be added to the organization relationship.")
                continue
            kept.append(group["Name"])
        rel["MailboxMovePublishedScopes"] = kept


@cmdlet("Get-OrganizationRelationship", {"Identity": ID}, "OrganizationRelationship")
def get_organization_relationship(ctx: Ctx) -> list[JSON]:
    if ctx.p("Identity"):
        return [rel_out(find(ctx.tenant, ctx.p("Identity")))]
    return [rel_out(r) for r in relationships(ctx.tenant).values()]


@cmdlet("New-OrganizationRelationship", {"Name": req("string"), "DomainNames": Param("multi", True), **{
    k: v for k, v in SPEC.items() if k != "DomainNames"}}, "OrganizationRelationship", org_management=True)
def new_organization_relationship(ctx: Ctx) -> list[JSON]:
    require_hydrated(ctx)
    name = ctx.p("Name")
    if len(name) > 64:
        raise CmdletError(TASK, f"The length of the property is too long. The maximum length is 64 and the length "
                                f"of the value provided is {len(name)}.")
    if any(r["Name"].lower() == name.lower() for r in relationships(ctx.tenant).values()):
        raise name_in_use(name)
    from ..catalog import stable_id
    rid = stable_id(ctx.tenant.id, "orgrel", name.lower(), str(ctx.now))
    rel: JSON = {"Name": name, "Identity": name, "Guid": rid, "DomainNames": [], "Enabled": True,
                 "MailboxMoveEnabled": False, "MailboxMoveCapability": "None", "OAuthApplicationId": None,
                 "MailboxMovePublishedScopes": [], "FreeBusyAccessEnabled": False, "WhenCreated": ctx.now}
    _apply(ctx, rel, True)
    if ctx.p("WhatIf"):
        return []
    relationships(ctx.tenant)[rid] = rel
    ctx.state.touch()
    return [rel_out(rel)]


@cmdlet("Set-OrganizationRelationship", {"Identity": req("identity"), "Name": S, **SPEC},
        "OrganizationRelationship", org_management=True)
def set_organization_relationship(ctx: Ctx) -> list[JSON]:
    require_hydrated(ctx)
    rel = find(ctx.tenant, ctx.p("Identity"))
    before = {k: (list(v) if isinstance(v, list) else v) for k, v in rel.items()}
    _apply(ctx, rel, False)
    if ctx.p("Name") and ctx.p("Name") != rel["Name"]:
        if any(r is not rel and r["Name"].lower() == ctx.p("Name").lower() for r in relationships(ctx.tenant).values()):
            raise name_in_use(ctx.p("Name"))
        rel["Name"] = rel["Identity"] = ctx.p("Name")
    if before == rel:
        ctx.warnings.append(f"The command completed successfully but no settings of '{rel['Name']}' have been "
                            "modified.")
    ctx.state.touch()
    return []


@cmdlet("Remove-OrganizationRelationship", {"Identity": req("identity"), "Force": SW})
def remove_organization_relationship(ctx: Ctx) -> list[JSON]:
    rel = find(ctx.tenant, ctx.p("Identity"))
    del relationships(ctx.tenant)[rel["Guid"]]
    ctx.state.touch()
    return []


# --- checks the move service makes -------------------------------------------------------------------------
def _with_partner(t: Tenant, partner_id: str) -> list[JSON]:
    return [r for r in relationships(t).values() if partner_id.lower() in (d.lower() for d in r["DomainNames"])]


def target_problem(target: Tenant, source: Tenant) -> MoveFailure | None:
    """The target must authorize 'pull' moves: Inbound, MailboxMoveEnabled, the source GUID in DomainNames."""
    ok = any(r["Enabled"] and r["MailboxMoveEnabled"] and "inbound" in capabilities(r)
             for r in _with_partner(target, source.id))
    if ok:
        return None
    return MoveFailure("MigrationPermanentException",
                       "Your organization does not authorize 'pull' or Inbound moves from the remote organization "
                       f"'{source.id}'. The organization relationship whose DomainNames contain the source tenant "
                       "ID needs Enabled, MailboxMoveEnabled and MailboxMoveCapability Inbound.", "Target")


def source_relationship(source: Tenant, target: Tenant, app_id: str) -> JSON | None:
    for r in _with_partner(source, target.id):
        if (r["Enabled"] and r["MailboxMoveEnabled"] and "remoteoutbound" in capabilities(r)
                and str(r.get("OAuthApplicationId") or "").lower() == app_id.lower()):
            return r
    return None


def source_problem(source: Tenant, target: Tenant, app_id: str) -> MoveFailure | None:
    """The source must publish 'push' moves to the target's app: RemoteOutbound and OAuthApplicationId."""
    if source_relationship(source, target, app_id) is not None:
        return None
    return MoveFailure("MigrationPermanentException",
                       "The remote organization does not authorize 'push' or RemoteOutbound moves to your "
                       f"organization '{target.id}' for application '{app_id}'. The source organization relationship "
                       "needs Enabled, MailboxMoveEnabled, MailboxMoveCapability RemoteOutbound and "
                       "OAuthApplicationId set to the migration application.", "Source")


def in_scope(state: SandboxState, source: Tenant, rel: JSON, mailbox: JSON,
             cache: dict[str, set[str]] | None = None) -> bool:
    """Is the mailbox's user a (transitive) member of a group in MailboxMovePublishedScopes?"""
    oid = mailbox.get("ExternalDirectoryObjectId")
    cache = {} if cache is None else cache
    for scope in rel.get("MailboxMovePublishedScopes", []):
        try:
            group = store.resolve(source, scope, ("MailUniversalSecurityGroup",))
        except CmdletError:
            continue
        gid = str(group.get("ExternalDirectoryObjectId"))
        if gid not in cache:
            cache[gid] = store.member_ids(source, gid)
        if oid in cache[gid]:
            return True
    return False

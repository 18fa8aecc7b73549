"""The prerequisites checklist: an honest answer to "can we do this, and what is missing?".

`evaluate()` is pure: it takes what was read from both tenants (`TenantFacts`) and returns the checks, each
with a status, an explanation in plain words and the fix.  Reading the facts is `gather_facts` (async, over
the cloud clients).  Where the rules come from: reference §2.1 (licensing, roles, tenant id), §2.3
(dehydration), §2.7 (target delivery domain), §5 (Key Vault path), landscape §B.1 rows 2, 16, 19.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
APPLICATION_ADMIN = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
CLOUD_APPLICATION_ADMIN = "158c047a-c907-4556-b7ef-446551a6b5f7"
PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"

ROLE_NAMES = {
    GLOBAL_ADMIN: "Global Administrator", EXCHANGE_ADMIN: "Exchange Administrator",
    APPLICATION_ADMIN: "Application Administrator", CLOUD_APPLICATION_ADMIN: "Cloud Application Administrator",
    PRIVILEGED_ROLE_ADMIN: "Privileged Role Administrator",
}


class Status(Enum):
    OK = "ok"
    WARNING = "warning"    # the move can go on; something to know or decide
    ACTION = "action"      # xtwizard will fix it in a later step, after showing its plan
    BLOCKER = "blocker"    # the move cannot go on until the admin fixes it


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: Status
    explanation: str
    fix: str = ""


@dataclass
class TenantFacts:
    """What was read from one tenant (both slots use the same shape)."""

    tenant_id: str
    display_name: str
    initial_domain: str
    verified_domains: list[str]
    admin_upn: str
    admin_role_ids: set[str]
    is_dehydrated: bool | None = None            # None: Exchange could not be read
    accepted_domains: list[str] = field(default_factory=list)
    migration_license_units: int | None = None   # available Cross Tenant User Data Migration units
    migration_license_total: int = 0
    subscriptions_with_rights: list[str] = field(default_factory=list)  # names where the admin can create a vault
    existing_apps: list[str] = field(default_factory=list)               # migration-looking apps (names)
    existing_relationships: list[str] = field(default_factory=list)      # org relationships naming the partner
    existing_endpoints: list[str] = field(default_factory=list)          # ExchangeRemoteMove endpoints
    exchange_error: str | None = None


def _roles(f: TenantFacts) -> str:
    names = [ROLE_NAMES[r] for r in f.admin_role_ids if r in ROLE_NAMES]
    return ", ".join(sorted(names)) or "no administrator role"


def _role_check(slot: str, f: TenantFacts, needs: list[tuple[set[str], str]], fix: str) -> Check:
    """One check per side: which of the side's tasks the signed-in admin's roles do not cover."""
    missing = [what for roles, what in needs if not roles & f.admin_role_ids]
    explanation = f"{f.admin_upn} has: {_roles(f)}."
    if missing:
        explanation += " Missing the rights to " + "; and to ".join(missing) + "."
    return Check(f"{slot}-admin-roles", f"{slot.capitalize()} admin {f.admin_upn} can do the {slot}'s steps",
                 Status.BLOCKER if missing else Status.OK, explanation, fix if missing else "")


def evaluate(source: TenantFacts, target: TenantFacts) -> list[Check]:
    checks: list[Check] = []

    # Same tenant on both sides: the move is impossible, and the Exchange error is cryptic (B.1 row 19).
    if source.tenant_id.lower() == target.tenant_id.lower():
        checks.append(Check("distinct-tenants", "Source and target are different tenants", Status.BLOCKER,
                            f"Both sign-ins are to {target.display_name} ({target.tenant_id}). Exchange would later "
                            "refuse with \"The resource tenant and the accessing tenant cannot be equal\".",
                            "Sign out of one side and sign in with an admin account of the other company."))
    else:
        checks.append(Check("distinct-tenants", "Source and target are different tenants", Status.OK,
                            f"Moving from {source.display_name} ({source.initial_domain}) to "
                            f"{target.display_name} ({target.initial_domain})."))

    # Roles (reference §2.1): what each side's later steps need.
    checks.append(_role_check("target", target, [
        ({GLOBAL_ADMIN, APPLICATION_ADMIN, CLOUD_APPLICATION_ADMIN},
         "register the migration app and grant its consent (Global, Application or Cloud Application Administrator)"),
        ({GLOBAL_ADMIN, EXCHANGE_ADMIN}, "set up Exchange: organization relationship, migration endpoint, MailUsers "
         "and batches (Global or Exchange Administrator)"),
    ], "Sign in to the target with a Global Administrator, or ask one to give this account the missing roles "
       "(Entra admin center → Roles and administrators), then sign in again."))
    checks.append(_role_check("source", source, [
        ({GLOBAL_ADMIN, EXCHANGE_ADMIN},
         "set up the source's organization relationship and scoping group (Global or Exchange Administrator)"),
    ], "Sign in to the source with a Global or Exchange Administrator of the source company, or have one give "
       "this account the missing role."))
    can_consent = bool({GLOBAL_ADMIN, PRIVILEGED_ROLE_ADMIN} & source.admin_role_ids)
    checks.append(Check(
        "source-consent", "Who approves the migration app in the source", Status.OK if can_consent else Status.WARNING,
        f"{source.admin_upn} can approve it: xtwizard will do it for you in the setup." if can_consent else
        f"{source.admin_upn} cannot approve the app's Mailbox.Migration permission (that takes a Global or "
        "Privileged Role Administrator of the source).",
        "" if can_consent else "The setup gives you a short text with a link for the source's Global "
        "Administrator; they approve in their browser, and you press Check again."))

    # Dehydrated organizations (reference §2.3; landscape B.1 row 16).
    for slot, f in (("target", target), ("source", source)):
        if f.exchange_error:
            checks.append(Check(f"{slot}-exchange", f"Exchange Online in the {slot} tenant can be read",
                                Status.BLOCKER, f"Reading Exchange Online failed: {f.exchange_error}",
                                "Check that the account has an Exchange role and that the tenant has Exchange "
                                "Online, then recheck."))
        elif f.is_dehydrated:
            checks.append(Check(f"{slot}-customization", f"The {slot} organization can be customized",
                                Status.ACTION, f"The {slot} tenant is still \"dehydrated\": Exchange refuses "
                                "organization relationships until customization is enabled.",
                                "xtwizard will run Enable-OrganizationCustomization in the setup step (you will "
                                "see the plan first). It can take a while to apply."))
        else:
            checks.append(Check(f"{slot}-customization", f"The {slot} organization can be customized", Status.OK,
                                "Organization customization is enabled."))

    # One domain cannot live in both tenants (§2.8).
    shared = sorted(set(d.lower() for d in source.verified_domains) & set(d.lower() for d in target.verified_domains))
    if shared:
        checks.append(Check("no-shared-domains", "No domain is verified in both tenants", Status.BLOCKER,
                            f"{', '.join(shared)} is verified in both tenants; a domain can only live in one.",
                            "Remove the domain from one tenant first (usually after the move, from the source)."))

    # Target delivery domain (§2.6, §2.7): a target-owned domain every target MailUser gets a proxy in.
    delivery = next((d for d in target.accepted_domains if d.lower() == target.initial_domain.lower()), None)
    if delivery:
        checks.append(Check("target-delivery-domain", "A target delivery domain is available", Status.OK,
                            f"{delivery} will be the target delivery domain: each target MailUser gets an address "
                            "there, and the moved source mailboxes forward to it."))
    elif target.is_dehydrated is None:
        pass
    else:
        checks.append(Check("target-delivery-domain", "A target delivery domain is available", Status.BLOCKER,
                            f"The target's {target.initial_domain} is not an accepted domain in Exchange Online.",
                            "Check Accepted domains in the Exchange admin center of the target."))

    # Licenses (§2.1; landscape B.1 rows 1-2).
    units = [f.migration_license_units for f in (source, target) if f.migration_license_units is not None]
    total_free = sum(units)
    if total_free > 0:
        where = "; ".join(f"{slot}: {f.migration_license_units} free of {f.migration_license_total}"
                          for slot, f in (("source", source), ("target", target))
                          if f.migration_license_units is not None)
        checks.append(Check("migration-licenses", "Cross Tenant User Data Migration licenses", Status.OK,
                            f"{total_free} licenses available ({where}). Each moved user needs one, on the source "
                            "or the target side."))
    else:
        checks.append(Check("migration-licenses", "Cross Tenant User Data Migration licenses", Status.BLOCKER,
                            "Neither tenant has a free Cross Tenant User Data Migration license. Without one per "
                            "user, each move fails days later with CrossTenantMigrationWithoutLicensePermanentException.",
                            "Buy the \"Cross Tenant User Data Migration\" add-on (one per user) in either tenant — "
                            "through your Microsoft partner or the Microsoft 365 admin center — then recheck."))

    # Key Vault path (optional: the client-secret path needs no Azure).
    if target.subscriptions_with_rights:
        checks.append(Check("azure-keyvault", "Azure subscription for the Key Vault certificate option", Status.OK,
                            f"{target.admin_upn} can create a Key Vault in: {', '.join(target.subscriptions_with_rights)}."))
    else:
        checks.append(Check("azure-keyvault", "Azure subscription for the Key Vault certificate option",
                            Status.WARNING, "No Azure subscription of the target where this admin may create a Key "
                            "Vault was found, so the certificate-in-Key-Vault option is not available.",
                            "Use the client secret option (Microsoft's current method; needs no Azure), or sign in "
                            "with an Owner of a target Azure subscription."))

    # Leftovers of an earlier attempt, so that nothing is made twice.
    found = [(slot, kind, names) for slot, f in (("target", target), ("source", source))
             for kind, names in (("migration apps", f.existing_apps), ("organization relationships",
                                 f.existing_relationships), ("migration endpoints", f.existing_endpoints)) if names]
    if found:
        checks.append(Check("existing-setup", "Cross-tenant setup that already exists", Status.WARNING,
                            "Found: " + "; ".join(f"{kind} in the {slot}: {', '.join(n)}" for slot, kind, n in found)
                            + ".", "The setup steps will show these in their plans and reuse or fix them; nothing "
                            "is created twice."))
    else:
        checks.append(Check("existing-setup", "Cross-tenant setup that already exists", Status.OK,
                            "No earlier cross-tenant migration setup was found in either tenant."))
    return checks


def can_continue(checks: list[Check]) -> bool:
    return all(c.status is not Status.BLOCKER for c in checks)

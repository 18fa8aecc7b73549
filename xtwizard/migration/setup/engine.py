"""The setup engine: inspect both tenants, plan the difference, apply it change by change, verify.

How it stays idempotent and crash-safe: `apply` is a converge loop.  It starts from an inspection of both
tenants, plans, executes the *first* pending change (journaled before and after), re-reads what that change
touched (and what depends on it: `TOUCHES`, `_read`), plans again, and ends when the plan is empty.  A rerun
therefore finds everything in place and plans nothing; a run killed anywhere resumes by inspecting again.
Objects are found by what the journal recorded (ids), then by their deterministic names, so an intent left
open by a crash is matched to the object it may have created (adopted) instead of duplicated.  When the
journal says an object exists but a read does not show it yet, that is directory replication: the read is
retried with backoff (`sleep` is injectable; tests advance the sandbox clock instead of waiting).
"""

from __future__ import annotations

import asyncio
import datetime
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ...cloud.arm import ArmClient, Vault
from ...cloud.endpoints import CloudEndpoints
from ...cloud.exchange import (
    DistributionGroup,
    ExchangeClient,
    ExchangeError,
    GroupMember,
    MigrationEndpoint,
    OrganizationRelationship,
    ServerAvailability,
    encode_credential,
    hashtable,
)
from ...cloud.graph import (
    Application,
    AppRoleAssignment,
    GraphClient,
    GraphError,
    ServicePrincipal,
)
from ...cloud.keyvault import KeyVaultCertificates, KeyVaultError, TokenProviderCredential, VaultCertificate
from ...cloud.service import ServiceError, TokenProvider
from .. import Progress
from ..problems import Problem, explain
from ..project import MigrationProject
from .journal import VAULT_KEYS, SetupJournal, is_removal
from .model import ApplyResult, Change, Check, Plan

EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
MAILBOX_MIGRATION = "Mailbox.Migration"
REDIRECT_URI = "https://office.com"
MULTITENANT = "AzureADMultipleOrgs"
# Roles that can grant an application permission in their tenant (admin consent through Graph).
CONSENT_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10",  # Global Administrator
    "e8611ab8-c189-46e8-94e1-60213ab1f814",  # Privileged Role Administrator
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",  # Application Administrator
    "158c047a-c907-4556-b7ef-446551a6b5f7",  # Cloud Application Administrator
}
SCOPE_GROUP_TYPE = "MailUniversalSecurityGroup"
# Key Vault data-plane roles (reference §5.1): the admin creates the certificate, Exchange reads it and its PFX.
CERTIFICATES_OFFICER = "Key Vault Certificates Officer"
CERTIFICATE_USER = "Key Vault Certificate User"
ROLE_IDS = {CERTIFICATES_OFFICER: "a4417e6f-fecd-4de8-b567-7b0420556985",
            CERTIFICATE_USER: "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba",
            "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483"}
CERTIFICATE_NAME = "xtwizard-migration"
# What an inspection reads, in parts (`SetupEngine._read`): "exchange-sp" the target's Exchange principal and
# its Mailbox.Migration role, "source-directory" the source's Exchange principal and the source admin's roles,
# "app", "<side>-sp" the app's principal in that tenant with its grants, "<side>-grant" the grants alone, "org"
# the target's dehydration, "endpoints", "<side>-rel" the organization relationships, "group" the scope group
# with its members, "members" the members alone, "vault" the Key Vault credential, "app-certificate" whether
# the vault's certificate is on the app.
INSPECTION = ("exchange-sp", "app", "source-directory", "org", "endpoints", "target-rel", "source-rel", "group",
              "target-sp", "source-sp")
# What a change touched (by its key, up to a colon), re-read before the next change; `_read` adds what depends
# on it.  Everything else stands as inspected when `apply` began.  A key missing here re-reads everything.
TOUCHES: dict[str, tuple[str, ...]] = {
    "app": ("app",), "secret": ("app",), "orphan-secret": ("app",), "target-sp": ("target-sp",),
    "target-grant": ("target-grant",), "source-sp": ("source-sp",), "source-grant": ("source-grant",),
    "org-customization": ("org",), "endpoint": ("endpoints",), "target-rel": ("target-rel",),
    "source-rel": ("source-rel",), "scope-group": ("group",), "member": ("members",),
    **{key: ("vault",) for key in VAULT_KEYS}, "app-certificate": ("app-certificate",),
}

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class SetupProblem(Exception):
    """A setup that cannot go on; `problem` says what happened, why and what to do."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.what)
        self.problem = problem


def problem(what: str, why: str, fix: str, details: str = "", retryable: bool = False) -> SetupProblem:
    return SetupProblem(Problem(what, why, fix, details, retryable))


class Identity(Protocol):
    @property
    def tenant_id(self) -> str: ...
    @property
    def initial_domain(self) -> str: ...
    @property
    def display_name(self) -> str: ...


class SetupContext(Protocol):
    """What the engine needs from the app (the Workspace provides it; tests provide a light one)."""

    endpoints: CloudEndpoints
    project: MigrationProject

    @property
    def identities(self) -> dict[str, Any]: ...
    def graph(self, slot: str) -> GraphClient: ...
    def exchange(self, slot: str) -> ExchangeClient: ...
    def arm(self, slot: str) -> ArmClient: ...


@dataclass
class SetupOptions:
    credential: str = "secret"                       # "secret" | "keyvault"
    scope_groups: Sequence[str] = ()                 # exactly one (or none: the one already chosen)
    create_scope_group: bool = False                 # create it (New-DistributionGroup -Type Security) if unknown
    members_add: Sequence[str] = ()
    members_remove: Sequence[str] = ()
    migration_window_days: int = 90
    consent_by_api: bool | None = None               # None: when the source admin can; False: the admin kit
    app_id: str | None = None                        # adopt this existing app registration
    app_name: str | None = None
    endpoint_name: str | None = None
    test_mailuser: str | None = None                 # a target MailUser for Test-MigrationServerAvailability
    replication_wait_seconds: float = 600.0         # for objects the journal says were made
    unfinished_wait_seconds: float = 60.0            # for objects a crash may or may not have made
    fresh_seconds: float = 60.0                      # apply starts from a plan() this recent (see apply)
    # Key Vault certificate mode
    subscription: str | None = None                  # id or display name; default: the first one
    resource_group: str = "xtwizard-migration"
    vault_name: str | None = None                    # default: derived from the tenants and the project
    location: str | None = None                      # default: the resource group's, else westeurope/the first
    certificate_months: int = 12
    vault_polling_interval: float = 1.0


@dataclass
class Facts:
    """Both tenants as inspected (only what the setup reads)."""

    target_id: str
    source_id: str
    source_domain: str
    target_domain: str
    source_name: str
    target_name: str
    role_id: str = ""
    exo_sp_target: ServicePrincipal | None = None
    app: Application | None = None
    app_found_by: str = ""
    target_sp: ServicePrincipal | None = None
    target_grant: AppRoleAssignment | None = None
    exo_sp_source: ServicePrincipal | None = None
    source_sp: ServicePrincipal | None = None
    source_grant: AppRoleAssignment | None = None
    source_can_consent: bool = False
    dehydrated: bool = False
    endpoint: MigrationEndpoint | None = None
    endpoint_found_by: str = ""
    endpoints: list[MigrationEndpoint] = field(default_factory=list)       # the remote-move endpoints
    other_endpoints: list[MigrationEndpoint] = field(default_factory=list)
    target_rel: OrganizationRelationship | None = None
    source_rel: OrganizationRelationship | None = None
    group: DistributionGroup | None = None
    group_name: str = ""
    group_found_by: str = ""
    members: list[GroupMember] = field(default_factory=list)
    member_addresses: list[str] = field(default_factory=list)  # primary addresses of members_add + members_remove
    member_adds: list[tuple[str, str]] = field(default_factory=list)     # (requested, primary address)
    member_removes: list[tuple[str, str]] = field(default_factory=list)  # (requested, primary address)
    kv: VaultFacts | None = None


@dataclass
class VaultFacts:
    """The Key Vault certificate credential as inspected (target tenant's Azure subscription)."""

    subscription_id: str
    subscription_name: str
    my_object_id: str
    exo_object_id: str
    resource_group: str
    rg_exists: bool
    rg_location: str
    vault_name: str
    vault: Vault | None = None
    name_note: str = ""
    admin_role: bool = False
    exchange_role: bool = False
    certificate: VaultCertificate | None = None
    certificate_on_app: bool = False


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


def _prefix(domain: str) -> str:
    return domain.split(".", 1)[0]


def _low(values: Sequence[str]) -> set[str]:
    return {v.lower() for v in values}


def _is_not_found(exc: ExchangeError) -> bool:
    return exc.short_type in ("ManagementObjectNotFoundException",) or "couldn't be found" in exc.message


async def _together(*aws: Awaitable[Any]) -> list[Any]:
    """Run independent reads at once.  All of them end before the first failure (in argument order) is
    raised, so no read is left running and the error does not depend on which answer came first."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


class SetupEngine:
    """One setup run for one project.  Holds the client secret in memory only (`_secrets`)."""

    def __init__(self, ctx: SetupContext, options: SetupOptions | None = None, *,
                 sleep: Sleep | None = None, clock: Callable[[], datetime.datetime] = _utcnow) -> None:
        self.ctx = ctx
        self.options = options or SetupOptions()
        self.journal = SetupJournal(ctx.project)
        self.sleep: Sleep = sleep or asyncio.sleep
        self.now = clock
        self._secrets: dict[str, str] = {}  # keyId -> secret text; never written anywhere
        self.facts: Facts | None = None
        self._planned: tuple[datetime.datetime, int] | None = None  # when plan() read self.facts, journal mark
        if self.options.credential not in ("secret", "keyvault"):
            raise problem("Unknown credential mode.", f"'{self.options.credential}' is neither 'secret' nor "
                          "'keyvault'.", "Choose a client secret or a Key Vault certificate.")

    # --- names ----------------------------------------------------------------------------------------------
    def _ident(self, slot: str) -> Any:
        ident = self.ctx.identities.get(slot)
        if ident is None:
            raise problem(f"Not signed in to the {slot} tenant.", "The setup reads and changes both tenants.",
                          f"Sign in to the {slot} tenant first.", retryable=True)
        return ident

    def app_name(self, f: Facts) -> str:
        return self.options.app_name or f"xtwizard migration {_prefix(f.source_domain)} to {_prefix(f.target_domain)}"

    def endpoint_name(self, f: Facts) -> str:
        return (self.options.endpoint_name or f"xtwizard-{_prefix(f.source_domain)}")[:64]

    def relationship_name(self, partner_domain: str) -> str:
        return f"xtwizard move {_prefix(partner_domain)}"[:64]

    @property
    def project_setup(self) -> dict[str, Any]:
        data = self.ctx.project.data.setdefault("setup", {})
        assert isinstance(data, dict)
        return data

    # --- replication-aware reads ----------------------------------------------------------------------------
    async def _expect(self, fetch: Callable[[], Awaitable[T | None]], expected: bool | str) -> T | None:
        """`fetch()`, retried with backoff while it finds nothing that the journal says exists (`expected`
        True), or — for "maybe", an intent a crash left open — for a shorter while: the change may never
        have been made, or it was and replication hides it."""
        return await self._keep_looking(fetch, expected, await fetch())

    async def _keep_looking(self, fetch: Callable[[], Awaitable[T | None]], expected: bool | str,
                            found: T | None) -> T | None:
        """`_expect` after its first read, `found` (made together with other reads)."""
        waited, delay = 0.0, 2.0
        budget = self.options.replication_wait_seconds
        if expected == "maybe":
            budget = min(budget, self.options.unfinished_wait_seconds)
        while found is None and expected and waited < budget:
            await self.sleep(delay)
            waited += delay
            delay = min(delay * 2, 60.0)
            found = await fetch()
        return found

    async def _retry_replication(self, call: Callable[[], Awaitable[T]], transient: Callable[[ServiceError], bool]
                                 ) -> T:
        """A write that may fail while the directory catches up (e.g. the source cannot see a new app yet)."""
        waited, delay = 0.0, 2.0
        while True:
            try:
                return await call()
            except ServiceError as exc:
                if not transient(exc) or waited >= self.options.replication_wait_seconds:
                    raise
            await self.sleep(delay)
            waited += delay
            delay = min(delay * 2, 60.0)

    # --- inspect --------------------------------------------------------------------------------------------
    async def inspect(self) -> Facts:
        """Read both tenants (no change)."""
        try:
            return await self._inspect()
        except ServiceError as exc:
            raise SetupProblem(explain_setup(exc)) from None

    async def _inspect(self) -> Facts:
        self._planned = None
        t, s = self._ident("target"), self._ident("source")
        if t.tenant_id.lower() == s.tenant_id.lower():
            raise problem("The source and the target are the same tenant.",
                          f"Both sign-ins belong to {t.display_name} ({t.tenant_id}).",
                          "Sign in to the other company's tenant in one of the two slots.")
        f = Facts(target_id=t.tenant_id, source_id=s.tenant_id, source_domain=s.initial_domain,
                  target_domain=t.initial_domain, source_name=s.display_name, target_name=t.display_name)
        await self._read(f, self._everything())
        self.facts = f
        return f

    def _everything(self) -> tuple[str, ...]:
        return INSPECTION + (("vault",) if self.options.credential == "keyvault" else ())

    def _planned_facts(self) -> Facts | None:
        """The inspection of the last `plan()`, once: when it is at most `fresh_seconds` old and nothing was
        journaled since (by this engine or anyone else); otherwise None."""
        planned, self._planned = self._planned, None
        if self.facts is None or planned is None:
            return None
        at, mark = planned
        if mark != self.journal.mark() or self.now() - at > datetime.timedelta(seconds=self.options.fresh_seconds):
            return None
        return self.facts

    async def _refresh(self, f: Facts, c: Change) -> None:
        """After the change `c`: re-read what it touched and what depends on that; the rest of `f` stands."""
        try:
            await self._read(f, TOUCHES.get(c.key.split(":", 1)[0], self._everything()))
        except ServiceError as exc:
            raise SetupProblem(explain_setup(exc)) from None
        self.facts = f

    async def _read(self, f: Facts, parts: Sequence[str]) -> None:
        """Read `parts` (see INSPECTION) of both tenants into `f`: every read that needs no other answer goes out
        at once (B2, docs/benchmarks.md), then what waits for an answer.

        The app's principals and their grants hang on the app.  They are read together with it by the app id
        the journal recorded (or the admin gave), the grants by the principals' recorded ids; only what the
        answers contradict (another app, another principal) or what had no id yet is read afterwards.  When
        the app read finds another app than `f` had (a new one), both principals are read again, the endpoint
        is matched again and, in the Key Vault mode, the certificate on the app is looked up.  `_together`
        raises the first failure in the order written here: the problem an admin sees does not depend on
        which answer came first."""
        known = self.journal.known()
        tg, sg = self.ctx.graph("target"), self.ctx.graph("source")
        tx, sx = self.ctx.exchange("target"), self.ctx.exchange("source")
        graph = {"target": tg, "source": sg}
        had = f.app.app_id if f.app is not None else ""
        early = had  # the app id known before any answer
        if "app" in parts:
            early = str(known.get("app", {}).get("appId") or self.options.app_id or "")
        sides = {side for side in ("target", "source") if f"{side}-sp" in parts}
        if "app" in parts and early.lower() != had.lower():
            sides = {"target", "source"}
        read_for: dict[str, str] = {}  # side -> the app id its principal was read for
        listed: dict[str, list[AppRoleAssignment] | None] = {}  # side -> its principal's grants (None: none)

        async def principal(side: str, app_id: str) -> None:
            g, key = graph[side], f"{side}-sp"
            rec = str(known.get(key, {}).get("id") or "")
            find = self._expect(lambda: g.get_service_principal_by_app_id(app_id), key in known)
            grants: list[AppRoleAssignment] | None = None
            if rec:
                sp, grants = await _together(find, self._assignments(g, rec))
            else:
                sp = await find
            if sp is not None and (grants is None or sp.id.lower() != rec.lower()):
                grants = await self._assignments(g, sp.id)
            self._set_principal(f, side, sp)
            read_for[side], listed[side] = app_id.lower(), grants if sp is not None else None

        async def grants_of(side: str) -> None:  # a principal already known
            sp = self._principal(f, side)
            listed[side] = await self._assignments(graph[side], sp.id) if sp is not None else None

        readers: list[Awaitable[Any]] = []
        if "exchange-sp" in parts:
            readers.append(self._read_exchange_sp(f, tg))
        if "app" in parts:
            maybe = any(e.target.get("key") == "app" for e in self.journal.unfinished())
            readers.append(self._inspect_app(f, tg, known, "maybe" if maybe else False))
        if "source-directory" in parts:
            readers.append(self._read_source_directory(f, sg))
        if "org" in parts:
            readers.append(self._read_dehydrated(f, tx))
        if "endpoints" in parts:
            readers.append(self._read_endpoints(f, tx))
        if "target-rel" in parts:
            readers.append(self._read_relationship(f, "target", tx, known))
        if "source-rel" in parts and "group" in parts and not self._group_name_given(known):
            async def relationship_then_group() -> None:  # the group is the one the relationship names
                await self._read_relationship(f, "source", sx, known)
                await self._inspect_group(f, sx, sg, known)
            readers.append(relationship_then_group())
        else:
            if "source-rel" in parts:
                readers.append(self._read_relationship(f, "source", sx, known))
            if "group" in parts:
                readers.append(self._inspect_group(f, sx, sg, known))
        if "members" in parts:
            readers.append(self._read_members(f, sx))
        if early:
            readers.extend(principal(side, early) for side in ("target", "source") if side in sides)
        readers.extend(grants_of(side) for side in ("target", "source") if f"{side}-grant" in parts)
        await _together(*readers)

        now = f.app.app_id if f.app is not None else ""
        if now.lower() != had.lower():
            sides = {"target", "source"}
        if f.app is None:
            for side in sides:
                self._set_principal(f, side, None)
                listed[side] = None
        else:
            await _together(*(principal(side, now) for side in ("target", "source")
                              if side in sides and read_for.get(side) != now.lower()))
        await _together(*(self._match_grant(f, side, listed[side], known) for side in ("target", "source")
                          if side in listed))
        self._pick_endpoint(f, known)
        if "vault" in parts:
            f.kv = await self._inspect_vault(f, tg, known)
        elif f.kv is not None and ("app-certificate" in parts or now.lower() != had.lower()):
            f.kv.certificate_on_app = await self._certificate_on_app(tg, f.app, f.kv.certificate)

    @staticmethod
    def _principal(f: Facts, side: str) -> ServicePrincipal | None:
        return f.target_sp if side == "target" else f.source_sp

    @staticmethod
    def _set_principal(f: Facts, side: str, sp: ServicePrincipal | None) -> None:
        if side == "target":
            f.target_sp = sp
        else:
            f.source_sp = sp

    async def _read_exchange_sp(self, f: Facts, tg: GraphClient) -> None:
        f.exo_sp_target = await tg.get_service_principal_by_app_id(EXCHANGE_APP_ID)
        if f.exo_sp_target is None:
            raise problem("Exchange Online is not set up in the target tenant.",
                          "The target has no service principal for Office 365 Exchange Online, so the "
                          "Mailbox.Migration permission cannot be granted.",
                          "Make sure the target has an Exchange Online subscription, then try again.")
        role = f.exo_sp_target.app_role(MAILBOX_MIGRATION)
        if role is None:
            raise problem("Exchange Online in the target does not offer the Mailbox.Migration permission.",
                          "The Exchange service principal lists no application role named Mailbox.Migration.",
                          "Contact Microsoft support: cross-tenant mailbox migration is not available to this "
                          "tenant.")
        f.role_id = role.id

    @staticmethod
    async def _read_source_directory(f: Facts, sg: GraphClient) -> None:  # the source's consent
        f.exo_sp_source, roles = await _together(sg.get_service_principal_by_app_id(EXCHANGE_APP_ID),
                                                 sg.my_directory_roles())
        f.source_can_consent = bool({r.role_template_id for r in roles} & CONSENT_ROLES)

    @staticmethod
    async def _read_dehydrated(f: Facts, tx: ExchangeClient) -> None:
        f.dehydrated = await tx.is_dehydrated()

    @staticmethod
    async def _read_endpoints(f: Facts, tx: ExchangeClient) -> None:
        f.endpoints = [e for e in await tx.migration_endpoints()
                       if e.endpoint_type.lower() == "exchangeremotemove" or e.application_id]

    async def _read_relationship(self, f: Facts, side: str, x: ExchangeClient,
                                 known: dict[str, dict[str, Any]]) -> None:
        rels = await x.organization_relationships()
        if side == "target":
            f.target_rel = self._pick_relationship(rels, f.source_id, [f.source_domain], known.get("target-rel"))
        else:
            f.source_rel = self._pick_relationship(rels, f.target_id, [f.target_domain], known.get("source-rel"))

    async def _inspect_app(self, f: Facts, tg: GraphClient, known: dict[str, dict[str, Any]],
                           pending: bool | str) -> None:
        rec = known.get("app")
        app: Application | None = None
        if rec and rec.get("appId"):
            rec_app_id = str(rec["appId"])
            app = await self._expect(lambda: tg.get_application_by_app_id(rec_app_id), True)
            f.app_found_by = "journal"
        if app is None and self.options.app_id:
            app = await tg.get_application_by_app_id(self.options.app_id)
            if app is None:
                raise problem(f"There is no application {self.options.app_id} in the target tenant.",
                              "The application ID given to adopt was not found in the target's app registrations.",
                              "Check the ID in Entra admin center > App registrations, or let xtwizard create "
                              "the app.")
            f.app_found_by = "given"
        if app is None:
            name = self.app_name(f)
            apps = await self._expect(lambda: self._apps_named(tg, name), pending)
            if apps:
                app = apps[0]
                f.app_found_by = "name"
        f.app = app

    @staticmethod
    async def _apps_named(tg: GraphClient, name: str) -> list[Application] | None:
        apps = await tg.list_applications(display_name=name)
        return apps or None

    @staticmethod
    async def _assignments(g: GraphClient, sp_id: str) -> list[AppRoleAssignment] | None:
        """The grants a service principal holds; None when there is no such principal (any more)."""
        try:
            return await g.app_role_assignments(sp_id)
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise

    async def _match_grant(self, f: Facts, side: str, listed: list[AppRoleAssignment] | None,
                           known: dict[str, dict[str, Any]]) -> None:
        """Mailbox.Migration on the side's Exchange principal among `listed` (its principal's grants, read with
        it); looked for again while the journal says it was granted and replication hides it."""
        sp = self._principal(f, side)
        exo = f.exo_sp_target if side == "target" else f.exo_sp_source
        grant: AppRoleAssignment | None = None
        if sp is not None and exo is not None and listed is not None:
            g, sp_id, resource_id = self.ctx.graph(side), sp.id, exo.id

            def match(assignments: list[AppRoleAssignment] | None) -> AppRoleAssignment | None:
                return next((a for a in assignments or () if a.resource_id == resource_id
                             and a.app_role_id == f.role_id), None)

            async def fetch() -> AppRoleAssignment | None:
                return match(await self._assignments(g, sp_id))

            grant = await self._keep_looking(fetch, f"{side}-grant" in known, match(listed))
        if side == "target":
            f.target_grant = grant
        else:
            f.source_grant = grant

    def _pick_endpoint(self, f: Facts, known: dict[str, dict[str, Any]]) -> None:
        rec = known.get("endpoint")
        name = str(rec["name"]) if rec and rec.get("name") else self.endpoint_name(f)
        f.endpoint, f.endpoint_found_by = None, ""
        by_name = next((e for e in f.endpoints if e.identity.lower() == name.lower()), None)
        if by_name is not None:
            f.endpoint, f.endpoint_found_by = by_name, "journal" if rec else "name"
        elif f.app is not None:
            app_id = f.app.app_id.lower()
            match = next((e for e in f.endpoints if e.application_id.lower() == app_id
                          and e.remote_tenant.lower() == f.source_domain.lower()), None)
            if match is not None:
                f.endpoint, f.endpoint_found_by = match, "app"
        f.other_endpoints = [e for e in f.endpoints if e is not f.endpoint]

    @staticmethod
    def _pick_relationship(rels: list[OrganizationRelationship], partner_id: str, partner_domains: list[str],
                           rec: dict[str, Any] | None) -> OrganizationRelationship | None:
        """The relationship to the partner: the journal's, else the one naming its tenant ID, else one naming
        its domains (the tenant ID gets added to it)."""
        if rec and rec.get("name"):
            found = next((r for r in rels if r.name.lower() == str(rec["name"]).lower()), None)
            if found is not None:
                return found
        by_id = next((r for r in rels if r.names_tenant(partner_id)), None)
        if by_id is not None:
            return by_id
        domains = _low(partner_domains)
        return next((r for r in rels if _low(r.domain_names) & domains), None)

    def _group_name_given(self, known: dict[str, dict[str, Any]]) -> bool:
        """The scope group's name is known without reading the source's relationship."""
        return any(g.strip() for g in self.options.scope_groups) or bool(known.get("scope-group", {}).get("name"))

    async def _inspect_group(self, f: Facts, sx: ExchangeClient, sg: GraphClient,
                             known: dict[str, dict[str, Any]]) -> None:
        wanted = [g.strip() for g in self.options.scope_groups if g.strip()]
        if len(wanted) > 1:
            raise problem("More than one scope group was given.",
                          "Exchange accepts exactly one group in MailboxMovePublishedScopes (\"The given count of "
                          f"areas ({len(wanted)}) exceeds the allowed limit of 1\").",
                          "Choose one mail-enabled security group and put every user to move into it (nested "
                          "groups count).")
        if wanted:
            name, f.group_found_by = wanted[0], "given"
        elif known.get("scope-group", {}).get("name"):
            name, f.group_found_by = str(known["scope-group"]["name"]), "journal"
        elif f.source_rel is not None and len(f.source_rel.mailbox_move_published_scopes) == 1:
            name, f.group_found_by = f.source_rel.mailbox_move_published_scopes[0], "relationship"
        else:
            candidates = [g.display_name for g in await sx.distribution_groups(security_only=True)]
            raise problem("No scope group was chosen.",
                          "The source's organization relationship must name the one mail-enabled security group "
                          "whose members may be moved.",
                          "Choose one of: " + (", ".join(candidates) or "(none yet)") + " — or create a new one.")
        f.group_name = name
        group_expected: bool | str = "scope-group" in known or (
            "maybe" if any(e.target.get("key") == "scope-group" for e in self.journal.unfinished()) else False)
        # The group, its members (asked by the same name) and the mailboxes to add or remove go out at once;
        # their failures are raised in the order of the checks below, as when they were read one by one.
        async def addresses() -> list[str]:
            wanted_members = [*self.options.members_add, *self.options.members_remove]
            return list(await _together(*(self._mailbox_address(sx, who) for who in wanted_members)))

        group, members, addrs = await asyncio.gather(
            self._expect(lambda: self._group(sx, name), group_expected), self._members(sx, name), addresses(),
            return_exceptions=True)
        if isinstance(group, BaseException):
            raise group
        if group is not None and group.recipient_type_details != SCOPE_GROUP_TYPE:
            kind = {"MailUniversalDistributionGroup": "a distribution list",
                    "GroupMailbox": "a Microsoft 365 group"}.get(group.recipient_type_details,
                                                                 group.recipient_type_details)
            raise problem(f"'{name}' cannot scope the move: it is {kind}, not a mail-enabled security group.",
                          "Exchange only accepts a mail-enabled security group in MailboxMovePublishedScopes; "
                          "other groups are dropped with a warning and no mailbox is in scope.",
                          "Choose a mail-enabled security group, or let xtwizard create one and add the users.")
        if group is None:
            entra = await self._entra_group(sg, name)
            if entra is not None:
                kind = ("a Microsoft 365 group" if "Unified" in entra.get("groupTypes", [])
                        else "a security group that is not mail-enabled" if entra.get("securityEnabled")
                        else "not a security group")
                raise problem(f"'{name}' cannot scope the move: it is {kind} (it exists only in Entra ID, so "
                              "Exchange does not see it).",
                              "The scope must be a mail-enabled security group; Entra ID cannot make an existing "
                              "group mail-enabled.",
                              "Create a new mail-enabled security group (xtwizard can do it) and add the users.")
            if not self.options.create_scope_group:
                candidates = [g.display_name for g in await sx.distribution_groups(security_only=True)]
                raise problem(f"There is no group '{name}' in the source tenant.",
                              "No mail-enabled security group has this name.",
                              "Choose one of: " + (", ".join(candidates) or "(none yet)")
                              + " — or ask xtwizard to create it.")
        f.group = group
        if isinstance(members, BaseException):
            raise members
        if isinstance(addrs, BaseException):
            raise addrs
        if group is not None and members is None:  # not found by its name yet (replication): by its identity
            members = await sx.distribution_group_members(group.identity)
        f.members = list(members or []) if group is not None else []
        f.member_addresses = addrs
        self._diff_members(f)

    async def _read_members(self, f: Facts, sx: ExchangeClient) -> None:
        f.members = await sx.distribution_group_members(f.group.identity) if f.group is not None else []
        self._diff_members(f)

    def _diff_members(self, f: Facts) -> None:
        """The members to add and to remove (`f.member_addresses`: the requested mailboxes' primary addresses)."""
        adds, removes = list(self.options.members_add), list(self.options.members_remove)
        addrs = f.member_addresses
        current = {m.primary_smtp_address.lower() for m in f.members} | {m.name.lower() for m in f.members}
        f.member_adds = [(who, addr) for who, addr in zip(adds, addrs[:len(adds)], strict=True)
                         if addr.lower() not in current]
        f.member_removes = [(who, addr) for who, addr in zip(removes, addrs[len(adds):], strict=True)
                            if addr.lower() in current]
        remaining = len(f.members) + len(f.member_adds) - len(f.member_removes)
        if remaining <= 0:
            raise problem(f"The scope group '{f.group_name}' would have no members.",
                          "Only members of the scope group (and of groups nested in it) can be moved.",
                          "Add the users to move (a list or a CSV of their addresses).")

    @staticmethod
    async def _members(sx: ExchangeClient, identity: str) -> list[GroupMember] | None:
        """The group's members; None when Exchange finds no group by that identity."""
        try:
            return await sx.distribution_group_members(identity)
        except ExchangeError as exc:
            if _is_not_found(exc):
                return None
            raise

    @staticmethod
    async def _group(sx: ExchangeClient, name: str) -> DistributionGroup | None:
        try:
            groups = await sx.distribution_groups(name)
        except ExchangeError as exc:
            if _is_not_found(exc):
                return None
            raise
        return groups[0] if groups else None

    @staticmethod
    async def _entra_group(sg: GraphClient, name: str) -> dict[str, Any] | None:
        literal = "'" + name.replace("'", "''") + "'"
        answers = await sg.batch([{"url": f"/groups?$filter=displayName eq {literal}"
                                          "&$select=id,displayName,mailEnabled,securityEnabled,groupTypes"}])
        body = answers[0].body if answers else None
        values = body.get("value") if isinstance(body, dict) else None
        return dict(values[0]) if isinstance(values, list) and values else None

    @staticmethod
    async def _mailbox_address(sx: ExchangeClient, who: str) -> str:
        try:
            found = await sx.mailboxes(who)
        except ExchangeError as exc:
            if _is_not_found(exc):
                raise problem(f"There is no mailbox '{who}' in the source tenant.",
                              "Only mailboxes can be added to the scope group for a move.",
                              "Check the address (a typo?) or remove it from the list.") from None
            raise
        return found[0].primary_smtp_address


    # --- Key Vault certificate mode -------------------------------------------------------------------------
    def vault_certificates(self, vault_name: str) -> KeyVaultCertificates:
        """A client for the certificates of the key vault `vault_name`, as the target admin (close it after use)."""
        token_for = self._token_provider("target")
        credential = TokenProviderCredential(token_for)
        return KeyVaultCertificates(self.ctx.endpoints, vault_name, credential,
                                    polling_interval=self.options.vault_polling_interval)

    def _token_provider(self, slot: str) -> TokenProvider:
        make = getattr(self.ctx, "token_provider", None)
        if make is not None:
            provider: TokenProvider = make(slot)
            return provider
        from ...cloud.service import session_token_provider

        return session_token_provider(self.ctx.sessions[slot])  # type: ignore[attr-defined]

    def default_vault_name(self, f: Facts) -> str:
        stem = re.sub(r"[^a-z0-9]", "", _prefix(f.target_domain).lower())[:12] or "migration"
        return f"xtw-{stem}-{self.ctx.project.id[:6]}"

    async def _inspect_vault(self, f: Facts, tg: GraphClient, known: dict[str, dict[str, Any]]) -> VaultFacts:
        arm = self.ctx.arm("target")
        subs = [s for s in await arm.subscriptions(f.target_id) if s.state.lower() in ("", "enabled")]
        wanted = self.options.subscription
        sub = next((s for s in subs if wanted and wanted.lower() in (s.subscription_id.lower(),
                                                                     s.display_name.lower())), None)
        if sub is None and wanted:
            raise problem(f"The Azure subscription '{wanted}' was not found in {f.target_name}.",
                          "The signed-in admin sees no enabled subscription with that name or ID in the target "
                          "tenant (or holds no role on it).",
                          "Choose one of: " + (", ".join(s.display_name for s in subs) or "(none)")
                          + " — or use the client-secret mode, which needs no Azure subscription.")
        if sub is None:
            if not subs:
                raise problem(f"{f.target_name} has no Azure subscription the signed-in admin can use.",
                              "The Key Vault certificate mode keeps the certificate in an Azure Key Vault, which "
                              "lives in a subscription of the target tenant.",
                              "Use the client-secret mode (no Azure needed), or ask for the Owner role on a "
                              "subscription of the target tenant.")
            sub = subs[0]
        me = await tg.me()
        assert f.exo_sp_target is not None
        rec = known.get("vault") or {}
        rg_name = str(rec.get("resourceGroup") or self.options.resource_group)
        rg = await arm.get_resource_group(sub.subscription_id, rg_name)
        vf = VaultFacts(sub.subscription_id, sub.display_name, me.id, f.exo_sp_target.id, rg_name,
                        rg is not None, rg.location if rg is not None else "", "")
        name = str(rec.get("name") or self.options.vault_name or self.default_vault_name(f))
        vault = await arm.find_vault(sub.subscription_id, rg_name, name) if rg is not None else None
        if vault is None and not rec:
            name, vf.name_note = await self._free_vault_name(arm, sub.subscription_id, name)
        vf.vault_name, vf.vault = name, vault
        if vault is None:
            return vf
        assignments = await arm.role_assignments(vault.id)

        def holds(principal: str, roles: set[str]) -> bool:
            return any(a.principal_id.lower() == principal.lower()
                       and a.role_definition_id.rsplit("/", 1)[-1].lower() in roles for a in assignments)

        vf.admin_role = holds(me.id, {ROLE_IDS[CERTIFICATES_OFFICER], ROLE_IDS["Key Vault Administrator"]})
        vf.exchange_role = holds(vf.exo_object_id, {ROLE_IDS[CERTIFICATE_USER], ROLE_IDS["Key Vault Administrator"]})
        if vf.admin_role:
            kv = self.vault_certificates(name)
            try:
                vf.certificate = await kv.afind(CERTIFICATE_NAME)
            except KeyVaultError as exc:
                if exc.status != 403:  # a role given a moment ago may not have propagated yet
                    raise
            finally:
                await kv.aclose()
        vf.certificate_on_app = await self._certificate_on_app(tg, f.app, vf.certificate)
        return vf

    @staticmethod
    async def _certificate_on_app(tg: GraphClient, app: Application | None, cert: VaultCertificate | None) -> bool:
        """Whether the app's keyCredentials hold the certificate's public part."""
        if app is None or cert is None:
            return False
        import base64

        key = base64.b64encode(cert.der).decode("ascii")
        return any(k.get("key") == key for k in await tg.get_application_key_credentials(app.id))

    async def _free_vault_name(self, arm: ArmClient, subscription_id: str, name: str) -> tuple[str, str]:
        """`name` if no vault (live or soft-deleted, anywhere) holds it; else a free variant and why."""
        first = await arm.check_vault_name(subscription_id, name)
        if first.available:
            return name, ""
        deleted = {d.name.lower(): d for d in await arm.deleted_vaults(subscription_id)}
        why = (f"the name '{name}' is held by a deleted vault until {deleted[name.lower()].scheduled_purge_date[:10]}"
               if name.lower() in deleted else f"the name '{name}' is taken (vault names are global)")
        if self.options.vault_name:
            raise problem(f"The Key Vault name '{name}' cannot be used: {why}.",
                          "Key Vault names are unique across Azure, and a deleted vault keeps its name until it "
                          "is purged.",
                          "Choose another vault name (or purge the deleted vault in the Azure portal), or leave "
                          "the name empty and let xtwizard choose one.")
        for i in range(2, 10):
            candidate = f"{name[:24 - len(str(i)) - 1]}-{i}"
            if (await arm.check_vault_name(subscription_id, candidate)).available:
                return candidate, f"{why}, so '{candidate}' is used"
        raise problem("No free Key Vault name was found.", why, "Give a vault name of your own.")

    def _vault_changes(self, f: Facts) -> list[Change]:
        vf = f.kv
        assert vf is not None
        known = self.journal.known()
        ch: list[Change] = []
        if not vf.rg_exists:
            ch.append(Change("target", "credential", "create", "resource-group",
                             f"Create the resource group '{vf.resource_group}' in the subscription "
                             f"'{vf.subscription_name}'"))
        if vf.vault is None:
            note = f" ({vf.name_note})" if vf.name_note else ""
            ch.append(Change("target", "credential", "create", "vault",
                             f"Create the key vault '{vf.vault_name}' (Azure RBAC, soft delete){note}"))
        else:
            ch.append(Change("target", "credential", "keep" if "vault" in known else "adopt", "vault",
                             f"Key vault '{vf.vault_name}' is in place"))
            if not vf.vault.rbac_authorization:
                raise problem(f"The key vault '{vf.vault_name}' uses access policies, not Azure RBAC.",
                              "xtwizard grants access to vaults with Azure role assignments.",
                              "Choose another vault name, or switch the vault to Azure RBAC in the portal.")
        if not vf.admin_role:
            ch.append(Change("target", "credential", "create", "vault-admin-role",
                             f"Give you the role '{CERTIFICATES_OFFICER}' on the vault (to create the certificate)"))
        if not vf.exchange_role:
            ch.append(Change("target", "credential", "create", "vault-exchange-role",
                             f"Give Office 365 Exchange Online the role '{CERTIFICATE_USER}' on the vault (so that it "
                             "can read the certificate)"))
        cert = vf.certificate
        expiring = cert is not None and cert.expires_on is not None and cert.expires_on < (
            self.now() + datetime.timedelta(days=self.options.migration_window_days))
        if cert is None or expiring:
            why = " (the current one expires within the migration window)" if expiring else ""
            ch.append(Change("target", "credential", "create", "certificate",
                             f"Create a self-signed certificate '{CERTIFICATE_NAME}' in the vault, valid for "
                             f"{self.options.certificate_months} months{why}; its private key never leaves the vault"))
        if cert is None or expiring or not vf.certificate_on_app:
            ch.append(Change("target", "credential", "create", "app-certificate",
                             "Add the certificate's public part to the app's credentials"))
        return ch

    async def _do_vault(self, f: Facts, c: Change) -> dict[str, Any]:
        vf = f.kv
        assert vf is not None
        arm = self.ctx.arm("target")
        if c.key == "resource-group":
            location = self.options.location or await self._location(arm, vf.subscription_id)
            rg = await arm.ensure_resource_group(vf.subscription_id, vf.resource_group, location)
            return {"id": rg.id, "name": rg.name}
        if c.key == "vault":
            location = self.options.location or vf.rg_location or await self._location(arm, vf.subscription_id)
            vault = await arm.create_vault(vf.subscription_id, vf.resource_group, vf.vault_name, location=location,
                                           tenant_id=f.target_id)
            return {"id": vault.id, "name": vault.name, "resourceGroup": vf.resource_group,
                    "subscription": vf.subscription_id}
        if c.key in ("vault-admin-role", "vault-exchange-role"):
            assert vf.vault is not None
            role = CERTIFICATES_OFFICER if c.key == "vault-admin-role" else CERTIFICATE_USER
            definition = await arm.role_definition_by_name(vf.vault.id, role)
            role_id = definition.id if definition is not None else (
                f"/subscriptions/{vf.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/"
                f"{ROLE_IDS[role]}")
            principal = vf.my_object_id if c.key == "vault-admin-role" else vf.exo_object_id
            kind = "User" if c.key == "vault-admin-role" else "ServicePrincipal"
            assignment = await arm.assign_role(vf.vault.id, role_id, principal, principal_type=kind)
            return {"id": assignment.id if assignment is not None else "", "scope": vf.vault.id, "role": role}
        if c.key == "certificate":
            subject = f"CN={_prefix(f.target_domain)}_{_prefix(f.source_domain)}"[:64]
            kv = self.vault_certificates(vf.vault_name)
            try:
                cert = await self._create_certificate(kv, subject)
            finally:
                await kv.aclose()
            self.project_setup["expiry"] = {"mode": "keyvault", "certificate": cert.id,
                                            "expires": cert.expires_on.isoformat() if cert.expires_on else ""}
            self.ctx.project.save()
            return {"id": cert.id, "thumbprint": cert.thumbprint_hex}
        if c.key == "app-certificate":
            assert f.app is not None
            kv = self.vault_certificates(vf.vault_name)
            try:
                cert = await kv.aget(CERTIFICATE_NAME)
            finally:
                await kv.aclose()
            tg = self.ctx.graph("target")
            writable = ("customKeyIdentifier", "displayName", "endDateTime", "key", "keyId", "startDateTime",
                        "type", "usage")
            existing = [{k: v for k, v in cred.items() if k in writable}
                        for cred in await tg.get_application_key_credentials(f.app.id) if cred.get("key")]
            new = cert.key_credential(f"xtwizard {CERTIFICATE_NAME}")
            if cert.not_before and cert.expires_on:
                new["startDateTime"] = cert.not_before.strftime("%Y-%m-%dT%H:%M:%SZ")
                new["endDateTime"] = cert.expires_on.strftime("%Y-%m-%dT%H:%M:%SZ")
            await tg.set_key_credentials(f.app.id, [*existing, new])
            return {"thumbprint": cert.thumbprint_hex, "certificate": cert.id}
        raise AssertionError(c.key)

    async def _create_certificate(self, kv: KeyVaultCertificates, subject: str) -> VaultCertificate:
        try:
            return await kv.acreate_self_signed(CERTIFICATE_NAME, subject,
                                                validity_months=self.options.certificate_months)
        except KeyVaultError as exc:
            if exc.status != 409:
                raise
        # A request already pending (a run stopped while the vault was issuing it): wait for that one.
        async def issued() -> VaultCertificate | None:
            return await kv.afind(CERTIFICATE_NAME)

        cert = await self._expect(issued, True)
        if cert is None:
            raise problem("The vault has not issued the certificate.", "A certificate request is still pending.",
                          "Wait a few minutes and run the setup again.", retryable=True)
        return cert

    @staticmethod
    async def _location(arm: ArmClient, subscription_id: str) -> str:
        names = [loc.name for loc in await arm.locations(subscription_id)]
        return "westeurope" if "westeurope" in names or not names else names[0]

    # --- plan -----------------------------------------------------------------------------------------------
    async def plan(self) -> Plan:
        """Inspect both tenants and plan.  The next `apply()` starts from this inspection if it comes soon
        enough (`_planned_facts`)."""
        before = (self.now(), self.journal.mark())  # taken first: a record written while reading counts
        plan = self._plan(await self.inspect())
        self._planned = before
        return plan

    def _orphan_secrets(self, f: Facts) -> list[str]:
        """Secrets an interrupted run added (found on resume) that are still on the app."""
        if f.app is None:
            return []
        on_app = {p.key_id for p in f.app.password_credentials}
        orphans = [str(e.target.get("keyId")) for e in self.ctx.project.entries()
                   if e.phase == "done" and e.target.get("key") == "secret" and e.target.get("orphan")]
        open_names = {e.target.get("name") for e in self.journal.unfinished() if e.target.get("key") == "secret"}
        orphans += [p.key_id for p in f.app.password_credentials if p.display_name in open_names]
        return [k for k in dict.fromkeys(orphans) if k in on_app]

    def _credential_state(self, f: Facts) -> tuple[str, str]:
        """(state, detail) of the client secret: ok / missing / expiring / unknown."""
        rec = self.journal.known().get("secret")
        endpoint_rec = self.journal.known().get("endpoint")
        if f.app is None or rec is None:
            return "missing", "no client secret made by xtwizard yet"
        key_id = str(rec.get("keyId", ""))
        cred = next((p for p in f.app.password_credentials if p.key_id == key_id), None)
        if cred is None:
            return "missing", "the client secret xtwizard made was removed from the app"
        end = _parse_time(cred.end_date_time)
        window_end = self.now() + datetime.timedelta(days=self.options.migration_window_days)
        if end is not None and end <= self.now():
            return "missing", f"the client secret expired on {end:%Y-%m-%d}"
        if key_id in self._secrets:
            return "ok", "in memory"
        if endpoint_rec and endpoint_rec.get("usesKeyId") == key_id:
            if end is not None and end < window_end:
                return "expiring", f"the client secret expires on {end:%Y-%m-%d}, within the migration window"
            return "ok", "used by the endpoint"
        return "missing", "the client secret is not kept by xtwizard (it is never saved), so a new one is needed"

    def _plan(self, f: Facts) -> Plan:
        ch: list[Change] = []
        warnings: list[str] = []
        known = self.journal.known()
        name = self.app_name(f)

        # a. app
        if f.app is None:
            ch.append(Change("target", "migration-app", "create", "app",
                             f"Create the multitenant app registration '{name}' with the Exchange permission "
                             "Mailbox.Migration and the redirect https://office.com",
                             after={"signInAudience": MULTITENANT, "redirectUris": [REDIRECT_URI]}))
        else:
            before, after = self._app_drift(f)
            if after:
                ch.append(Change("target", "migration-app", "update", "app",
                                 f"Update the app '{f.app.display_name}' ({f.app.app_id})", before, after))
            else:
                ch.append(Change("target", "migration-app", "keep" if "app" in known else "adopt", "app",
                                 f"App '{f.app.display_name}' ({f.app.app_id}) is in place"))
        if f.target_sp is None:
            ch.append(Change("target", "migration-app", "create", "target-sp",
                             "Create the app's service principal (enterprise application) in the target"))
        if f.target_grant is None:
            ch.append(Change("target", "migration-app", "create", "target-grant",
                             "Grant admin consent in the target: Mailbox.Migration on Office 365 Exchange Online"))

        # b. credential
        if f.kv is not None:
            ch.extend(self._vault_changes(f))
        else:
            state, detail = self._credential_state(f)
            _, endpoint_drift = self._endpoint_drift(f)
            ours = "usesKeyId" in known.get("endpoint", {})
            needs_secret = state != "ok" and (f.endpoint is None or bool(endpoint_drift) or ours)
            if state == "expiring":
                warnings.append(detail + ": a new secret is added and the endpoint updated.")
            if needs_secret:
                ch.append(Change("target", "credential", "create", "secret",
                                 f"Add a client secret valid for {self.options.migration_window_days + 30} days "
                                 f"({detail}); it stays in memory only and goes straight to the endpoint"))
            for key_id in self._orphan_secrets(f):
                ch.append(Change("target", "credential", "remove", f"orphan-secret:{key_id}",
                                 f"Remove the client secret {key_id[:8]}… that an interrupted run added (xtwizard "
                                 "never kept it, so nothing can use it)"))

        # c. source consent
        by_api = self.options.consent_by_api if self.options.consent_by_api is not None else f.source_can_consent
        if f.source_sp is None or f.source_grant is None:
            if by_api:
                if f.source_sp is None:
                    ch.append(Change("source", "source-consent", "create", "source-sp",
                                     f"Consent to the app in {f.source_name}: create its service principal"))
                ch.append(Change("source", "source-consent", "create", "source-grant",
                                 f"Consent in {f.source_name}: grant Mailbox.Migration to the app"))
            else:
                ch.append(Change("source", "source-consent", "wait", "source-consent",
                                 f"An admin of {f.source_name} approves the app with the consent link (source admin "
                                 "kit)"))

        # d. target Exchange
        if f.dehydrated:
            ch.append(Change("target", "target-exchange", "update", "org-customization",
                             "Enable organization customization in the target's Exchange Online (it is dehydrated)",
                             {"IsDehydrated": True}, {"IsDehydrated": False}))
        ep_name = self.endpoint_name(f)
        if f.endpoint is None:
            ch.append(Change("target", "target-exchange", "create", "endpoint",
                             f"Create the migration endpoint '{ep_name}' to {f.source_domain}",
                             after=self._endpoint_wanted(f)))
        else:
            before, after = self._endpoint_drift(f)
            uses = known.get("endpoint", {}).get("usesKeyId")
            secret_now = str(known.get("secret", {}).get("keyId", ""))
            secret_change = any(c.key == "secret" for c in ch) or (
                bool(uses) and uses != secret_now and secret_now in self._secrets)
            if after or secret_change:
                ch.append(Change("target", "target-exchange", "update", "endpoint",
                                 f"Update the migration endpoint '{f.endpoint.identity}'"
                                 + (" with the new client secret" if secret_change else ""), before, after))
            else:
                ch.append(Change("target", "target-exchange", "keep" if "endpoint" in known else "adopt", "endpoint",
                                 f"Migration endpoint '{f.endpoint.identity}' is in place"))
        ch.extend(self._relationship_changes(f, "target"))

        # e. source Exchange
        if f.group is None:
            ch.append(Change("source", "scope-group", "create", "scope-group",
                             f"Create the mail-enabled security group '{f.group_name}' to scope the move"))
        else:
            ch.append(Change("source", "scope-group", "keep" if "scope-group" in known else "adopt", "scope-group",
                             f"Scope group '{f.group.display_name or f.group.name}' ({len(f.members)} members)"))
        for _who, addr in f.member_adds:
            ch.append(Change("source", "scope-group", "create", f"member:{addr}",
                             f"Add {addr} to the scope group"))
        for _who, addr in f.member_removes:
            ch.append(Change("source", "scope-group", "remove", f"member:{addr}",
                             f"Remove {addr} from the scope group"))
        ch.extend(self._relationship_changes(f, "source"))
        if any(c.key == "source-consent" for c in ch):
            # Exchange checks the source's consent when the endpoint is made: hold the secret and the endpoint.
            ch = [Change(c.tenant, c.step, "wait", c.key, "After the source's approval: " + c.line[0].lower()
                         + c.line[1:]) if c.key in ("secret", "endpoint") and c.changes_tenant else c for c in ch]
        return Plan(ch, warnings)

    def _app_drift(self, f: Facts) -> tuple[dict[str, Any], dict[str, Any]]:
        assert f.app is not None
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        if f.app.sign_in_audience != MULTITENANT and f.app.sign_in_audience != "AzureADandPersonalMicrosoftAccount":
            before["signInAudience"], after["signInAudience"] = f.app.sign_in_audience, MULTITENANT
        if REDIRECT_URI not in f.app.redirect_uris:
            before["redirectUris"] = list(f.app.redirect_uris)
            after["redirectUris"] = [*f.app.redirect_uris, REDIRECT_URI]
        if not self._has_role(f.app, f.role_id):
            before["requiredResourceAccess"] = ["(no Mailbox.Migration)"]
            after["requiredResourceAccess"] = ["Office 365 Exchange Online: Mailbox.Migration (application)"]
        return before, after

    @staticmethod
    def _has_role(app: Application, role_id: str) -> bool:
        for r in app.required_resource_access:
            if str(r.get("resourceAppId", "")).lower() != EXCHANGE_APP_ID:
                continue
            if any(str(a.get("id", "")).lower() == role_id.lower() and a.get("type") == "Role"
                   for a in r.get("resourceAccess") or []):
                return True
        return False

    def _endpoint_wanted(self, f: Facts) -> dict[str, Any]:
        out: dict[str, Any] = {"RemoteServer": self.ctx.endpoints.exchange_remote_server,
                               "RemoteTenant": f.source_domain,
                               "ApplicationId": f.app.app_id if f.app else "(the new app)"}
        if f.kv is not None:
            cert = f.kv.certificate
            out["AppSecretKeyVaultUrl"] = cert.id if cert is not None else "(the new certificate)"
        return out

    def _endpoint_drift(self, f: Facts) -> tuple[dict[str, Any], dict[str, Any]]:
        e = f.endpoint
        if e is None:
            return {}, {}
        want = self._endpoint_wanted(f)
        have = {"RemoteServer": e.remote_server, "RemoteTenant": e.remote_tenant, "ApplicationId": e.application_id,
                "AppSecretKeyVaultUrl": e.app_secret_key_vault_url}
        before = {k: have[k] for k in want if str(have[k]).lower() != str(want[k]).lower()}
        return before, {k: want[k] for k in before}

    def _relationship_changes(self, f: Facts, side: str) -> list[Change]:
        known = self.journal.known()
        key = f"{side}-rel"
        rel = f.target_rel if side == "target" else f.source_rel
        partner_id = f.source_id if side == "target" else f.target_id
        partner = f.source_name if side == "target" else f.target_name
        partner_domain = f.source_domain if side == "target" else f.target_domain
        capability = "Inbound" if side == "target" else "RemoteOutbound"
        step = "target-exchange" if side == "target" else "source-exchange"
        if rel is None:
            after: dict[str, Any] = {"DomainNames": [partner_id], "MailboxMoveEnabled": True,
                                     "MailboxMoveCapability": [capability]}
            if side == "source":
                after["OAuthApplicationId"] = f.app.app_id if f.app else "(the new app)"
                after["MailboxMovePublishedScopes"] = [f.group_name]
            return [Change(side, step, "create", key,
                           f"Create the organization relationship '{self.relationship_name(partner_domain)}' to "
                           f"{partner} ({partner_id}) allowing {capability} moves", after=after)]
        before, after = self.relationship_drift(f, side, rel)
        if after:
            return [Change(side, step, "update", key, f"Update the organization relationship '{rel.name}' to {partner}",
                           before, after)]
        return [Change(side, step, "keep" if key in known else "adopt", key,
                       f"Organization relationship '{rel.name}' to {partner} allows {capability} moves")]

    @staticmethod
    def relationship_drift(f: Facts, side: str, rel: OrganizationRelationship
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
        partner_id = f.source_id if side == "target" else f.target_id
        capability = "Inbound" if side == "target" else "RemoteOutbound"
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        if not rel.names_tenant(partner_id):
            before["DomainNames"] = list(rel.domain_names)
            after["DomainNames"] = [*rel.domain_names, partner_id]
        if not rel.enabled:
            before["Enabled"], after["Enabled"] = False, True
        if not rel.mailbox_move_enabled:
            before["MailboxMoveEnabled"], after["MailboxMoveEnabled"] = False, True
        if not rel.has_capability(capability):
            before["MailboxMoveCapability"] = list(rel.mailbox_move_capabilities)
            after["MailboxMoveCapability"] = [*rel.mailbox_move_capabilities, capability]
        if side == "source":
            app_id = f.app.app_id if f.app else "(the new app)"
            if rel.oauth_application_id.lower() != app_id.lower():
                before["OAuthApplicationId"], after["OAuthApplicationId"] = rel.oauth_application_id, app_id
            if _low(rel.mailbox_move_published_scopes) != {f.group_name.lower()} and not (
                    f.group is not None and _low(rel.mailbox_move_published_scopes)
                    == {f.group.name.lower()}):
                before["MailboxMovePublishedScopes"] = list(rel.mailbox_move_published_scopes)
                after["MailboxMovePublishedScopes"] = [f.group.name if f.group else f.group_name]
        return before, after

    # --- apply ----------------------------------------------------------------------------------------------
    async def apply(self, progress: Progress | None = None, cancel: threading.Event | None = None,
                    *, max_changes: int = 60) -> ApplyResult:
        """Converge: execute the first pending change, re-read what it touched (TOUCHES), plan again, repeat
        until nothing is pending.

        It starts from an inspection: the one of the plan just shown (the last `plan()`, at most
        `fresh_seconds` ago, nothing journaled since, not used by an earlier apply: what the admin was shown
        is what gets done), else a new one; a retry after a problem therefore reads both tenants again.
        Intents a crash left open are closed from it first.  Cancel is honoured between changes (never in the
        middle of one)."""
        result = ApplyResult()
        f = self._planned_facts() or await self.inspect()
        self._close_unfinished(f)
        total = 0
        repeated: dict[str, int] = {}
        for _ in range(max_changes):
            plan = self._plan(f)
            result.warnings = list(plan.warnings)
            pending = plan.pending
            total = max(total, len(result.done) + len(pending))
            if not pending:
                if plan.waiting:
                    raise SetupProblem(self.consent_pending_problem())
                return result
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                return result
            change = pending[0]
            tag = change.key + change.kind
            repeated[tag] = repeated.get(tag, 0) + 1
            if repeated[tag] > 3:
                raise problem(f"A change did not take effect: {change.line}.",
                              "The service accepted it, but reading it back does not show it.",
                              "Wait a few minutes (directory replication) and run the setup again.", retryable=True)
            if progress is not None:
                progress(len(result.done), total, change.line)
            await self._execute(change)
            result.done.append(change)
            await self._refresh(f, change)
        raise problem("The setup did not finish.", "More changes were needed than expected.",
                      "Run the setup again; if it repeats, send the journal to your IT contact.")

    def _close_unfinished(self, f: Facts) -> None:
        """Intents a crash left open: record what the tenants show (`f`: the object exists, or it does not)."""
        for e in self.journal.unfinished():
            key = str(e.target.get("key"))
            if is_removal(e) and key in VAULT_KEYS and f.kv is None:
                continue  # not read outside the Key Vault mode: the teardown closes it on its next run
            self.journal.resolve(e, self._found_for(f, key, e.target))

    def _found_for(self, f: Facts, key: str, target: dict[str, Any]) -> dict[str, Any] | None:
        if key == "app" and f.app is not None:
            return {"id": f.app.id, "appId": f.app.app_id, "name": f.app.display_name}
        if key == "target-sp" and f.target_sp is not None:
            return {"id": f.target_sp.id}
        if key == "target-grant" and f.target_grant is not None:
            return {"id": f.target_grant.id}
        if key == "source-sp" and f.source_sp is not None:
            return {"id": f.source_sp.id}
        if key == "source-grant" and f.source_grant is not None:
            return {"id": f.source_grant.id}
        if key == "secret" and f.app is not None:
            cred = next((p for p in f.app.password_credentials if p.display_name == target.get("name")), None)
            return {"keyId": cred.key_id, "orphan": True} if cred is not None else None
        if key == "org-customization":
            return {} if not f.dehydrated else None
        if f.kv is not None:
            vf = f.kv
            if key == "resource-group":
                return {"name": vf.resource_group} if vf.rg_exists else None
            if key == "vault":
                return {"name": vf.vault_name, "resourceGroup": vf.resource_group} if vf.vault is not None else None
            if key == "vault-admin-role":
                return {} if vf.admin_role else None
            if key == "vault-exchange-role":
                return {} if vf.exchange_role else None
            if key == "certificate":
                return {"id": vf.certificate.id} if vf.certificate is not None else None
            if key == "app-certificate":
                return {} if vf.certificate_on_app else None
        if key == "endpoint" and f.endpoint is not None:
            return {"name": f.endpoint.identity}
        if key in ("target-rel", "source-rel"):
            rel = f.target_rel if key == "target-rel" else f.source_rel
            if rel is not None and rel.name.lower() == str(target.get("name", "")).lower():
                return {"name": rel.name}
            return None
        if key == "scope-group" and f.group is not None:
            return {"name": f.group.name}
        if key.startswith("secret:"):  # a secret the teardown removes from an adopted app
            return {} if f.app is not None and key.split(":", 1)[1] in {
                p.key_id for p in f.app.password_credentials} else None
        if key.startswith("orphan-secret:"):
            gone = f.app is None or key.split(":", 1)[1] not in {p.key_id for p in f.app.password_credentials}
            return {} if gone else None
        if key.startswith("member:"):
            addr = key.split(":", 1)[1].lower()
            present = any(m.primary_smtp_address.lower() == addr for m in f.members)
            return {} if present == (target.get("op") != "remove") else None
        return None

    async def _execute(self, c: Change) -> None:
        f = self.facts
        assert f is not None
        action = {"create": "create", "update": "update", "remove": "remove"}[c.kind]
        name = self._object_name(f, c)
        target: dict[str, Any] = {"key": c.key, "type": c.key.split(":")[0], "name": name}
        if c.key.startswith("member:"):
            target["op"] = c.kind
        detail: dict[str, Any] = {"line": c.line}
        if c.kind == "update":
            detail = {"line": c.line, "before": c.before, "after": c.after}
        op = self.journal.begin(c.tenant, c.step, f"{action} {c.key.split(':')[0]}", target, detail)
        try:
            done = await self._do(f, c, name)
        except ServiceError as exc:
            self.journal.finish(op, ok=False, detail={"error": str(exc)[:500]})
            raise SetupProblem(explain_setup(exc, c)) from None
        except SetupProblem as exc:
            self.journal.finish(op, ok=False, detail={"error": exc.problem.what})
            raise
        self.journal.finish(op, ok=True, target={**target, **done})

    def _object_name(self, f: Facts, c: Change) -> str:
        if c.key == "app":
            return f.app.display_name if f.app is not None else self.app_name(f)
        if c.key == "secret":
            return f"xtwizard {self.now():%Y%m%d%H%M%S%f}"
        if c.key == "vault" and f.kv is not None:
            return f.kv.vault_name
        if c.key == "resource-group" and f.kv is not None:
            return f.kv.resource_group
        if c.key == "certificate":
            return CERTIFICATE_NAME
        if c.key == "endpoint":
            return f.endpoint.identity if f.endpoint is not None else self.endpoint_name(f)
        if c.key == "target-rel":
            return f.target_rel.name if f.target_rel is not None else self.relationship_name(f.source_domain)
        if c.key == "source-rel":
            return f.source_rel.name if f.source_rel is not None else self.relationship_name(f.target_domain)
        if c.key == "scope-group":
            return f.group_name
        if c.key.startswith(("member:", "orphan-secret:")):
            return c.key.split(":", 1)[1]
        return c.key

    async def _do(self, f: Facts, c: Change, name: str) -> dict[str, Any]:
        tg, sg = self.ctx.graph("target"), self.ctx.graph("source")
        tx, sx = self.ctx.exchange("target"), self.ctx.exchange("source")
        if c.key == "app":
            rra = [{"resourceAppId": EXCHANGE_APP_ID, "resourceAccess": [{"id": f.role_id, "type": "Role"}]}]
            if c.kind == "create":
                app = await tg.create_application({"displayName": name, "signInAudience": MULTITENANT,
                                                   "web": {"redirectUris": [REDIRECT_URI]},
                                                   "requiredResourceAccess": rra})
                return {"id": app.id, "appId": app.app_id}
            assert f.app is not None
            changes: dict[str, Any] = {}
            if "signInAudience" in c.after:
                changes["signInAudience"] = MULTITENANT
            if "redirectUris" in c.after:
                changes["web"] = {"redirectUris": c.after["redirectUris"]}
            if "requiredResourceAccess" in c.after:
                others = [dict(r) for r in f.app.required_resource_access
                          if str(r.get("resourceAppId", "")).lower() != EXCHANGE_APP_ID]
                exo = next((dict(r) for r in f.app.required_resource_access
                            if str(r.get("resourceAppId", "")).lower() == EXCHANGE_APP_ID), None)
                access = list((exo or {}).get("resourceAccess") or []) + [{"id": f.role_id, "type": "Role"}]
                changes["requiredResourceAccess"] = [*others, {"resourceAppId": EXCHANGE_APP_ID,
                                                               "resourceAccess": access}]
            await tg.update_application(f.app.id, changes)
            return {"id": f.app.id, "appId": f.app.app_id}
        if c.key == "target-sp":
            assert f.app is not None
            app_id = f.app.app_id
            sp = await self._retry_replication(lambda: tg.create_service_principal(app_id), _not_replicated)
            return {"id": sp.id}
        if c.key == "target-grant":
            assert f.target_sp is not None and f.exo_sp_target is not None
            exo_id, sp_id = f.exo_sp_target.id, f.target_sp.id
            grant = await self._retry_replication(lambda: tg.grant_app_role(exo_id, sp_id, f.role_id),
                                                  _not_replicated)
            return {"id": grant.id}
        if c.key in ("resource-group", "vault", "vault-admin-role", "vault-exchange-role", "certificate",
                     "app-certificate"):
            return await self._do_vault(f, c)
        if c.key == "secret":
            assert f.app is not None
            end = self.now() + datetime.timedelta(days=self.options.migration_window_days + 30)
            new = await tg.add_password(f.app.id, name, end_date_time=end.strftime("%Y-%m-%dT%H:%M:%SZ"))
            self._secrets[new.key_id] = new.secret_text
            self.project_setup["expiry"] = {"mode": "secret", "keyId": new.key_id,
                                                "expires": new.end_date_time or end.isoformat()}
            self.ctx.project.save()
            return {"keyId": new.key_id, "expires": new.end_date_time or ""}
        if c.key.startswith("orphan-secret:"):
            assert f.app is not None
            await tg.remove_password(f.app.id, c.key.split(":", 1)[1])
            return {}
        if c.key in ("source-sp", "source-grant"):
            return await self._source_consent(f, sg, c.key)
        if c.key == "org-customization":
            try:
                await tx.enable_organization_customization()
            except ExchangeError as exc:
                if "not required" not in exc.message:  # already hydrated (by someone else meanwhile)
                    raise
            return {}
        if c.key == "endpoint":
            return await self._endpoint(f, tx, c, name)
        if c.key in ("target-rel", "source-rel"):
            return await self._relationship(f, tx if c.key == "target-rel" else sx, c, name)
        if c.key == "scope-group":
            alias = re.sub(r"[^A-Za-z0-9]", "", name)[:64] or "MigrationScope"
            await sx.invoke("New-DistributionGroup", {"Name": name, "Type": "Security", "Alias": alias})
            return {"name": name}
        if c.key.startswith("member:"):
            assert f.group is not None
            cmd = "Add-DistributionGroupMember" if c.kind == "create" else "Remove-DistributionGroupMember"
            params: dict[str, Any] = {"Identity": f.group.identity, "Member": name}
            if c.kind == "remove":
                params["Confirm"] = False
            await sx.invoke(cmd, params)
            return {"group": f.group.name}
        raise AssertionError(c.key)

    async def _source_consent(self, f: Facts, sg: GraphClient, key: str) -> dict[str, Any]:
        assert f.app is not None
        app_id = f.app.app_id
        if key == "source-sp":
            sp = await self._retry_replication(lambda: sg.create_service_principal(app_id), _not_replicated)
            return {"id": sp.id}
        if f.exo_sp_source is None:
            raise problem("Exchange Online is not set up in the source tenant.",
                          "The source has no service principal for Office 365 Exchange Online.",
                          "Make sure the source has Exchange Online, then try again.")
        assert f.source_sp is not None
        exo_id, sp_id = f.exo_sp_source.id, f.source_sp.id
        role = f.exo_sp_source.app_role(MAILBOX_MIGRATION)
        role_id = role.id if role is not None else f.role_id
        grant = await self._retry_replication(lambda: sg.grant_app_role(exo_id, sp_id, role_id), _not_replicated)
        return {"id": grant.id}

    def _usable_secret(self) -> tuple[str, str]:
        rec = self.journal.known().get("secret") or {}
        key_id = str(rec.get("keyId", ""))
        secret = self._secrets.get(key_id)
        if not secret:
            raise problem("The client secret is not available.",
                          "xtwizard never saves the secret, and this run did not create one.",
                          "Run the setup again: it adds a new secret and passes it to the endpoint.", retryable=True)
        return key_id, secret

    async def _endpoint(self, f: Facts, tx: ExchangeClient, c: Change, name: str) -> dict[str, Any]:
        assert f.app is not None
        app_id = f.app.app_id
        vault_url = f.kv.certificate.id if f.kv is not None and f.kv.certificate is not None else None
        key_id, secret = ("", "")
        if f.kv is None and (c.kind == "create" or "secret" in c.line):
            key_id, secret = self._usable_secret()
        if f.kv is not None and vault_url is None:
            raise problem("The certificate is not in the vault yet.", "The endpoint points Exchange at it.",
                          "Run the setup again.", retryable=True)
        if c.kind == "create":
            async def create() -> MigrationEndpoint:
                return await tx.new_migration_endpoint(name, remote_tenant=f.source_domain, application_id=app_id,
                                                       secret=secret or None, app_secret_key_vault_url=vault_url)
            await self._retry_replication(create, _consent_not_replicated)
        else:
            params: dict[str, Any] = {"Identity": name, "ApplicationId": app_id, "RemoteTenant": f.source_domain,
                                      "RemoteServer": self.ctx.endpoints.exchange_remote_server}
            if secret:
                params["Credentials"] = encode_credential(app_id, secret)
            if vault_url:
                params["AppSecretKeyVaultUrl"] = vault_url

            async def update() -> Any:
                return await tx.invoke("Set-MigrationEndpoint", params)
            await self._retry_replication(update, _consent_not_replicated)
        out: dict[str, Any] = {"name": name, "applicationId": app_id}
        if key_id:
            out["usesKeyId"] = key_id
        if vault_url:
            out["certificate"] = vault_url
        return out

    async def _relationship(self, f: Facts, x: ExchangeClient, c: Change, name: str) -> dict[str, Any]:
        side = "target" if c.key == "target-rel" else "source"
        if c.kind == "create":
            assert f.app is not None or side == "target"
            if side == "target":
                await x.new_organization_relationship(name, [f.source_id], capabilities=["Inbound"])
            else:
                assert f.app is not None and f.group is not None
                await x.new_organization_relationship(name, [f.target_id], capabilities=["RemoteOutbound"],
                                                      oauth_application_id=f.app.app_id,
                                                      published_scopes=[f.group.name])
            return {"name": name}
        rel = f.target_rel if side == "target" else f.source_rel
        assert rel is not None
        before, after = self.relationship_drift(f, side, rel)
        params: dict[str, Any] = {}
        if "DomainNames" in after:
            params["DomainNames"] = hashtable(add=[f.source_id if side == "target" else f.target_id])
        if "Enabled" in after:
            params["Enabled"] = True
        if "MailboxMoveEnabled" in after:
            params["MailboxMoveEnabled"] = True
        if "MailboxMoveCapability" in after:
            params["MailboxMoveCapability"] = ", ".join(after["MailboxMoveCapability"])
        if "OAuthApplicationId" in after:
            assert f.app is not None
            params["OAuthApplicationId"] = f.app.app_id
        if "MailboxMovePublishedScopes" in after:
            assert f.group is not None
            params["MailboxMovePublishedScopes"] = [f.group.name]
        await x.set_organization_relationship(rel.identity or rel.name, params)
        return {"name": rel.name}

    def expiry_warning(self) -> str | None:
        """A warning when the recorded credential ends before the migration window does (for any page)."""
        rec = self.ctx.project.data.get("setup", {}).get("expiry") or {}
        end = _parse_time(str(rec.get("expires") or ""))
        if end is None:
            return None
        what = "client secret" if rec.get("mode") == "secret" else "Key Vault certificate"
        if end <= self.now():
            return f"The migration app's {what} expired on {end:%Y-%m-%d}: run the setup again to renew it."
        if end < self.now() + datetime.timedelta(days=self.options.migration_window_days):
            return (f"The migration app's {what} expires on {end:%Y-%m-%d}, within the migration window: "
                    "run the setup again to renew it before it breaks a running migration.")
        return None

    # --- consent kit ----------------------------------------------------------------------------------------
    def consent_url(self, f: Facts | None = None) -> str:
        f = f or self.facts
        assert f is not None and f.app is not None
        return self.ctx.endpoints.admin_consent_url(f.source_domain, f.app.app_id, REDIRECT_URI)

    def source_admin_kit(self, f: Facts | None = None) -> str:
        """Copyable text for the source tenant's admin: the link, what they approve and why, what next."""
        f = f or self.facts
        assert f is not None
        if f.app is None:
            return "The migration app does not exist yet: run the setup in the target first."
        return "\n".join([
            f"Mailbox move from {f.source_name} to {f.target_name}: approval needed",
            "",
            f"{f.target_name} is moving mailboxes out of {f.source_name} ({f.source_domain}) with Microsoft's",
            "cross-tenant mailbox migration. Microsoft's service needs the approval of a Global Administrator",
            f"of {f.source_name} for the migration app of {f.target_name}.",
            "",
            "1. Open this link and sign in with a Global Administrator account of the source tenant:",
            f"   {self.consent_url(f)}",
            f"2. Check that the app is '{f.app.display_name}' (application ID {f.app.app_id}), published",
            f"   by {f.target_name}, and that it asks for one permission: \"Move mailboxes between",
            "   organizations\" (Office 365 Exchange Online, Mailbox.Migration).",
            "3. Press Accept. The browser then opens office.com: that is expected.",
            "",
            "What it allows: Microsoft's migration service may read the mailboxes that you put in the scope",
            "group (a mail-enabled security group) and copy them to the target. No other mailbox is reachable,",
            "and you can remove the approval at any time in Entra admin center > Enterprise applications.",
            "",
            f"Then tell {f.target_name}'s admin; they press Verify. Approval can take a few minutes to show.",
        ])

    def consent_pending_problem(self) -> Problem:
        f = self.facts
        kit = self.source_admin_kit(f) if f is not None else ""
        return Problem("The source tenant has not approved the migration app yet.",
                       "Only an administrator of the source tenant can consent to the app; the signed-in source "
                       "account cannot (or consenting by xtwizard was turned off). Consent that was just given can "
                       "take a few minutes to replicate.",
                       "Send the source admin kit to the source's Global Administrator, wait for their answer, "
                       "then run the setup again (or press Verify).", kit, retryable=True)

    # --- verify ---------------------------------------------------------------------------------------------
    def _verify_vault(self, f: Facts, check: Callable[..., None]) -> None:
        """VerifySetupDeprecated.ps1's Verify-KeyVault, for an RBAC vault: the vault, Exchange's access, the
        certificate and its public part on the app."""
        vf = f.kv
        assert vf is not None
        check("target", "Key vault", vf.vault is not None,
              f"'{vf.vault_name}' in {vf.resource_group} ({vf.subscription_name})" if vf.vault
              else f"'{vf.vault_name}' not found", "Run the setup: it creates the vault.")
        check("target", "Exchange can read the certificate", vf.exchange_role,
              f"Office 365 Exchange Online holds '{CERTIFICATE_USER}'" if vf.exchange_role
              else f"Office 365 Exchange Online has no '{CERTIFICATE_USER}' role on the vault",
              "Run the setup: it assigns the role.")
        cert = vf.certificate
        check("target", "Certificate", cert is not None,
              f"{cert.subject or cert.name}, thumbprint {cert.thumbprint_hex}" if cert else "not in the vault",
              "Run the setup: it creates the certificate.")
        if cert is not None and cert.expires_on is not None:
            end = self.now() + datetime.timedelta(days=self.options.migration_window_days)
            check("target", "Certificate expiry", cert.expires_on > end, f"expires {cert.expires_on:%Y-%m-%d}",
                  "Run the setup: it renews the certificate before the migration window ends.",
                  warning=self.now() < cert.expires_on <= end)
        check("target", "Certificate on the app", vf.certificate_on_app,
              "the app's keyCredentials hold the certificate" if vf.certificate_on_app else "missing",
              "Run the setup: it adds the certificate's public part to the app.")

    async def verify(self) -> list[Check]:
        try:
            return await self._verify()
        except ServiceError as exc:
            raise SetupProblem(explain_setup(exc)) from None

    async def _availability(self, endpoint: str) -> ServerAvailability | ExchangeError:
        try:
            return await self.ctx.exchange("target").test_migration_server_availability(
                endpoint, self.options.test_mailuser)
        except ExchangeError as exc:
            return exc

    async def _verify(self) -> list[Check]:
        # Test-MigrationServerAvailability needs only the endpoint's name: with the journal's, it runs while both
        # tenants are read (and again if the endpoint found has another name).
        named = str(self.journal.known().get("endpoint", {}).get("name") or "")
        tested: ServerAvailability | ExchangeError | None = None
        if named:
            f, tested = await _together(self._inspect(), self._availability(named))
        else:
            f = await self._inspect()
        out: list[Check] = []

        def check(tenant: str, name: str, ok: bool, message: str, fix: str = "", warning: bool = False) -> None:
            out.append(Check(tenant, name, ok, message, fix, warning))

        # Application (VerifySetup: Verify-Application), both sides
        app = f.app
        check("target", "Application", app is not None,
              f"'{app.display_name}' ({app.app_id})" if app else "the migration app is not registered",
              "Run the setup: it creates the app.")
        if app is None:
            return out
        check("target", "Multitenant", app.sign_in_audience in (MULTITENANT, "AzureADandPersonalMicrosoftAccount"),
              f"sign-in audience {app.sign_in_audience}", "Run the setup: it makes the app multitenant.")
        check("target", "Redirect URI", REDIRECT_URI in app.redirect_uris, ", ".join(app.redirect_uris) or "(none)",
              "Run the setup: it adds https://office.com.")
        check("target", "Service principal", f.target_sp is not None,
              "present" if f.target_sp else "missing", "Run the setup.")
        if f.target_sp is not None:
            owner = (f.target_sp.app_owner_organization_id or "").lower()
            check("target", "App owner", owner == f.target_id.lower(),
                  f"owned by {owner or '(unknown)'}; the app used for migration must be owned by the target",
                  "Use an app registered in the target tenant.")
        check("target", "Mailbox.Migration consented", f.target_grant is not None,
              "granted by an administrator" if f.target_grant else "not granted",
              "Run the setup: it grants admin consent in the target.")
        check("source", "Service principal (consent)", f.source_sp is not None,
              "the app is known in the source" if f.source_sp else "the source has not consented yet",
              "Send the source admin kit, or sign in to the source as a Global Administrator and run the setup.")
        if f.source_sp is not None:
            owner = (f.source_sp.app_owner_organization_id or "").lower()
            check("source", "App owner", owner == f.target_id.lower(),
                  f"owned by {owner or '(unknown)'} (must be the target tenant {f.target_id})",
                  "The source consented to another app; consent to the target's migration app.")
        check("source", "Mailbox.Migration consented", f.source_grant is not None,
              "granted" if f.source_grant else "not granted (or not yet replicated)",
              "Have the source admin open the consent link, wait a few minutes, then verify again.")
        # Credential
        if f.kv is not None:
            self._verify_vault(f, check)
        else:
            state, detail = self._credential_state(f)
            adopted = f.endpoint is not None and "usesKeyId" not in self.journal.known().get("endpoint", {})
            check("target", "Client secret", state == "ok" or adopted,
                  detail if not adopted else "the endpoint was adopted with its own credential (tested below)",
                  "Run the setup: it adds a new secret and updates the endpoint.", warning=state == "expiring")
        # Migration endpoint (Verify-MigrationEndpoint)
        e = f.endpoint
        check("target", "Migration endpoint", e is not None, e.identity if e else "missing", "Run the setup.")
        if e is not None:
            check("target", "Endpoint application", e.application_id.lower() == app.app_id.lower(),
                  f"ApplicationId {e.application_id}", "Run the setup: it updates the endpoint.")
            check("target", "Endpoint remote tenant", e.remote_tenant.lower() == f.source_domain.lower(),
                  f"expected {f.source_domain}, found {e.remote_tenant}", "Run the setup: it updates the endpoint.")
            check("target", "Endpoint is remote", e.is_remote or e.endpoint_type.lower() == "exchangeremotemove",
                  f"IsRemote {e.is_remote}", "Recreate the endpoint with -ExchangeRemoteMove.")
            if f.kv is not None:
                cert_id = f.kv.certificate.id if f.kv.certificate is not None else ""
                url = e.app_secret_key_vault_url
                check("target", "Endpoint AppSecretKeyVaultUrl", bool(url) and url.lower() == cert_id.lower(),
                      f"expected {cert_id or '(no certificate)'}, found {url or '(none)'}",
                      "Run the setup: it points the endpoint at the vault's certificate.")
                check("target", "Key Vault URL format", bool(VAULT_URL.match(url or "")), url or "(none)",
                      "The URL must be https://<vault>.vault.azure.net/certificates/<name>/<version>.")
        # Organization relationships, capabilities by membership
        for side, rel, cap in (("target", f.target_rel, "Inbound"), ("source", f.source_rel, "RemoteOutbound")):
            partner = f.source_id if side == "target" else f.target_id
            check(side, "Organization relationship", rel is not None and rel.names_tenant(partner),
                  f"'{rel.name}' names {partner}" if rel is not None and rel.names_tenant(partner)
                  else f"no relationship names {partner}", "Run the setup.")
            if rel is None:
                continue
            check(side, "Relationship enabled", rel.enabled and rel.mailbox_move_enabled,
                  f"Enabled {rel.enabled}, MailboxMoveEnabled {rel.mailbox_move_enabled}", "Run the setup.")
            check(side, f"MailboxMoveCapability has {cap}", rel.has_capability(cap),
                  ", ".join(rel.mailbox_move_capabilities) or "None", "Run the setup: it adds the capability.")
            if side == "source":
                check("source", "OAuthApplicationId", rel.oauth_application_id.lower() == app.app_id.lower(),
                      f"expected {app.app_id}, found {rel.oauth_application_id or '(none)'}", "Run the setup.")
                scopes = rel.mailbox_move_published_scopes
                check("source", "Scope group", len(scopes) == 1,
                      ", ".join(scopes) if scopes else "no MailboxMovePublishedScopes",
                      "Choose one mail-enabled security group and run the setup.")
        if f.group is not None:
            check("source", "Scope group members", bool(f.members), f"{len(f.members)} member(s) in '{f.group.name}'",
                  "Add the users to move to the group.")
        # Test-MigrationServerAvailability
        if e is not None:
            avail = tested if tested is not None and named.lower() == e.identity.lower() else (
                await self._availability(e.identity))
            if isinstance(avail, ExchangeError):
                check("target", "Test-MigrationServerAvailability", False, str(avail),
                      "Check the test MailUser's address." if self.options.test_mailuser else "Run the setup.")
            else:
                who = f" for {self.options.test_mailuser}" if self.options.test_mailuser else ""
                check("target", "Test-MigrationServerAvailability" + who, avail.ok,
                      avail.result + (f": {avail.message} {avail.error_detail}".rstrip() if not avail.ok else ""),
                      "Read the message: it names the missing piece (consent, relationship, credential, user).")
        return out


VAULT_URL = re.compile(r"^https://[a-zA-Z_0-9\-]+\.vault\.(azure\.net|azure\.us|azure\.cn)(:443)?/certificates/"
                       r"[a-zA-Z_0-9\-]+/[a-zA-Z_0-9]+$")


# --- error mapping --------------------------------------------------------------------------------------------
def _not_replicated(exc: ServiceError) -> bool:
    text = exc.message.lower()
    return exc.status in (400, 404) and ("does not reference a valid application object" in text
                                         or "does not exist" in text)


def _consent_not_replicated(exc: ServiceError) -> bool:
    return isinstance(exc, ExchangeError) and "AADSTS700016" in exc.message


def explain_setup(exc: ServiceError, change: Change | None = None) -> Problem:
    """A service error during the setup, for people: the catalog in problems.py, with the change it stopped."""
    return explain(exc, doing=change.line if change is not None else "")

"""One open project at work: its endpoints, the two tenant sessions, the clients, and the rules that tie
them together (the right tenant in each slot, never the same tenant twice).

Pages call these coroutines through the UI's async runner; nothing here knows Qt.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keyring.backend import KeyringBackend

from ..cloud.arm import ArmClient
from ..cloud.auth import DEFAULT_CLIENT_ID, SignedInAccount, SignInError, TenantSession
from ..cloud.endpoints import CloudEndpoints
from ..cloud.exchange import ExchangeClient
from ..cloud.graph import GraphClient, find_cross_tenant_migration_skus
from ..cloud.http import HttpPolicy
from ..cloud.service import ServiceError, session_token_provider
from ..cloud.tokenstore import TokenStore
from . import Progress
from .prereqs import Check, TenantFacts, evaluate
from .project import MigrationProject

# Azure roles that let the admin create a vault and grant data-plane roles on it (reference §5.1).
OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR_ROLE = "b24988ac-6180-42a0-ab88-20f7382dd24c"
USER_ACCESS_ADMIN_ROLE = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
EXCHANGE_RESOURCE_APP = "00000002-0000-0ff1-ce00-000000000000"


SLOTS = ("target", "source")


@dataclass(frozen=True)
class TenantIdentity:
    """Who is signed in where, as the page shows it."""

    slot: str
    tenant_id: str
    display_name: str
    initial_domain: str
    username: str


class Workspace:
    def __init__(self, endpoints: CloudEndpoints, project: MigrationProject, data_dir: Path, *,
                 client_id: str = DEFAULT_CLIENT_ID, keyring_backend: KeyringBackend | None = None,
                 policy: HttpPolicy | None = None) -> None:
        self.endpoints = endpoints
        self.project = project
        self.policy = policy or HttpPolicy.for_ca_bundle(endpoints.ca_bundle)
        token_dir = data_dir / "projects" / project.id
        self.sessions = {slot: TenantSession(slot, endpoints,
                                             TokenStore(f"{project.id}-{slot}", token_dir, backend=keyring_backend),
                                             client_id=client_id)
                         for slot in SLOTS}
        self.identities: dict[str, TenantIdentity] = {}

    def graph(self, slot: str) -> GraphClient:
        return GraphClient(self.endpoints, self.policy, session_token_provider(self.sessions[slot]), tenant=slot)

    def exchange(self, slot: str) -> ExchangeClient:
        ident = self.identities[slot]
        return ExchangeClient(self.endpoints, self.policy, session_token_provider(self.sessions[slot]),
                              tenant=ident.tenant_id, admin_upn=ident.username)

    def arm(self, slot: str) -> ArmClient:
        return ArmClient(self.endpoints, self.policy, session_token_provider(self.sessions[slot]), tenant=slot)

    def token_note(self, slot: str) -> str | None:
        """Why tokens are memory-only for this slot, when they are (no or locked keyring)."""
        store = self.sessions[slot].store
        return None if store.persistent else store.reason

    # --- sign-in ---------------------------------------------------------------------------------------------
    async def sign_in_browser(self, slot: str, open_browser: Callable[[str], None],
                              cancel: threading.Event) -> TenantIdentity:
        session = self.sessions[slot]
        await asyncio.to_thread(session.sign_in_browser, open_browser, cancel)
        return await self._confirm(slot)

    async def start_device_code(self, slot: str) -> dict[str, object]:
        return await asyncio.to_thread(self.sessions[slot].start_device_code)

    async def finish_device_code(self, slot: str, flow: dict[str, object], cancel: threading.Event) -> TenantIdentity:
        await asyncio.to_thread(self.sessions[slot].finish_device_code, dict(flow), cancel)
        return await self._confirm(slot)

    async def resume(self, slot: str) -> TenantIdentity | None:
        """The slot's identity from the saved sign-in, if it still works (None: sign in again)."""
        if self.sessions[slot].account is None:
            return None
        try:
            return await self._confirm(slot)
        except SignInError:
            return None

    async def _confirm(self, slot: str) -> TenantIdentity:
        """Read the organization and apply the rules; a refused sign-in is signed out again."""
        account: SignedInAccount | None = self.sessions[slot].account
        if account is None:
            raise SignInError("failed", "The sign-in finished but no account came back. Try again.")
        org = await self.graph(slot).organization()
        ident = TenantIdentity(slot, org.tenant_id, org.display_name, org.initial_domain, account.username)
        problem = self.refusal(ident)
        if problem:
            await asyncio.to_thread(self.sessions[slot].sign_out)
            raise SignInError("wrong_tenant", problem)
        self.identities[slot] = ident
        self.project.data[slot] = {"tenantId": ident.tenant_id, "domain": ident.initial_domain,
                                   "displayName": ident.display_name, "account": ident.username}
        self.project.save()
        return ident

    def refusal(self, ident: TenantIdentity) -> str | None:
        """Why this sign-in cannot be used for its slot, or None."""
        other = "source" if ident.slot == "target" else "target"
        other_ident = self.identities.get(other)
        if other_ident and other_ident.tenant_id.lower() == ident.tenant_id.lower():
            return (f"{ident.username} belongs to {ident.display_name}, which is already signed in as the {other}. "
                    f"The {ident.slot} must be the other company's tenant: sign in with one of its admin accounts.")
        expected = str(self.project.data.get(ident.slot, {}).get("tenantId", ""))
        if expected and expected.lower() != ident.tenant_id.lower():
            name = self.project.data[ident.slot].get("displayName") or expected
            return (f"This project's {ident.slot} is {name} ({expected}), but {ident.username} belongs to "
                    f"{ident.display_name} ({ident.tenant_id}). Sign in with an admin account of {name}.")
        return None

    # --- prerequisites ----------------------------------------------------------------------------------
    async def check_prerequisites(self, progress: Progress | None = None) -> list[Check]:
        """Read both tenants (read-only, in parallel) and evaluate the checklist."""
        for slot in SLOTS:
            if slot not in self.identities:
                raise SignInError("needs_sign_in", f"Sign in to the {slot} tenant first.")
        steps = 2 * 6
        done = 0

        def tick(what: str) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, steps, what)

        source, target = await asyncio.gather(self._facts("source", tick), self._facts("target", tick))
        return evaluate(source, target)

    async def _facts(self, slot: str, tick: Callable[[str], None]) -> TenantFacts:
        ident = self.identities[slot]
        partner = self.identities["source" if slot == "target" else "target"]
        graph = self.graph(slot)
        org = await graph.organization()
        tick(f"{slot} organization")
        roles = await graph.my_directory_roles()
        tick(f"{slot} admin roles")
        skus = find_cross_tenant_migration_skus(await graph.subscribed_skus())
        tick(f"{slot} licenses")
        facts = TenantFacts(
            tenant_id=org.tenant_id, display_name=org.display_name, initial_domain=org.initial_domain,
            verified_domains=[d.name for d in org.verified_domains], admin_upn=ident.username,
            admin_role_ids={r.role_template_id for r in roles},
            migration_license_units=sum(s.available_units for s in skus) if skus else 0,
            migration_license_total=sum(s.prepaid_enabled for s in skus))
        if slot == "target":
            apps = await graph.list_applications()
            facts.existing_apps = [a.display_name for a in apps if "https://office.com" in a.redirect_uris and any(
                str(r.get("resourceAppId", "")).lower() == EXCHANGE_RESOURCE_APP for r in a.required_resource_access)]
        tick(f"{slot} app registrations")
        exo = self.exchange(slot)
        try:
            facts.is_dehydrated = await exo.is_dehydrated()
            facts.accepted_domains = [d.domain_name for d in await exo.accepted_domains()]
            facts.existing_relationships = [r.name for r in await exo.organization_relationships()
                                            if r.names_tenant(partner.tenant_id)]
            if slot == "target":
                facts.existing_endpoints = [e.identity for e in await exo.migration_endpoints()
                                            if e.endpoint_type.lower() == "exchangeremotemove"]
        except ServiceError as exc:
            facts.exchange_error = f"{exc.message} ({exc.code})"
        tick(f"{slot} Exchange Online")
        if slot == "target":
            facts.subscriptions_with_rights = await self._vault_rights()
        tick(f"{slot} Azure subscriptions")
        return facts

    async def _vault_rights(self) -> list[str]:
        """Target subscriptions where the admin may create a vault and grant roles on it."""
        arm = self.arm("target")
        me = await self.graph("target").me()
        try:
            subs = await arm.subscriptions(self.identities["target"].tenant_id)
        except ServiceError:
            return []
        names = []
        for sub in subs:
            try:
                assigned = await arm.role_assignments(f"/subscriptions/{sub.subscription_id}", principal_id=me.id)
            except ServiceError:
                continue
            roles = {a.role_definition_id.rsplit("/", 1)[-1].lower() for a in assigned}
            if OWNER_ROLE in roles or {CONTRIBUTOR_ROLE, USER_ACCESS_ADMIN_ROLE} <= roles:
                names.append(sub.display_name)
        return names

    async def sign_out(self, slot: str) -> None:
        await asyncio.to_thread(self.sessions[slot].sign_out)
        self.identities.pop(slot, None)

    async def aclose(self) -> None:
        await self.policy.aclose()

"""The users engine: inventory, mapping, target MailUser preparation, readiness with one-click fixes, dry run.

Persisted in `project.data["users"]` (no secrets): the chosen target domain, the delivery domain, the mapping
rows `{"source", "target"}`, the last inventory summary and the last readiness results.  The batches engine
reads them through `load_mapping(project)` and `ready_users(project)`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from ...cloud.exchange import ExchangeClient
from ..project import MigrationProject
from ..setup.model import ApplyResult, Check, Plan
from .model import MappingRow, PreparePlan, PrepareResult, ReadyUser, SourceMailbox, UserReadiness

Progress = Callable[[int, int, str], None]
Sleep = Callable[[float], Awaitable[None]]


class UsersContext(Protocol):
    """What the engine needs from the app (the Workspace provides it; tests provide a light one)."""

    project: MigrationProject

    @property
    def identities(self) -> dict[str, Any]: ...
    def exchange(self, slot: str) -> ExchangeClient: ...


def load_mapping(project: MigrationProject) -> list[MappingRow]:
    """The saved mapping rows (not validated: status "")."""
    raise NotImplementedError


def ready_users(project: MigrationProject) -> list[ReadyUser]:
    """The mapped users whose last readiness passed (no blocking finding), with their delegates and size."""
    raise NotImplementedError


def delivery_domain(project: MigrationProject) -> str:
    """The TargetDeliveryDomain for New-MigrationBatch: the target domain every prepared MailUser has a proxy in."""
    raise NotImplementedError


class UserEngine:
    """One project's users.  `concurrency` bounds the users worked on at once; the HTTP policy's gate bounds the
    requests in flight per tenant, and its 429 handling (Retry-After) keeps the work inside Exchange's throttle."""

    def __init__(self, ctx: UsersContext, *, sleep: Sleep | None = None, concurrency: int = 16) -> None:
        self.ctx = ctx
        self.sleep: Sleep = sleep or asyncio.sleep
        self.concurrency = concurrency

    # --- 1. inventory ---------------------------------------------------------------------------------------
    async def inventory(self, progress: Progress | None = None, cancel: threading.Event | None = None, *,
                        statistics: bool = True) -> list[SourceMailbox]:
        """Every source mailbox (paged Get-Mailbox), marked in scope when it is a member — transitively — of the
        scope group; with `statistics`, sizes from Get-MailboxStatistics (bounded concurrency).  Also reads the
        target's recipients once, for mapping and validation.  Saves a summary in the project."""
        raise NotImplementedError

    # --- 2. mapping -----------------------------------------------------------------------------------------
    def auto_map(self, mailboxes: Sequence[SourceMailbox], target_domain: str) -> list[MappingRow]:
        """source -> target: an existing target MailUser prepared for this mailbox (same ExchangeGuid, or its
        ExternalEmailAddress is the source address) first, else the alias in `target_domain`."""
        raise NotImplementedError

    def import_csv(self, text: str) -> tuple[list[MappingRow], list[str]]:
        """Rows from a SourceUser,TargetUser CSV (Microsoft's validation script format; a BOM, ';' or tab
        separators and common header spellings are accepted).  Returns the rows and, for every line or header
        that could not be used, a plain sentence saying which and why."""
        raise NotImplementedError

    def export_csv(self, rows: Sequence[MappingRow]) -> str:
        """SourceUser,TargetUser CSV text (UTF-8, CRLF), importable by `import_csv` and the CSS validation script."""
        raise NotImplementedError

    async def validate(self, rows: Sequence[MappingRow]) -> list[MappingRow]:
        """Each row with status ok / warning / error, a message and how to resolve it: unknown source, target
        domain not accepted, duplicates, the target address taken by another object, a mailbox as target."""
        raise NotImplementedError

    def save_mapping(self, rows: Sequence[MappingRow], target_domain: str | None = None) -> None:
        """Persist the mapping (and the chosen target domain) in the project."""
        raise NotImplementedError

    # --- 3. preparation ---------------------------------------------------------------------------------------
    async def plan_prepare(self, progress: Progress | None = None,
                           cancel: threading.Event | None = None) -> PreparePlan:
        """For each mapped user: create the target MailUser, update its drifted attributes (before -> after), keep
        it, or skip the user with the reason.  Reads only (source mailboxes, target recipients, accepted domains)."""
        raise NotImplementedError

    async def apply_prepare(self, plan: PreparePlan, progress: Progress | None = None,
                            cancel: threading.Event | None = None) -> PrepareResult:
        """Carry out the plan's changes, each journaled before and after, with bounded concurrency; Cancel is
        honoured between users.  A create whose answer was lost is found (not made twice); an interrupted run's
        open intents are resolved first."""
        raise NotImplementedError

    # --- 4. readiness -----------------------------------------------------------------------------------------
    async def readiness(self, progress: Progress | None = None, cancel: threading.Event | None = None, *,
                        probe: bool = True) -> list[UserReadiness]:
        """Every mapped user checked as CrossTenantMailboxMigrationValidation does (reference §1.5) and more; with
        `probe`, users without a blocking finding are also tested with Test-MigrationServerAvailability (what
        the move service itself would refuse).  Saves the results in the project (for `ready_users`)."""
        raise NotImplementedError

    def plan_fixes(self, results: Sequence[UserReadiness]) -> Plan:
        """The safe one-click fixes of these results as a plan of changes (each with before -> after)."""
        raise NotImplementedError

    async def apply_fixes(self, plan: Plan, progress: Progress | None = None,
                          cancel: threading.Event | None = None) -> ApplyResult:
        """Carry out planned fixes, journaled like every change; Cancel is honoured between changes."""
        raise NotImplementedError

    async def dry_run(self, address: str) -> Check:
        """Test-MigrationServerAvailability for one mapped user (source or target address) through the
        migration endpoint, as the move service would see it."""
        raise NotImplementedError

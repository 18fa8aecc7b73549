"""The batches engine: waves, migration batches, monitoring, the post-migration checklist, reports, teardown.

Every change to a tenant (a batch created, started, stopped, completed, removed; a failed user retried; an
object removed at teardown) is journaled before and after in the project journal, like the setup's changes,
and every error becomes a `Problem` (what happened, why, what to do) through `problems.explain` and its
catalog of the move service's exceptions.  Monitoring reads with paged list calls only: a refresh of N
migration users costs Get-MigrationBatch (one request) and Get-MigrationUser -ResultSize Unlimited
(ceil(N/1000) pages), never a call per user.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ...cloud.endpoints import CloudEndpoints
from ...cloud.exchange import ExchangeClient
from ...cloud.graph import GraphClient
from ..problems import Problem
from ..project import MigrationProject
from ..setup.model import ApplyResult, Plan
from .model import (
    MAX_BATCH_USERS,
    BatchOptions,
    LaunchResult,
    MappedUser,
    Snapshot,
    UserStatus,
    Wave,
    WaveUser,
)

Progress = Callable[[int, int, str], None]


class BatchProblem(Exception):
    """An operation that cannot go on; `problem` says what happened, why and what to do."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.what)
        self.problem = problem


class BatchContext(Protocol):
    """What the engine needs from the app (the Workspace provides it; tests provide a light one)."""

    endpoints: CloudEndpoints
    project: MigrationProject

    @property
    def identities(self) -> dict[str, Any]: ...
    def graph(self, slot: str) -> GraphClient: ...
    def exchange(self, slot: str) -> ExchangeClient: ...


class BatchEngine:
    """Batches for one project.  State lives in `project.data["batches"]` (no secrets)."""

    def __init__(self, ctx: BatchContext, *,
                 clock: Callable[[], datetime.datetime] | None = None) -> None:
        self.ctx = ctx
        self.now = clock or (lambda: datetime.datetime.now(datetime.UTC))

    # --- waves ------------------------------------------------------------------------------------------------
    def ready_users(self) -> list[WaveUser]:
        """The users the users engine found ready (with their delegates), else the saved mapping."""
        raise NotImplementedError

    @staticmethod
    def wave_users(rows: Sequence[MappedUser]) -> list[WaveUser]:
        """WaveUsers from mapping rows (anything with `source` and `target`; `delegates` and `size_bytes` when
        the rows have them)."""
        raise NotImplementedError

    def plan_waves(self, users: Sequence[WaveUser], max_size: int = MAX_BATCH_USERS,
                   prefix: str = "Wave") -> list[Wave]:
        """Waves of at most `max_size` users; users linked by delegation (transitively) share a wave unless the
        group alone is larger than a wave (then it is split, with a warning naming it).  Users already in a
        batch of this project are left out."""
        raise NotImplementedError

    # --- batches ----------------------------------------------------------------------------------------------
    async def create(self, wave: Wave, options: BatchOptions) -> LaunchResult:
        """New-MigrationBatch with a CSV of the wave's TARGET addresses, the TargetDeliveryDomain, the start and
        completion choices and NotificationEmails.  Journaled; recorded in the project with the source↔target
        pairs so that nothing is lost if the batch later disappears."""
        raise NotImplementedError

    async def start(self, name: str) -> None:
        """Start-MigrationBatch (also resumes stopped users)."""
        raise NotImplementedError

    async def stop(self, name: str) -> None:
        """Stop-MigrationBatch."""
        raise NotImplementedError

    async def complete(self, name: str) -> None:
        """Complete-MigrationBatch: cut over the synced users now."""
        raise NotImplementedError

    async def set_completion(self, name: str, complete_after: datetime.datetime | None) -> None:
        """Set-MigrationBatch -CompleteAfter (None: now)."""
        raise NotImplementedError

    async def remove(self, name: str) -> None:
        """Remove-MigrationBatch (not while users are copying: stop it first; the problem says so)."""
        raise NotImplementedError

    async def retry_failed(self, name: str) -> int:
        """Resume the batch's failed users (Start-MigrationBatch retries failed users; a user that failed at
        completion or at an incremental sync goes back to Synced).  Returns how many were failed."""
        raise NotImplementedError

    async def relaunch(self, name: str, new_name: str | None = None) -> LaunchResult:
        """A batch removed outside the wizard: create it again (same users and options) from the project's
        record."""
        raise NotImplementedError

    def recorded_batches(self) -> list[dict[str, Any]]:
        """The batches this project created, as recorded (name, options, users source↔target, created)."""
        raise NotImplementedError

    # --- monitoring -------------------------------------------------------------------------------------------
    async def refresh(self) -> Snapshot:
        """Every batch and migration user of the target, by paged list calls (≤ ceil(N/1000) + 2 requests);
        each failure translated into a Problem; batches this project made that are gone are reported."""
        raise NotImplementedError

    async def detail(self, target: str) -> UserStatus:
        """One user in depth (Get-MigrationUserStatistics: exact percent, bytes, size, the error) — one request,
        for the user the admin opened, never for every user."""
        raise NotImplementedError

    def checklist(self, user: UserStatus | str) -> list[str]:
        """What the admin does for a completed user: the licensing reminder and the post-migration checklist
        (Outlook profiles, Teams meetings, delegates, the domain move)."""
        raise NotImplementedError

    # --- reports ----------------------------------------------------------------------------------------------
    def write_reports(self, folder: Path, snapshot: Snapshot | None = None) -> list[Path]:
        """Readiness, progress and final reports as HTML (self-contained, escaped, for a customer) and CSV, and
        the journal as an audit log (HTML and CSV) of every change in both tenants.  No secret or token."""
        raise NotImplementedError

    # --- teardown ---------------------------------------------------------------------------------------------
    async def plan_teardown(self) -> Plan:
        """What to remove once the move is done, from the journal's created objects and the setup's updates:
        our finished batches, the endpoint, the capabilities we added to both organization relationships (or
        the relationships we created), the source consent, the app's credential and the app, the Key Vault
        objects, the scoping group.  Adopted objects are listed as kept, never removed."""
        raise NotImplementedError

    async def apply_teardown(self, plan: Plan, progress: Progress | None = None,
                             cancel: threading.Event | None = None) -> ApplyResult:
        """Remove what the plan says, change by change, journaled; Cancel between changes."""
        raise NotImplementedError

"""The batches engine's data, as the Launch, Monitor and Finish pages and the headless commands show it.

Plans of changes (teardown) reuse the setup's `Change` / `Plan` / `ApplyResult`; errors are `Problem`s.
Everything here is plain data: no Qt, no HTTP.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from ..problems import Problem

MAX_BATCH_USERS = 2000  # New-MigrationBatch refuses a CSV with more rows (reference §2.7)

# What a migration user's status means for the admin: Exchange's ~20 statuses in seven words.
STAGES = ("waiting", "syncing", "synced", "completing", "completed", "failed", "stopped")


class MappedUser(Protocol):
    """Anything with a source and a target address (the users engine's mapping rows and readiness results fit)."""

    @property
    def source(self) -> str: ...
    @property
    def target(self) -> str: ...


@dataclass(frozen=True, slots=True)  # per user: slots keep 10,000 of them small (no __dict__ each)
class WaveUser:
    source: str                       # the source mailbox's primary SMTP address
    target: str                       # the target MailUser's address: what goes into the batch CSV
    delegates: tuple[str, ...] = ()   # source addresses this user shares mailbox access with (either way)
    size_bytes: int = 0               # mailbox + archive size when known (0: unknown), to balance waves


@dataclass
class Wave:
    """At most 2,000 users that go into one migration batch; known delegates are in the same wave."""

    number: int
    name: str                         # the suggested batch name, e.g. "Wave 1"
    users: list[WaveUser]
    delegate_groups: int = 0          # groups of two or more users kept together because of delegation
    warnings: list[str] = field(default_factory=list)  # e.g. a delegate group too large to keep together

    @property
    def size_bytes(self) -> int:
        return sum(u.size_bytes for u in self.users)


@dataclass(frozen=True)
class BatchOptions:
    """How one batch runs (New-MigrationBatch parameters in the admin's words)."""

    name: str
    start: str = "now"                           # "now" | "manual" (Start later by hand) | "after" (StartAfter)
    start_after: datetime.datetime | None = None  # with start="after" (UTC)
    completion: str = "manual"                   # "manual" | "after" (CompleteAfter) | "automatic"
    complete_after: datetime.datetime | None = None  # with completion="after" (UTC)
    notification_emails: tuple[str, ...] = ()
    target_delivery_domain: str = ""             # default: the target tenant's initial (onmicrosoft) domain


@dataclass(frozen=True, slots=True)  # per user, every refresh: no __dict__ each
class UserStatus:
    """One migration user as the monitor shows it (from paged list calls only)."""

    batch: str
    source: str                       # from the project's record of the batch ("" if unknown)
    target: str                       # the migration user's identity: the target address
    status: str                       # Exchange's status, e.g. Syncing, Synced, Failed, IncrementalFailed
    stage: str                        # one of STAGES
    percent: int                      # estimated from the stage unless `percent_exact`
    percent_exact: bool = False       # True when read from Get-MigrationUserStatistics (`detail`)
    size_bytes: int = 0               # 0: not known
    bytes_transferred: int = 0
    last_sync: datetime.datetime | None = None
    error: str = ""                   # Exchange's ErrorSummary, "<Exception>: <text>"
    problem: Problem | None = None    # the error for people (catalog in problems.py)

    @property
    def completed(self) -> bool:
        return self.stage == "completed"

    @property
    def failed(self) -> bool:
        return self.stage == "failed"


@dataclass(frozen=True)
class BatchStatus:
    name: str
    status: str                       # Exchange's batch status, or "Removed" when it disappeared
    total: int
    counts: dict[str, int]            # users per stage (STAGES)
    percent: int                      # average of its users' percents
    ours: bool                        # created by this project (else found in the tenant)
    created: datetime.datetime | None = None
    started: datetime.datetime | None = None
    last_sync: datetime.datetime | None = None
    complete_after: datetime.datetime | None = None
    problem: Problem | None = None    # e.g. the batch was removed outside the wizard


@dataclass
class Snapshot:
    """One refresh of the monitor: every batch and user of the target tenant."""

    taken: datetime.datetime
    batches: list[BatchStatus]
    users: list[UserStatus]
    requests: int = 0                 # HTTP requests this refresh used (≤ ceil(users/1000) + 2)
    problems: list[Problem] = field(default_factory=list)  # organization-wide: credential expired, batch removed

    def users_in(self, batch: str) -> list[UserStatus]:
        return [u for u in self.users if u.batch.lower() == batch.lower()]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STAGES, 0)
        for u in self.users:
            out[u.stage] = out.get(u.stage, 0) + 1
        return out

    @property
    def percent(self) -> int:
        return round(sum(u.percent for u in self.users) / len(self.users)) if self.users else 0

    @property
    def finished(self) -> bool:
        """Nothing is moving any more: every user completed, failed or stopped."""
        return all(u.stage in ("completed", "failed", "stopped") for u in self.users)


@dataclass
class LaunchResult:
    """What `create` did: the batch, its users, and anything Exchange warned about."""

    name: str
    users: int
    status: str
    warnings: list[str] = field(default_factory=list)

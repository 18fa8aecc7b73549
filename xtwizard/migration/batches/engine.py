"""The batches engine: waves, migration batches, monitoring, the post-migration checklist, reports, teardown.

Every change to a tenant (a batch created, started, stopped, completed, removed; a failed user retried; an
object removed at teardown) is journaled before and after in the project journal, like the setup's changes,
and every error becomes a `Problem` (what happened, why, what to do) through `problems.explain` and its
catalog of the move service's exceptions.  Monitoring reads with paged list calls only: a refresh of N
migration users costs Get-MigrationBatch (one request) and Get-MigrationUser -ResultSize Unlimited
(ceil(N/1000) pages), never a call per user.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ...cloud.exchange import (
    ExchangeClient,
    ExchangeError,
    MigrationBatch,
    MigrationUser,
    format_time,
    parse_time,
)
from ...cloud.graph import GraphClient
from ...cloud.http import NetworkUnavailable
from ...cloud.service import ServiceError
from .. import Progress
from ..problems import Problem, explain, explain_move_failure
from ..project import JournalEntry
from ..setup.engine import SetupContext, SetupEngine
from ..setup.journal import TEARDOWN_STEP, SetupJournal
from ..setup.model import ApplyResult, Change, Plan
from .model import (
    MAX_BATCH_USERS,
    STAGES,
    BatchOptions,
    BatchStatus,
    LaunchResult,
    MappedUser,
    Snapshot,
    UserStatus,
    Wave,
    WaveUser,
)

T = TypeVar("T")


class BatchProblem(Exception):
    """An operation that cannot go on; `problem` says what happened, why and what to do."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.what)
        self.problem = problem


# What the engine needs from the app: the setup's context (the Workspace provides it; tests a light one).  The
# teardown undoes the setup, Azure included, so it needs everything the setup does.
BatchContext = SetupContext


# Percent shown for each stage when only list calls were made ([U] Get-MigrationUser carries no percentage;
# a syncing user's share is estimated from the time since its batch started and its size, see `_estimate`).
STAGE_PERCENT = {"waiting": 0, "syncing": 10, "synced": 95, "completing": 98, "completed": 100, "failed": 0,
                 "stopped": 0}
STATUS_STAGE = {
    "queued": "waiting", "validating": "waiting", "provisioning": "waiting", "provisionupdating": "waiting",
    "starting": "waiting", "created": "waiting", "waiting": "waiting",
    "syncing": "syncing", "incrementalsyncing": "syncing",
    "synced": "synced", "incrementalsynced": "synced", "completionsynced": "synced",
    "completing": "completing",
    "completed": "completed", "completedwithwarnings": "completed",
    "failed": "failed", "incrementalfailed": "failed", "completionfailed": "failed", "corrupted": "failed",
    "stopped": "stopped", "incrementalstopped": "stopped", "stopping": "stopped", "removing": "stopped",
}
# [U] a rough copy rate for estimates only: Microsoft quotes no figure; cloud-to-cloud moves often run near 1 GB/h.
ESTIMATE_BYTES_PER_HOUR = 1 << 30
BATCH_NAME_LIMIT = 64
BATCH_STEP = "batches"  # the journal step of batch changes (teardown's removals are step "teardown")
SHARED_USER = "this user"  # how a Problem shared by every user with the same error names its user
# What an empty teardown plan says (the setup's plans say "the setup is complete").
TEARDOWN_NOTHING = "Nothing left to remove: the teardown is complete."
# What goes with an object teardown removes (its journal entry says so, and the setup forgets them too).
GOES_WITH = {"source-sp": ("source-grant",), "target-sp": ("target-grant",),
             "app": ("target-sp", "target-grant", "secret", "app-certificate"),
             "resource-group": ("vault", "vault-admin-role", "vault-exchange-role", "certificate"),
             "vault": ("vault-admin-role", "vault-exchange-role", "certificate")}


def stage_of(status: str) -> str:
    return STATUS_STAGE.get(status.lower(), "waiting")


def _iso(t: datetime.datetime | None) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


class BatchEngine:
    """Batches for one project.  State lives in `project.data["batches"]` (no secrets)."""

    def __init__(self, ctx: BatchContext, *,
                 clock: Callable[[], datetime.datetime] | None = None) -> None:
        self.ctx = ctx
        self.now = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self.journal = SetupJournal(ctx.project)
        self._from_journal: dict[str, tuple[int, Any]] = {}  # what `_journal_cached` read, with the journal's size

    def _journal_cached(self, what: str, read: Callable[[], T]) -> T:
        """`read()` (a pass over the whole journal), again only once the journal grew: it is append-only, and
        a project of 10,000 users holds ~20,000 entries (~0.25 s a pass) while a refresh every minute finds
        nothing new in it."""
        try:
            size = self.ctx.project.journal_file.stat().st_size
        except FileNotFoundError:
            size = 0
        held = self._from_journal.get(what)
        if held is None or held[0] != size:
            held = self._from_journal[what] = (size, read())
        value: T = held[1]
        return value

    # --- project data -----------------------------------------------------------------------------------------
    @property
    def data(self) -> dict[str, Any]:
        d = self.ctx.project.data.setdefault("batches", {})
        assert isinstance(d, dict)
        d.setdefault("batches", {})
        return d

    def _record(self, name: str) -> dict[str, Any] | None:
        rec = {k.lower(): v for k, v in self.data["batches"].items()}.get(name.lower())
        return rec if isinstance(rec, dict) else None

    def recorded_batches(self) -> list[dict[str, Any]]:
        """The batches this project created, as recorded (name, options, users source↔target, created)."""
        return [dict(v) for v in self.data["batches"].values()]

    def _target_exchange(self) -> ExchangeClient:
        if "target" not in self.ctx.identities:
            raise BatchProblem(Problem("Not signed in to the target tenant.", "Batches live in the target's "
                                       "Exchange Online.", "Sign in to the target tenant first."))
        return self.ctx.exchange("target")

    # --- waves ------------------------------------------------------------------------------------------------
    def ready_users(self) -> list[WaveUser]:
        """The users whose last readiness check passed (with their delegates): nobody else goes into a batch."""
        from ..users import engine as users

        return self.wave_users(users.ready_users(self.ctx.project))

    @staticmethod
    def wave_users(rows: Sequence[MappedUser]) -> list[WaveUser]:
        """WaveUsers from mapping rows (anything with `source` and `target`; `delegates` and `size_bytes` when
        the rows have them)."""
        out = []
        for r in rows:
            delegates = tuple(str(d) for d in (getattr(r, "delegates", None) or ()))
            out.append(WaveUser(r.source.strip(), r.target.strip(), delegates,
                                int(getattr(r, "size_bytes", 0) or 0)))
        return out

    def plan_waves(self, users: Sequence[WaveUser], max_size: int = MAX_BATCH_USERS,
                   prefix: str = "Wave") -> list[Wave]:
        """Waves of at most `max_size` users; users linked by delegation (transitively) share a wave unless the
        group alone is larger than a wave (then it is split, with a warning naming it).  Users already in a
        batch of this project are left out (not those `apply_rebatch` took out of theirs), and wave names skip
        the project's batch names (after 'Wave 1' comes 'Wave 2')."""
        max_size = max(1, min(max_size, MAX_BATCH_USERS))
        batched = {t.lower() for rec in self.data["batches"].values() if not rec.get("removedOutside")
                   for _s, t in rec.get("users", [])}
        todo: dict[str, WaveUser] = {}
        for u in users:
            if u.target.lower() not in batched and u.source.lower() not in todo:
                todo[u.source.lower()] = u
        # Delegation groups: union-find over source addresses (a delegate outside the list is ignored).
        parent = {k: k for k in todo}

        def root(k: str) -> str:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for k, u in todo.items():
            for d in u.delegates:
                if d.lower() in parent:
                    a, b = root(k), root(d.lower())
                    if a != b:
                        parent[max(a, b)] = min(a, b)
        groups: dict[str, list[WaveUser]] = {}
        for k, u in todo.items():  # insertion order: the admin's order within each group
            groups.setdefault(root(k), []).append(u)
        # Largest groups first (first fit decreasing), so that groups fill waves without being split.
        ordered = sorted(groups.values(), key=lambda g: -len(g))
        waves: list[Wave] = []
        taken = {str(k).lower() for k in self.data["batches"]}  # a later launch goes on: Wave 2, Wave 3, ...
        number = 0

        def next_name() -> str:
            nonlocal number
            number += 1
            while f"{prefix} {number}".lower() in taken:
                number += 1
            return f"{prefix} {number}"

        for group in ordered:
            chunks = [group[i:i + max_size] for i in range(0, len(group), max_size)]
            for chunk in chunks:
                wave = next((w for w in waves if len(w.users) + len(chunk) <= max_size), None)
                if wave is None:
                    wave = Wave(len(waves) + 1, next_name(), [])
                    waves.append(wave)
                wave.users.extend(chunk)
                if len(group) > 1:
                    wave.delegate_groups += 1
                if len(chunks) > 1:
                    wave.warnings.append(
                        f"{len(group)} users share mailboxes by delegation (for example {group[0].source}); that is "
                        f"more than one batch holds ({max_size}), so they are split over {len(chunks)} waves. "
                        "Migrate those waves close together and tell the users.")
        return waves

    # --- batches ----------------------------------------------------------------------------------------------
    def delivery_domain(self) -> str:
        from ..users import engine as users

        return users.delivery_domain(self.ctx.project) or str(self.ctx.identities["target"].initial_domain)

    def endpoint_name(self) -> str:
        """The migration endpoint the setup made or adopted (from the journal)."""
        rec = self.journal.known().get("endpoint") or {}
        name = str(rec.get("name") or "")
        if not name:
            raise BatchProblem(Problem(
                "There is no migration endpoint for this project yet.",
                "Batches move mailboxes through the endpoint the setup creates.",
                "Finish the setup first (Set up the migration page, or xtwizard setup).", retryable=False))
        return name

    def _check_options(self, wave: Wave, options: BatchOptions) -> None:
        name = options.name.strip()
        why = ""
        if not name:
            why = "The batch has no name."
        elif len(name) > BATCH_NAME_LIMIT:
            why = f"Batch names are at most {BATCH_NAME_LIMIT} characters."
        elif not wave.users:
            why = "The wave has no users."
        elif len(wave.users) > MAX_BATCH_USERS:
            why = f"A batch holds at most {MAX_BATCH_USERS} users; this wave has {len(wave.users)}."
        elif options.start not in ("now", "manual", "after") or options.completion not in ("manual", "after",
                                                                                          "automatic"):
            why = "Start must be now, manual or after a time; completion manual, after a time or automatic."
        elif options.start == "after" and options.start_after is None:
            why = "Start after a time was chosen without the time."
        elif options.completion == "after" and options.complete_after is None:
            why = "Complete after a time was chosen without the time."
        elif (options.start == "after" and options.completion == "after" and options.start_after is not None
              and options.complete_after is not None and options.complete_after <= options.start_after):
            why = "The completion time is before the start time."
        elif self._record(name) is not None:
            why = f"This project already has a batch named '{name}'."
        if why:
            raise BatchProblem(Problem("The batch cannot be created.", why, "Correct the batch settings and try "
                                       "again.", retryable=False))
        # Classic failure: the source address in the batch CSV (landscape §B.1 #9).
        source_domains = {u.source.rsplit("@", 1)[-1].lower() for u in wave.users}
        wrong = [u for u in wave.users if u.target.lower() == u.source.lower()
                 or (u.target.rsplit("@", 1)[-1].lower() in source_domains
                     and u.target.rsplit("@", 1)[-1].lower() not in self._target_domains())]
        if wrong:
            raise BatchProblem(Problem(
                f"{len(wrong)} user(s) would go into the batch with a source address (e.g. {wrong[0].target}).",
                "The batch CSV must list the TARGET MailUsers' addresses; with source addresses every user fails "
                "with MigrationRecipientNotFoundException.",
                "Fix the mapping on the Choose users page (each row's target address), then launch again.",
                retryable=False))

    def _target_domains(self) -> set[str]:
        ident = self.ctx.identities.get("target")
        out = {str(getattr(ident, "initial_domain", "")).lower()}
        out.update(str(d).lower() for d in self.ctx.project.data.get("target", {}).get("domains", []) or [])
        return out

    async def create(self, wave: Wave, options: BatchOptions, *, replaces: str = "") -> LaunchResult:
        """New-MigrationBatch with a CSV of the wave's TARGET addresses, the TargetDeliveryDomain, the start and
        completion choices and NotificationEmails.  Journaled; recorded in the project with the source↔target
        pairs so that nothing is lost if the batch later disappears (`replaces`: the batch it relaunches).

        The record is saved before the request (marked `creating` until the outcome is known): an answer that
        does not come back is looked up at once, and a change left without outcome (the look failed, the
        outcome could not be journaled, a crash) is settled by the next refresh — a batch that was made is
        adopted, never made twice."""
        await self._settle_first()
        self._check_options(wave, options)
        tx = self._target_exchange()
        name = options.name.strip()
        endpoint = self.endpoint_name()
        domain = options.target_delivery_domain or self.delivery_domain()
        start_after = options.start_after if options.start == "after" else None
        complete_after = options.complete_after if options.completion == "after" else None
        record: dict[str, Any] = {
            "name": name, "created": _iso(self.now()), "endpoint": endpoint, "targetDeliveryDomain": domain,
            "start": options.start, "startAfter": _iso(start_after), "completion": options.completion,
            "completeAfter": _iso(complete_after), "notificationEmails": list(options.notification_emails),
            "users": [[u.source, u.target] for u in wave.users],
            "sizes": {u.target.lower(): u.size_bytes for u in wave.users if u.size_bytes},
        }
        if replaces:
            record["replaces"] = replaces
        line = (f"Create the migration batch '{name}' with {len(wave.users)} users (target addresses), delivery "
                f"domain {domain}")
        target = {"type": "batch", "name": name}
        op = self.journal.begin("target", BATCH_STEP, "create batch", target,
                                {"line": line, "users": len(wave.users), "start": options.start,
                                 "completion": options.completion})
        self.data["batches"][name] = {**record, "creating": op}
        self.ctx.project.save()
        try:
            batch = await tx.new_migration_batch(
                name, source_endpoint=endpoint, target_delivery_domain=domain, users=[u.target for u in wave.users],
                auto_start=options.start == "now", auto_complete=options.completion == "automatic",
                complete_after=format_time(complete_after) if complete_after else None,
                start_after=format_time(start_after) if start_after else None,
                notification_emails=options.notification_emails)
        except (ServiceError, NetworkUnavailable) as exc:
            found = await self._after_lost_answer(op, "create batch", target, {}, line, exc)  # raises if not made
            status = found.status if found is not None else ""
        else:
            self.journal.finish(op, ok=True, target={**target, "id": str(batch.raw.get("Guid", ""))})
            self._outcome("create batch", name, {"op": op}, made=True)
            status = batch.status
        if "source" in self.ctx.identities:
            await self._remember_scope_group()
        return LaunchResult(name, len(wave.users), status)

    async def _batch_change(self, name: str, action: str, line: str,
                            call: Callable[[ExchangeClient], Awaitable[Any]],
                            detail: dict[str, Any] | None = None) -> None:
        """One change to a batch, journaled before and after (`detail`: what the resume needs to judge it)."""
        await self._settle_first()
        tx = self._target_exchange()
        target, detail = {"type": "batch", "name": name}, {"line": line, **(detail or {})}
        op = self.journal.begin("target", BATCH_STEP, action, target, detail)
        try:
            await call(tx)
        except (ServiceError, NetworkUnavailable) as exc:
            await self._after_lost_answer(op, action, target, detail, line, exc)
            return
        self.journal.finish(op, ok=True)
        self._outcome(action, name, detail, made=True)

    async def _after_lost_answer(self, op: str, action: str, target: dict[str, Any], detail: dict[str, Any],
                                 line: str, exc: ServiceError | NetworkUnavailable) -> MigrationBatch | None:
        """A batch change that raised.  Exchange refused it (4xx): not made.  The answer did not come (the
        connection dropped, the answer was lost, a 5xx): the change may have been made, so the batch is read
        at once and the outcome journaled from what it shows; returns it when the change was made (None for a
        removal).
        When even that read fails, the intent stays open for the next refresh to settle.  Raises the Problem
        when the change was not made."""
        name = str(target["name"])
        lost = isinstance(exc, NetworkUnavailable) or exc.status >= 500
        if lost:
            try:
                found = await self._target_exchange().migration_batches(name)
            except ServiceError as look:
                if not _gone(look):
                    raise BatchProblem(self._unknown_problem(line)) from None
                found = []
            except NetworkUnavailable:
                raise BatchProblem(self._unknown_problem(line)) from None
            batch = found[0] if found else None
            made, note = _judge(action, detail, batch)
            self.journal.finish(op, ok=made, target={**target, "id": str(batch.raw.get("Guid", ""))}
                                if made and batch is not None and action == "create batch" else target,
                                detail={"resolved": f"the answer was lost; the batch shows: {note}",
                                        **({} if made else {"error": str(exc)[:500]})})
            self._outcome(action, name, {**detail, "op": op}, made=made)
            if made:
                return batch
        else:
            self.journal.finish(op, ok=False, detail={"error": str(exc)[:500]})
            self._outcome(action, name, {**detail, "op": op}, made=False)
        if isinstance(exc, ExchangeError) and exc.short_type == "ManagementObjectNotFoundException":
            raise BatchProblem(self._removed_problem(name)) from None
        raise BatchProblem(explain(exc, doing=line)) from None

    @staticmethod
    def _unknown_problem(line: str) -> Problem:
        return Problem(f"No answer came back while doing: {line}.",
                       "The connection dropped (or Exchange did not answer) after the request was sent, so whether "
                       "Exchange made the change is not known yet.",
                       "Check the internet connection, then refresh (or press Retry): xtwizard first looks at the "
                       "batch and records what happened. Nothing is made twice.")

    def _outcome(self, action: str, name: str, detail: Mapping[str, Any], *, made: bool) -> None:
        """What the project records once a batch change's outcome is known (done, refused, or settled later
        from what the tenant shows)."""
        rec = self._record(name)
        if action == "create batch":
            key = next((k for k in self.data["batches"] if k.lower() == name.lower()), name)
            if rec is None or rec.get("creating") != detail.get("op"):
                return
            if not made:
                del self.data["batches"][key]
            else:
                del rec["creating"]
                old = self._record(str(rec.get("replaces", ""))) if rec.get("replaces") else None
                if old is not None:
                    old["replacedBy"] = rec["name"]
        elif not made or rec is None:
            return
        elif action == "update batch":
            rec["completion"], rec["completeAfter"] = "after", str(detail.get("completeAfter", ""))
        elif action == "remove batch":
            rec["removed"] = _iso(self.now())
        else:
            return
        self.ctx.project.save()

    def _removed_problem(self, name: str) -> Problem:
        rec = self._record(name)
        if rec is None:
            return Problem(f"There is no migration batch '{name}' in the target.",
                           "Exchange knows no batch by that name, and this project has no record of one.",
                           "Check the name: the Monitor page (or xtwizard status) lists the batches.", retryable=False)
        return Problem(f"The batch '{name}' no longer exists in the target.",
                       "It was removed outside xtwizard (in the Exchange admin center or PowerShell). xtwizard kept "
                       f"its list of {len(rec.get('users', []))} users.",
                       "Launch it again (Relaunch): the same users and settings go into a new batch. Users already "
                       "completed are not moved twice.", retryable=False)

    async def start(self, name: str) -> None:
        """Start-MigrationBatch (also resumes stopped users)."""
        await self._batch_change(name, "start batch", f"Start the migration batch '{name}'",
                                 lambda tx: tx.start_migration_batch(name))

    async def stop(self, name: str) -> None:
        """Stop-MigrationBatch."""
        await self._batch_change(name, "stop batch", f"Stop the migration batch '{name}'",
                                 lambda tx: tx.stop_migration_batch(name))

    async def complete(self, name: str) -> None:
        """Complete-MigrationBatch: cut over the synced users now."""
        await self._batch_change(name, "complete batch", f"Complete the migration batch '{name}' (cut over)",
                                 lambda tx: tx.complete_migration_batch(name))

    async def set_completion(self, name: str, complete_after: datetime.datetime | None) -> None:
        """Set-MigrationBatch -CompleteAfter (None: now)."""
        when = complete_after or self.now()
        await self._batch_change(name, "update batch", f"Complete the batch '{name}' after {_iso(when)}",
                                 lambda tx: tx.set_migration_batch(name, complete_after=format_time(when)),
                                 {"completeAfter": _iso(when)})

    async def remove(self, name: str) -> None:
        """Remove-MigrationBatch (not while users are copying: stop it first; the problem says so)."""
        await self._batch_change(name, "remove batch", f"Remove the migration batch '{name}'",
                                 lambda tx: tx.remove_migration_batch(name))

    async def retry_failed(self, name: str) -> int:
        """Resume the batch's failed users (Start-MigrationBatch retries failed users; a user that failed at
        completion or at an incremental sync goes back to Synced).  Returns how many were failed."""
        await self._settle_first()
        tx = self._target_exchange()
        try:
            rows = await tx.all_migration_users(batch_id=name)
        except ExchangeError as exc:
            if exc.short_type == "ManagementObjectNotFoundException":
                raise BatchProblem(self._removed_problem(name)) from None
            raise BatchProblem(explain(exc)) from None
        except (ServiceError, NetworkUnavailable) as exc:
            raise BatchProblem(explain(exc)) from None
        failed = [u for u in rows if stage_of(u.status) == "failed"]
        if not failed:
            return 0
        await self._batch_change(name, "retry batch", f"Retry the {len(failed)} failed user(s) of '{name}'",
                                 lambda tx: tx.start_migration_batch(name), {"failed": len(failed)})
        return len(failed)

    async def relaunch(self, name: str, new_name: str | None = None) -> LaunchResult:
        """A batch removed outside the wizard: create it again (same users and options) from the project's
        record."""
        rec = self._record(name)
        if rec is None:
            raise BatchProblem(Problem(f"This project has no record of a batch named '{name}'.",
                                       "Only batches xtwizard created can be relaunched.",
                                       "Launch a new batch from the Launch batches page.", retryable=False))
        snapshot = await self.refresh()
        done = {u.target.lower() for u in snapshot.users if u.completed}
        done.update(str(t).lower() for t, st in (self.data.get("users") or {}).items() if st[1] == "completed")
        users = [WaveUser(s, t, (), int(rec.get("sizes", {}).get(t.lower(), 0))) for s, t in rec.get("users", [])
                 if t.lower() not in done]
        base = new_name or f"{name} (again)"
        options = BatchOptions(base[:BATCH_NAME_LIMIT], start="now", completion=str(rec.get("completion", "manual")),
                               complete_after=parse_time(rec.get("completeAfter")) if rec.get("completion") == "after"
                               else None, notification_emails=tuple(rec.get("notificationEmails", [])),
                               target_delivery_domain=str(rec.get("targetDeliveryDomain", "")))
        if options.completion == "after" and options.complete_after is not None and options.complete_after < self.now():
            options = BatchOptions(options.name, completion="manual", notification_emails=options.notification_emails,
                                   target_delivery_domain=options.target_delivery_domain)
        return await self.create(Wave(0, options.name, users), options, replaces=str(rec["name"]))

    # --- users that need a new batch -----------------------------------------------------------------------
    @staticmethod
    def needs_new_batch(user: UserStatus) -> bool:
        """A failed user whose failure Retry cannot mend: the move service's answer is to take the user out of
        the batch and move them again in a new one (e.g. an auxiliary archive appeared during the move)."""
        return user.failed and user.problem is not None and not user.problem.retryable

    async def plan_rebatch(self, batch: str | None = None, users: Sequence[str] | None = None) -> Plan:
        """Plan to take users out of their batch (Remove-MigrationUser) so that they can move again in a new
        batch once readiness passes again — what the Monitor offers for a user that `needs_new_batch`.

        Without `users`: every user of this project's batches (or of `batch`) that `needs_new_batch`.  With
        `users` (target or source addresses): those users, when they failed or were stopped in one of this
        project's batches; a user still moving or completed is listed as kept, with why.  Reads the batches with
        one refresh (paged list calls), which also settles a removal left without outcome."""
        snapshot = await self.refresh()
        ours = {str(rec["name"]).lower() for rec in self.data["batches"].values() if not rec.get("removed")}
        if batch is not None and batch.lower() not in ours:
            raise BatchProblem(self._removed_problem(batch) if self._record(batch) is None else Problem(
                f"The batch '{batch}' was removed.", "Its users are in no batch any more: there is nobody to take out.",
                f"To move its users not moved yet, relaunch it (Relaunch, or xtwizard migrate --relaunch '{batch}').",
                retryable=False))
        rows = [u for u in snapshot.users if u.batch.lower() in ours and u.status != "Removed"
                and (batch is None or u.batch.lower() == batch.lower())]
        changes: list[Change] = []
        if users is None:
            chosen = [u for u in rows if self.needs_new_batch(u)]
        else:
            wanted = {a.lower() for a in users}
            chosen = [u for u in rows if u.target.lower() in wanted or u.source.lower() in wanted]
            seen = {u.target.lower() for u in chosen} | {u.source.lower() for u in chosen}
            for a in users:
                if a.lower() not in seen:
                    changes.append(Change("target", "batches", "keep", f"migration-user:{a.lower()}",
                                          f"{a} is not in a batch of this project{f' ({batch})' if batch else ''}"))
        for u in chosen:
            key = f"migration-user:{u.target.lower()}"
            before = {"Batch": u.batch, "Status": u.status}
            if u.stage in ("failed", "stopped"):
                why = u.problem.what if u.problem is not None else f"its move is {u.status.lower()}"
                changes.append(Change("target", "batches", "remove", key, f"Take {u.target} out of the batch "
                                      f"'{u.batch}' to move them again in a new batch ({why})", before))
            else:
                changes.append(Change("target", "batches", "keep", key, f"{u.target} stays in '{u.batch}': its "
                                      f"move is {u.status.lower()} (only failed or stopped users are taken out)",
                                      before))
        scope = f"the batch '{batch}'" if batch else "this project's batches"
        return Plan(changes, nothing=f"Nothing to take out: no failed user of {scope} needs a new batch (Retry "
                                     "failed users resumes the others).")

    async def apply_rebatch(self, plan: Plan, progress: Progress | None = None,
                            cancel: threading.Event | None = None) -> ApplyResult:
        """Take the planned users out of their batch (Remove-MigrationUser), each journaled before and after (step
        "batches"); Cancel is honoured between users.  The project's record moves each user from the batch's users
        to its `rebatched` list (kept for the reports), and the user's last readiness result is marked to be
        checked again: `ready_users()` and `plan_waves` take the user again only once readiness has passed anew."""
        tx = self._target_exchange()
        result = ApplyResult(warnings=list(plan.warnings))
        pending = plan.pending
        for i, c in enumerate(pending):
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            if progress is not None:
                progress(i, len(pending), c.line)
            target, name = c.key.split(":", 1)[1], str(c.before.get("Batch", ""))
            op = self.journal.begin("target", BATCH_STEP, "remove migration user",
                                    {"type": "migration user", "name": target, "batch": name}, {"line": c.line})
            try:
                await tx.remove_migration_user(target)
            except NetworkUnavailable:  # the intent stays open: the next refresh settles it from the batch's users
                raise BatchProblem(self._unknown_problem(c.line)) from None
            except ServiceError as exc:
                if exc.status >= 500:
                    raise BatchProblem(self._unknown_problem(c.line)) from None
                if not _gone(exc):
                    self.journal.finish(op, ok=False, detail={"error": str(exc)[:500]})
                    raise BatchProblem(explain(exc, doing=c.line)) from None
                self.journal.finish(op, ok=True, detail={"resolved": "already gone from the batch"})
            else:
                self.journal.finish(op, ok=True)
            self._took_out(name, target)
            result.done.append(c)
        if progress is not None and not result.cancelled:
            progress(len(pending), len(pending), "Taken out of the batch")
        return result

    def _took_out(self, batch: str, target: str) -> None:
        """Record a user taken out of a batch: no longer one of its users (so the next waves take them again),
        listed in its `rebatched`; their readiness is to be checked again."""
        from ..users import engine as users

        rec = self._record(batch)
        pairs = rec.get("users", []) if rec is not None else []
        source = next((str(s) for s, t in pairs if str(t).lower() == target.lower()), "")
        if rec is not None:
            rec["users"] = [[s, t] for s, t in pairs if str(t).lower() != target.lower()]
            rec.setdefault("rebatched", []).append([source, target, _iso(self.now())])
        if source:
            users.mark_for_recheck(self.ctx.project, source, f"{target} was taken out of the batch '{batch}' to move "
                                   "again in a new batch.", "Check readiness again; once it passes, launch a new "
                                   "batch.")
        self.ctx.project.save()

    # --- changes left without outcome -----------------------------------------------------------------------
    def _unsettled(self) -> list[JournalEntry]:
        """Batch changes (step "batches") the journal has no outcome for: the answer was lost and could not be
        looked up, the outcome could not be written (disk full), or the app was stopped in between."""
        def read() -> tuple[JournalEntry, ...]:
            intents: dict[str, JournalEntry] = {}
            for e in self.ctx.project.entries():
                if e.step == BATCH_STEP:
                    if e.phase == "intent":
                        intents[e.op] = e
                    else:
                        intents.pop(e.op, None)
            return tuple(intents.values())

        return list(self._journal_cached("unsettled", read))

    async def _settle_first(self) -> None:
        """Before a change: when earlier changes are left without outcome, one refresh settles them."""
        if any(rec.get("creating") for rec in self.data["batches"].values()) or self._unsettled():
            await self.refresh()

    def _settle(self, unsettled: Sequence[JournalEntry], batches: Sequence[MigrationBatch],
                rows: Sequence[MigrationUser]) -> None:
        """Record the outcome of each change left open from what the target shows now (the refresh's reads):
        a batch that was created is adopted (never made twice), a start, stop or completion that took effect
        is done (`_judge`), a user gone from the batch was taken out.  A record still marked `creating` whose
        outcome was journaled but not saved follows the tenant too."""
        by_name = {b.identity.lower(): b for b in batches}
        present: set[tuple[str, str]] | None = None
        for e in unsettled:
            name = str(e.target.get("name", ""))
            if e.action == "remove migration user":
                if present is None:
                    present = {(r.batch_id.lower(), r.identity.lower()) for r in rows}
                batch = str(e.target.get("batch", ""))
                made = (batch.lower(), name.lower()) not in present
                note = "gone from the batch: the removal was made" if made else "still in the batch: not removed"
                self.journal.finish(e.op, ok=made, detail={"resolved": "on resume: " + note})
                if made:
                    self._took_out(batch, name)
                continue
            found = by_name.get(name.lower())
            made, note = _judge(e.action, e.detail, found)
            target = e.target
            if made and found is not None and e.action == "create batch":
                target = {**target, "id": str(found.raw.get("Guid", ""))}
            self.journal.finish(e.op, ok=made, target=target, detail={"resolved": "on resume: " + note})
            self._outcome(e.action, name, {**e.detail, "op": e.op}, made=made)
        for rec in list(self.data["batches"].values()):
            if rec.get("creating"):
                self._outcome("create batch", str(rec["name"]), {"op": rec["creating"]},
                              made=str(rec["name"]).lower() in by_name)

    # --- monitoring -------------------------------------------------------------------------------------------
    async def refresh(self) -> Snapshot:
        """Every batch and migration user of the target, by paged list calls (≤ ceil(N/1000) + 2 requests);
        each failure translated into a Problem (one per distinct error, shared by the users who have it);
        batches this project made that are gone are reported.  Batch changes left without outcome are settled
        first from what these reads show (no extra request)."""
        tx = self._target_exchange()
        unsettled = self._unsettled()
        try:
            batches = await tx.migration_batches()
            rows = await tx.all_migration_users()
        except (ServiceError, NetworkUnavailable) as exc:
            raise BatchProblem(explain(exc, doing="Read the migration batches")) from None
        requests = 1 + max(1, -(-len(rows) // max(1, tx.page_size)))
        self._settle(unsettled, batches, rows)
        now = self.now()
        recorded = {k.lower(): v for k, v in self.data["batches"].items()}
        sources = {str(t).lower(): str(s) for rec in recorded.values() for s, t in rec.get("users", [])}
        sizes = {str(t): int(n) for rec in recorded.values() for t, n in (rec.get("sizes") or {}).items()}
        started = {b.identity.lower(): b.time("StartDateTime") for b in batches}
        explained = _Explained(self._scope_group())
        users: list[UserStatus] = []
        for r in rows:
            stage = stage_of(r.status)
            low = r.identity.lower()
            problem = explained(r.error_summary) if r.error_summary and stage in ("failed", "stopped", "syncing") \
                else None
            size = sizes.get(low, 0)
            users.append(UserStatus(
                batch=r.batch_id, source=sources.get(low, ""), target=r.identity, status=r.status, stage=stage,
                percent=self._estimate(stage, started.get(r.batch_id.lower()), size, now), size_bytes=size,
                last_sync=r.last_successful_sync, error=r.error_summary, problem=problem))
        by_batch: dict[str, list[UserStatus]] = {}
        for u in users:
            by_batch.setdefault(u.batch.lower(), []).append(u)
        statuses: list[BatchStatus] = []
        for b in batches:
            mine = by_batch.get(b.identity.lower(), [])
            counts = dict.fromkeys(STAGES, 0)
            for u in mine:
                counts[u.stage] += 1
            statuses.append(BatchStatus(
                name=b.identity, status=b.status, total=b.total_count or len(mine), counts=counts,
                percent=round(sum(u.percent for u in mine) / len(mine)) if mine else 0,
                ours=b.identity.lower() in recorded, created=b.time("CreationDateTime"),
                started=b.time("StartDateTime"), last_sync=b.time("LastSyncedDateTime"),
                complete_after=b.time("CompleteAfter")))
        problems: list[Problem] = []
        present = {b.identity.lower() for b in batches}
        marked = False
        for key, rec in recorded.items():
            if key in present or rec.get("removed") or rec.get("replacedBy"):
                continue
            problem = self._removed_problem(str(rec["name"]))
            problems.append(problem)
            if not rec.get("removedOutside"):
                rec["removedOutside"], marked = _iso(now), True
            lost = [UserStatus(str(rec["name"]), str(s), str(t), "Removed", "stopped", 0, problem=problem)
                    for s, t in rec.get("users", [])]
            users.extend(lost)
            statuses.append(BatchStatus(str(rec["name"]), "Removed", len(lost), {**dict.fromkeys(STAGES, 0),
                                        "stopped": len(lost)}, 0, True, problem=problem))
        # Organization-wide causes (an expired secret, a broken relationship) once, not per user.
        problems.extend(explained.organization_wide())
        snapshot = Snapshot(now, statuses, users, requests, problems)
        self._remember(snapshot, save=marked)
        return snapshot

    def _scope_group(self) -> str:
        name = self._journal_cached("scope-group", lambda: str((self.journal.known().get("scope-group") or {})
                                                               .get("name") or ""))
        return name or str(self.data.get("scopeGroup") or "")

    async def _remember_scope_group(self) -> None:
        """The scoping group's name (for messages), from the source relationship the setup made or adopted."""
        name = str(self.journal.known().get("source-rel", {}).get("name", ""))
        if not name or self._scope_group():
            return
        try:
            rels = await self.ctx.exchange("source").organization_relationships(name)
        except ServiceError:
            return  # only a nicer message depends on it
        if rels and rels[0].mailbox_move_published_scopes:
            self.data["scopeGroup"] = rels[0].mailbox_move_published_scopes[0]
            self.ctx.project.save()

    @staticmethod
    def _estimate(stage: str, started: datetime.datetime | None, size: int, now: datetime.datetime) -> int:
        """A syncing user's percent from the time its batch has run and its size ([U] rate, see above)."""
        if stage != "syncing":
            return STAGE_PERCENT[stage]
        if started is None:
            return STAGE_PERCENT["syncing"]
        expected = max(size / ESTIMATE_BYTES_PER_HOUR * 3600.0, 600.0) if size else 3600.0
        share = min((now - started).total_seconds() / expected, 0.95)
        return 10 + int(85 * max(share, 0.0))

    def _remember(self, snapshot: Snapshot, *, save: bool = False) -> None:
        """The last state of each user (for reports and relaunch), kept in the project.  It is rebuilt and the
        project file (with 10,000 users ~4 MB) written only when a user came or went or their batch, stage,
        status, error or source changed (or `save`): a refresh that finds every user as before — most
        refreshes of a long move — allocates and writes nothing.  Last sync times alone (they change all day
        while users wait in Synced) are written with the next such change; `refreshed`, the time of the last
        reading, is kept in memory and saved with it too."""
        old = self.data.get("users")
        if not save:
            save = not isinstance(old, dict) or len(old) != len(snapshot.users) or any(
                _moved(old.get(u.target), u) for u in snapshot.users)
        self.data["refreshed"] = _iso(snapshot.taken)
        if save:
            self.data["users"] = {u.target: [u.batch, u.stage, u.status, u.error[:300], _iso(u.last_sync), u.source]
                                  for u in snapshot.users}
            self.data["counts"] = snapshot.counts()
            self.ctx.project.save()

    async def detail(self, target: str) -> UserStatus:
        """One user in depth (Get-MigrationUserStatistics: exact percent, bytes, size, the error) — one request,
        for the user the admin opened, never for every user."""
        tx = self._target_exchange()
        try:
            st = await tx.migration_user_details(target)
        except ServiceError as exc:
            raise BatchProblem(explain(exc, doing=f"Read the migration of {target}")) from None
        stage = stage_of(st.status)
        low = target.lower()
        source = next((str(s) for rec in self.data["batches"].values() for s, t in rec.get("users", [])
                       if str(t).lower() == low), "")
        error = st.error
        return UserStatus(batch=str(st.raw.get("BatchId", "")), source=source, target=st.identity or target,
                          status=st.status, stage=stage, percent=st.percent, percent_exact=True,
                          size_bytes=st.total_bytes, bytes_transferred=st.bytes_transferred, last_sync=st.last_sync,
                          error=error, problem=explain_move_failure(error, user=target, group=self._scope_group())
                          if error else None)

    def checklist(self, user: UserStatus | str) -> list[str]:
        """What the admin does for a completed user: the licensing reminder and the post-migration checklist
        (Outlook profiles, Teams meetings, delegates, the domain move)."""
        target = user.target if isinstance(user, UserStatus) else user
        source = user.source if isinstance(user, UserStatus) else ""
        who = f"{target}" + (f" (was {source})" if source else "")
        return [
            f"Licence {who} in the target now: its mailbox exists and the ExchangeGuid is in place, so a licence "
            "with Exchange Online can be assigned safely (within 30 days, or the mailbox is disabled).",
            "Keep the source MailUser (the forwarding object) and its licence state until every user has moved: "
            "removing its licence can delete it and break forwarding.",
            "Outlook: the profile must be recreated (or Outlook signed in again with the new account); mobile "
            "devices need the account added again.",
            "Teams meetings organised before the move keep links to the old tenant: the organiser reschedules "
            "them from the new account.",
            "Delegates, Send on behalf and folder permissions across tenants do not move: grant them again in the "
            "target (delegates should move in the same wave).",
            "Signatures, rules that point at old addresses and shared calendars from the old tenant need a check.",
            "When everyone has moved: move the e-mail domain to the target (remove it from the source, verify it "
            "in the target, update MX and Autodiscover), then add the domain addresses to the moved users.",
        ]

    # --- reports ----------------------------------------------------------------------------------------------
    def write_reports(self, folder: Path, snapshot: Snapshot | None = None) -> list[Path]:
        """Readiness, progress and final reports as HTML (self-contained, escaped, for a customer) and CSV, and
        the journal as an audit log (HTML and CSV) of every change in both tenants.  No secret or token.
        Without a snapshot, the users' last refreshed state saved in the project is used."""
        from .reports import write_all

        if snapshot is None:
            snapshot = self._last_snapshot()
        return write_all(self.ctx.project, folder, snapshot, self.checklist("each moved user"))

    def _last_snapshot(self) -> Snapshot:
        explained = _Explained(self._scope_group())
        users = [UserStatus(batch=str(v[0]), source=str(v[5]) if len(v) > 5 else "", target=str(t),
                            status=str(v[2]), stage=str(v[1]), percent=STAGE_PERCENT.get(str(v[1]), 0),
                            last_sync=parse_time(v[4]), error=str(v[3]), problem=explained(str(v[3])) if v[3] else None)
                 for t, v in (self.data.get("users") or {}).items()]
        taken = parse_time(self.data.get("refreshed")) or self.now()
        return Snapshot(taken, [], users)

    # --- teardown ---------------------------------------------------------------------------------------------
    def _setup_history(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[dict[str, Any]]]:
        """(objects the setup CREATED — or ADDED, like a member — by key; the state BEFORE our first update of
        each adopted object by key; every credential we added to the app: each client secret and certificate,
        with `kind` "secret" or "app-certificate") — from the journal, the truth of what we did."""
        created: dict[str, dict[str, Any]] = {}
        before: dict[str, dict[str, Any]] = {}
        credentials: list[dict[str, Any]] = []
        intents: dict[str, dict[str, Any]] = {}
        for e in self.ctx.project.entries():
            key = str(e.target.get("key", ""))
            if e.phase == "intent":
                intents[e.op] = e.detail  # an update's before/after are on its intent
            if e.phase != "done" or not key:
                continue
            if e.action.startswith("remove"):
                for k in (key, *e.target.get("also", ())):
                    created.pop(k, None)
                    before.pop(k, None)
                if key.startswith("secret:"):
                    credentials[:] = [x for x in credentials if x.get("keyId") != key.split(":", 1)[1]]
                elif key == "app-certificate":
                    credentials[:] = [x for x in credentials if x["kind"] != key]
            elif e.action.startswith(("create", "add")):
                created[key] = {**created.get(key, {}), **e.target}
                if key in ("secret", "app-certificate"):  # each one a new credential on the app
                    credentials.append({**e.target, "kind": key})
            elif e.action.startswith("update") and key not in created:
                first = before.setdefault(key, {})
                for k, v in ((e.detail or intents.get(e.op, {})).get("before") or {}).items():
                    first.setdefault(k, v)
        return created, before, credentials

    async def plan_teardown(self, *, purge_vault: bool = False) -> Plan:
        """What to remove once the move is done, from the journal's created objects and the setup's updates:
        our finished batches, the endpoint, the capabilities we added to both organization relationships (or
        the relationships we created), the source consent, the app (or, on an adopted app, the secrets and
        certificates we added), the Key Vault objects, the scoping group (or, in an adopted one, the members we
        added).  Adopted objects are listed as kept, never removed.

        A key vault xtwizard created is soft-deleted: Azure keeps it (and its name) for its retention days.  With
        `purge_vault` (off by default: a purged vault can never be recovered) the plan also purges it — also
        after an earlier teardown left it soft-deleted; without, the plan lists it as kept, with the date Azure
        purges it by itself.

        A removal a crash left unfinished is closed first, from what the tenants show (the plan lists the
        objects still there): gone means it was made."""
        try:
            plan = await self._plan_teardown(purge_vault)
        except ServiceError as exc:
            raise BatchProblem(explain(exc, doing="Read what the setup made")) from None
        self._close_unfinished(plan)
        return plan

    def _close_unfinished(self, plan: Plan) -> None:
        still = {c.key for c in plan.changes if c.kind in ("remove", "update", "wait")
                 or c.key.startswith("deleted-vault:")}  # a soft-deleted vault the plan keeps is still there
        for e in self.ctx.project.unfinished():
            if e.step != TEARDOWN_STEP:
                continue
            key = str(e.target.get("key") or f"batch:{e.target.get('name', '')}")
            pending = key in still  # the plan lists only what is still there (or not yet put back)
            made = self.journal.resolve(e, {} if pending else None,
                                        done=not pending if e.action.startswith("update") else None)
            if made and key.startswith("batch:"):
                rec = self._record(key.split(":", 1)[1])
                if rec is not None and not rec.get("removed"):
                    rec["removed"] = _iso(self.now())
                    self.ctx.project.save()

    async def _plan_teardown(self, purge_vault: bool = False) -> Plan:
        created, before, credentials = self._setup_history()
        known = self.journal.known(removing=True)
        ch: list[Change] = []
        warnings: list[str] = []
        t_ident, s_ident = self.ctx.identities["target"], self.ctx.identities["source"]
        tx, sx = self.ctx.exchange("target"), self.ctx.exchange("source")
        tg, sg = self.ctx.graph("target"), self.ctx.graph("source")

        # 1. Our batches: removed once nothing moves any more (a batch holds the endpoint).
        snapshot = await self.refresh()
        live = {b.name.lower(): b for b in snapshot.batches if b.status != "Removed"}
        for rec in self.data["batches"].values():
            name = str(rec["name"])
            b = live.get(name.lower())
            if b is None:
                continue
            moving = b.counts["waiting"] + b.counts["syncing"] + b.counts["synced"] + b.counts["completing"]
            if moving:
                ch.append(Change("target", "teardown", "wait", f"batch:{name}",
                                 f"Batch '{name}' still has {moving} user(s) not completed: complete, stop or remove "
                                 "them first (teardown would cut their move off)"))
            else:
                ch.append(Change("target", "teardown", "remove", f"batch:{name}",
                                 f"Remove the finished migration batch '{name}' ({b.counts['completed']} completed, "
                                 f"{b.counts['failed'] + b.counts['stopped']} not moved)"))
        endpoint_name = str(known.get("endpoint", {}).get("name", ""))

        # 2. The endpoint.
        endpoints = {e.identity.lower(): e for e in await tx.migration_endpoints()}
        if endpoint_name and endpoint_name.lower() in endpoints:
            if "endpoint" in created:
                # Batches in the target that are not ours but use our endpoint also hold it.
                others = [b.name for b in snapshot.batches if not b.ours and b.status != "Removed"]
                if others:
                    warnings.append(f"Other batches exist in the target ({', '.join(others[:5])}); if one uses the "
                                    f"endpoint '{endpoint_name}', remove it first.")
                ch.append(Change("target", "teardown", "remove", "endpoint",
                                 f"Remove the migration endpoint '{endpoint_name}'"))
            else:
                ch.append(Change("target", "teardown", "keep", "endpoint",
                                 f"Keep the migration endpoint '{endpoint_name}': it was there before xtwizard"))

        # 3. Both organization relationships: ours removed; adopted ones get back what they had.
        scope_from_relationship = ""
        for side, x, partner in (("target", tx, s_ident.tenant_id), ("source", sx, t_ident.tenant_id)):
            key = f"{side}-rel"
            name = str(known.get(key, {}).get("name", ""))
            if not name:
                continue
            rels = {r.name.lower(): r for r in await x.organization_relationships()}
            rel = rels.get(name.lower())
            if rel is None:
                continue
            if side == "source" and rel.mailbox_move_published_scopes:
                scope_from_relationship = rel.mailbox_move_published_scopes[0]
            if key in created:
                ch.append(Change(side, "teardown", "remove", key, f"Remove the organization relationship '{name}' "
                                 f"in the {side}"))
            elif before.get(key):
                was = before[key]
                now: dict[str, Any] = {"DomainNames": list(rel.domain_names), "Enabled": rel.enabled,
                       "MailboxMoveEnabled": rel.mailbox_move_enabled,
                       "MailboxMoveCapability": list(rel.mailbox_move_capabilities),
                       "OAuthApplicationId": rel.oauth_application_id,
                       "MailboxMovePublishedScopes": list(rel.mailbox_move_published_scopes)}
                revert = {k: v for k, v in was.items() if k in now and now[k] != v}
                if "DomainNames" in revert:  # remove only the tenant ID we added, keep what others added since
                    revert["DomainNames"] = [d for d in now["DomainNames"] if d.lower() != partner.lower()]
                    if revert["DomainNames"] == now["DomainNames"]:
                        del revert["DomainNames"]
                if revert:
                    ch.append(Change(side, "teardown", "update", key,
                                     f"Take back what xtwizard added to the organization relationship '{name}' in the "
                                     f"{side} (it was there before)", {k: now[k] for k in revert}, revert))
                else:
                    ch.append(Change(side, "teardown", "keep", key, f"Organization relationship '{name}' is as it "
                                     "was before xtwizard"))
            else:
                ch.append(Change(side, "teardown", "keep", key, f"Keep the organization relationship '{name}': "
                                 "xtwizard adopted it unchanged"))

        # 4. The source's consent (the app's service principal there, or the grant alone).
        grant_resource: dict[str, str] = {}
        ch.extend(await self._consent_changes("source", sg, created, known, grant_resource))

        # 5. The app: ours is deleted with its principal, secrets and certificates.  An adopted one is kept as it
        # was: xtwizard takes back its principal (or grant) in the target, the settings it changed, and the
        # secrets and certificates it added; the customer's own credentials stay.
        app_id = str((known.get("app") or {}).get("id", ""))
        app = await self._exists(lambda: tg.get_application(app_id)) if app_id else None
        ours_on_app: list[dict[str, Any]] = []
        migration_role = ""  # the Mailbox.Migration role's id (to take it out of an adopted app)
        if app is not None and "app" in created:
            ch.extend(await self._consent_changes("target", tg, created, known, grant_resource))
            ch.append(Change("target", "teardown", "remove", "app",
                             f"Delete the app registration '{app.display_name}' ({app.app_id}) and its client "
                             "secrets and certificates"))
        elif app is not None:
            ch.append(Change("target", "teardown", "keep", "app",
                             f"Keep the app registration '{app.display_name}': it was there before xtwizard"))
            ch.extend(await self._consent_changes("target", tg, created, known, grant_resource))
            was = before.get("app") or {}
            if "requiredResourceAccess" in was:
                from ..setup.engine import EXCHANGE_APP_ID, MAILBOX_MIGRATION

                exo = await tg.get_service_principal_by_app_id(EXCHANGE_APP_ID)
                role = exo.app_role(MAILBOX_MIGRATION) if exo is not None else None
                migration_role = role.id if role is not None else ""
            put_back = self._app_revert(app, was, migration_role)
            if put_back is not None:
                ch.append(put_back)
            have = {p.key_id for p in app.password_credentials}
            for cred in credentials:
                if cred["kind"] == "secret" and cred.get("keyId") in have:
                    ch.append(Change("target", "teardown", "remove", f"secret:{cred['keyId']}",
                                     f"Remove the client secret '{cred.get('name', '')}' xtwizard added to it"))
            thumbprints = {str(c.get("thumbprint", "")).upper() for c in credentials if c["kind"] == "app-certificate"}
            if thumbprints:
                on_app = await tg.get_application_key_credentials(app.id)
                ours_on_app = [k for k in on_app if _thumbprint(k) in thumbprints]
                if ours_on_app:
                    ch.append(Change("target", "teardown", "remove", "app-certificate",
                                     f"Remove the certificate{'s' if len(ours_on_app) > 1 else ''} xtwizard added to it "
                                     f"({', '.join(_thumbprint(k) for k in ours_on_app)}); its other certificates "
                                     "stay"))

        # 6. Key Vault objects (certificate mode): the resource group or vault we made, and the roles we gave.
        await self._plan_vault(created, known, ch)
        purge = await self._plan_purge(ch, purge_vault)

        # 7. The scoping group (adopted groups are not journaled: the source relationship names it); in an adopted
        # group, the members xtwizard added (the setup's --members, the readiness fix) go, the customer's stay.
        group = str(known.get("scope-group", {}).get("name", "")) or scope_from_relationship or self._scope_group()
        found = await self._exists(lambda: sx.distribution_groups(group)) if group else None
        if found and "scope-group" in created:
            ch.append(Change("source", "teardown", "remove", "scope-group",
                             f"Remove the scoping group '{group}' in the source"))
        elif found:
            ch.append(Change("source", "teardown", "keep", "scope-group",
                             f"Keep the scoping group '{group}': it was there before xtwizard"))
            added = {k.split(":", 1)[1].lower() for k in created if k.startswith("member:")}
            if added:
                for m in await sx.distribution_group_members(found[0].identity):
                    address = m.primary_smtp_address.lower()
                    if address in added:
                        ch.append(Change("source", "teardown", "remove", f"member:{address}",
                                         f"Take {m.primary_smtp_address} out of the scoping group '{group}' (xtwizard "
                                         "added them)"))
        if "org-customization" in known:
            ch.append(Change("target", "teardown", "keep", "org-customization",
                             "Organization customization stays enabled in the target (it cannot be undone and "
                             "does no harm)"))
        self._teardown_facts = {"created": created, "app": app, "grant_resource": grant_resource,
                                "migration_role": migration_role,
                                "group_id": found[0].identity if found else group, "certificates": ours_on_app,
                                "purge": purge}
        return Plan(ch, warnings, nothing=TEARDOWN_NOTHING)

    async def _plan_vault(self, created: dict[str, dict[str, Any]], known: dict[str, dict[str, Any]],
                          ch: list[Change]) -> None:
        """The Key Vault mode's objects that are still there: the resource group we made (with all in it); else
        the certificate we made in an adopted vault (first: the role we gave lets us delete it), the roles we
        gave, and the vault we made."""
        keys = ("resource-group", "vault", "vault-admin-role", "vault-exchange-role", "certificate")
        arm_of = getattr(self.ctx, "arm", None)
        if arm_of is None or not any(k in created for k in keys):
            return
        arm = arm_of("target")
        if "resource-group" in created:
            rg = created["resource-group"]
            if await arm.get_resource_group(self._subscription_of(rg), str(rg.get("name"))) is not None:
                ch.append(Change("target", "teardown", "remove", "resource-group",
                                 f"Delete the Azure resource group '{rg.get('name')}' with its key vault, certificate "
                                 "and role assignments (Azure keeps the vault recoverable for its retention days)"))
            return
        subscription, group, name = self._vault_place(created, known)
        vault = await arm.find_vault(subscription, group, name) if subscription and group else None
        if subscription and vault is None:
            return  # the vault is gone, and what was in it
        if "certificate" in created and "vault" not in created:
            from ..setup.engine import CERTIFICATE_NAME

            kv = self._vault_certificates(name)
            try:
                cert = await self._exists(lambda: kv.afind(CERTIFICATE_NAME))
            finally:
                await kv.aclose()
            if cert is not None:
                ch.append(Change("target", "teardown", "remove", "certificate",
                                 f"Delete the migration certificate '{CERTIFICATE_NAME}' that xtwizard made in the key "
                                 f"vault '{name}'"))
        if vault is None:
            return
        given = {a.id.lower() for a in await arm.role_assignments(vault.id)}
        for key in ("vault-admin-role", "vault-exchange-role"):
            if key in created and str(created[key].get("id", "")).lower() in given:
                ch.append(Change("target", "teardown", "remove", key,
                                 f"Remove the Key Vault role '{created[key].get('role', key)}' xtwizard gave"))
        if "vault" in created:
            ch.append(Change("target", "teardown", "remove", "vault",
                             f"Delete the key vault '{vault.name}' (soft-deleted: Azure keeps it recoverable for its "
                             "retention days)"))
        else:
            ch.append(Change("target", "teardown", "keep", "vault",
                             f"Keep the key vault '{vault.name}': it was there before xtwizard"))

    def _vaults_made(self) -> list[dict[str, Any]]:
        """Every key vault the setup created, from the journal (also those teardown removed since: they may be
        soft-deleted), the last made last."""
        made: dict[str, dict[str, Any]] = {}
        for e in self.ctx.project.entries():
            if e.phase == "done" and e.target.get("key") == "vault" and e.action.startswith("create"):
                made.pop(str(e.target.get("name", "")).lower(), None)
                made[str(e.target.get("name", "")).lower()] = e.target
        return list(made.values())

    async def _plan_purge(self, ch: list[Change], purge: bool) -> dict[str, dict[str, str]]:
        """Each key vault xtwizard created, once soft-deleted (by this plan's removal or an earlier teardown's):
        purged when `purge` (returned by name: subscription, location, name), else listed as kept until Azure
        purges it by itself.  Nothing for a vault still in use or already gone for good."""
        arm_of = getattr(self.ctx, "arm", None)
        made = self._vaults_made()
        out: dict[str, dict[str, str]] = {}
        if arm_of is None or not made:
            return out
        arm = arm_of("target")
        deleting = any(c.kind == "remove" and c.key in ("resource-group", "vault") for c in ch)
        deleted_in: dict[str, dict[str, Any]] = {}
        for rec in made:
            subscription, name = str(rec.get("subscription", "")), str(rec.get("name", ""))
            if subscription not in deleted_in:
                deleted_in[subscription] = {d.name.lower(): d for d in await arm.deleted_vaults(subscription)}
            deleted = deleted_in[subscription].get(name.lower())
            if deleted is not None:
                location, protected = deleted.location, deleted.purge_protection
                until = deleted.scheduled_purge_date[:10]
            elif deleting and rec is made[-1]:  # the vault this plan deletes (or its resource group)
                vault = await arm.find_vault(subscription, str(rec.get("resourceGroup", "")), name)
                if vault is None:
                    continue
                props = vault.raw.get("properties") or {}
                location, protected = vault.location, bool(props.get("enablePurgeProtection"))
                until = f"its {props.get('softDeleteRetentionInDays', 90)} retention days have passed"
            else:
                continue
            key = f"deleted-vault:{name}"
            if protected:
                ch.append(Change("target", "teardown", "keep", key, f"The key vault '{name}' has purge protection: "
                                 f"it stays soft-deleted, and its name taken, until {until} (it cannot be purged "
                                 "sooner)"))
            elif purge:
                ch.append(Change("target", "teardown", "remove", key, f"Purge the deleted key vault '{name}' for "
                                 "good: its name is free again at once, and the vault and the certificate in it can "
                                 "never be recovered"))
                out[name] = {"subscription": subscription, "location": location, "name": name}
            else:
                ch.append(Change("target", "teardown", "keep", key, f"The deleted key vault '{name}' stays "
                                 f"recoverable, and its name taken, until {until}; to free the name now, choose to "
                                 "purge it (xtwizard teardown --purge-vault): it can then never be recovered"))
        return out

    @staticmethod
    def _subscription_of(rec: dict[str, Any]) -> str:
        """The subscription of a record with an ARM resource id (/subscriptions/{id}/...) or a `subscription`."""
        parts = str(rec.get("id") or rec.get("scope") or "").split("/")
        return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else str(rec.get("subscription", ""))

    def _vault_place(self, created: dict[str, dict[str, Any]], known: dict[str, dict[str, Any]]
                     ) -> tuple[str, str, str]:
        """(subscription, resource group, name) of the setup's key vault: its record when xtwizard made it; for
        an adopted vault (not journaled), the scope of a role xtwizard gave on it, else — the name only — the
        address of the certificate xtwizard made in it."""
        rec = known.get("vault") or created.get("vault") or {}
        if rec.get("name"):
            return str(rec.get("subscription", "")), str(rec.get("resourceGroup", "")), str(rec["name"])
        for key in ("vault-admin-role", "vault-exchange-role"):
            parts = str(created.get(key, {}).get("scope", "")).split("/")
            if len(parts) >= 9 and parts[1].lower() == "subscriptions":  # /subscriptions/S/resourceGroups/G/.../N
                return parts[2], parts[4], parts[-1]
        head, _, tail = self.ctx.endpoints.vault_url_template.partition("{vault}")
        address = str(created.get("certificate", {}).get("id", ""))
        if address.startswith(head):
            rest = address[len(head):]
            return "", "", rest[:rest.find(tail)] if tail and tail in rest else rest.split("/", 1)[0]
        return "", "", ""

    async def _consent_changes(self, side: str, g: GraphClient, created: dict[str, dict[str, Any]],
                               known: dict[str, dict[str, Any]], grant_resource: dict[str, str]) -> list[Change]:
        """The app's service principal in `side` when xtwizard created it (its grant goes with it), else the
        Mailbox.Migration grant xtwizard gave the customer's principal (its resource noted in `grant_resource`)."""
        sp_key, grant_key = f"{side}-sp", f"{side}-grant"
        if sp_key in created:
            sp_id = str(created[sp_key].get("id", ""))
            if sp_id and await self._exists(lambda: g.get_service_principal(sp_id)):
                what = "consent in the source" if side == "source" else "enterprise application in the target"
                return [Change(side, "teardown", "remove", sp_key, f"Remove the migration app's {what} (its "
                               "service principal, with the Mailbox.Migration permission granted to it)")]
        elif grant_key in created and sp_key in known:
            sp_id, grant_id = str(known[sp_key].get("id", "")), str(created[grant_key].get("id", ""))
            grants = (await self._exists(lambda: g.app_role_assignments(sp_id)) or []) if sp_id else []
            grant = next((a for a in grants if a.id == grant_id), None)
            if grant is not None:
                grant_resource[side] = grant.resource_id
                return [Change(side, "teardown", "remove", grant_key, "Take back the Mailbox.Migration permission "
                               f"xtwizard granted to the app in the {side} (the app's principal was there before)")]
        return []

    @staticmethod
    def _app_revert(app: Any, was: dict[str, Any], migration_role: str) -> Change | None:
        """An adopted app gets back the settings the setup changed (`was`: their values before its first update):
        its sign-in audience, without the redirect URI and the Mailbox.Migration permission xtwizard added."""
        from ..setup.engine import REDIRECT_URI

        now: dict[str, Any] = {}
        back: dict[str, Any] = {}
        if "signInAudience" in was and app.sign_in_audience != was["signInAudience"]:
            now["signInAudience"], back["signInAudience"] = app.sign_in_audience, was["signInAudience"]
        if "redirectUris" in was and REDIRECT_URI in app.redirect_uris:
            now["redirectUris"] = list(app.redirect_uris)
            back["redirectUris"] = [u for u in app.redirect_uris if u != REDIRECT_URI]
        if migration_role and _without(app.required_resource_access, migration_role) != list(
                app.required_resource_access):
            now["requiredResourceAccess"] = ["Office 365 Exchange Online: Mailbox.Migration (application)"]
            back["requiredResourceAccess"] = ["(no Mailbox.Migration)"]
        if not back:
            return None
        return Change("target", "teardown", "update", "app", f"Put back the settings xtwizard changed on the app "
                      f"registration '{app.display_name}'", now, back)

    def _vault_certificates(self, vault_name: str) -> Any:
        return SetupEngine(self.ctx).vault_certificates(vault_name)

    @staticmethod
    async def _exists(read: Callable[[], Awaitable[Any]]) -> Any:
        """`read()`, or None when the object is gone (404 / not found)."""
        try:
            found = await read()
        except ServiceError as exc:
            if _gone(exc):
                return None
            raise
        return found if found not in ([], None) else None

    @staticmethod
    def waiting_problem(plan: Plan) -> Problem | None:
        """Why the teardown cannot go on yet (users still moving), or None."""
        if not plan.waiting:
            return None
        return Problem("Teardown has to wait: some users are still moving.", "; ".join(c.line for c in plan.waiting),
                       "Complete the batches (or stop and remove the users you will not move), then plan the "
                       "teardown again.", retryable=True)

    async def apply_teardown(self, plan: Plan, progress: Progress | None = None,
                             cancel: threading.Event | None = None) -> ApplyResult:
        """Remove what the plan says, change by change, journaled; Cancel between changes."""
        waiting = self.waiting_problem(plan)
        if waiting is not None:
            raise BatchProblem(waiting)
        result = ApplyResult(warnings=list(plan.warnings))
        pending = plan.pending
        for i, change in enumerate(pending):
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            if progress is not None:
                progress(i, len(pending), change.line)
            await self._teardown_one(change)
            result.done.append(change)
        if progress is not None and not result.cancelled:
            progress(len(pending), len(pending), "Teardown finished")
        return result

    async def _teardown_one(self, c: Change) -> None:
        facts = getattr(self, "_teardown_facts", None)
        if facts is None:
            raise BatchProblem(Problem("The teardown plan is out of date.", "Apply the plan from plan_teardown.",
                                       "Plan the teardown again, then apply it.", retryable=True))
        kind = c.key.split(":")[0]
        name = c.key.split(":", 1)[1] if ":" in c.key else str(
            self.journal.known(removing=True).get(c.key, {}).get("name", kind))
        target: dict[str, Any] = {"type": kind, "name": name}
        if not c.key.startswith("batch:"):
            target["key"] = c.key  # the setup's key: its journal view forgets what teardown removed
        if c.kind == "remove" and c.key in GOES_WITH:
            target["also"] = list(GOES_WITH[c.key])
        detail: dict[str, Any] = {"line": c.line}
        if c.kind == "update":
            detail.update(before=c.before, after=c.after)
        op = self.journal.begin(c.tenant, TEARDOWN_STEP, f"{'update' if c.kind == 'update' else 'remove'} {kind}",
                                target, detail)
        try:
            await self._teardown_do(c, name, facts)
        except ServiceError as exc:
            if c.kind == "remove" and _gone(exc):  # removed meanwhile (by someone else, or an earlier run)
                self.journal.finish(op, ok=True, detail={"resolved": "already gone"})
            else:
                self.journal.finish(op, ok=False, detail={"error": str(exc)[:500]})
                raise BatchProblem(explain(exc, doing=c.line)) from None
        else:
            self.journal.finish(op, ok=True)
        if c.key.startswith("batch:"):
            rec = self._record(name)
            if rec is not None:
                rec["removed"] = _iso(self.now())
                self.ctx.project.save()

    async def _teardown_do(self, c: Change, name: str, facts: dict[str, Any]) -> None:
        created: dict[str, dict[str, Any]] = facts["created"]
        known = self.journal.known(removing=True)
        tx, sx = self.ctx.exchange("target"), self.ctx.exchange("source")
        tg, sg = self.ctx.graph("target"), self.ctx.graph("source")
        if c.key.startswith("batch:"):
            await tx.remove_migration_batch(name)
        elif c.key == "endpoint":
            await tx.remove_migration_endpoint(name)
        elif c.key in ("target-rel", "source-rel"):
            x = tx if c.key == "target-rel" else sx
            if c.kind == "remove":
                await x.remove_organization_relationship(name)
            else:
                params: dict[str, Any] = {}
                for k, v in c.after.items():
                    if k == "MailboxMoveCapability":
                        params[k] = ", ".join(v) if v else "None"
                    elif k == "MailboxMovePublishedScopes":
                        params[k] = list(v) if v else None
                    elif k == "OAuthApplicationId":
                        params[k] = v or None
                    else:
                        params[k] = v
                await x.set_organization_relationship(name, params)
        elif c.key in ("source-sp", "target-sp"):
            await (sg if c.tenant == "source" else tg).delete_service_principal(str(created[c.key]["id"]))
        elif c.key in ("source-grant", "target-grant"):
            await (sg if c.tenant == "source" else tg).revoke_app_role(str(facts["grant_resource"][c.tenant]),
                                                                       str(created[c.key]["id"]))
        elif c.key == "app" and c.kind == "update":
            app = await tg.get_application(str(known["app"]["id"]))
            changes: dict[str, Any] = {k: v for k, v in c.after.items() if k == "signInAudience"}
            if "redirectUris" in c.after:
                changes["web"] = {"redirectUris": c.after["redirectUris"]}
            if "requiredResourceAccess" in c.after:
                changes["requiredResourceAccess"] = _without(app.required_resource_access, facts["migration_role"])
            await tg.update_application(app.id, changes)
        elif c.key == "app":
            await tg.delete_application(str(known["app"]["id"]))
        elif c.key.startswith("secret:"):
            await tg.remove_password(str(known["app"]["id"]), c.key.split(":", 1)[1])
        elif c.key == "app-certificate":  # PATCH replaces the whole collection: write back all but ours
            ours = {_thumbprint(k) for k in facts["certificates"]}
            app_id = str(known["app"]["id"])
            writable = ("customKeyIdentifier", "displayName", "endDateTime", "key", "keyId", "startDateTime",
                        "type", "usage")
            keep = [{k: v for k, v in cred.items() if k in writable}
                    for cred in await tg.get_application_key_credentials(app_id)
                    if cred.get("key") and _thumbprint(cred) not in ours]
            await tg.set_key_credentials(app_id, keep)
        elif c.key.startswith("deleted-vault:"):
            where = facts["purge"][name]
            await self.ctx.arm("target").purge_deleted_vault(
                where["subscription"], where["location"], where["name"])
        elif c.key in ("resource-group", "vault", "vault-admin-role", "vault-exchange-role", "certificate"):
            await self._teardown_vault(c.key, created, known)
        elif c.key == "scope-group":
            await sx.invoke("Remove-DistributionGroup", {"Identity": name, "BypassSecurityGroupManagerCheck": True,
                                                         "Confirm": False})
        elif c.key.startswith("member:"):
            await sx.remove_distribution_group_member(str(facts["group_id"]), name)
        else:
            raise AssertionError(c.key)

    async def _teardown_vault(self, key: str, created: dict[str, dict[str, Any]],
                              known: dict[str, dict[str, Any]]) -> None:
        arm = self.ctx.arm("target")
        rec = created[key]
        subscription, group, name = self._vault_place(created, known)
        if key == "resource-group":
            await arm.delete_resource_group(self._subscription_of(rec), str(rec.get("name")))
        elif key in ("vault-admin-role", "vault-exchange-role"):
            await arm.delete_role_assignment(str(rec["id"]))
        elif key == "vault":
            await arm.delete_vault(subscription, group, name)
        else:
            from ..setup.engine import CERTIFICATE_NAME

            kv = self._vault_certificates(name)
            try:
                await kv.adelete(CERTIFICATE_NAME)
            finally:
                await kv.aclose()


def _gone(exc: ServiceError) -> bool:
    """The object is not there (404, Exchange's "couldn't be found")."""
    return exc.status == 404 or "couldn't be found" in exc.message or "NotFound" in exc.code


def _moved(kept: Any, u: UserStatus) -> bool:
    """Whether a user's state kept by `_remember` ([batch, stage, status, error, last sync, source]) is out of
    date (its last sync aside)."""
    return not isinstance(kept, list) or len(kept) < 6 or kept[1] != u.stage or kept[2] != u.status or \
        kept[0] != u.batch or kept[3] != u.error[:300] or kept[5] != u.source


def _judge(action: str, detail: Mapping[str, Any], batch: MigrationBatch | None) -> tuple[bool, str]:
    """Whether a batch change was made, from the batch as Get-MigrationBatch shows it now (None: not there),
    and why, in words for the journal.  [U] Exchange's batch statuses and counters as reference §2.7 lists
    them: a started batch leaves Created/Waiting/Stopped and has no pending or stopped user; a completed one
    goes to Completing at once; Retry lowers FailedCount."""
    if action == "create batch":
        return (True, "the batch is in the target: it was created (adopted, not made again)") if batch is not None \
            else (False, "no such batch in the target: it was not created")
    if action == "remove batch":
        return (True, "gone from the target: the removal was made") if batch is None \
            else (False, "still in the target: it was not removed")
    if batch is None:
        return False, "the batch is no longer in the target"
    status = batch.status.lower()
    if action == "start batch":
        made = status not in ("created", "waiting", "stopped", "stopping") and not batch.count("PendingCount") \
            and not batch.count("StoppedCount")
    elif action == "retry batch":
        made = batch.count("FailedCount") < int(detail.get("failed") or 0)
    elif action == "stop batch":
        made = status in ("stopped", "stopping") or (batch.count("StoppedCount") > 0 and not batch.count("ActiveCount"))
    elif action == "complete batch":
        made = status.startswith("complet")
    elif action == "update batch":
        want, have = parse_time(detail.get("completeAfter")), batch.time("CompleteAfter")
        made = want is not None and have is not None and abs((have - want).total_seconds()) < 60
    else:
        return False, f"its status is {batch.status}: the outcome cannot be told"
    return made, f"its status is {batch.status}: the change was {'made' if made else 'not made'}"


class _Explained:
    """Exchange's per-user errors for people, one shared `Problem` per distinct error (10,000 failed users with
    one cause: one Problem, not 10,000).  A shared Problem says "this user" — the user's row or pane names them
    (`detail` explains one user with their address)."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.seen: dict[str, tuple[Problem, bool]] = {}

    def __call__(self, error: str) -> Problem:
        got = self.seen.get(error)
        if got is None:
            p = explain_move_failure(error, user=SHARED_USER, group=self.group)
            per_user = SHARED_USER in p.what
            p = dataclasses.replace(p, what=p.what[:1].upper() + p.what[1:],
                                    details=p.details.replace(f"\nUser: {SHARED_USER}", ""))
            got = self.seen[error] = (p, not per_user)
        return got[0]

    def organization_wide(self) -> list[Problem]:
        """The causes that hit every user (an expired secret, a broken relationship), each once."""
        out: dict[str, Problem] = {}
        for p, everyone in self.seen.values():
            if everyone:
                out.setdefault(p.what, p)
        return list(out.values())


def _without(access: Sequence[Mapping[str, Any]], role_id: str) -> list[dict[str, Any]]:
    """An app's requiredResourceAccess without the Exchange application permission `role_id` (Mailbox.Migration;
    an Exchange entry left empty goes)."""
    from ..setup.engine import EXCHANGE_APP_ID

    out: list[dict[str, Any]] = []
    for r in access:
        r = dict(r)
        if str(r.get("resourceAppId", "")).lower() == EXCHANGE_APP_ID:
            r["resourceAccess"] = [a for a in r.get("resourceAccess") or []
                                   if not (a.get("type") == "Role" and str(a.get("id", "")).lower() == role_id.lower())]
            if not r["resourceAccess"]:
                continue
        out.append(r)
    return out


def _thumbprint(credential: dict[str, Any]) -> str:
    """A Graph keyCredential's SHA-1 thumbprint (hex, upper case), from its key or its customKeyIdentifier."""
    import base64
    import hashlib

    raw = credential.get("key")
    if raw:
        return hashlib.sha1(base64.b64decode(raw)).hexdigest().upper()
    ident = str(credential.get("customKeyIdentifier") or "")
    try:
        return base64.b64decode(ident).hex().upper()
    except ValueError:
        return ident.upper()

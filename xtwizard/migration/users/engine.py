"""The users engine: inventory, mapping, target MailUser preparation, readiness with one-click fixes, dry run.

Persisted in `project.data["users"]` (no secrets): the chosen target domain, the delivery domain, the mapping
rows `{"source", "target"}`, the last inventory summary and the last readiness results.  The batches engine
reads them through `load_mapping(project)`, `ready_users(project)` and `delivery_domain(project)`.

How preparation stays exact under throttling and crashes: every plan is computed from fresh paged reads of
both tenants, so a rerun plans only what is still missing; each user's change is journaled (intent, then
outcome) and executed by one of `concurrency` workers, whose requests go through the HTTP policy's gate and
429/Retry-After handling (and a slower outer retry here for throttling storms).  A create whose answer was
lost (connection dropped, gateway error) is looked up by its target address before anything else: it is
adopted, never made twice.  Intents left open by a crash are resolved from the tenant at the next apply.
We never assign licences: an Exchange licence before the ExchangeGuid is stamped provisions a new mailbox
(reference §2.6), so licensing is left to the admin after the move.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from ...cloud.exchange import (
    CONCURRENCY_LIMIT_TEXT,
    ExchangeClient,
    ExchangeError,
    GroupMember,
    Recipient,
)
from ...cloud.http import NetworkUnavailable
from ...cloud.service import ServiceError
from .. import Progress
from ..problems import Problem, explain, explain_move_failure
from ..project import MigrationProject
from ..setup.journal import SetupJournal
from ..setup.model import ApplyResult, Change, Check, Plan
from . import mapping as mp
from .model import (
    ERROR,
    FIX_ADD_DELIVERY_PROXY,
    FIX_ADD_TO_SCOPE,
    FIX_ADD_X500,
    FIX_CREATE_MAILUSER,
    FIX_REMOVE_FOREIGN_PROXY,
    FIX_SET_EXTERNAL_ADDRESS,
    FIX_SET_PRIMARY_ADDRESS,
    FIX_STAMP_ARCHIVE_GUID,
    FIX_STAMP_EXCHANGE_GUID,
    OK,
    WARNING,
    ZERO_GUID,
    Finding,
    MappingRow,
    PreparePlan,
    PrepareResult,
    ReadyUser,
    SourceMailbox,
    UserChange,
    UserReadiness,
)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")

GROUP_TYPES = ("MailUniversalSecurityGroup", "MailUniversalDistributionGroup", "GroupMailbox")
MAX_AUX_ARCHIVES = 12
STEP_PREPARE = "prepare-users"
STEP_FIX = "readiness-fix"
THROTTLE_RETRIES = 8


class UsersProblem(Exception):
    """The users engine cannot go on; `problem` says what happened, why and what to do."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.what)
        self.problem = problem


class UsersContext(Protocol):
    """What the engine needs from the app (the Workspace provides it; tests provide a light one)."""

    project: MigrationProject

    @property
    def identities(self) -> dict[str, Any]: ...
    def exchange(self, slot: str) -> ExchangeClient: ...


# --- what the batches engine reads ------------------------------------------------------------------------
def _users_data(project: MigrationProject) -> dict[str, Any]:
    data = project.data.setdefault("users", {})
    assert isinstance(data, dict)
    return data


def load_mapping(project: MigrationProject) -> list[MappingRow]:
    """The saved mapping rows (not validated: status "")."""
    rows = project.data.get("users", {}).get("mapping", [])
    return [MappingRow(str(r["source"]), str(r["target"])) for r in rows if r.get("source") and r.get("target")]


def ready_users(project: MigrationProject) -> list[ReadyUser]:
    """The mapped users whose last readiness passed (no blocking finding), with their delegates and size."""
    results = project.data.get("users", {}).get("readiness", {}).get("users", {})
    out = []
    for row in load_mapping(project):
        r = results.get(row.source.lower())
        if r and r.get("ready") and str(r.get("target", "")).lower() == row.target.lower():
            out.append(ReadyUser(row.source, row.target, tuple(r.get("delegates", [])), r.get("sizeBytes")))
    return out


def mark_for_recheck(project: MigrationProject, source: str, what: str, fix: str) -> None:
    """The user's last readiness result no longer holds (e.g. their failed move was taken out of its batch):
    `ready_users` leaves them out until readiness runs again and passes.  The caller saves the project."""
    r = project.data.get("users", {}).get("readiness", {}).get("users", {}).get(source.lower())
    if isinstance(r, dict):
        r["ready"] = False
        r.setdefault("problems", []).append({"check": "recheck", "severity": ERROR, "what": what, "fix": fix,
                                             "fixId": ""})


def delivery_domain(project: MigrationProject) -> str:
    """The TargetDeliveryDomain for New-MigrationBatch: the target domain every prepared MailUser has a proxy in."""
    return str(project.data.get("users", {}).get("deliveryDomain") or project.data.get("target", {}).get("domain", ""))


# --- reads ------------------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """Both tenants as read for one plan or check (fresh each time: the plan is the difference)."""

    directory: mp.Directory
    delivery: str
    scope_group: str
    scope_note: str                      # why the scope cannot be checked ("" when it can)
    target_mailusers: dict[str, Recipient] = field(default_factory=dict)  # by GUID
    target_users: dict[str, Recipient] = field(default_factory=dict)      # Get-User by UPN (lower)


def _is_throttled(exc: BaseException) -> bool:
    return isinstance(exc, ExchangeError) and (exc.status in (429, 503) or CONCURRENCY_LIMIT_TEXT in
                                               exc.message.lower())


def _is_not_found(exc: ExchangeError) -> bool:
    return exc.short_type == "ManagementObjectNotFoundException" or "couldn't be found" in exc.message


class GroupJournal:
    """begin/finish for many workers at once, written with one flush per group (group commit): each caller still
    waits until its own record is on disk before changing the tenant, but thousands of users do not pay one
    fsync each.  The write runs on a worker thread, so the loop keeps the requests flowing meanwhile."""

    def __init__(self, project: MigrationProject) -> None:
        self.project = project
        self._pending: list[tuple[str, dict[str, Any], asyncio.Future[str]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def begin(self, tenant: str, step: str, action: str, target: dict[str, Any],
                    detail: dict[str, Any] | None = None) -> str:
        return await self._submit("begin", {"tenant": tenant, "step": step, "action": action, "target": target,
                                            "detail": detail})

    async def finish(self, op: str, *, ok: bool, target: dict[str, Any] | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        await self._submit("finish", {"op": op, "ok": ok, "target": target, "detail": detail})

    async def _submit(self, kind: str, record: dict[str, Any]) -> str:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((kind, record, fut))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            begins = [r for k, r, _ in batch if k == "begin"]
            finishes = [r for k, r, _ in batch if k == "finish"]
            try:
                ops = await asyncio.to_thread(self.project.journal_many, begins, finishes)
            except (OSError, ValueError) as exc:
                for _, _, fut in batch:
                    fut.set_exception(exc)
                continue
            it = iter(ops)
            for k, _, fut in batch:
                fut.set_result(next(it) if k == "begin" else "")


class UserEngine:
    """One project's users.  `concurrency` bounds the users worked on at once; the HTTP policy's gate bounds the
    requests in flight per tenant, and its 429 handling (Retry-After) keeps the work inside Exchange's throttle."""

    def __init__(self, ctx: UsersContext, *, sleep: Sleep | None = None, concurrency: int = 16) -> None:
        self.ctx = ctx
        self.sleep: Sleep = sleep or asyncio.sleep
        self.concurrency = max(1, concurrency)
        self.journal = SetupJournal(ctx.project)
        self.group = GroupJournal(ctx.project)       # the journal for bulk work (preparation, fixes)
        self.requests = 0                     # Exchange requests this engine sent (counted per call)
        self._snapshot: Snapshot | None = None

    # --- small helpers --------------------------------------------------------------------------------------
    @property
    def data(self) -> dict[str, Any]:
        return _users_data(self.ctx.project)

    def _ident(self, slot: str) -> Any:
        ident = self.ctx.identities.get(slot)
        if ident is None:
            raise UsersProblem(Problem(f"Not signed in to the {slot} tenant.", "The users step reads both tenants.",
                                       f"Sign in to the {slot} tenant first."))
        return ident

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """One Exchange call; a throttling answer that outlasted the HTTP policy's retries is waited out here
        (the service did nothing, so the same call is safe to send again)."""
        delay = 5.0
        for attempt in range(THROTTLE_RETRIES + 1):
            self.requests += 1
            try:
                return await fn()
            except ExchangeError as exc:
                if not _is_throttled(exc) or attempt == THROTTLE_RETRIES:
                    raise
            await self.sleep(delay)
            delay = min(delay * 2, 120.0)
        raise AssertionError("unreachable")

    async def _pool(self, items: Sequence[T], work: Callable[[T], Awaitable[None]],
                    cancel: threading.Event | None) -> bool:
        """Run `work` over items with `concurrency` workers; Cancel stops new items (never one half-done).
        Returns whether it was cancelled."""
        queue: asyncio.Queue[T] = asyncio.Queue()
        for it in items:
            queue.put_nowait(it)
        cancelled = False

        async def worker() -> None:
            nonlocal cancelled
            while not queue.empty():
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    return
                item = queue.get_nowait()
                await work(item)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, max(1, len(items))))))
        return cancelled

    # --- reading both tenants ---------------------------------------------------------------------------------
    def _known_setup(self) -> dict[str, dict[str, Any]]:
        return self.journal.known()

    async def _scope(self, sx: ExchangeClient) -> tuple[str, str, set[str], set[str]]:
        """The scope group's name, a note when there is none, and its members (transitively) as Entra object
        ids and addresses."""
        name = str(self.data.get("scopeGroup") or self._known_setup().get("scope-group", {}).get("name") or "")
        note = ""
        target_id = str(self._ident("target").tenant_id).lower()
        rels = await self._call(sx.organization_relationships)
        rel = next((r for r in rels if r.has_capability("RemoteOutbound") and r.names_tenant(target_id)), None)
        if rel is None:
            note = ("The source has no organization relationship with the target's tenant ID that allows moves out "
                    "(RemoteOutbound), so the move service will find no mailbox in scope.")
        elif not name and rel.mailbox_move_published_scopes:
            name = rel.mailbox_move_published_scopes[0]
        if not name:
            return "", note or "No scope group is published by the source organization relationship.", set(), set()
        ids: set[str] = set()
        addresses: set[str] = set()
        seen: set[str] = set()

        async def walk(group: str) -> None:
            if group.lower() in seen:
                return
            seen.add(group.lower())
            try:
                members: list[GroupMember] = await self._call(lambda: sx.distribution_group_members(group))
            except ExchangeError as exc:
                if _is_not_found(exc) and len(seen) == 1:
                    raise UsersProblem(Problem(f"The scope group '{name}' was not found in the source.",
                                               "It was removed or renamed after the setup.",
                                               "Run the setup again to choose or create the scope group.")) from None
                raise
            for m in members:
                if m.recipient_type_details in GROUP_TYPES:
                    await walk(m.primary_smtp_address or m.external_directory_object_id or m.name)
                else:
                    if m.external_directory_object_id:
                        ids.add(m.external_directory_object_id.lower())
                    if m.primary_smtp_address:
                        addresses.add(m.primary_smtp_address.lower())

        await walk(name)
        return name, note, ids, addresses

    async def _read(self, progress: Progress | None = None, *, users: bool = False) -> Snapshot:
        """Paged reads of both tenants (a handful of requests whatever the size)."""
        s, t = self._ident("source"), self._ident("target")
        sx, tx = self.ctx.exchange("source"), self.ctx.exchange("target")
        if progress:
            progress(0, 4, "Reading the source mailboxes")
        mailboxes, (group, note, ids, addrs) = await asyncio.gather(self._call(sx.mailboxes), self._scope(sx))
        if progress:
            progress(1, 4, "Reading the target's recipients")
        recipients, mailusers, domains = await asyncio.gather(
            self._call(tx.recipients), self._call(tx.mail_users), self._call(tx.accepted_domains))
        target_users: list[Recipient] = []
        if users:
            if progress:
                progress(2, 4, "Reading the target's users")
            target_users = await self._call(tx.users)
        accepted = {d.domain_name.lower() for d in domains}
        delivery = next((d.domain_name for d in domains if d.domain_name.lower().endswith(".mail.onmicrosoft.com")),
                        None) or next((d.domain_name for d in domains if d.initial), None) or t.initial_domain
        full = {m.guid: m for m in mailusers}
        # Get-Recipient gives every object; Get-MailUser the full MailUser (GUIDs and proxies) where it has it.
        merged = [full.get(r.guid, r) for r in recipients]
        merged += [m for g, m in full.items() if g not in {r.guid for r in recipients}]
        boxes = [self._mailbox(r, ids, addrs) for r in mailboxes]
        d = mp.Directory(s.display_name, t.display_name, boxes, merged, accepted)
        snap = Snapshot(d, str(delivery), group, note, full,
                        {u.user_principal_name.lower(): u for u in target_users if u.user_principal_name})
        self._snapshot = snap
        if progress:
            progress(3, 4, "Read both tenants")
        return snap

    @staticmethod
    def _mailbox(r: Recipient, ids: set[str], addrs: set[str], stats: Any = None) -> SourceMailbox:
        oid = str(r.raw.get("ExternalDirectoryObjectId") or "").lower()
        return SourceMailbox(
            address=r.primary_smtp_address, name=r.name, display_name=r.display_name or r.name, alias=r.alias,
            user_principal_name=r.user_principal_name, recipient_type_details=r.recipient_type_details,
            exchange_guid=r.exchange_guid, archive_guid="" if r.archive_guid in ("", ZERO_GUID) else r.archive_guid,
            legacy_exchange_dn=r.legacy_exchange_dn, email_addresses=r.email_addresses,
            persisted_capabilities=r.persisted_capabilities, aux_archives=r.aux_archive_count, holds=r.holds,
            auto_expanding_archive=r.auto_expanding_archive,
            in_scope=(bool(oid) and oid in ids) or r.primary_smtp_address.lower() in addrs,
            delegates=r.send_on_behalf)

    async def _statistics(self, boxes: list[SourceMailbox], progress: Progress | None,
                          cancel: threading.Event | None, base: int, total: int) -> list[SourceMailbox]:
        sx = self.ctx.exchange("source")
        out: dict[str, SourceMailbox] = {}
        done = 0

        async def one(m: SourceMailbox) -> None:
            nonlocal done
            st = await self._call(lambda: sx.mailbox_statistics(m.exchange_guid or m.address))
            arch = None
            if m.has_archive:
                arch = await self._call(lambda: sx.mailbox_statistics(m.archive_guid, archive=True))
            out[m.address] = replace(m, size_bytes=st.total_item_size, item_count=st.item_count,
                                     deleted_bytes=st.total_deleted_item_size,
                                     archive_size_bytes=arch.total_item_size if arch else None)
            done += 1
            if progress and (done % 25 == 0 or done == len(boxes)):
                progress(base + done, total, f"Mailbox sizes: {done} of {len(boxes)}")

        await self._pool(boxes, one, cancel)
        return [out.get(m.address, m) for m in boxes]

    # --- 1. inventory ---------------------------------------------------------------------------------------
    async def inventory(self, progress: Progress | None = None, cancel: threading.Event | None = None, *,
                        statistics: bool = True) -> list[SourceMailbox]:
        """Every source mailbox (paged Get-Mailbox), marked in scope when it is a member — transitively — of the
        scope group; with `statistics`, sizes from Get-MailboxStatistics (bounded concurrency).  Also reads the
        target's recipients once, for mapping and validation.  Saves a summary in the project."""
        try:
            snap = await self._read(progress)
            boxes = snap.directory.mailboxes
            if statistics:
                boxes = await self._statistics(boxes, progress, cancel, 4, 4 + len(boxes))
                snap.directory = mp.Directory(snap.directory.source_name, snap.directory.target_name, boxes,
                                              snap.directory.target_recipients, snap.directory.accepted)
        except ServiceError as exc:
            raise UsersProblem(explain(exc, "reading the mailboxes")) from None
        self.data["inventory"] = {
            "at": time.time(), "mailboxes": len(boxes), "inScope": sum(1 for m in boxes if m.in_scope),
            "bytes": sum(m.size_bytes or 0 for m in boxes), "scopeGroup": snap.scope_group}
        self.data["deliveryDomain"] = snap.delivery
        self.ctx.project.save()
        return boxes

    # --- 2. mapping -----------------------------------------------------------------------------------------
    def auto_map(self, mailboxes: Sequence[SourceMailbox], target_domain: str) -> list[MappingRow]:
        """source -> target: an existing target MailUser prepared for this mailbox (same ExchangeGuid, or its
        ExternalEmailAddress is the source address) first, else the alias in `target_domain`."""
        return mp.auto_map(mailboxes, target_domain, self._snapshot.directory if self._snapshot else None)

    def import_csv(self, text: str) -> tuple[list[MappingRow], list[str]]:
        """Rows from a SourceUser,TargetUser CSV (Microsoft's validation script format; a BOM, ';' or tab
        separators and common header spellings are accepted).  Returns the rows and, for every line or header
        that could not be used, a plain sentence saying which and why."""
        return mp.parse_csv(text)

    def export_csv(self, rows: Sequence[MappingRow]) -> str:
        """SourceUser,TargetUser CSV text (UTF-8, CRLF), importable by `import_csv` and the CSS validation script."""
        return mp.to_csv(rows)

    async def validate(self, rows: Sequence[MappingRow]) -> list[MappingRow]:
        """Each row with status ok / warning / error, a message and how to resolve it: unknown source, target
        domain not accepted, duplicates, the target address taken by another object, a mailbox as target."""
        snap = self._snapshot
        if snap is None:
            try:
                snap = await self._read()
            except ServiceError as exc:
                raise UsersProblem(explain(exc, "reading both tenants")) from None
        return mp.validate_rows(rows, snap.directory, snap.scope_group)

    def save_mapping(self, rows: Sequence[MappingRow], target_domain: str | None = None) -> None:
        """Persist the mapping (and the chosen target domain) in the project."""
        self.data["mapping"] = [r.as_data() for r in rows]
        if target_domain is not None:
            self.data["targetDomain"] = target_domain
        self.ctx.project.save()

    # --- 3. preparation ---------------------------------------------------------------------------------------
    def _free_name(self, d: mp.Directory, name: str, source_domain: str) -> str:
        taken = {r.name.lower() for r in d.target_recipients}
        if name.lower() not in taken:
            return name
        base = f"{name} ({source_domain.split('.', 1)[0]})"
        candidate, n = base, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{base} {n}"
        return candidate

    @staticmethod
    def _current(r: Recipient) -> dict[str, Any]:
        return {"ExchangeGuid": r.exchange_guid or ZERO_GUID, "ArchiveGuid": r.archive_guid or ZERO_GUID,
                "PrimarySmtpAddress": r.primary_smtp_address,
                "ExternalEmailAddress": mp.bare(r.external_email_address),
                "EmailAddresses": list(r.email_addresses)}

    def _user_change(self, row: MappingRow, snap: Snapshot) -> UserChange:
        d = snap.directory
        if row.status == ERROR:
            return UserChange(row.source, row.target, "skip", f"{row.source}: skipped: {row.message}",
                              problem=Problem(row.message, "The mapping row is not valid.", row.fix, retryable=False))
        m = d.source(row.source)
        assert m is not None
        existing = d.by_address.get(row.target.lower())
        if existing is not None and existing.recipient_type_details == "MailUser":
            existing = snap.target_mailusers.get(existing.guid, existing)
            before = self._current(existing)
            after = wanted_mailuser(m, row.target, snap, existing)
            if _same(before, after):
                return UserChange(row.source, row.target, "keep", f"{row.target}: prepared", before, after,
                                  existing.guid)
            return UserChange(row.source, row.target, "update", f"Update MailUser {row.target} for {m.address}",
                              before, after, existing.guid)
        after = {"Name": self._free_name(d, m.display_name, mp.domain_of(m.address)), "DisplayName": m.display_name,
                 "Alias": row.target.split("@", 1)[0], **wanted_mailuser(m, row.target, snap, None)}
        return UserChange(row.source, row.target, "create", f"Create MailUser {row.target} for {m.address}", {},
                          after)

    async def plan_prepare(self, progress: Progress | None = None,
                           cancel: threading.Event | None = None) -> PreparePlan:
        """For each mapped user: create the target MailUser, update its drifted attributes (before -> after), keep
        it, or skip the user with the reason.  Reads only (source mailboxes, target recipients, accepted domains)."""
        rows = load_mapping(self.ctx.project)
        if not rows:
            raise UsersProblem(Problem("No users are mapped yet.", "Preparation works on the saved mapping.",
                                       "Choose the users and their target addresses first (xtwizard users)."))
        try:
            snap = await self._read(progress)
        except ServiceError as exc:
            raise UsersProblem(explain(exc, "reading both tenants")) from None
        checked = mp.validate_rows(rows, snap.directory, snap.scope_group)
        plan = PreparePlan([self._user_change(r, snap) for r in checked])
        if snap.delivery.lower().endswith(".onmicrosoft.com") and not snap.delivery.lower().endswith(
                ".mail.onmicrosoft.com"):
            plan.warnings.append(f"The target delivery domain is {snap.delivery} (the target has no "
                                 "*.mail.onmicrosoft.com domain).")
        self.data["deliveryDomain"] = snap.delivery
        return plan

    async def apply_prepare(self, plan: PreparePlan, progress: Progress | None = None,
                            cancel: threading.Event | None = None) -> PrepareResult:
        """Carry out the plan's changes, each journaled before and after, with bounded concurrency; Cancel is
        honoured between users.  A create whose answer was lost is found (not made twice); an interrupted run's
        open intents are resolved first."""
        started, requests = time.perf_counter(), self.requests
        result = PrepareResult(warnings=list(plan.warnings))
        await self._close_unfinished()
        pending = plan.pending
        done = 0

        async def one(c: UserChange) -> None:
            nonlocal done
            problem = await self._apply_user_change(c, STEP_PREPARE)
            if problem is None:
                result.done.append(c)
            else:
                result.failed.append((c, problem))
            done += 1
            if progress:
                progress(done, len(pending), c.line)

        result.cancelled = await self._pool(pending, one, cancel)
        result.requests = self.requests - requests
        result.seconds = time.perf_counter() - started
        self.ctx.project.save()
        return result

    async def _apply_user_change(self, c: UserChange, step: str) -> Problem | None:
        """One user's create or update, journaled; returns the problem when it failed (the others go on)."""
        tx = self.ctx.exchange("target")
        target = {"key": f"mailuser:{c.source.lower()}", "type": "MailUser", "name": c.target}
        detail: dict[str, Any] = {"line": c.line, "after": c.after}
        if c.kind == "update":
            detail["before"] = c.before
        op = await self.group.begin("target", step, f"{c.kind} mailuser", target, detail)
        try:
            guid = c.identity
            if c.kind == "create":
                made = await self._create(tx, c)
                guid = made.guid
                await self._stamp(tx, guid, self._current(made), c.after)
            else:
                await self._stamp(tx, guid, c.before, c.after)
        except (ServiceError, NetworkUnavailable) as exc:
            await self.group.finish(op, ok=False, detail={"error": str(exc)[:500]})
            return explain(exc, c.line)
        except UsersProblem as exc:
            await self.group.finish(op, ok=False, detail={"error": exc.problem.what})
            return exc.problem
        await self.group.finish(op, ok=True, target={**target, "guid": guid})
        return None

    async def _create(self, tx: ExchangeClient, c: UserChange) -> Recipient:
        """New-MailUser; when the answer is lost (or the object turns out to exist), find it instead of making
        it twice."""
        a = c.after
        try:
            made = await self._call(lambda: tx.new_mail_user(
                str(a["Name"]), external_email_address=c.source, microsoft_online_services_id=c.target,
                primary_smtp_address=c.target, display_name=str(a.get("DisplayName") or a["Name"]),
                alias=str(a.get("Alias") or c.target.split("@", 1)[0])))
            if made.guid:
                return made
            found = await self._find_mailuser(tx, c.target)
            if found is None:
                raise UsersProblem(Problem(f"The MailUser {c.target} was created but cannot be read back.",
                                           "Directory replication can take a few minutes.",
                                           "Wait a few minutes and run the preparation again; nothing is duplicated."))
            return found
        except (ExchangeError, NetworkUnavailable) as exc:
            if isinstance(exc, ExchangeError) and exc.status < 500 and not _exists_error(exc):
                raise
            found = await self._find_mailuser(tx, c.target)
            if found is not None and mp.bare(found.external_email_address).lower() == c.source.lower():
                return found  # made by the lost request (or an earlier run): adopted, not made twice
            raise

    async def _find_mailuser(self, tx: ExchangeClient, address: str) -> Recipient | None:
        try:
            rows = await self._call(lambda: tx.mail_users(address))
        except ExchangeError as exc:
            if _is_not_found(exc):
                return None
            raise
        return rows[0] if rows else None

    async def _stamp(self, tx: ExchangeClient, identity: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Set-MailUser with what differs, in as few commands as Exchange allows: PrimarySmtpAddress cannot go
        with EmailAddresses in one command, so a new primary address goes first, alone; then the GUIDs, the
        external address and the proxies to add and remove together."""
        def changed(key: str) -> bool:
            return bool(after.get(key)) and after[key] != ZERO_GUID and \
                str(before.get(key, "")).lower() != str(after[key]).lower()

        if changed("PrimarySmtpAddress"):
            await self._call(lambda: tx.set_mail_user(identity, primary_smtp_address=after["PrimarySmtpAddress"]))
        params: dict[str, Any] = {}
        if changed("ExchangeGuid"):
            params["exchange_guid"] = after["ExchangeGuid"]
        if changed("ArchiveGuid"):
            params["archive_guid"] = after["ArchiveGuid"]
        if changed("ExternalEmailAddress"):
            params["external_email_address"] = after["ExternalEmailAddress"]
        if "EmailAddresses" in after:
            old = {a.lower() for a in before.get("EmailAddresses", [])}
            new = {a.lower() for a in after["EmailAddresses"]}
            add = [a for a in after["EmailAddresses"] if a.lower() not in old and not a.startswith("SMTP:")]
            remove = [a for a in before.get("EmailAddresses", []) if a.lower() not in new
                      and not a.startswith("SMTP:")]
            if add:
                params["add_addresses"] = add
            if remove:
                params["remove_addresses"] = remove
        if params:
            await self._call(lambda: tx.set_mail_user(identity, **params))

    async def _close_unfinished(self) -> None:
        """Intents a crash left open: record what the target now shows (the MailUser exists, or it does not).
        The next plan re-checks every attribute, so a half-made change is finished there."""
        open_ = [e for e in self.journal.unfinished() if e.step in (STEP_PREPARE, STEP_FIX)]
        if not open_:
            return
        tx = self.ctx.exchange("target")
        for e in open_:
            target = e.target
            if e.action == "add member":  # journaled only once the member was seen absent: present now = our add
                made = str(e.target.get("name", "")).lower() in await self._member_addresses(
                    str(e.target.get("group", "")))
                note = "in the group: xtwizard added the member" if made else "not in the group: not added"
            else:
                found = await self._find_mailuser(tx, str(e.target.get("name", ""))) if e.tenant == "target" else None
                made = found is not None
                if found is not None:
                    target = {**e.target, "guid": found.guid}
                note = ("found in the tenant: the plan re-checks its attributes" if made else
                        "not in the tenant: the change was not made" if e.action.startswith("create") else
                        "outcome unknown: the next check re-reads it")
            self.journal.finish(e.op, ok=made, target=target, detail={"resolved": "on resume: " + note})

    # --- 4. readiness -----------------------------------------------------------------------------------------
    async def readiness(self, progress: Progress | None = None, cancel: threading.Event | None = None, *,
                        probe: bool = True) -> list[UserReadiness]:
        """Every mapped user checked as CrossTenantMailboxMigrationValidation does (reference §1.5) and more; with
        `probe`, users without a blocking finding are also tested with Test-MigrationServerAvailability (what
        the move service itself would refuse).  Saves the results in the project (for `ready_users`)."""
        rows = load_mapping(self.ctx.project)
        if not rows:
            raise UsersProblem(Problem("No users are mapped yet.", "Readiness checks the mapped users.",
                                       "Choose the users and their target addresses first (xtwizard users)."))
        try:
            snap = await self._read(progress, users=True)
            tx = self.ctx.exchange("target")
            migration_users = await self._call(tx.all_migration_users)
            endpoint = await self._endpoint(tx) if probe else None
            own = self._own_batches()
            moved = self._moved(migration_users)
            boxes = [m for m in (snap.directory.source(r.source) for r in rows) if m is not None]
            total = 4 + len(boxes) + len(rows)
            boxes = await self._statistics(boxes, progress, cancel, 4, total)
            by_addr = {m.address.lower(): m for m in boxes}
            holds = await self._substrate_holds([m for m in boxes if m.has_archive], cancel)
            results: list[UserReadiness] = []
            done = 0

            async def one(row: MappingRow) -> None:
                nonlocal done
                src = snap.directory.source(row.source)
                m = by_addr.get(src.address.lower()) if src else None
                findings = self._check_user(row, m, snap, migration_users, own, holds, moved)
                if endpoint and m is not None and row.target.lower() not in moved and not any(
                        f.blocking for f in findings):
                    findings.append(await self._probe(tx, endpoint, row, snap))
                results.append(UserReadiness(row.source, row.target, tuple(findings)))
                done += 1
                if progress:
                    progress(4 + len(boxes) + done, total, f"Checked {row.source}")

            await self._pool(rows, one, cancel)
        except ServiceError as exc:
            raise UsersProblem(explain(exc, "checking readiness")) from None
        order = {r.source.lower(): i for i, r in enumerate(rows)}
        results.sort(key=lambda r: order.get(r.source.lower(), 0))
        self._save_readiness(results, by_addr)
        return results

    def _own_batches(self) -> set[str]:
        """Batch names the batches engine recorded for this project (a user in our own batch is not a duplicate)."""
        data = self.ctx.project.data.get("batches")
        names: set[str] = set()
        items: list[Any] = []
        if isinstance(data, dict):
            items = list(data.get("batches", data.get("waves", [])) or [])
            items += [k for k in data if isinstance(data.get(k), dict) and k not in ("options",)]
        elif isinstance(data, list):
            items = data
        for it in items:
            if isinstance(it, str):
                names.add(it.lower())
            elif isinstance(it, dict) and it.get("name"):
                names.add(str(it["name"]).lower())
        return names

    async def _endpoint(self, tx: ExchangeClient) -> str:
        known = self._known_setup().get("endpoint", {}).get("name")
        if known:
            return str(known)
        source_domain = str(self._ident("source").initial_domain).lower()
        eps = await self._call(tx.migration_endpoints)
        ep = next((e for e in eps if e.endpoint_type.lower() == "exchangeremotemove"
                   and e.remote_tenant.lower() == source_domain), None)
        return ep.identity if ep else ""

    async def _substrate_holds(self, boxes: list[SourceMailbox], cancel: threading.Event | None) -> dict[str, int]:
        """Items in the archive's Recoverable Items\\SubstrateHolds (reference §1.5 item 5), per source address."""
        sx = self.ctx.exchange("source")
        out: dict[str, int] = {}

        async def one(m: SourceMailbox) -> None:
            rows = await self._call(lambda: sx.mailbox_folder_statistics(m.archive_guid,
                                                                         folder_scope="RecoverableItems"))
            out[m.address.lower()] = sum(int(r.get("ItemsInFolder") or 0) for r in rows
                                         if str(r.get("Name", "")).lower() == "substrateholds")

        await self._pool(boxes, one, cancel)
        return out

    def _moved(self, migration_users: Sequence[Any]) -> set[str]:
        """Target addresses whose move completed: a completed migration user, or one the batches engine last saw
        completed (its batch may be gone since)."""
        done = {u.identity.lower() for u in migration_users
                if u.status.lower() in ("completed", "completedwithwarnings")}
        last = self.ctx.project.data.get("batches", {}).get("users") or {}
        done.update(str(t).lower() for t, v in last.items()
                    if isinstance(v, list) and len(v) > 1 and v[1] == "completed")
        return done

    def _check_user(self, row: MappingRow, m: SourceMailbox | None, snap: Snapshot, migration_users: Sequence[Any],
                    own: set[str], substrate: dict[str, int], moved: set[str] | None = None) -> list[Finding]:
        return check_user(row, m, snap, migration_users, own, substrate, moved)

    async def _probe(self, tx: ExchangeClient, endpoint: str, row: MappingRow, snap: Snapshot) -> Finding:
        try:
            r = await self._call(lambda: tx.test_migration_server_availability(endpoint, row.target))
        except ExchangeError as exc:
            p = explain(exc, f"testing {row.target}")
            return Finding("dry-run", False, WARNING, p.what, p.why, p.fix)
        if r.ok:
            return Finding("dry-run", True, OK)
        p = explain_move_failure(r.error_detail or r.message, user=row.source, group=snap.scope_group)
        return Finding("dry-run", False, ERROR, p.what, p.why, p.fix, data={"error": r.error_detail or r.message})

    def _save_readiness(self, results: Sequence[UserReadiness], boxes: dict[str, SourceMailbox]) -> None:
        users: dict[str, Any] = {}
        for r in results:
            m = boxes.get(r.source.lower())
            users[r.source.lower()] = {
                "target": r.target, "ready": r.ready, "moved": r.moved, "delegates": list(m.delegates) if m else [],
                "sizeBytes": (m.size_bytes or 0) + (m.archive_size_bytes or 0) if m else None,
                "problems": [{"check": f.check, "severity": f.severity, "what": f.what, "fix": f.fix,
                              "fixId": f.fix_id} for f in r.problems]}
        self.data["readiness"] = {"at": time.time(), "ready": sum(1 for r in results if r.ready),
                                  "total": len(results), "users": users}
        self.ctx.project.save()

    def plan_fixes(self, results: Sequence[UserReadiness]) -> Plan:
        """The safe one-click fixes of these results as a plan of changes (each with before -> after)."""
        changes: list[Change] = []
        for r in results:
            for f in r.fixable:
                changes.append(Change(f.tenant or "target", STEP_FIX, "create" if f.fix_id in (
                    FIX_ADD_TO_SCOPE, FIX_CREATE_MAILUSER) else "update", f"{f.fix_id}|{r.source}",
                    _fix_line(f, r), dict(f.data.get("before", {})), dict(f.data.get("after", {}))))
        return Plan(changes)

    async def apply_fixes(self, plan: Plan, progress: Progress | None = None,
                          cancel: threading.Event | None = None) -> ApplyResult:
        """Carry out planned fixes, journaled like every change; Cancel is honoured between changes."""
        result = ApplyResult()
        await self._close_unfinished()
        pending = plan.pending
        # The scope group's members, read as the fixes run: a user already in it (the customer added them since
        # readiness ran) is journaled as found, never as added, so teardown will not take them out.
        groups = {str(c.after["group"]) for c in pending if c.key.startswith(FIX_ADD_TO_SCOPE + "|")}
        try:
            members = {g.lower(): await self._member_addresses(g) for g in groups}
        except ServiceError as exc:
            raise UsersProblem(explain(exc, "reading the scope group's members")) from None
        lock = asyncio.Lock()
        by_user: dict[str, list[Change]] = {}
        for c in pending:  # one user's fixes in order (they may touch the same MailUser)
            by_user.setdefault(c.key.split("|", 1)[1].lower(), []).append(c)
        done = 0

        async def one(changes: list[Change]) -> None:
            nonlocal done
            for c in changes:
                if cancel is not None and cancel.is_set():
                    result.cancelled = True
                    return
                problem = await self._apply_fix(c, members)
                async with lock:
                    if problem is None:
                        result.done.append(c)
                    else:
                        result.warnings.append(f"{c.line}: {problem.what} {problem.fix}")
                    done += 1
                    if progress:
                        progress(done, len(pending), c.line)

        result.cancelled = await self._pool(list(by_user.values()), one, cancel) or result.cancelled
        return result

    async def _member_addresses(self, group: str) -> set[str]:
        """The direct members of a group, by primary SMTP address (lower case)."""
        sx = self.ctx.exchange("source")
        rows = await self._call(lambda: sx.distribution_group_members(group))
        return {m.primary_smtp_address.lower() for m in rows if m.primary_smtp_address}

    async def _apply_fix(self, c: Change, members: dict[str, set[str]]) -> Problem | None:
        fix_id, source = c.key.split("|", 1)
        if fix_id == FIX_CREATE_MAILUSER:
            target = str(c.after.get("PrimarySmtpAddress"))
            return await self._apply_user_change(UserChange(source, target, "create", c.line, {}, dict(c.after)),
                                                 STEP_FIX)
        if fix_id == FIX_ADD_TO_SCOPE:
            return await self._add_to_scope(c, members.setdefault(str(c.after["group"]).lower(), set()))
        tx = self.ctx.exchange("target")
        identity = str(c.after.get("Identity") or c.before.get("Identity"))
        obj = {"key": f"mailuser:{source.lower()}", "type": "MailUser", "name": identity}
        op = await self.group.begin("target", STEP_FIX, f"update mailuser ({fix_id})", obj,
                                {"line": c.line, "before": c.before, "after": c.after})
        try:
            await self._stamp(tx, identity, c.before, c.after)
        except (ServiceError, NetworkUnavailable) as exc:
            await self.group.finish(op, ok=False, detail={"error": str(exc)[:500]})
            return explain(exc, c.line)
        await self.group.finish(op, ok=True)
        return None

    async def _add_to_scope(self, c: Change, members: set[str]) -> Problem | None:
        """Add-DistributionGroupMember, journaled as "add member" — what teardown takes back — only when xtwizard
        really adds the member.  A member already in the group (`members`, read as the fixes run, or Exchange's
        MemberAlreadyExists when someone added them a moment ago) is journaled as found ("adopt member"): it is the
        customer's, and stays.  An answer lost on the way back is settled by reading the group again."""
        sx = self.ctx.exchange("source")
        group, member = str(c.after["group"]), str(c.after["member"])
        obj = {"key": f"member:{member.lower()}", "type": "member", "name": member, "group": group}
        if member.lower() in members:
            await self._found_member(obj, c.line)
            return None
        op = await self.group.begin("source", STEP_FIX, "add member", obj, {"line": c.line})
        try:
            await self._call(lambda: sx.add_distribution_group_member(group, member))
        except (ServiceError, NetworkUnavailable) as exc:
            if isinstance(exc, ExchangeError) and "MemberAlreadyExists" in exc.short_type:
                await self.group.finish(op, ok=False, detail={"resolved": "already a member: not added by xtwizard"})
                await self._found_member(obj, c.line)
                return None
            if isinstance(exc, NetworkUnavailable) or exc.status >= 500:  # the answer may be lost, not the add
                try:  # absent a moment ago: present now means our request added them
                    added = member.lower() in await self._member_addresses(group)
                except (ServiceError, NetworkUnavailable):
                    return explain(exc, c.line)  # the intent stays open: the next apply reads the group
                if added:
                    members.add(member.lower())
                    await self.group.finish(op, ok=True, detail={"resolved": "the answer was lost; the group shows "
                                                                 "the member"})
                    return None
            await self.group.finish(op, ok=False, detail={"error": str(exc)[:500]})
            return explain(exc, c.line)
        members.add(member.lower())
        await self.group.finish(op, ok=True)
        return None

    async def _found_member(self, obj: dict[str, Any], line: str) -> None:
        """Journal a member found in the scope group (no change made): the audit log shows it, teardown leaves it."""
        op = await self.group.begin("source", STEP_FIX, "adopt member", obj, {"line": line})
        await self.group.finish(op, ok=True, detail={"resolved": f"{obj['name']} is already a member of "
                                                     f"'{obj['group']}': not added by xtwizard, so teardown leaves "
                                                     "them"})

    async def dry_run(self, address: str) -> Check:
        """Test-MigrationServerAvailability for one mapped user (source or target address) through the
        migration endpoint, as the move service would see it."""
        rows = load_mapping(self.ctx.project)
        row = next((r for r in rows if address.lower() in (r.source.lower(), r.target.lower())), None)
        target = row.target if row else address
        name = f"Dry run for {target}"
        tx = self.ctx.exchange("target")
        try:
            endpoint = await self._endpoint(tx)
            if not endpoint:
                return Check("target", name, False, "There is no migration endpoint to the source yet.",
                             "Run the setup first (xtwizard setup).")
            r = await self._call(lambda: tx.test_migration_server_availability(endpoint, target))
        except ExchangeError as exc:
            p = explain(exc, f"testing {target}")
            if _is_not_found(exc):
                p = Problem(f"{target} is not a MailUser in the target.",
                            "The test needs the user's target MailUser (not the source address).",
                            "Prepare the target users first, then run the dry run again.")
            return Check("target", name, False, p.what, p.fix)
        if r.ok:
            return Check("target", name, True, f"The move service accepts {target} through '{endpoint}'.")
        p = explain_move_failure(r.error_detail or r.message, user=row.source if row else target,
                                 group=str(self.data.get("inventory", {}).get("scopeGroup", "")))
        return Check("target", name, False, f"{p.what} {p.why}", p.fix)


def free_address(d: mp.Directory, local: str, domain: str, own: str = "") -> str:
    """local@domain, or local2@domain, … when another object has it."""
    n = 1
    while True:
        candidate = f"{local}{n if n > 1 else ''}@{domain}"
        owner = d.by_address.get(candidate.lower())
        if owner is None or (own and owner.guid == own):
            return candidate
        n += 1


def wanted_mailuser(m: SourceMailbox, target: str, snap: Snapshot, existing: Recipient | None) -> dict[str, Any]:
    """The target MailUser as the move needs it (reference §2.6)."""
    d = snap.directory
    current = list(existing.email_addresses) if existing else []
    keep = [a for a in current if not (a.lower().startswith("smtp:") and mp.domain_of(a) not in d.accepted)]
    low = {a.lower() for a in keep}
    addresses = [a for a in keep if not a.startswith("SMTP:")]  # the primary follows PrimarySmtpAddress
    addresses = [f"SMTP:{target}", *[("smtp:" + a[5:]) if a.lower() == f"smtp:{target.lower()}" else a
                                     for a in addresses if a.lower() != f"smtp:{target.lower()}"]]
    for x in m.x500s:
        if x.lower() not in low:
            addresses.append(x)
    if not any(mp.domain_of(a) == snap.delivery.lower() for a in mp.smtp_addresses(addresses)):
        local = target.split("@", 1)[0]
        addresses.append("smtp:" + free_address(d, local, snap.delivery, existing.guid if existing else ""))
    out: dict[str, Any] = {"ExchangeGuid": m.exchange_guid,
                           "ArchiveGuid": m.archive_guid if m.has_archive else (
                               existing.archive_guid if existing else ZERO_GUID) or ZERO_GUID,
                           "PrimarySmtpAddress": target, "ExternalEmailAddress": m.address,
                           "EmailAddresses": addresses}
    return out


# --- the checks, one user at a time (no network) -------------------------------------------------------------
def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    for k, v in after.items():
        b = before.get(k)
        if isinstance(v, list):
            if {str(x).lower() for x in v} != {str(x).lower() for x in b or []}:
                return False
        elif str(b or "").lower() != str(v or "").lower():
            return False
    return True


def _exists_error(exc: ExchangeError) -> bool:
    text = exc.message.lower()
    return "already" in text and ("used" in text or "exists" in text)


def _fix_line(f: Finding, r: UserReadiness) -> str:
    lines = {FIX_ADD_TO_SCOPE: "Add {src} to the scope group '{group}'",
             FIX_CREATE_MAILUSER: "Create the MailUser {tgt} for {src}",
             FIX_STAMP_EXCHANGE_GUID: "Stamp the source ExchangeGuid on {tgt}",
             FIX_STAMP_ARCHIVE_GUID: "Stamp the source ArchiveGuid on {tgt}",
             FIX_ADD_X500: "Add the source X500 addresses to {tgt}",
             FIX_REMOVE_FOREIGN_PROXY: "Remove addresses in domains the target does not own from {tgt}",
             FIX_ADD_DELIVERY_PROXY: "Add an address in the delivery domain to {tgt}",
             FIX_SET_EXTERNAL_ADDRESS: "Point {tgt} at the source mailbox {src} (ExternalEmailAddress)",
             FIX_SET_PRIMARY_ADDRESS: "Set the primary address of {tgt} to an accepted domain"}
    return lines[f.fix_id].format(src=r.source, tgt=r.target, group=f.data.get("after", {}).get("group", ""))


def check_user(row: MappingRow, m: SourceMailbox | None, snap: Snapshot, migration_users: Sequence[Any],
               own_batches: set[str], substrate: dict[str, int], moved: set[str] | None = None) -> list[Finding]:
    """CrossTenantMailboxMigrationValidation's per-user checks (reference §1.5 items 1-14) and more, in plain words.
    A user whose move completed (`moved`: target addresses) is not checked again: the source is a MailUser now and
    the target a mailbox, which would read as problems."""
    d = snap.directory
    out: list[Finding] = []
    if moved and row.target.lower() in moved:
        return [Finding("moved", True, OK)]

    def ok(check: str) -> None:
        out.append(Finding(check, True, OK))

    def bad(check: str, what: str, why: str, fix: str, *, severity: str = ERROR, fix_id: str = "",
            tenant: str = "target", data: dict[str, Any] | None = None) -> None:
        out.append(Finding(check, False, severity, what, why, fix, fix_id, tenant, data or {}))

    if m is None:
        bad("source", f"{row.source} is not a mailbox in {d.source_name}.",
            "The mapping names a source address that no source mailbox has.",
            "Correct the source address in the mapping.", tenant="source")
        return out
    ok("source")
    # The target object.
    t = d.by_address.get(row.target.lower())
    if t is not None and t.recipient_type_details == "MailUser":
        t = snap.target_mailusers.get(t.guid, t)
    if t is None:
        # A MailUser of this mailbox under another address: say so rather than offering a second one.
        other = d.prepared_for(m)
        if other is not None:
            bad("target", f"{m.address} is mapped to {row.target}, but its MailUser is {other.primary_smtp_address}.",
                "A MailUser prepared for this mailbox already exists under another address.",
                f"Map {m.address} to {other.primary_smtp_address} (or change that MailUser's address).")
            return out
        wanted = wanted_mailuser(m, row.target, snap, None)
        after = {"Name": m.display_name, "DisplayName": m.display_name, "Alias": row.target.split("@", 1)[0],
                 **wanted}
        taken = {r.name.lower() for r in d.target_recipients}
        if after["Name"].lower() in taken:
            after["Name"] = f"{m.display_name} ({mp.domain_of(m.address).split('.', 1)[0]})"
        bad("target", f"There is no MailUser {row.target} in {d.target_name}.",
            "The move needs a MailUser in the target with the source mailbox's GUIDs and addresses; without it "
            "the batch fails with MigrationRecipientNotFoundException.",
            "Create it (one click, or Prepare target users).", fix_id=FIX_CREATE_MAILUSER, data={"after": after})
        t = None
    elif t.recipient_type_details != "MailUser":
        kind = t.recipient_type_details
        is_box = kind in mp.MAILBOX_KINDS
        bad("target", f"{row.target} is a {kind} in {d.target_name}, not a MailUser.",
            ("A mailbox already exists there — usually because the user was licensed before the move, so "
             "Exchange made a new empty mailbox. The move fails with 'Target user already has a primary "
             "mailbox'.") if is_box else "Only a MailUser can receive a moved mailbox.",
            (f"If that mailbox is empty and was made by mistake, remove it (Remove-Mailbox {row.target}), then "
             "prepare the user again; otherwise map the user to another address.") if is_box else
            "Map the user to another address.")
        t = None
    else:
        ok("target")
    # Source-side checks (reference §1.5 items 2-7).
    if m.aux_archives > MAX_AUX_ARCHIVES:
        bad("aux-archives", f"The archive of {m.address} has {m.aux_archives} auxiliary archives.",
            f"A cross-tenant move supports at most {MAX_AUX_ARCHIVES}.",
            "There is no admin fix: ask Microsoft support, and leave this user out of the batches meanwhile.",
            tenant="source")
    else:
        ok("aux-archives")
    if m.recipient_type_details == "UserMailbox":
        target_licensed = t is not None and any(c.lower() == "exchanget2tmbxmove" for c in t.persisted_capabilities)
        if m.licensed or target_licensed:
            ok("licence")
        else:
            bad("licence", f"Neither {m.address} nor {row.target} has a Cross Tenant User Data Migration licence.",
                "Microsoft requires that licence on the source or the target user for every moved user mailbox "
                "(CrossTenantMigrationWithoutLicensePermanentException).",
                "Assign the Cross_tenant_user_data_migration licence to the user in either tenant (one is enough), "
                "then check again.", tenant="source")
    if m.holds:
        commands = []
        if "litigation hold" in m.holds:
            commands.append(f"Set-Mailbox {m.address} -LitigationHoldEnabled $false")
        if "delay hold" in m.holds:
            commands.append(f"Set-Mailbox {m.address} -RemoveDelayHoldApplied")
        if "delay release hold" in m.holds:
            commands.append(f"Set-Mailbox {m.address} -RemoveDelayReleaseHoldApplied")
        bad("holds", f"{m.address} is on hold: {', '.join(m.holds)}.",
            "Mailboxes on any hold (litigation, delay, retention or eDiscovery) cannot be moved between tenants.",
            "Decide with your legal or compliance owner; once the hold may go, release it"
            + (f" ({'; '.join(commands)})" if commands else " (remove the mailbox from the retention policy or "
               "eDiscovery case)") + ", then check again.", tenant="source")
    else:
        ok("holds")
    if substrate.get(m.address.lower(), 0) > 0:
        bad("substrate-holds", f"The archive of {m.address} has {substrate[m.address.lower()]} items in Recoverable "
            "Items\\SubstrateHolds.", "Items kept for a hold in the archive block the move.",
            "Release the holds, then remove the items (e.g. with MFCMapi) and check again.", tenant="source")
    if snap.scope_note or not snap.scope_group:
        bad("scope", f"The migration scope of {m.address} cannot be confirmed.", snap.scope_note or
            "No scope group is known.", "Run the setup (it creates the source organization relationship and the "
            "scope group), then check again.", tenant="source")
    elif m.in_scope:
        ok("scope")
    else:
        bad("scope", f"{m.address} is not in the scope group '{snap.scope_group}'.",
            "Only members of the mail-enabled security group published in the source organization relationship "
            "can move (MailboxNotInCrossTenantMigrationScopeException).",
            f"Add {m.address} to '{snap.scope_group}' (one click).", fix_id=FIX_ADD_TO_SCOPE, tenant="source",
            data={"after": {"group": snap.scope_group, "member": m.address}})
    if m.auto_expanding_archive:
        bad("auto-expanding-archive", f"{m.address} has an auto-expanding archive.",
            "If it grows a new auxiliary archive during the move, the move fails "
            "(SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException).",
            "Move this user early and in a small batch; if it fails, remove the user and add them to a new batch.",
            severity=WARNING, tenant="source")
    if t is None:
        _duplicate(out, row, m, migration_users, own_batches)
        return out
    # Target MailUser checks (reference §1.5 items 7-14, §2.6).
    quota = t.recoverable_items_quota
    if m.deleted_bytes is not None and quota and m.deleted_bytes > quota:
        bad("recoverable-items", f"The Recoverable Items of {m.address} ({m.deleted_bytes:,} bytes) exceed the "
            f"target's quota ({quota:,} bytes).", "The move cannot fit the deleted items into the target.",
            f"Empty Recoverable Items in the source, or raise the target's quota (Set-MailUser {row.target} "
            "-EnableLitigationHoldForMigration), then check again.")
    else:
        ok("recoverable-items")
    synced = t.is_dir_synced
    sync_fix = ("It is synchronized from on-premises Active Directory: make the change there and run a delta sync "
                "(Start-ADSyncSyncCycle -PolicyType Delta).")
    wanted_after = wanted_mailuser(m, row.target, snap, t)
    ident = {"Identity": t.guid or t.primary_smtp_address}

    def fixable(check: str, what: str, why: str, fix: str, fix_id: str, before: dict[str, Any],
                after: dict[str, Any]) -> None:
        if synced:
            bad(check, what, why, sync_fix)
        else:
            bad(check, what, why, fix, fix_id=fix_id, data={"before": {**ident, **before}, "after": {**ident, **after}})

    if t.exchange_guid in ("", ZERO_GUID):
        fixable("exchange-guid", f"{row.target} has no ExchangeGuid.",
                "The move needs the source mailbox's ExchangeGuid on the target MailUser (MissingExchangeGuidException).",
                f"Stamp it: Set-MailUser {row.target} -ExchangeGuid {m.exchange_guid} (one click).",
                FIX_STAMP_EXCHANGE_GUID, {"ExchangeGuid": ZERO_GUID}, {"ExchangeGuid": m.exchange_guid})
    elif t.exchange_guid.lower() != m.exchange_guid.lower():
        bad("exchange-guid", f"{row.target} carries another mailbox's ExchangeGuid ({t.exchange_guid}).",
            "It was prepared for a different source mailbox, or the mapping is wrong.",
            "Check the mapping; if this MailUser is really for this user, set its ExchangeGuid to "
            f"{m.exchange_guid} by hand.")
    else:
        ok("exchange-guid")
    t_archive = "" if t.archive_guid in ("", ZERO_GUID) else t.archive_guid
    if m.has_archive and not t_archive:
        fixable("archive-guid", f"{row.target} has no ArchiveGuid, but {m.address} has an online archive.",
                "The archive moves only to a MailUser with the source ArchiveGuid.",
                f"Stamp it: Set-MailUser {row.target} -ArchiveGuid {m.archive_guid} (one click).",
                FIX_STAMP_ARCHIVE_GUID, {"ArchiveGuid": ZERO_GUID}, {"ArchiveGuid": m.archive_guid})
    elif m.has_archive and t_archive.lower() != m.archive_guid.lower():
        bad("archive-guid", f"{row.target} carries another ArchiveGuid ({t_archive}).",
            "It does not match the source archive.", f"Set it to {m.archive_guid} by hand after checking the mapping.")
    elif not m.has_archive and t_archive:
        bad("archive-guid", f"{row.target} has an ArchiveGuid but {m.address} has no archive.",
            "The move fails when the target expects an archive the source does not have.",
            "Check the mapping; if it is right, ask Microsoft support to clear the target's ArchiveGuid.")
    else:
        ok("archive-guid")
    proxies = {a.lower() for a in t.email_addresses}
    missing = [x for x in m.x500s if x.lower() not in proxies]
    if missing:
        fixable("x500", f"{row.target} lacks {len(missing)} X500 address(es) of the source mailbox.",
                "Without the X500 of the source LegacyExchangeDN (and every source X500), replies to old mail bounce "
                "and the move refuses to start.", "Add them (one click).", FIX_ADD_X500,
                {"EmailAddresses": list(t.email_addresses)}, {"EmailAddresses": [*t.email_addresses, *missing]})
    else:
        ok("x500")
    if mp.domain_of(t.primary_smtp_address) not in d.accepted:
        fixable("primary-address", f"The primary address of {row.target} ({t.primary_smtp_address}) is not in a "
                "domain of the target.", "A MailUser's primary address must be in one of the target's accepted "
                "domains, or the move fails.", f"Set it to {row.target} (one click).", FIX_SET_PRIMARY_ADDRESS,
                {"PrimarySmtpAddress": t.primary_smtp_address}, {"PrimarySmtpAddress": row.target})
    else:
        ok("primary-address")
    foreign = [a for a in t.email_addresses if a.startswith("smtp:") and mp.domain_of(a) not in d.accepted]
    if foreign:
        fixable("foreign-proxy", f"{row.target} has addresses in domains the target does not own: "
                f"{', '.join(a[5:] for a in foreign)}.", "A MailUser cannot become a mailbox while it carries an "
                "address in a domain that is not an accepted domain of the target (NotAcceptedDomainException at "
                "completion).", "Remove them (one click).", FIX_REMOVE_FOREIGN_PROXY,
                {"EmailAddresses": list(t.email_addresses)},
                {"EmailAddresses": [a for a in t.email_addresses if a not in foreign]})
    else:
        ok("foreign-proxy")
    if not any(mp.domain_of(a) == snap.delivery.lower() for a in mp.smtp_addresses(t.email_addresses)):
        proxy = next(a for a in wanted_after["EmailAddresses"] if mp.domain_of(a) == snap.delivery.lower())
        fixable("delivery-proxy", f"{row.target} has no address in the delivery domain {snap.delivery}.",
                "The move service sets the source's new forwarding address from the target's address in the "
                "delivery domain; without one the move fails.", f"Add {proxy[5:]} (one click).",
                FIX_ADD_DELIVERY_PROXY, {"EmailAddresses": list(t.email_addresses)},
                {"EmailAddresses": [*t.email_addresses, proxy]})
    else:
        ok("delivery-proxy")
    source_smtp = {a.lower() for a in mp.smtp_addresses(m.email_addresses)} | {m.address.lower()}
    if mp.bare(t.external_email_address).lower() not in source_smtp:
        fixable("external-address", f"{row.target} forwards to {mp.bare(t.external_email_address) or 'nothing'}, "
                f"not to the source mailbox {m.address}.", "ExternalEmailAddress must be the user's current "
                "address in the source until the move completes.", f"Set it to {m.address} (one click).",
                FIX_SET_EXTERNAL_ADDRESS, {"ExternalEmailAddress": mp.bare(t.external_email_address)},
                {"ExternalEmailAddress": m.address})
    else:
        ok("external-address")
    user = snap.target_users.get(t.user_principal_name.lower()) if t.user_principal_name else None
    previous = (user or t).previous_recipient_type_details
    if previous:
        bad("previous-mailbox", f"{row.target} still carries a previous mailbox ({previous}).",
            "The target user had a mailbox before; Exchange refuses to move a new one onto it until that "
            "information is cleared.",
            f"Clear it — this cannot be undone: Set-User {row.target} -PermanentlyClearPreviousMailboxInfo, then "
            "check again.")
    else:
        ok("previous-mailbox")
    _duplicate(out, row, m, migration_users, own_batches, t)
    return out


def _duplicate(out: list[Finding], row: MappingRow, m: SourceMailbox, migration_users: Sequence[Any],
               own_batches: set[str], t: Recipient | None = None) -> None:
    names = {row.target.lower(), m.address.lower()}
    if t is not None:
        names |= {a.lower() for a in mp.smtp_addresses(t.email_addresses)}
    for u in migration_users:
        if u.identity.lower() in names and u.status.lower() not in ("completed", "completedwithwarnings") \
                and u.batch_id.lower() not in own_batches:
            out.append(Finding("other-batch", False, ERROR, f"{row.target} is already in the migration batch "
                               f"'{u.batch_id}' ({u.status}).", "A user can be in only one unfinished batch "
                               "(UserDuplicateInOtherBatchException).",
                               f"Remove the user from that batch (Remove-MigrationUser {u.identity}) or remove the "
                               f"batch '{u.batch_id}' if it is abandoned, then check again.", tenant="target"))
            return
    out.append(Finding("other-batch", True, OK))

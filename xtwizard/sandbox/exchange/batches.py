"""Migration batches and migration users (reference §2.7): the cmdlets around the move engine."""

from __future__ import annotations

import csv
import io

from ..catalog import stable_id
from ..state import JSON
from . import moves, store
from .cmdlets import Ctx, Lazy, cmdlet, result_size
from .endpoints import find as find_endpoint
from .errors import MIGRATION_PERMANENT, CmdletError, ambiguous, not_found
from .moves import ACTIVE, batches, users
from .params import DT, ID, SW, L, N, Param, S, enum, req
from .wire import iso

MAX_USERS = 2000
BATCH_STATUSES = ("Completed", "CompletedWithErrors", "Completing", "Corrupted", "Created", "Failed",
                  "IncrementalSyncing", "Removing", "Starting", "Stopped", "Syncing", "Stopping", "Synced",
                  "SyncedWithErrors", "Waiting")
USER_STATUSES = ("Completed", "CompletedWithWarnings", "Completing", "CompletionFailed", "CompletionSynced",
                 "Corrupted", "Failed", "IncrementalFailed", "IncrementalStopped", "IncrementalSynced",
                 "IncrementalSyncing", "Provisioning", "ProvisionUpdating", "Queued", "Removing", "Starting",
                 "Stopped", "Stopping", "Synced", "Syncing", "Validating")


def find_batch(ctx: Ctx, identity: str) -> JSON:
    low = identity.lower()
    for b in batches(ctx.tenant).values():
        if low in (b["Identity"].lower(), b["Guid"].lower(), ("migrationservice:" + b["Identity"]).lower()):
            return b
    raise not_found(identity)


def batch_status(ctx: Ctx, b: JSON) -> str:
    if b.get("_state") in ("created", "scheduled"):
        return "Created" if b.get("_state") == "created" else "Waiting"
    phases = {users(ctx.tenant)[g]["_phase"] for g in b["_users"]}
    if not phases:
        return "Completed"
    if "completing" in phases:
        return "Completing"
    if phases & {"validating", "queued", "syncing", "created"}:
        return "Syncing"
    if phases == {"completed"}:
        return "Completed"
    if phases <= {"completed", "failed"}:
        return "CompletedWithErrors" if "completed" in phases else "Failed"
    if "synced" in phases:
        return "SyncedWithErrors" if phases & {"failed", "stopped"} else "Synced"
    return "Stopped"


def batch_out(ctx: Ctx, b: JSON, report: bool = False) -> JSON:
    rows = [users(ctx.tenant)[g] for g in b["_users"]]

    def count(*phases: str) -> int:
        return sum(1 for u in rows if u["_phase"] in phases)

    synced_times = [moves.last_sync(u, ctx.now) for u in rows]
    last = max((t for t in synced_times if t is not None), default=None)
    status = batch_status(ctx, b)
    out: JSON = {
        "Identity": b["Identity"], "Guid": b["Guid"], "BatchGuid": b["Guid"], "Status": status,
        "State": status, "Type": "ExchangeRemoteMove", "MigrationType": "ExchangeRemoteMove",
        "BatchDirection": "Onboarding", "SourceEndpoint": b["SourceEndpoint"],
        "TargetDeliveryDomain": b["TargetDeliveryDomain"], "TotalCount": len(rows),
        "ActiveCount": count(*ACTIVE), "StoppedCount": count("stopped"), "SyncedCount": count("synced"),
        "FinalizedCount": count("completed"), "FailedCount": count("failed"), "PendingCount": count("created"),
        "CreationDateTime": iso(b["_created"]), "StartDateTime": iso(b.get("_startedAt")),
        "LastSyncedDateTime": iso(last), "CompleteAfter": iso(b.get("_completeAfter")),
        "StartAfter": iso(b.get("_startAfter")), "NotificationEmails": list(b.get("NotificationEmails", [])),
        "SubmittedByUser": b.get("SubmittedByUser"), "AutoComplete": bool(b.get("_autoComplete")),
    }
    if report:
        out["Report"] = [f"{iso(b['_created'])} Batch '{b['Identity']}' created with {len(rows)} users."]
    return out


def _parse_csv(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CmdletError(MIGRATION_PERMANENT, "The CSV data couldn't be read: it isn't UTF-8 text.") from None
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise CmdletError(MIGRATION_PERMANENT, f"The CSV data couldn't be read: {exc}.") from None
    if not rows:
        raise CmdletError(MIGRATION_PERMANENT, "The CSV file is empty. It needs a header row with the column "
                                               "'EmailAddress' and one row per user.")
    header = [h.strip().lower() for h in rows[0]]
    if "emailaddress" not in header:
        raise CmdletError(MIGRATION_PERMANENT, "The CSV file doesn't have the required column 'EmailAddress'. "
                                               f"Columns found: {', '.join(rows[0])}.")
    col = header.index("emailaddress")
    addresses: list[str] = []
    seen: set[str] = set()
    for n, row in enumerate(rows[1:], start=2):
        addr = row[col].strip() if col < len(row) else ""
        local, at, domain = addr.partition("@")
        if not at or not local or "." not in domain:
            raise CmdletError(MIGRATION_PERMANENT, f"Line {n} of the CSV file: '{addr}' isn't a valid email address.")
        if addr.lower() in seen:
            raise CmdletError(MIGRATION_PERMANENT, f"Line {n} of the CSV file: the user '{addr}' appears more than "
                                                   "once.")
        seen.add(addr.lower())
        addresses.append(addr)
    if not addresses:
        raise CmdletError(MIGRATION_PERMANENT, "The CSV file doesn't contain any users.")
    if len(addresses) > MAX_USERS:
        raise CmdletError(MIGRATION_PERMANENT, f"The CSV file has {len(addresses)} rows; a migration batch can hold at "
                                               f"most {MAX_USERS} users.")
    return addresses


@cmdlet("New-MigrationBatch", {"Name": req("string"), "SourceEndpoint": req("identity"),
                               "CSVData": Param("bytes", True), "TargetDeliveryDomain": req("string"),
                               "AutoStart": SW, "AutoComplete": SW, "CompleteAfter": DT, "StartAfter": DT,
                               "NotificationEmails": L, "ReportInterval": S, "SkipReports": SW, "TimeZone": S,
                               "BadItemLimit": N, "LargeItemLimit": N, "AllowIncrementalSyncs": Param("bool"),
                               "DisallowExistingUsers": SW}, "MigrationBatch")
def new_migration_batch(ctx: Ctx) -> list[JSON]:
    name = ctx.p("Name")
    if len(name) > 64:
        raise CmdletError(MIGRATION_PERMANENT, f"The batch name '{name}' is longer than 64 characters.")
    if any(b["Identity"].lower() == name.lower() for b in batches(ctx.tenant).values()):
        raise CmdletError(MIGRATION_PERMANENT, f"A migration batch with the name '{name}' already exists. Batch names "
                                               "must be unique.")
    ep = find_endpoint(ctx.tenant, ctx.p("SourceEndpoint"))
    addresses = _parse_csv(ctx.p("CSVData"))
    if ctx.given("BadItemLimit") or ctx.given("LargeItemLimit"):
        ctx.warnings.append("The BadItemLimit and LargeItemLimit parameters are deprecated in Exchange Online; the "
                            "Data Consistency Score is used instead.")
    gid = stable_id(ctx.tenant.id, "batch", name.lower(), str(ctx.now))
    b: JSON = {"Identity": name, "Guid": gid, "SourceEndpoint": ep["Identity"], "_endpoint": ep["Guid"],
               "TargetDeliveryDomain": ctx.p("TargetDeliveryDomain"), "_created": ctx.now, "_state": "created",
               "_autoComplete": bool(ctx.p("AutoComplete")), "_completeAfter": ctx.p("CompleteAfter"), "_completeSetAt": ctx.now,
               "_startAfter": ctx.p("StartAfter"), "NotificationEmails": ctx.p("NotificationEmails") or [],
               "SubmittedByUser": ctx.caller_upn, "_users": []}
    for addr in addresses:
        ug = stable_id(gid, "user", addr.lower())
        users(ctx.tenant)[ug] = {"Identity": addr, "Guid": ug, "_batch": gid, "_phase": "created",
                                 "_phaseStart": ctx.now, "_report": [[ctx.now, "The user was added to the batch."]]}
        b["_users"].append(ug)
    batches(ctx.tenant)[gid] = b
    if ctx.p("StartAfter") is not None and ctx.p("StartAfter") > ctx.now:
        b["_state"] = "scheduled"
    elif ctx.p("AutoStart") or ctx.p("StartAfter") is not None:
        moves.start_batch(ctx.state, ctx.tenant, b, ctx.now)
    ctx.state.touch()
    return [batch_out(ctx, b)]


@cmdlet("Get-MigrationBatch", {"Identity": ID, "Status": enum(*BATCH_STATUSES), "IncludeReport": SW,
                               "DiagnosticInfo": S, "Endpoint": ID}, "MigrationBatch")
def get_migration_batch(ctx: Ctx) -> list[JSON]:
    report = bool(ctx.p("IncludeReport"))
    if ctx.p("Identity"):
        return [batch_out(ctx, find_batch(ctx, ctx.p("Identity")), report)]
    rows = [batch_out(ctx, b, report) for b in batches(ctx.tenant).values()]
    if ctx.p("Status"):
        rows = [r for r in rows if r["Status"] == ctx.p("Status")]
    if ctx.p("Endpoint"):
        rows = [r for r in rows if r["SourceEndpoint"].lower() == ctx.p("Endpoint").lower()]
    return rows


@cmdlet("Set-MigrationBatch", {"Identity": req("identity"), "CompleteAfter": DT, "StartAfter": DT,
                               "NotificationEmails": L, "ApproveSkippedItems": SW, "ReportInterval": S},
        "MigrationBatch")
def set_migration_batch(ctx: Ctx) -> list[JSON]:
    b = find_batch(ctx, ctx.p("Identity"))
    if ctx.given("CompleteAfter"):
        b["_completeAfter"], b["_completeSetAt"] = ctx.p("CompleteAfter"), ctx.now
    if ctx.given("StartAfter"):
        b["_startAfter"] = ctx.p("StartAfter")
        if b["_state"] == "created" and b["_startAfter"] is not None:
            b["_state"] = "scheduled"
    if ctx.given("NotificationEmails"):
        b["NotificationEmails"] = ctx.p("NotificationEmails") or []
    ctx.state.touch()
    return []


@cmdlet("Start-MigrationBatch", {"Identity": req("identity"), "Validate": SW})
def start_migration_batch(ctx: Ctx) -> list[JSON]:
    b = find_batch(ctx, ctx.p("Identity"))
    phases = {users(ctx.tenant)[g]["_phase"] for g in b["_users"]}
    if phases and phases <= {"completed"}:
        raise CmdletError(MIGRATION_PERMANENT, f"The migration batch '{b['Identity']}' is already completed and can't "
                                               "be started.")
    moves.start_batch(ctx.state, ctx.tenant, b, ctx.now)
    ctx.state.touch()
    return []


@cmdlet("Stop-MigrationBatch", {"Identity": req("identity")})
def stop_migration_batch(ctx: Ctx) -> list[JSON]:
    b = find_batch(ctx, ctx.p("Identity"))
    status = batch_status(ctx, b)
    if status not in ("Syncing", "Synced", "SyncedWithErrors", "Created", "Waiting"):
        raise CmdletError(MIGRATION_PERMANENT, f"The migration batch '{b['Identity']}' can't be stopped while its "
                                               f"status is '{status}'.")
    for g in b["_users"]:
        u = users(ctx.tenant)[g]
        if u["_phase"] in ("validating", "queued", "syncing", "synced", "created"):
            if u["_phase"] == "syncing":
                _pct, done, _ = moves.progress(u, ctx.now)
                u["_bytesBase"] = done
            u["_phase"], u["_phaseStart"] = "stopped", ctx.now
            moves.log(u, ctx.now, "The user was stopped.")
    b["_state"] = "stopped"
    ctx.state.touch()
    return []


@cmdlet("Complete-MigrationBatch", {"Identity": req("identity"), "SyncAndComplete": SW, "NotificationEmails": L})
def complete_migration_batch(ctx: Ctx) -> list[JSON]:
    b = find_batch(ctx, ctx.p("Identity"))
    status = batch_status(ctx, b)
    if status not in ("Synced", "SyncedWithErrors", "CompletedWithErrors", "Completing"):
        raise CmdletError(MIGRATION_PERMANENT, f"The migration batch '{b['Identity']}' can't be completed while its "
                                               f"status is '{status}'. Only Synced or SyncedWithErrors batches can be "
                                               "completed.")
    if ctx.p("SyncAndComplete") and any(users(ctx.tenant)[g]["_phase"] in ("failed", "stopped") for g in b["_users"]):
        raise CmdletError(MIGRATION_PERMANENT, "-SyncAndComplete requires a batch without failed, corrupted or stopped "
                                               "users.")
    b["_completeAfter"] = b["_completeSetAt"] = ctx.now
    if status == "SyncedWithErrors":
        ctx.warnings.append(f"The migration batch '{b['Identity']}' has failed users; only synced users will be "
                            "completed.")
    ctx.state.touch()
    return []


@cmdlet("Remove-MigrationBatch", {"Identity": req("identity")})
def remove_migration_batch(ctx: Ctx) -> list[JSON]:
    b = find_batch(ctx, ctx.p("Identity"))
    if any(users(ctx.tenant)[g]["_phase"] in ACTIVE for g in b["_users"]):
        raise CmdletError(MIGRATION_PERMANENT, f"The migration batch '{b['Identity']}' can't be removed while users are "
                                               "syncing or completing. Stop it first with Stop-MigrationBatch.")
    for g in b["_users"]:
        users(ctx.tenant).pop(g, None)
    del batches(ctx.tenant)[b["Guid"]]
    ctx.state.touch()
    return []


# --- migration users -------------------------------------------------------------------------------------
def _find_users(ctx: Ctx, identity: str) -> list[JSON]:
    low = identity.lower()
    return [u for u in users(ctx.tenant).values() if low in (u["Identity"].lower(), u["Guid"].lower())]


def find_user(ctx: Ctx, identity: str) -> JSON:
    found = _find_users(ctx, identity)
    if not found:
        raise not_found(identity)
    if len(found) > 1:
        raise ambiguous(identity)
    return found[0]


@cmdlet("Get-MigrationUser", {"Identity": ID, "BatchId": ID, "Status": enum(*USER_STATUSES),
                              "StatusSummary": enum("Active", "Completed", "Failed", "Stopped", "Synced"),
                              "MailboxGuid": Param("guid"), "IncludeAssociatedUsers": SW, "ResultSize": S},
        "MigrationUser")
def get_migration_user(ctx: Ctx) -> Lazy:
    if ctx.p("Identity"):
        found = _find_users(ctx, ctx.p("Identity"))
        if not found:
            raise not_found(ctx.p("Identity"))
        rows = found
    else:
        rows = list(users(ctx.tenant).values())
    if ctx.p("BatchId"):
        b = find_batch(ctx, ctx.p("BatchId"))
        rows = [u for u in rows if u["_batch"] == b["Guid"]]
    if ctx.p("Status") or ctx.p("StatusSummary"):
        statuses = {u["Guid"]: moves.user_status(u) for u in rows}
        if ctx.p("Status"):
            rows = [u for u in rows if statuses[u["Guid"]][0] == ctx.p("Status")]
        if ctx.p("StatusSummary"):
            rows = [u for u in rows if statuses[u["Guid"]][1] == ctx.p("StatusSummary")]
    if ctx.p("MailboxGuid"):
        by_guid = store.recipients(ctx.tenant)
        rows = [u for u in rows
                if str((by_guid.get(u.get("_target") or "") or {}).get("ExchangeGuid", "")).lower() == ctx.p("MailboxGuid")]
    return Lazy(rows if ctx.p("Identity") else result_size(ctx, rows),
                lambda u: moves.migration_user_out(ctx.tenant, u, ctx.now))


@cmdlet("Get-MigrationUserStatistics", {"Identity": req("identity"), "IncludeReport": SW, "IncludeSkippedItems": SW,
                                        "DiagnosticInfo": S}, "MigrationUserStatistics")
def get_migration_user_statistics(ctx: Ctx) -> list[JSON]:
    u = find_user(ctx, ctx.p("Identity"))
    return [moves.migration_user_statistics(ctx.tenant, u, ctx.now, bool(ctx.p("IncludeReport")))]


@cmdlet("Set-MigrationUser", {"Identity": req("identity"), "ApproveSkippedItems": SW, "CompleteAfter": DT,
                              "StartAfter": DT})
def set_migration_user(ctx: Ctx) -> list[JSON]:
    u = find_user(ctx, ctx.p("Identity"))
    if ctx.given("CompleteAfter"):
        u["_completeAfter"], u["_completeSetAt"] = ctx.p("CompleteAfter"), ctx.now
    if ctx.p("ApproveSkippedItems"):
        u["_approvedAt"] = ctx.now
    ctx.state.touch()
    return []


@cmdlet("Remove-MigrationUser", {"Identity": req("identity")})
def remove_migration_user(ctx: Ctx) -> list[JSON]:
    u = find_user(ctx, ctx.p("Identity"))
    if u["_phase"] == "completing":
        raise CmdletError(MIGRATION_PERMANENT, f"The user '{u['Identity']}' can't be removed while it's completing.")
    del users(ctx.tenant)[u["Guid"]]
    b = batches(ctx.tenant).get(u["_batch"])
    if b is not None:
        b["_users"].remove(u["Guid"])
    ctx.state.touch()
    return []

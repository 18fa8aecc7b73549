"""The mailbox move service (MRS), evaluated lazily from the sandbox clock (reference §2.6-§2.9).

Each migration user is a small state machine: created -> validating -> syncing -> synced -> completing ->
completed, or failed / stopped.  Nothing runs in the background: before every InvokeCommand the engine
replays, for every migration user, the transitions whose time has come (`advance_all`), so the outcome
depends only on the clock and on the calls made, and tests advance the clock instead of sleeping.

Preconditions are checked when validation ends (every precondition of reference §2.9 that MRS checks before
copying data), during the copy (an auxiliary archive provisioned mid-move, injectable transient failures)
and when completion ends (no SMTP proxy in a domain the target does not own; credentials and relationships
still valid).  Conversions on completion: the source mailbox becomes a MailUser whose ExternalEmailAddress is
the target's proxy in the TargetDeliveryDomain; the target MailUser becomes a UserMailbox with the same GUIDs.
"""

from __future__ import annotations

import heapq
from typing import Any

from ..catalog import stable_id
from ..state import JSON, SandboxState, Tenant
from . import store
from .cmdlets import Ctx, cmdlet
from .endpoints import credential_problem, endpoints, source_tenant
from .endpoints import find as find_endpoint
from .errors import MoveFailure, not_found
from .orgrel import in_scope, source_problem, source_relationship, target_problem
from .params import ID, SW, Param, req
from .store import MAILBOX_TYPES, ZERO_GUID, recipients, smtp_addresses
from .wire import byte_quantified, iso

BYTES_PER_SECOND = (1 << 30) / 3600.0  # about 1 GB an hour per mailbox, as cloud-to-cloud moves go
VALIDATE_SECONDS = 120.0
MIN_SYNC_SECONDS = 600.0
COMPLETE_SECONDS = 600.0
INCREMENTAL_SECONDS = 86400.0  # incremental syncs once a day while Synced
TRANSIENT_SECONDS = 900.0
HOLD_PREFIXES = ("mbx", "cld", "unih", "skp")

ACTIVE = ("validating", "queued", "syncing", "completing")
USER_STATUS = {"created": ("Queued", "Active"), "queued": ("Queued", "Active"), "completionfailed": ("CompletionFailed", "Failed"),
               "incrementalfailed": ("IncrementalFailed", "Failed"), "validating": ("Validating", "Active"),
               "syncing": ("Syncing", "Active"), "synced": ("Synced", "Synced"),
               "completing": ("Completing", "Active"), "completed": ("Completed", "Completed"),
               "failed": ("Failed", "Failed"), "stopped": ("Stopped", "Stopped")}
MOVE_STATUS = {"queued": "Queued", "syncing": "InProgress", "synced": "AutoSuspended", "completing": "CompletionInProgress",
               "completed": "Completed", "failed": "Failed", "stopped": "Suspended"}


def users(t: Tenant) -> dict[str, JSON]:
    return t.col("exchange.migrationUsers")


def batches(t: Tenant) -> dict[str, JSON]:
    return t.col("exchange.batches")


def speed(state: SandboxState) -> float:
    return max(float(state.settings.get("move_speed", 1.0)), 1e-6)


def log(u: JSON, ts: float, text: str) -> None:
    u.setdefault("_report", []).append([ts, text])


# --- preconditions -------------------------------------------------------------------------------------
class Memo(dict[Any, Any]):
    """Per-request caches (group members, users per target) so that 10,000 users stay linear."""


def _target_recipient(target: Tenant, address: str) -> JSON | None:
    guid = store.owner_of_address(target, address)
    if guid is None:
        for g in store.index(target).get(address.lower(), []):
            if str(recipients(target)[g].get("UserPrincipalName", "")).lower() == address.lower():
                guid = g
    return recipients(target).get(guid) if guid else None


def _org_problems(state: SandboxState, target: Tenant, batch: JSON) -> tuple[MoveFailure | None, JSON | None,
                                                                             Tenant | None]:
    ep = endpoints(target).get(batch.get("_endpoint") or "")
    if ep is None:
        return MoveFailure("MigrationPermanentException", "The migration endpoint of this batch no longer exists."), \
            None, None
    source = source_tenant(state, ep)
    if source is None:
        return MoveFailure("MigrationPermanentException",
                           f"AADSTS90002: Tenant '{ep.get('RemoteTenant')}' not found.", "Source"), ep, None
    problem = target_problem(target, source) or credential_problem(state, target, ep) or \
        source_problem(source, target, str(ep.get("ApplicationId")))
    return problem, ep, source


def validation_problem(state: SandboxState, target: Tenant, batch: JSON, u: JSON, memo: Memo) -> MoveFailure | None:
    key = ("org", batch["Guid"])
    if key not in memo:
        memo[key] = _org_problems(state, target, batch)
    problem, ep, source = memo[key]
    if problem is not None:
        return problem  # type: ignore[no-any-return]
    assert ep is not None and source is not None
    address = u["Identity"]
    tgt = _target_recipient(target, address)
    if tgt is None or tgt["RecipientTypeDetails"] not in (*MAILBOX_TYPES, "MailUser"):
        return MoveFailure("MigrationRecipientNotFoundException",
                           f"A recipient wasn't found for \"{address}\" on the target. Create a MailUser for it and "
                           "make sure the CSV file holds target addresses.")
    u["_target"] = tgt["Guid"]
    if tgt["RecipientTypeDetails"] in MAILBOX_TYPES:
        return MoveFailure("MigrationPermanentException", f"Target user '{tgt['Name']}' already has a primary mailbox.")
    if tgt.get("PreviousRecipientTypeDetails", "None") not in (None, "None"):
        return MoveFailure("MigrationPermanentException",
                           f"The target MailUser '{tgt['Name']}' still carries information about a previous mailbox "
                           f"(PreviousRecipientTypeDetails {tgt['PreviousRecipientTypeDetails']}). Run Set-User "
                           "-PermanentlyClearPreviousMailboxInfo on it.")
    if tgt.get("ExchangeGuid") in (None, ZERO_GUID):
        return MoveFailure("MissingExchangeGuidException",
                           f"The target MailUser '{tgt['Name']}' doesn't have an ExchangeGuid. Set it to the "
                           "ExchangeGuid of the source mailbox.")
    by_target = memo.get("by_target")
    if by_target is None:
        by_target = {}
        for other in users(target).values():
            by_target.setdefault(other["Identity"].lower(), []).append(other)
        memo["by_target"] = by_target
    for other in by_target.get(address.lower(), []):
        if other is not u and other["_batch"] != u["_batch"] and other["_phase"] != "completed":
            return MoveFailure("UserDuplicateInOtherBatchException",
                               f"The user '{address}' is already included in the migration batch "
                               f"'{batches(target)[other['_batch']]['Identity']}'.")
    src_guid = next((g for g in store.index(source).get(tgt["ExchangeGuid"].lower(), [])
                     if recipients(source)[g].get("ExchangeGuid") == tgt["ExchangeGuid"]), None)
    src = recipients(source).get(src_guid) if src_guid else None
    if src is None or src["RecipientTypeDetails"] not in MAILBOX_TYPES:
        return MoveFailure("MigrationPermanentException",
                           f"No mailbox with the ExchangeGuid '{tgt['ExchangeGuid']}' of the target MailUser was found "
                           f"in the source organization '{source.initial_domain}'.", "Source")
    u["_source"] = src["Guid"]
    u["_sourceTenant"] = source.id
    until = src.get("_beingMovedUntil")
    if until and state.clock.now() < float(until):
        return MoveFailure("SourceMailboxAlreadyBeingMovedPermanentException",
                           f"The source mailbox '{src['Name']}' is already being moved by another request.", "Source")
    rel = source_relationship(source, target, str(ep.get("ApplicationId")))
    scope_key = ("scope", source.id, rel["Guid"] if rel else "")
    if scope_key not in memo:
        memo[scope_key] = {}
    if rel is None or not in_scope(state, source, rel, src, memo[scope_key]):
        return MoveFailure("MailboxNotInCrossTenantMigrationScopeException",
                           f"The mailbox '{src['Name']}' isn't in the cross-tenant migration scope: it isn't a member "
                           "of the group in MailboxMovePublishedScopes of the source organization relationship.",
                           "Source")
    if src["RecipientTypeDetails"] == "UserMailbox" and not store.has_license(state, source, src) and \
            not store.has_license(state, target, tgt):
        return MoveFailure("CrossTenantMigrationWithoutLicensePermanentException",
                           f"No license was found for the source recipient, '{src['ExternalDirectoryObjectId']}', or "
                           f"the target recipient, '{tgt['ExternalDirectoryObjectId']}'. A Cross-tenant User Data "
                           "Migration license is required to move a mailbox between tenants.")
    holds = [h for h in ("LitigationHoldEnabled", "DelayHoldApplied", "DelayReleaseHoldApplied",
                         "ComplianceTagHoldApplied") if src.get(h)]
    holds += [h for h in src.get("InPlaceHolds", []) if h.lower().startswith(HOLD_PREFIXES) or len(h) == 32]
    if holds:
        return MoveFailure("MigrationPermanentException",
                           f"The source mailbox '{src['Name']}' is on hold ({', '.join(holds)}). Mailboxes on any "
                           "hold can't be moved to another organization.", "Source")
    aux = store.aux_archive_count(src)
    if aux > 12:
        return MoveFailure("MigrationPermanentException",
                           f"The source mailbox '{src['Name']}' has {aux} auxiliary archives; a cross-tenant move "
                           "supports at most 12.", "Source")
    if src.get("ArchiveGuid", ZERO_GUID) != ZERO_GUID:
        if tgt.get("ArchiveGuid") != src["ArchiveGuid"]:
            return MoveFailure("MigrationPermanentException",
                               f"The ArchiveGuid of the target MailUser '{tgt['Name']}' doesn't match the source "
                               f"archive '{src['ArchiveGuid']}'.")
    elif tgt.get("ArchiveGuid", ZERO_GUID) not in (None, ZERO_GUID):
        return MoveFailure("MigrationPermanentException",
                           f"The target MailUser '{tgt['Name']}' has an ArchiveGuid but the source mailbox has no "
                           "archive.")
    proxies = {a.lower() for a in tgt.get("EmailAddresses", [])}
    needed = [f"X500:{src['LegacyExchangeDN']}"] + [a for a in src.get("EmailAddresses", [])
                                                    if a.lower().startswith("x500:")]
    missing = [a for a in needed if a.lower() not in proxies]
    if missing:
        return MoveFailure("MigrationPermanentException",
                           f"The target MailUser '{tgt['Name']}' is missing the proxy address '{missing[0]}' "
                           "(the X500 of the source LegacyExchangeDN and every X500 of the source are required).")
    domain = str(batch.get("TargetDeliveryDomain") or "").lower()
    if not any(a.lower().endswith("@" + domain) for a in smtp_addresses(tgt)):
        return MoveFailure("MigrationMRSPermanentException",
                           f"Error: The target mailbox doesn't have an SMTP proxy matching '{domain}'.")
    return None


def completion_problem(state: SandboxState, target: Tenant, batch: JSON, u: JSON, memo: Memo) -> MoveFailure | None:
    key = ("org", batch["Guid"])
    if key not in memo:
        memo[key] = _org_problems(state, target, batch)
    if memo[key][0] is not None:
        return memo[key][0]  # type: ignore[no-any-return]
    tgt = recipients(target).get(u.get("_target") or "")
    if tgt is None or tgt["RecipientTypeDetails"] != "MailUser":
        return MoveFailure("MigrationRecipientNotFoundException",
                           f"A recipient wasn't found for \"{u['Identity']}\" on the target.")
    source = state.tenant(u.get("_sourceTenant") or "", by_key=False)
    src = recipients(source).get(u.get("_source") or "") if source else None
    if src is None or src["RecipientTypeDetails"] not in MAILBOX_TYPES:
        return MoveFailure("MigrationPermanentException", "The source mailbox of this move no longer exists.", "Source")
    domain = str(batch.get("TargetDeliveryDomain") or "").lower()
    if not any(a.lower().endswith("@" + domain) for a in smtp_addresses(tgt)):
        return MoveFailure("MigrationMRSPermanentException",
                           f"Error: The target mailbox doesn't have an SMTP proxy matching '{domain}'.")
    for a in smtp_addresses(tgt):
        dom = a.rsplit("@", 1)[-1]
        if not target.owns_domain(dom):
            return MoveFailure("NotAcceptedDomainException",
                               f"The target MailUser '{tgt['Name']}' has the proxy address 'smtp:{a}' in the domain "
                               f"'{dom}', which isn't an accepted domain of this organization. Remove it with "
                               "Set-MailUser -EmailAddresses @{Remove=...} and resume the batch.")
    return None


# --- the state machine ---------------------------------------------------------------------------------
def _windows(u: JSON) -> list[tuple[float, float]]:
    start, dur, n = u["_phaseStart"], u["_syncDuration"], int(u.get("_transients", 0))
    t_len = u.get("_transientLen", TRANSIENT_SECONDS)
    return [(start + dur * i / (n + 1) + (i - 1) * t_len, start + dur * i / (n + 1) + i * t_len)
            for i in range(1, n + 1)]


def sync_fraction(u: JSON, now: float) -> tuple[float, bool]:
    """(fraction of this sync phase done, inside a transient failure window)."""
    start, dur = u["_phaseStart"], u["_syncDuration"]
    paused, inside = 0.0, False
    for a, b in _windows(u):
        if now >= b:
            paused += b - a
        elif now >= a:
            paused += now - a
            inside = True
    return min(max((now - start - paused) / dur, 0.0), 1.0), inside


def _wall_at(u: JSON, fraction: float) -> float:
    t = float(u["_phaseStart"]) + float(u["_syncDuration"]) * fraction
    for a, b in _windows(u):
        if a <= t:
            t += b - a
    return t


def _total_bytes(src: JSON | None) -> int:
    sizes = (src or {}).get("_sizes") or {}
    return int(sizes.get("primary", 0)) + int(sizes.get("archive", 0))


def _begin_sync(ctx_state: SandboxState, faults: Any, target: Tenant, batch: JSON, u: JSON, t: float) -> None:
    source = ctx_state.tenant(u.get("_sourceTenant") or "", by_key=False)
    src = recipients(source).get(u.get("_source") or "") if source else None
    total = _total_bytes(src)
    u["_bytesTotal"] = total
    sizes = dict((src or {}).get("_sizes") or {})
    u["_sizesSnapshot"] = sizes
    u["_items"] = int(sizes.get("items", 0)) + int(sizes.get("archiveItems", 0))
    base = min(int(u.get("_bytesBase", 0)), total)
    sp = speed(ctx_state)
    u["_phase"], u["_phaseStart"] = "syncing", t
    u["_syncDuration"] = max((total - base) / (BYTES_PER_SECOND * sp), MIN_SYNC_SECONDS / sp)
    n = 0
    if src is not None and src.get("_transientFailures"):
        n += int(src["_transientFailures"])
        src["_transientFailures"] = 0  # transient: they happen on this move, then the service recovers
    n += len(faults.take("mrs", "MOVE", f"/{batch['Identity']}/{u['Identity']}"))
    u["_transients"], u["_transientLen"] = n, TRANSIENT_SECONDS / sp
    u["_growsAux"] = bool(src and src.get("_auxArchiveAppearsDuringMove"))
    u.setdefault("_queuedAt", t)
    start = _take_slot(target, batch, t, u["_syncDuration"] + n * u["_transientLen"])
    if start > t:
        u["_phase"], u["_queuedUntil"] = "queued", start
        log(u, t, "The move request was queued: the endpoint's MaxConcurrentMigrations are all in use.")
        return
    u["_phaseStart"] = start
    u.setdefault("_startedAt", start)
    log(u, t, "The move request was queued and copying started.")


def _take_slot(target: Tenant, batch: JSON, t: float, duration: float) -> float:
    """When the copy may start: the endpoint runs at most MaxConcurrentMigrations copies at once.

    A small scheduler over the endpoint's slots (`_slots`, the times each slot is busy until).  Slots are
    booked for the planned copy time, so a copy that fails or stops early frees its slot only at the planned
    end (an approximation that keeps the lazy evaluation deterministic)."""
    ep = endpoints(target).get(batch.get("_endpoint") or "")
    if ep is None:
        return t
    limit = max(1, int(ep.get("MaxConcurrentMigrations", 100)))
    slots: list[float] = ep.setdefault("_slots", [])
    heapq.heapify(slots)
    while len(slots) > limit:  # the limit was lowered: drop the slots that free first
        heapq.heappop(slots)
    if len(slots) < limit:
        heapq.heappush(slots, t + duration)
        return t
    start = max(t, heapq.heappop(slots))
    heapq.heappush(slots, start + duration)
    return start


def _fail(u: JSON, f: MoveFailure, t: float) -> None:
    u["_failedPhase"] = u["_phase"]
    u["_phase"], u["_phaseStart"], u["_failure"], u["_failedAt"] = "failed", t, f.to_json(), t
    log(u, t, f"Fatal error {f.short_type} has occurred. {f.message}")


def completion_time(u: JSON, batch: JSON) -> float | None:
    """When completion may start: CompleteAfter, but never before it was set (a past date means 'now')."""
    if u.get("_completeAfter") is not None:
        return max(float(u["_completeAfter"]), float(u.get("_completeSetAt") or 0.0))
    if batch.get("_completeAfter") is not None:
        return max(float(batch["_completeAfter"]), float(batch.get("_completeSetAt") or 0.0))
    if batch.get("_autoComplete"):
        return float(u.get("_syncedAt") or 0.0)
    return None


def _convert(state: SandboxState, target: Tenant, batch: JSON, u: JSON) -> None:
    """Source mailbox -> MailUser pointing at the target; target MailUser -> UserMailbox with the same GUIDs."""
    source = state.tenant(u["_sourceTenant"], by_key=False)
    assert source is not None
    src = recipients(source)[u["_source"]]
    tgt = recipients(target)[u["_target"]]
    domain = str(batch.get("TargetDeliveryDomain") or "").lower()
    delivery = next(a for a in smtp_addresses(tgt) if a.lower().endswith("@" + domain))
    tgt.update({"RecipientTypeDetails": src["RecipientTypeDetails"], "RecipientType": "UserMailbox",
                "ExternalEmailAddress": None, "_sizes": dict(src.get("_sizes") or {}),
                "ArchiveStatus": src.get("ArchiveStatus", "None"), "ArchiveName": list(src.get("ArchiveName", [])),
                "MailboxLocations": [loc.replace(source.initial_domain, target.initial_domain)
                                     for loc in src.get("MailboxLocations", [])],
                "ExchangeGuid": src["ExchangeGuid"], "ArchiveGuid": src["ArchiveGuid"]})
    src.update({"RecipientTypeDetails": "MailUser", "RecipientType": "MailUser",
                "ExternalEmailAddress": f"SMTP:{delivery}", "_sizes": None, "ArchiveStatus": "None",
                "MailboxLocations": [], "_migratedTo": target.id})
    store.changed(source)
    store.changed(target)


def advance(state: SandboxState, faults: Any, target: Tenant, u: JSON, now: float, memo: Memo) -> None:
    batch = batches(target)[u["_batch"]]
    sp = speed(state)
    for _ in range(12):
        ph = u["_phase"]
        if ph == "validating":
            t = u["_phaseStart"] + VALIDATE_SECONDS / sp
            if now < t:
                return
            problem = validation_problem(state, target, batch, u, memo)
            if problem is not None:
                _fail(u, problem, t)
                return
            _begin_sync(state, faults, target, batch, u, t)
        elif ph == "queued":
            start = float(u["_queuedUntil"])
            if now < start:
                return
            u["_phase"], u["_phaseStart"] = "syncing", start
            u.setdefault("_startedAt", start)
            log(u, start, "A migration slot became free and copying started.")
        elif ph == "syncing":
            if u.get("_growsAux"):
                t_aux = _wall_at(u, 0.5)
                if now >= t_aux:
                    source = state.tenant(u["_sourceTenant"], by_key=False)
                    src = recipients(source)[u["_source"]] if source else None
                    if src is not None and source is not None:
                        src["_auxArchiveAppearsDuringMove"] = False
                        store.set_archive(source, src, src["ArchiveGuid"] if src["ArchiveGuid"] != ZERO_GUID else
                                          stable_id(src["Guid"], "archive"), store.aux_archive_count(src) + 1)
                        store.changed(source)
                    u["_bytesBase"] = int(u.get("_bytesBase", 0) + 0.5 * (u["_bytesTotal"] - u.get("_bytesBase", 0)))
                    _fail(u, MoveFailure("SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException",
                                         "A new auxiliary archive was provisioned for the source mailbox during the "
                                         "move. Remove the user from the batch and add it again in a new batch.",
                                         "Source"), t_aux)
                    return
            end = _wall_at(u, 1.0)
            if now < end:
                return
            u["_phase"], u["_phaseStart"], u["_syncedAt"] = "synced", end, end
            u["_bytesBase"] = u["_bytesTotal"]
            log(u, end, "Initial seeding completed; the move is synced and waiting to be completed.")
        elif ph == "synced":
            ca = completion_time(u, batch)
            if _incremental_sync_failed(state, target, batch, u, now, ca, memo):
                return
            if ca is None:
                return
            t = max(ca, float(u["_syncedAt"]))
            if now < t:
                return
            u["_phase"], u["_phaseStart"] = "completing", t
            log(u, t, "Completion started: final incremental sync.")
        elif ph == "completing":
            t = u["_phaseStart"] + COMPLETE_SECONDS / sp
            if now < t:
                return
            problem = completion_problem(state, target, batch, u, memo)
            if problem is not None:
                _fail(u, problem, t)
                return
            _convert(state, target, batch, u)
            u["_phase"], u["_phaseStart"], u["_completedAt"] = "completed", t, t
            log(u, t, "The move request has completed; the source mailbox is now a MailUser.")
        else:
            return


def _incremental_sync_failed(state: SandboxState, target: Tenant, batch: JSON, u: JSON, now: float,
                             complete_at: float | None, memo: Memo) -> bool:
    """A daily incremental sync needs the credential and the relationships too: a client secret that expires
    (or is removed) while users wait in Synced fails them at the next incremental sync (IncrementalFailed)."""
    start = float(u["_phaseStart"])
    due = int((now - start) // INCREMENTAL_SECONDS)
    checked = int(u.get("_syncsChecked", 0))
    if due <= checked:
        return False
    first_new = start + (checked + 1) * INCREMENTAL_SECONDS
    u["_syncsChecked"] = due
    if complete_at is not None and first_new >= max(complete_at, float(u["_syncedAt"])):
        return False
    key = ("org", batch["Guid"])
    if key not in memo:
        memo[key] = _org_problems(state, target, batch)
    problem = memo[key][0]
    if problem is None:
        return False
    _fail(u, problem, first_new)
    return True


def start_batch(state: SandboxState, target: Tenant, batch: JSON, t: float) -> None:
    batch["_state"], batch["_startedAt"] = "started", batch.get("_startedAt") or t
    for gid in batch["_users"]:
        u = users(target)[gid]
        if u["_phase"] in ("created", "stopped"):
            u["_phase"], u["_phaseStart"] = "validating", t
            u.pop("_failure", None)
        elif u["_phase"] == "failed":
            u.pop("_failure", None)
            if u.get("_failedPhase") in ("completing", "synced"):
                u["_phase"], u["_phaseStart"], u["_syncsChecked"] = "synced", t, 0
            else:
                u["_phase"], u["_phaseStart"] = "validating", t
            log(u, t, "The user was resumed.")


def advance_all(state: SandboxState, faults: Any) -> None:
    now = state.clock.now()
    for target in state.tenants.values():
        if not target.col("exchange.migrationUsers"):
            continue
        memo = Memo()
        for batch in batches(target).values():
            if batch.get("_state") == "scheduled" and batch.get("_startAfter") is not None and \
                    now >= float(batch["_startAfter"]):
                start_batch(state, target, batch, float(batch["_startAfter"]))
        changed = False
        for u in users(target).values():
            if u["_phase"] in ("created", "completed", "failed", "stopped"):
                continue
            if u["_phase"] == "synced" and completion_time(u, batches(target)[u["_batch"]]) is None and \
                    (now - float(u["_phaseStart"])) // INCREMENTAL_SECONDS <= int(u.get("_syncsChecked", 0)):
                continue
            advance(state, faults, target, u, now, memo)
            changed = True
        if changed:
            state.touch()


# --- what the cmdlets show -----------------------------------------------------------------------------
def progress(u: JSON, now: float) -> tuple[int, int, bool]:
    """(PercentComplete, bytes transferred, in a transient failure)."""
    ph = u["_phase"]
    total = int(u.get("_bytesTotal", 0))
    if ph == "syncing":
        f, inside = sync_fraction(u, now)
        base = int(u.get("_bytesBase", 0))
        done = base + int(f * (total - base))
        return 10 + int(85 * (done / total if total else f)), done, inside
    if ph in ("synced", "completing"):
        return (95 if ph == "synced" else 98), total, False
    if ph == "completed":
        return 100, total, False
    done = int(u.get("_bytesBase", 0))
    return (10 + int(85 * done / total) if total and done else 0), done, False


def last_sync(u: JSON, now: float) -> float | None:
    synced = u.get("_syncedAt")
    if synced is None:
        return None
    if u["_phase"] == "synced":
        return float(synced) + ((now - float(synced)) // INCREMENTAL_SECONDS) * INCREMENTAL_SECONDS
    if u["_phase"] == "completed":
        return float(u["_completedAt"])
    return float(synced)


def error_summary(u: JSON) -> str | None:
    f = u.get("_failure")
    return f"{f['type']}: {f['message']}" if f else None


def user_status(u: JSON) -> tuple[str, str]:
    """(Status, StatusSummary) of a migration user."""
    key = u["_phase"]
    if key == "failed" and u.get("_failedPhase") in ("completing", "synced"):
        key = "completionfailed" if u["_failedPhase"] == "completing" else "incrementalfailed"
    return USER_STATUS[key]


def migration_user_out(target: Tenant, u: JSON, now: float) -> JSON:
    status, summary = user_status(u)
    tgt = recipients(target).get(u.get("_target") or "")
    batch = batches(target)[u["_batch"]]
    items = 0
    if u.get("_phase") in ("synced", "completing", "completed"):
        items = int(u.get("_items", 0))
    return {"Identity": u["Identity"], "Guid": u["Guid"], "Identifier": u["Identity"],
            "BatchId": batch["Identity"], "RecipientType": "Mailbox", "Status": status, "StatusSummary": summary,
            "State": summary, "MailboxEmailAddress": u["Identity"],
            "MailboxGuid": tgt.get("ExchangeGuid") if tgt else None,
            "MailboxIdentifier": tgt.get("Name") if tgt else None,
            "LastSuccessfulSyncTime": iso(last_sync(u, now)), "SkippedItemCount": 0, "SyncedItemCount": items,
            "HasUnapprovedSkippedItems": False, "DataConsistencyScore": "Perfect", "ErrorSummary": error_summary(u),
            "CompleteAfter": iso(u.get("_completeAfter")), "WorkflowStep": status}


def migration_user_statistics(target: Tenant, u: JSON, now: float, report: bool) -> JSON:
    out = migration_user_out(target, u, now)
    pct, done, inside = progress(u, now)
    f = u.get("_failure")
    out.update({"BytesTransferred": byte_quantified(done),
                "EstimatedTotalTransferSize": byte_quantified(int(u.get("_bytesTotal", 0))),
                "EstimatedTotalTransferCount": int(u.get("_items", 0)), "PercentageComplete": pct,
                "TotalItemsInSourceMailboxCount": int(u.get("_items", 0)),
                "Error": f"{f['type']}: {f['message']}" if f else None,
                "DiagnosticInfo": "TransientFailure" if inside else None})
    if report:
        out["Report"] = [f"{iso(ts)} {text}" for ts, text in u.get("_report", [])]
    return out


def move_request_out(target: Tenant, u: JSON, now: float, stats: bool = False, report: bool = False) -> JSON:
    tgt = recipients(target).get(u.get("_target") or "") or {}
    batch = batches(target)[u["_batch"]]
    status = MOVE_STATUS[u["_phase"]]
    out: JSON = {"DisplayName": tgt.get("DisplayName"), "Identity": tgt.get("Name"), "Alias": tgt.get("Alias"),
                 "Name": tgt.get("Name"), "Status": status, "ExchangeGuid": tgt.get("ExchangeGuid"),
                 "ArchiveGuid": tgt.get("ArchiveGuid"), "BatchName": f"MigrationService:{batch['Identity']}",
                 "Flags": "CrossTenant, Pull, Suspend, SuspendWhenReadyToComplete",
                 "RemoteHostName": "outlook.office.com", "TargetDeliveryDomain": batch.get("TargetDeliveryDomain"),
                 "RequestStyle": "CrossOrg", "Direction": "Pull"}
    if not stats:
        return out
    pct, done, inside = progress(u, now)
    f = u.get("_failure")
    sizes = (u.get("_sizesSnapshot") or {})
    detail = {"queued": "Queued", "syncing": "CopyingMessages", "synced": "AutoSuspended", "completing": "Completing",
              "completed": "Completed", "failed": "FailedOther", "stopped": "Suspended"}[u["_phase"]]
    message = ""
    if inside:
        detail = "TransientFailure"
        message = ("MigrationTransientException: The call to 'https://outlook.office.com/EWS/mrsproxy.svc' failed. "
                   "The remote server returned an error: (503) Server Unavailable. The move will be retried.")
    if f:
        message = f"Error: {f['message']}"
    out.update({"StatusDetail": detail, "SyncStage": {"syncing": "CopyingMessages", "synced": "IncrementalSync",
                                                       "completing": "FinalIncrementalSync",
                                                       "completed": "SyncFinished"}.get(u["_phase"], "None"),
                "PercentComplete": pct, "FailureType": f["type"] if f else None,
                "FailureSide": f.get("side") if f else None, "Message": message,
                "TotalMailboxSize": byte_quantified(int(sizes.get("primary", 0))),
                "TotalMailboxItemCount": int(sizes.get("items", 0)),
                "TotalArchiveSize": byte_quantified(int(sizes.get("archive", 0))) if sizes.get("archive") else None,
                "TotalArchiveItemCount": int(sizes.get("archiveItems", 0)) if sizes.get("archive") else None,
                "BytesTransferred": byte_quantified(done), "ItemsTransferred": int(u.get("_items", 0) * pct / 100),
                "BadItemsEncountered": 0, "LargeItemsEncountered": 0, "MissingItemsEncountered": 0,
                "QueuedTimestamp": iso(u.get("_queuedAt")), "StartTimestamp": iso(u.get("_startedAt")),
                "InitialSeedingCompletedTimestamp": iso(u.get("_syncedAt")),
                "CompletionTimestamp": iso(u.get("_completedAt")), "FailureTimestamp": iso(u.get("_failedAt")),
                "LastUpdateTimestamp": iso(now), "LastSuccessfulSyncTimestamp": iso(last_sync(u, now))})
    if report:
        out["Report"] = [f"{iso(ts)} {text}" for ts, text in u.get("_report", [])]
    return out


def has_move_request(u: JSON) -> bool:
    return u["_phase"] in MOVE_STATUS and u.get("_queuedAt") is not None


def move_requests(target: Tenant) -> list[JSON]:
    return [u for u in users(target).values() if has_move_request(u)]


def find_move(target: Tenant, identity: str) -> JSON:
    low = identity.lower()
    for u in reversed(move_requests(target)):
        tgt = recipients(target).get(u.get("_target") or "") or {}
        if low in (u["Identity"].lower(), str(tgt.get("Name", "")).lower(), str(tgt.get("Alias", "")).lower(),
                   str(tgt.get("ExchangeGuid", "")).lower(), str(tgt.get("Guid", "")).lower()):
            return u
    raise not_found(identity)


@cmdlet("Get-MoveRequest", {"Identity": ID, "BatchName": ID, "MoveStatus": ID, "Flags": ID, "ResultSize": ID},
        "MoveRequest")
def get_move_request(ctx: Ctx) -> list[JSON]:
    if ctx.p("Identity"):
        return [move_request_out(ctx.tenant, find_move(ctx.tenant, ctx.p("Identity")), ctx.now)]
    rows = [move_request_out(ctx.tenant, u, ctx.now) for u in move_requests(ctx.tenant)]
    if ctx.p("BatchName"):
        want = ctx.p("BatchName").lower()
        rows = [r for r in rows if want in (r["BatchName"].lower(), r["BatchName"].split(":", 1)[1].lower())]
    if ctx.p("MoveStatus"):
        rows = [r for r in rows if r["Status"].lower() == ctx.p("MoveStatus").lower()]
    return rows


@cmdlet("Get-MoveRequestStatistics", {"Identity": req("identity"), "IncludeReport": SW, "DiagnosticInfo": ID},
        "MoveRequestStatistics")
def get_move_request_statistics(ctx: Ctx) -> list[JSON]:
    u = find_move(ctx.tenant, ctx.p("Identity"))
    return [move_request_out(ctx.tenant, u, ctx.now, stats=True, report=bool(ctx.p("IncludeReport")))]


@cmdlet("Test-MigrationServerAvailability", {"Endpoint": ID, "TestMailbox": ID, "ExchangeRemoteMove": SW,
                                             "RemoteServer": ID, "Credentials": Param("credential")}, "TestMigrationServerAvailability")
def test_migration_server_availability(ctx: Ctx) -> list[JSON]:
    """Run the endpoint checks, and with -TestMailbox the per-user checks, without creating a move."""
    if not ctx.p("Endpoint"):
        from .errors import missing_parameters
        raise missing_parameters(["Endpoint"])
    ep = find_endpoint(ctx.tenant, ctx.p("Endpoint"))
    mail_user = store.resolve(ctx.tenant, ctx.p("TestMailbox"), ("MailUser",)) if ctx.p("TestMailbox") else None
    fake_batch: JSON = {"Guid": "test:" + ep["Guid"], "Identity": "test", "_endpoint": ep["Guid"],
                        "TargetDeliveryDomain": ctx.tenant.initial_domain}
    problem, _ep, _src = _org_problems(ctx.state, ctx.tenant, fake_batch)
    if problem is None and mail_user is not None:
        fake_user: JSON = {"Identity": mail_user["PrimarySmtpAddress"], "_batch": "test", "Guid": "test"}
        problem = validation_problem(ctx.state, ctx.tenant, fake_batch, fake_user, Memo({"by_target": {}}))
        if problem is not None and problem.short_type in ("MigrationMRSPermanentException",):
            problem = None  # the delivery domain is a batch parameter, not tested here
    base = {"Identity": ep["Identity"], "SupportsCutover": False, "IsValid": problem is None,
            "ConnectionSettings": {"RemoteServer": ep.get("RemoteServer"), "RemoteTenant": ep.get("RemoteTenant")}}
    if problem is None:
        return [base | {"Result": "Success", "Message": "", "ErrorDetail": None}]
    return [base | {"Result": "Failed",
                    "Message": f"The connection to the server '{ep.get('RemoteServer')}' could not be completed.",
                    "ErrorDetail": f"{problem.full_type}: {problem.message}"}]

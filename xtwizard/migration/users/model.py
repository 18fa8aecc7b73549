"""The users engine's data, as the pages and the headless commands show it (issue 6 items 1-4).

Source mailboxes (inventory), the source -> target mapping rows with their validation, the preparation plan
(one `UserChange` per user with attribute-level before -> after), and readiness (per user, `Finding`s with
what / why / what to do and, where a fix is safe, the id of a one-click fix).  The one-click fixes are planned
as the setup's `Plan` of `Change`s and applied like every change (journaled before and after).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..problems import Problem
from ..setup.model import _show

ZERO_GUID = "00000000-0000-0000-0000-000000000000"

# Validation / readiness status of a row or a finding.
OK, WARNING, ERROR = "ok", "warning", "error"

# The one-click fixes readiness may offer (each safe: it only adds what the move needs, or removes an address
# the target cannot own).  Anything else is explained, never changed by a click.
FIX_ADD_TO_SCOPE = "add-to-scope"              # source: Add-DistributionGroupMember to the scope group
FIX_CREATE_MAILUSER = "create-mailuser"        # target: New-MailUser + Set-MailUser, as the preparation does
FIX_STAMP_EXCHANGE_GUID = "stamp-exchange-guid"
FIX_STAMP_ARCHIVE_GUID = "stamp-archive-guid"
FIX_ADD_X500 = "add-x500"
FIX_REMOVE_FOREIGN_PROXY = "remove-foreign-proxy"
FIX_ADD_DELIVERY_PROXY = "add-delivery-proxy"
FIX_SET_EXTERNAL_ADDRESS = "set-external-address"
FIX_SET_PRIMARY_ADDRESS = "set-primary-address"
SAFE_FIXES = (FIX_ADD_TO_SCOPE, FIX_CREATE_MAILUSER, FIX_STAMP_EXCHANGE_GUID, FIX_STAMP_ARCHIVE_GUID, FIX_ADD_X500,
              FIX_REMOVE_FOREIGN_PROXY, FIX_ADD_DELIVERY_PROXY, FIX_SET_EXTERNAL_ADDRESS, FIX_SET_PRIMARY_ADDRESS)


@dataclass(frozen=True)
class SourceMailbox:
    """One source mailbox with what the move compares (reference §3.6 Get-Mailbox, §1.5)."""

    address: str                       # primary SMTP address: the mapping key
    name: str
    display_name: str
    alias: str
    user_principal_name: str
    recipient_type_details: str        # UserMailbox, SharedMailbox, RoomMailbox, EquipmentMailbox
    exchange_guid: str
    archive_guid: str                  # "" when there is no archive
    legacy_exchange_dn: str
    email_addresses: tuple[str, ...]   # prefixed: SMTP:, smtp:, X500:
    persisted_capabilities: tuple[str, ...] = ()
    aux_archives: int = 0
    holds: tuple[str, ...] = ()        # e.g. "litigation hold", "delay hold", "in-place hold mbx…"
    auto_expanding_archive: bool = False
    in_scope: bool = False             # member (transitively) of the scope group
    delegates: tuple[str, ...] = ()    # GrantSendOnBehalfTo: batch them together
    size_bytes: int | None = None      # Get-MailboxStatistics (None: not read)
    item_count: int | None = None
    deleted_bytes: int | None = None   # TotalDeletedItemSize (Recoverable Items)
    archive_size_bytes: int | None = None

    @property
    def has_archive(self) -> bool:
        return bool(self.archive_guid) and self.archive_guid != ZERO_GUID

    @property
    def x500s(self) -> tuple[str, ...]:
        """Every X500 the target MailUser must carry: the LegacyExchangeDN's and the source's own X500s."""
        out = [f"X500:{self.legacy_exchange_dn}"] if self.legacy_exchange_dn else []
        for a in self.email_addresses:
            if a.lower().startswith("x500:") and a.lower() not in {o.lower() for o in out}:
                out.append("X500:" + a.split(":", 1)[1])
        return tuple(out)

    @property
    def licensed(self) -> bool:
        """The Cross-tenant User Data Migration licence shows as ExchangeT2TMbxMove (reference §2.1)."""
        return any(c.lower() == "exchanget2tmbxmove" for c in self.persisted_capabilities)


@dataclass(frozen=True)
class MappingRow:
    """source primary SMTP -> target address, and what validation found (status "" = not validated yet)."""

    source: str
    target: str
    status: str = ""                   # "" | ok | warning | error
    message: str = ""                  # what is wrong (or what will happen: "a MailUser will be created")
    fix: str = ""                      # how to resolve it
    target_kind: str = ""              # "" | "new" | "MailUser" | "UserMailbox" | another RecipientTypeDetails

    def as_data(self) -> dict[str, str]:
        return {"source": self.source, "target": self.target}


@dataclass(frozen=True)
class UserChange:
    """The preparation of one target MailUser: create it, update drifted attributes, keep it, or skip the user
    with the reason (`problem`)."""

    source: str
    target: str
    kind: str                          # "create" | "update" | "keep" | "skip"
    line: str                          # plain language, one line
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    identity: str = ""                 # the target object to update (its GUID), "" for a create
    problem: Problem | None = None     # why a user is skipped

    @property
    def changes_tenant(self) -> bool:
        return self.kind in ("create", "update")

    def diff(self) -> list[tuple[str, Any, Any]]:
        """(attribute, before, after) for each attribute that changes."""
        return [(k, self.before.get(k), v) for k, v in self.after.items() if self.before.get(k) != v]

    def text(self) -> str:
        out = self.line
        for k, b, a in self.diff() if self.changes_tenant else []:
            out += f"\n      {k}: {_show(b)} -> {_show(a)}"
        if self.problem is not None:
            out += f"\n      Why: {self.problem.why}\n      What to do: {self.problem.fix}"
        return out


@dataclass
class PreparePlan:
    changes: list[UserChange]
    warnings: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[UserChange]:
        return [c for c in self.changes if c.changes_tenant]

    @property
    def skipped(self) -> list[UserChange]:
        return [c for c in self.changes if c.kind == "skip"]

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    @property
    def is_empty(self) -> bool:
        return not self.pending

    def lines(self) -> list[str]:
        marks = {"create": "+", "update": "~", "keep": "=", "skip": "!"}
        out = [f"Target MailUsers: {self.count('create')} to create, {self.count('update')} to update, "
               f"{self.count('keep')} already prepared, {self.count('skip')} skipped"]
        out.extend(f"  {marks.get(c.kind, ' ')} {c.text()}" for c in self.changes)
        if self.is_empty:
            out.append("Nothing to change: every mapped user's target MailUser is prepared.")
        out.extend(f"Warning: {w}" for w in self.warnings)
        return out


@dataclass
class PrepareResult:
    done: list[UserChange] = field(default_factory=list)
    failed: list[tuple[UserChange, Problem]] = field(default_factory=list)
    cancelled: bool = False
    warnings: list[str] = field(default_factory=list)
    requests: int = 0                  # Exchange requests sent by the apply (for the throughput report)
    seconds: float = 0.0


# Each readiness check in the admin's words (what the pages, the headless output and the reports show for it).
CHECK_TITLES = {
    "source": "Source mailbox found", "target": "Target MailUser found", "scope": "In the scoping group",
    "exchange-guid": "Mailbox GUID matches", "archive-guid": "Archive GUID matches",
    "x500": "Old addresses (X500) kept", "primary-address": "Primary address set",
    "external-address": "Mail forwards to the source", "delivery-proxy": "Address in the delivery domain",
    "foreign-proxy": "No addresses in domains the target does not own", "licence": "Migration licence",
    "holds": "No holds that block the move", "substrate-holds": "No hidden (substrate) holds",
    "aux-archives": "Auxiliary archives within the limit", "auto-expanding-archive": "Auto-expanding archive",
    "recoverable-items": "Recoverable items fit the target quota",
    "previous-mailbox": "No earlier mailbox on the target", "other-batch": "Not in another batch",
    "dry-run": "Test connection to the source mailbox",
    "moved": "Already moved (the migration completed)",
    "recheck": "Checked again after leaving its batch",
}


@dataclass(frozen=True)
class Finding:
    """One readiness check for one user: CrossTenantMailboxMigrationValidation's checks (reference §1.5) and more."""

    check: str                         # "exchange-guid", "x500", "holds", "scope", ...
    ok: bool
    severity: str = ERROR              # error (blocks the move) | warning (may fail it) | ok
    what: str = ""                     # what is wrong, one sentence
    why: str = ""
    fix: str = ""                      # what to do
    fix_id: str = ""                   # a SAFE_FIXES id when one click can fix it
    tenant: str = ""                   # where the fix changes something ("source" | "target")
    data: dict[str, Any] = field(default_factory=dict)  # what the one-click fix needs (values, identities)

    @property
    def blocking(self) -> bool:
        return not self.ok and self.severity == ERROR

    @property
    def title(self) -> str:
        """The check in plain words."""
        return CHECK_TITLES.get(self.check, self.check.replace("-", " ").capitalize())

    def text(self) -> str:
        if self.ok:
            return f"[OK] {self.title}"
        label = "Blocks" if self.severity == ERROR else "Warning"
        out = f"[{label}] {self.what}\n        Why: {self.why}\n        What to do: {self.fix}"
        if self.fix_id:
            out += " (one-click fix available)"
        return out


@dataclass(frozen=True)
class UserReadiness:
    source: str
    target: str
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def ready(self) -> bool:
        return not any(f.blocking for f in self.findings)

    @property
    def fixable(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok and f.fix_id]

    @property
    def moved(self) -> bool:
        """The user's move completed: nothing is left to check."""
        return any(f.check == "moved" for f in self.findings)


@dataclass(frozen=True)
class ReadyUser:
    """What the batches engine needs of a user whose last readiness passed."""

    source: str
    target: str
    delegates: tuple[str, ...] = ()    # source addresses this user's mailbox is delegated to/from
    size_bytes: int | None = None

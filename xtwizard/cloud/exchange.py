"""Exchange Online admin API: cmdlets over `POST …/adminapi/beta/{tenant}/InvokeCommand` (reference §3).

`ExchangeClient.invoke` is the whole wire protocol: the request body and headers of §3.2–3.3, paging by
re-POSTing the same body to `@odata.nextLink`, stripping of `@odata.type` annotations, collecting
`@adminapi.warnings`, and errors parsed into `ExchangeError` with the ExId, the .NET exception type and the
text (§3.4).  Below it are thin typed wrappers for the cmdlets the wizard sends (§3.6).

Two parameter encodings are not documented anywhere (reference §8 items 1–3): `-Credentials` (PSCredential)
and `-CSVData` (Byte[]).  Each lives in one small function, `encode_credential` and `encode_csv_data`, with
what is assumed, so that a capture from a real tenant fixes it in one place.
"""

from __future__ import annotations

import base64
import csv
import datetime
import io
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .endpoints import CloudEndpoints
from .http import HttpPolicy
from .service import ServiceError, TokenProvider, json_or_none, request_id_of, same_origin, send_with_token

log = logging.getLogger("xtwizard.cloud.exchange")

CONCURRENCY_LIMIT_TEXT = "maximum number of concurrent requests per tenant"
MAX_PAGES = 10_000  # with 1,000 rows a page: ten million objects, far beyond any tenant


class ExchangeError(ServiceError):
    """A cmdlet failed.  `exception_type` is the .NET type (e.g. …ManagementObjectNotFoundException), `ex_id`
    Exchange's short error id (e.g. Ex6F9304), `warnings` any `@adminapi.warnings` that came with it."""

    service = "Exchange Online"

    def __init__(self, status: int, ex_id: str, exception_type: str, message: str,
                 warnings: Sequence[str] = (), *, cmdlet: str = "", code: str = "", request_id: str = "") -> None:
        super().__init__(status, code or exception_type.rsplit(".", 1)[-1] or f"HTTP{status}", message, request_id)
        self.ex_id = ex_id
        self.exception_type = exception_type
        self.warnings = list(warnings)
        self.cmdlet = cmdlet

    @property
    def short_type(self) -> str:
        """`ManagementObjectNotFoundException` for `Microsoft.Exchange.…ManagementObjectNotFoundException`."""
        return self.exception_type.rsplit(".", 1)[-1]

    def __str__(self) -> str:
        where = f"{self.cmdlet}: " if self.cmdlet else ""
        kind = f" ({self.short_type})" if self.exception_type else ""
        return f"{where}{self.message}{kind}"


class CmdletResult(list[dict[str, Any]]):
    """The objects a cmdlet returned (annotations stripped), with the warnings Exchange sent alongside."""

    def __init__(self, rows: Iterable[dict[str, Any]] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(rows)
        self.warnings: list[str] = list(warnings)


# --- wire helpers ----------------------------------------------------------------------------------------
def strip_annotations(value: Any) -> Any:
    """Drop OData annotations (`Prop@odata.type`, `@odata.type`, …), as ExoHelper does: every key with '@'."""
    if isinstance(value, dict):
        return {k: strip_annotations(v) for k, v in value.items() if "@" not in k}
    if isinstance(value, list):
        return [strip_annotations(v) for v in value]
    return value


def hashtable(*, add: Iterable[str] | str | None = None, remove: Iterable[str] | str | None = None) -> dict[str, Any]:
    """A PowerShell `@{Add=…; Remove=…}` for multi-valued parameters (EmailAddresses, MailboxMovePublishedScopes),
    tagged as `#Exchange.GenericHashTable` on the wire (reference §3.2)."""
    out: dict[str, Any] = {"@odata.type": "#Exchange.GenericHashTable"}
    for key, values in (("Add", add), ("Remove", remove)):
        if values is None:
            continue
        out[key] = [values] if isinstance(values, str) else list(values)
    return out


def encode_csv_data(rows: Sequence[Mapping[str, str]] | str) -> str:
    """The value of `New-MigrationBatch -CSVData` (a Byte[] in PowerShell) on the InvokeCommand wire.

    [U] reference §3.2 and §8 item 2: no public client shows how Byte[] travels.  Assumed: the CSV file's
    UTF-8 bytes (no BOM), base64-encoded as one JSON string — how .NET's JSON serializers write a byte[]
    by default.  The alternative seen in discussions is a JSON array of numbers; if a capture shows that,
    return `list(data)` here instead.  `rows` are dicts with the same keys (the first row's keys are the
    header, e.g. EmailAddress) or ready CSV text."""
    if isinstance(rows, str):
        text = rows
    else:
        buf = io.StringIO()
        header = list(rows[0].keys()) if rows else ["EmailAddress"]
        writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(dict(row))
        text = buf.getvalue()
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def encode_credential(app_id: str, secret: str) -> dict[str, str]:
    """The value of `New-MigrationEndpoint -Credentials` (a PSCredential: user name = the app id, password =
    the client secret, reference §2.2) on the InvokeCommand wire.

    [U] reference §3.2 and §8 items 1 and 3: no public client shows how a PSCredential travels, nor whether
    its SecureString password must be RSA-encrypted with the module's rotating public key.  Assumed: an
    object with `UserName` and `Password`, the password as plain text inside the TLS-protected body.  If a
    capture shows encryption or another shape, change only this function.  The result holds the secret:
    it goes into the request body and nowhere else — never log it or put it in an exception."""
    return {"UserName": app_id, "Password": secret}


def is_concurrency_limited(resp: httpx.Response) -> bool:
    """Exchange's "maximum number of concurrent requests per tenant" answer is transient (reference §3.5),
    whatever status it comes with."""
    if resp.status_code < 400:
        return False
    try:
        text = resp.text
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return False
    return CONCURRENCY_LIMIT_TEXT in text.lower()


def _ci(d: Any, key: str) -> Any:
    """Case-insensitive key lookup: PowerShell clients read these bodies case-insensitively (reference §3.4)."""
    if not isinstance(d, dict):
        return None
    low = key.lower()
    return next((v for k, v in d.items() if str(k).lower() == low), None)


def parse_error(resp: httpx.Response, cmdlet: str = "") -> ExchangeError:
    """ExchangeError from an InvokeCommand error answer (reference §3.4).

    `details[].message` is `ExId|ExceptionType|text`; without it the text falls back to
    `innererror.internalexception.message`, then `error.message`; the type to the `X-ExceptionType` header
    or `internalexception.type`."""
    body = json_or_none(resp)
    error = _ci(body, "error")
    header_type = resp.headers.get("X-ExceptionType", "")
    warnings = [str(w) for w in (_ci(body, "@adminapi.warnings") or []) if isinstance(w, str)]
    rid = request_id_of(resp)
    if not isinstance(error, dict):
        text = resp.text.strip()[:300] if resp.content else ""
        return ExchangeError(resp.status_code, "", header_type, text or resp.reason_phrase or "Unexpected answer",
                             warnings, cmdlet=cmdlet, request_id=rid)
    code = str(_ci(error, "code") or "")
    for detail in _ci(error, "details") or []:
        message = _ci(detail, "message")
        if isinstance(message, str) and message.count("|") >= 2:
            ex_id, ex_type, text = message.split("|", 2)
            return ExchangeError(resp.status_code, ex_id.strip(), ex_type.strip(), text.strip(), warnings,
                                 cmdlet=cmdlet, code=code, request_id=rid)
    inner = _ci(error, "innererror")
    internal = _ci(inner, "internalexception")
    text = _ci(internal, "message") or _ci(error, "message") or resp.reason_phrase
    ex_type = header_type or str(_ci(internal, "type") or "")
    for detail in _ci(error, "details") or []:  # a details message without the ExId|Type| prefix
        message = _ci(detail, "message")
        if isinstance(message, str) and message and not _ci(internal, "message"):
            text = message
            break
    return ExchangeError(resp.status_code, "", ex_type, str(text), warnings, cmdlet=cmdlet, code=code,
                         request_id=rid)


# --- typed results ---------------------------------------------------------------------------------------
def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return tuple(p.strip() for p in str(value).split(",") if p.strip()) if "," in str(value) else (str(value),)


@dataclass(frozen=True)
class AcceptedDomain:
    domain_name: str
    domain_type: str
    default: bool
    initial: bool


@dataclass(frozen=True)
class OrganizationRelationship:
    name: str
    identity: str
    domain_names: tuple[str, ...]
    enabled: bool
    mailbox_move_enabled: bool
    mailbox_move_capabilities: tuple[str, ...]
    oauth_application_id: str
    mailbox_move_published_scopes: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def has_capability(self, capability: str) -> bool:
        """Membership, not equality: a move-back setup has `Inbound, RemoteOutbound` (reference §1.4 note)."""
        return capability.lower() in {c.lower() for c in self.mailbox_move_capabilities}

    def names_tenant(self, tenant_id: str) -> bool:
        return tenant_id.lower() in {d.lower() for d in self.domain_names}


@dataclass(frozen=True)
class MigrationEndpoint:
    identity: str
    endpoint_type: str
    remote_server: str
    remote_tenant: str
    application_id: str
    app_secret_key_vault_url: str
    is_remote: bool
    max_concurrent_migrations: int | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ServerAvailability:
    result: str
    message: str
    error_detail: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.result.lower() == "success"


@dataclass(frozen=True)
class Recipient:
    """A mailbox (source) or MailUser (target) with the properties the migration compares (reference §2.6)."""

    identity: str
    name: str
    display_name: str
    recipient_type_details: str
    user_principal_name: str
    primary_smtp_address: str
    external_email_address: str
    exchange_guid: str
    archive_guid: str
    legacy_exchange_dn: str
    email_addresses: tuple[str, ...]
    persisted_capabilities: tuple[str, ...]
    is_dir_synced: bool
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # The rest of reference §3.6, read from `raw` so that every Get-Mailbox/-MailUser/-Recipient/-User row fits.
    @property
    def guid(self) -> str:
        """The object's own GUID: an identity that is never ambiguous (names are, landscape story of Chris)."""
        return _s(self.raw.get("Guid") or self.raw.get("ExchangeObjectId"))

    @property
    def alias(self) -> str:
        return _s(self.raw.get("Alias"))

    @property
    def mailbox_locations(self) -> tuple[str, ...]:
        return _list(self.raw.get("MailboxLocations"))

    @property
    def aux_archive_count(self) -> int:
        """Entries of MailboxLocations that are auxiliary archives (at most 12 can move, reference §1.5)."""
        return sum(1 for loc in self.mailbox_locations if "auxarchive" in loc.lower())

    @property
    def holds(self) -> tuple[str, ...]:
        """Every hold that blocks a cross-tenant move (reference §1.5 item 4), in plain words."""
        out = [label for key, label in (("LitigationHoldEnabled", "litigation hold"),
                                        ("DelayHoldApplied", "delay hold"),
                                        ("DelayReleaseHoldApplied", "delay release hold"),
                                        ("ComplianceTagHoldApplied", "retention label hold"))
               if _bool(self.raw.get(key))]
        for h in _list(self.raw.get("InPlaceHolds")):
            if h.lower().startswith(("mbx", "cld", "unih", "skp")) or len(h) == 32:
                out.append(f"in-place or retention hold {h}")
        return tuple(out)

    @property
    def recoverable_items_quota(self) -> int:
        return parse_bytes(self.raw.get("RecoverableItemsQuota"))

    @property
    def previous_recipient_type_details(self) -> str:
        value = _s(self.raw.get("PreviousRecipientTypeDetails"))
        return "" if value.lower() == "none" else value

    @property
    def auto_expanding_archive(self) -> bool:
        return _bool(self.raw.get("AutoExpandingArchiveEnabled"))

    @property
    def send_on_behalf(self) -> tuple[str, ...]:
        """GrantSendOnBehalfTo: delegates, who should move in the same batch."""
        return _list(self.raw.get("GrantSendOnBehalfTo"))


@dataclass(frozen=True)
class MailboxStatistics:
    """Get-MailboxStatistics: sizes in bytes (ByteQuantifiedSize parsed)."""

    item_count: int
    total_item_size: int
    total_deleted_item_size: int
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class DistributionGroup:
    identity: str
    name: str
    display_name: str
    primary_smtp_address: str
    recipient_type_details: str
    external_directory_object_id: str


@dataclass(frozen=True)
class GroupMember:
    identity: str
    name: str
    primary_smtp_address: str
    recipient_type_details: str
    external_directory_object_id: str


@dataclass(frozen=True)
class MigrationBatch:
    identity: str
    status: str
    total_count: int | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def count(self, name: str) -> int:
        """One of Get-MigrationBatch's counters: ActiveCount, SyncedCount, FinalizedCount, FailedCount, …"""
        return _int(self.raw.get(name)) or 0

    def time(self, name: str) -> datetime.datetime | None:
        """One of its dates: CreationDateTime, StartDateTime, LastSyncedDateTime, CompleteAfter, StartAfter."""
        return parse_time(self.raw.get(name))

    @property
    def target_delivery_domain(self) -> str:
        return _s(self.raw.get("TargetDeliveryDomain"))

    @property
    def source_endpoint(self) -> str:
        return _s(self.raw.get("SourceEndpoint"))


@dataclass(frozen=True)
class MigrationUser:
    identity: str
    status: str
    batch_id: str
    error_summary: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def status_summary(self) -> str:
        """Active, Synced, Completed, Failed or Stopped."""
        return _s(self.raw.get("StatusSummary"))

    @property
    def last_successful_sync(self) -> datetime.datetime | None:
        return parse_time(self.raw.get("LastSuccessfulSyncTime"))

    @property
    def synced_item_count(self) -> int:
        return _int(self.raw.get("SyncedItemCount")) or 0


@dataclass(frozen=True)
class MoveStatistics:
    """Get-MigrationUserStatistics / Get-MoveRequestStatistics for one user: progress and the error in full."""

    identity: str
    status: str
    percent: int
    bytes_transferred: int
    total_bytes: int
    error: str
    last_sync: datetime.datetime | None
    report: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class MoveRequest:
    identity: str
    status: str                     # Queued, InProgress, AutoSuspended, CompletionInProgress, Completed, Failed, …
    batch_name: str                 # "MigrationService:<batch>"
    exchange_guid: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_time(value: Any) -> datetime.datetime | None:
    """An Exchange date ("2026-05-01T10:00:00.00Z", with or without zone) as an aware UTC datetime."""
    if not value:
        return None
    try:
        t = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


def format_time(value: datetime.datetime) -> str:
    """A DateTime parameter value (UTC, ISO 8601), e.g. for -CompleteAfter and -StartAfter."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bytes(value: Any) -> int:
    """Bytes from a ByteQuantifiedSize text ("1.5 GB (1,610,612,736 bytes)") or a number; 0 when unknown."""
    if value is None:
        return 0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    text = str(value)
    if "(" in text and "bytes" in text:
        digits = text.rsplit("(", 1)[1].split("bytes", 1)[0].replace(",", "").strip()
        return int(digits) if digits.isdigit() else 0
    return int(text) if text.strip().isdigit() else 0


def _move_statistics(r: Mapping[str, Any]) -> MoveStatistics:
    pct = _int(r.get("PercentageComplete"))
    if pct is None:
        pct = _int(r.get("PercentComplete"))
    return MoveStatistics(
        identity=_s(r.get("Identity")), status=_s(r.get("Status")), percent=pct or 0,
        bytes_transferred=parse_bytes(r.get("BytesTransferred")),
        total_bytes=parse_bytes(r.get("EstimatedTotalTransferSize")) or (
            parse_bytes(r.get("TotalMailboxSize")) + parse_bytes(r.get("TotalArchiveSize"))),
        error=_s(r.get("Error") or r.get("ErrorSummary") or r.get("Message")),
        last_sync=parse_time(r.get("LastSuccessfulSyncTime") or r.get("LastSuccessfulSyncTimestamp")),
        report=tuple(str(x) for x in r.get("Report") or []), raw=dict(r))


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _relationship(r: Mapping[str, Any]) -> OrganizationRelationship:
    return OrganizationRelationship(
        name=_s(r.get("Name")), identity=_s(r.get("Identity") or r.get("Name")),
        domain_names=_list(r.get("DomainNames")), enabled=_bool(r.get("Enabled")),
        mailbox_move_enabled=_bool(r.get("MailboxMoveEnabled")),
        mailbox_move_capabilities=tuple(c for c in _list(r.get("MailboxMoveCapability")) if c.lower() != "none"),
        oauth_application_id=_s(r.get("OAuthApplicationId")),
        mailbox_move_published_scopes=_list(r.get("MailboxMovePublishedScopes")), raw=dict(r))


def _endpoint(r: Mapping[str, Any]) -> MigrationEndpoint:
    return MigrationEndpoint(
        identity=_s(r.get("Identity")), endpoint_type=_s(r.get("EndpointType")),
        remote_server=_s(r.get("RemoteServer")), remote_tenant=_s(r.get("RemoteTenant")),
        application_id=_s(r.get("ApplicationId")), app_secret_key_vault_url=_s(r.get("AppSecretKeyVaultUrl")),
        is_remote=_bool(r.get("IsRemote")), max_concurrent_migrations=_int(r.get("MaxConcurrentMigrations")),
        raw=dict(r))


def _recipient(r: Mapping[str, Any]) -> Recipient:
    return Recipient(
        identity=_s(r.get("Identity")), name=_s(r.get("Name")), display_name=_s(r.get("DisplayName")),
        recipient_type_details=_s(r.get("RecipientTypeDetails")),
        user_principal_name=_s(r.get("UserPrincipalName") or r.get("MicrosoftOnlineServicesID")),
        primary_smtp_address=_s(r.get("PrimarySmtpAddress")),
        external_email_address=_s(r.get("ExternalEmailAddress")), exchange_guid=_s(r.get("ExchangeGuid")),
        archive_guid=_s(r.get("ArchiveGuid")), legacy_exchange_dn=_s(r.get("LegacyExchangeDN")),
        email_addresses=_list(r.get("EmailAddresses")), persisted_capabilities=_list(r.get("PersistedCapabilities")),
        is_dir_synced=_bool(r.get("IsDirSynced")), raw=dict(r))


# --- the client ----------------------------------------------------------------------------------------
class ExchangeClient:
    """Exchange Online for one signed-in admin (delegated: X-AnchorMailbox is `UPN:<admin>`)."""

    service = "exchange"

    def __init__(self, endpoints: CloudEndpoints, policy: HttpPolicy, token_for: TokenProvider, *,
                 tenant: str, admin_upn: str, page_size: int = 1000) -> None:
        self.endpoints = endpoints
        self.policy = policy
        self.token_for = token_for
        self.tenant = tenant  # tenant GUID (or initial domain) in the URL path
        self.admin_upn = admin_upn
        self.page_size = page_size
        self.url = endpoints.invoke_command_url(tenant)

    async def invoke(self, cmdlet: str, parameters: Mapping[str, Any] | None = None, *,
                     select: Sequence[str] | None = None) -> CmdletResult:
        """Run one cmdlet and return every object it produced, across pages (reference §3.2–3.4)."""
        body = json.dumps({"CmdletInput": {"CmdletName": cmdlet, "Parameters": dict(parameters or {})}},
                          separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-CmdletName": cmdlet,
                   "X-AnchorMailbox": f"UPN:{self.admin_upn}", "X-ResponseFormat": "json",
                   "Prefer": f"odata.maxpagesize={self.page_size}", "X-ClientApplication": "xtwizard"}
        params = {"$select": ",".join(select)} if select else None
        result = CmdletResult()
        followed: set[str] = set()
        url: str | None = self.url
        for _ in range(MAX_PAGES):
            if url is None:
                break
            # Cmdlets are not idempotent in general, but a resend after a lost connection is only allowed for
            # reads; throttling answers are always retried (the service did nothing).
            resp = await send_with_token(self.policy, self.token_for, self.endpoints.exchange_resource, "POST", url,
                                         service=self.service, route=f"InvokeCommand {cmdlet}",
                                         tenant=self.tenant, content=body, headers=headers, params=params,
                                         retry_unsafe=cmdlet.lower().startswith("get-"),
                                         retryable=is_concurrency_limited)
            if resp.status_code >= 400:
                raise parse_error(resp, cmdlet)
            data = json_or_none(resp)
            if not isinstance(data, dict):
                raise ExchangeError(resp.status_code, "", "", "Exchange answered without a JSON object "
                                    f"(content type {resp.headers.get('Content-Type', 'none')}).", cmdlet=cmdlet,
                                    request_id=request_id_of(resp))
            result.extend(strip_annotations(v) for v in data.get("value") or [] if isinstance(v, dict))
            result.warnings.extend(str(w) for w in data.get("@adminapi.warnings") or [])
            next_link = data.get("@odata.nextLink") or data.get("odata.nextLink")
            url = str(next_link) if next_link else None
            if url is not None and not same_origin(url, self.url):
                raise ExchangeError(0, "", "", "Exchange sent a next-page link to another host; it was not "
                                    "followed (the admin's token would have gone with it).", result.warnings,
                                    cmdlet=cmdlet, code="UntrustedLink")
            # The next link carries its own query (httpx would replace it if given `params`) and the body stays
            # the same; a projection the link dropped is merged back in, so that every page has the same shape.
            params = None
            if url is not None:
                if url in followed:
                    raise ExchangeError(0, "", "", "Exchange sent the same next-page link twice; paging was "
                                        "stopped.", result.warnings, cmdlet=cmdlet, code="PagingLoop")
                followed.add(url)
                if select and "$select=" not in url:
                    url = str(httpx.URL(url).copy_merge_params({"$select": ",".join(select)}))
        return result

    # --- organization ---------------------------------------------------------------------------------------
    async def is_dehydrated(self) -> bool:
        rows = await self.invoke("Get-OrganizationConfig")
        return bool(rows) and _bool(rows[0].get("IsDehydrated"))

    async def enable_organization_customization(self) -> CmdletResult:
        return await self.invoke("Enable-OrganizationCustomization")

    async def accepted_domains(self) -> list[AcceptedDomain]:
        rows = await self.invoke("Get-AcceptedDomain")
        return [AcceptedDomain(_s(r.get("DomainName")), _s(r.get("DomainType")), _bool(r.get("Default")),
                               _bool(r.get("InitialDomain"))) for r in rows]

    # --- organization relationships ------------------------------------------------------------------------
    async def organization_relationships(self, identity: str | None = None) -> list[OrganizationRelationship]:
        rows = await self.invoke("Get-OrganizationRelationship", {"Identity": identity} if identity else None)
        return [_relationship(r) for r in rows]

    async def new_organization_relationship(self, name: str, domain_names: Sequence[str], *,
                                            capabilities: Sequence[str], enabled: bool = True,
                                            oauth_application_id: str | None = None,
                                            published_scopes: Sequence[str] | None = None) -> OrganizationRelationship:
        params: dict[str, Any] = {"Name": name, "DomainNames": list(domain_names), "Enabled": enabled,
                                  "MailboxMoveEnabled": True, "MailboxMoveCapability": ", ".join(capabilities)}
        if oauth_application_id:
            params["OAuthApplicationId"] = oauth_application_id
        if published_scopes:
            params["MailboxMovePublishedScopes"] = list(published_scopes)
        rows = await self.invoke("New-OrganizationRelationship", params)
        if rows:
            return _relationship(rows[0])
        return (await self.organization_relationships(name))[0]

    async def set_organization_relationship(self, identity: str, changes: Mapping[str, Any]) -> CmdletResult:
        """Set-OrganizationRelationship with raw parameters (use `hashtable()` to add/remove scopes)."""
        return await self.invoke("Set-OrganizationRelationship", {"Identity": identity, **changes})

    async def remove_organization_relationship(self, identity: str) -> CmdletResult:
        return await self.invoke("Remove-OrganizationRelationship", {"Identity": identity, "Confirm": False})

    # --- migration endpoints -----------------------------------------------------------------------------------
    async def migration_endpoints(self, identity: str | None = None) -> list[MigrationEndpoint]:
        rows = await self.invoke("Get-MigrationEndpoint", {"Identity": identity} if identity else None)
        return [_endpoint(r) for r in rows]

    async def new_migration_endpoint(self, name: str, *, remote_tenant: str, application_id: str,
                                     secret: str | None = None, app_secret_key_vault_url: str | None = None,
                                     remote_server: str | None = None, max_concurrent_migrations: int | None = None,
                                     skip_verification: bool = False) -> MigrationEndpoint:
        """The target's endpoint to the source (reference §2.3): with the app's client secret as
        `-Credentials`, or the deprecated Key Vault certificate URL."""
        params: dict[str, Any] = {"Name": name, "ExchangeRemoteMove": True,
                                  "RemoteServer": remote_server or self.endpoints.exchange_remote_server,
                                  "RemoteTenant": remote_tenant, "ApplicationId": application_id}
        if secret is not None:
            params["Credentials"] = encode_credential(application_id, secret)
        if app_secret_key_vault_url:
            params["AppSecretKeyVaultUrl"] = app_secret_key_vault_url
        if max_concurrent_migrations is not None:
            params["MaxConcurrentMigrations"] = max_concurrent_migrations
        if skip_verification:
            params["SkipVerification"] = True
        rows = await self.invoke("New-MigrationEndpoint", params)
        if rows:
            return _endpoint(rows[0])
        return (await self.migration_endpoints(name))[0]

    async def remove_migration_endpoint(self, identity: str) -> CmdletResult:
        return await self.invoke("Remove-MigrationEndpoint", {"Identity": identity, "Confirm": False})

    async def test_migration_server_availability(self, endpoint: str, test_mailbox: str | None = None
                                                 ) -> ServerAvailability:
        """Run in the target with the target MailUser's address (reference §2.5)."""
        params: dict[str, Any] = {"Endpoint": endpoint}
        if test_mailbox:
            params["TestMailbox"] = test_mailbox
        rows = await self.invoke("Test-MigrationServerAvailability", params)
        r = rows[0] if rows else {}
        return ServerAvailability(_s(r.get("Result")), _s(r.get("Message")), _s(r.get("ErrorDetail")), dict(r))

    # --- recipients -------------------------------------------------------------------------------------------
    async def distribution_groups(self, identity: str | None = None, *,
                                  security_only: bool = False) -> list[DistributionGroup]:
        params: dict[str, Any] = {"ResultSize": "Unlimited"}
        if identity:
            params = {"Identity": identity}
        if security_only:
            params["RecipientTypeDetails"] = ["MailUniversalSecurityGroup"]
        rows = await self.invoke("Get-DistributionGroup", params)
        return [DistributionGroup(_s(r.get("Identity")), _s(r.get("Name")), _s(r.get("DisplayName")),
                                  _s(r.get("PrimarySmtpAddress")), _s(r.get("RecipientTypeDetails")),
                                  _s(r.get("ExternalDirectoryObjectId"))) for r in rows]

    async def distribution_group_members(self, identity: str) -> list[GroupMember]:
        rows = await self.invoke("Get-DistributionGroupMember", {"Identity": identity, "ResultSize": "Unlimited"})
        return [GroupMember(_s(r.get("Identity")), _s(r.get("Name")), _s(r.get("PrimarySmtpAddress")),
                            _s(r.get("RecipientTypeDetails")), _s(r.get("ExternalDirectoryObjectId"))) for r in rows]

    async def mailboxes(self, identity: str | None = None) -> list[Recipient]:
        params: dict[str, Any] = {"Identity": identity} if identity else {"ResultSize": "Unlimited"}
        return [_recipient(r) for r in await self.invoke("Get-Mailbox", params)]

    async def mail_users(self, identity: str | None = None) -> list[Recipient]:
        params: dict[str, Any] = {"Identity": identity} if identity else {"ResultSize": "Unlimited"}
        return [_recipient(r) for r in await self.invoke("Get-MailUser", params)]

    async def new_mail_user(self, name: str, *, external_email_address: str, microsoft_online_services_id: str,
                            primary_smtp_address: str | None = None, display_name: str | None = None,
                            first_name: str | None = None, last_name: str | None = None,
                            alias: str | None = None) -> Recipient:
        params: dict[str, Any] = {"Name": name, "ExternalEmailAddress": external_email_address,
                                  "MicrosoftOnlineServicesID": microsoft_online_services_id}
        for key, value in (("PrimarySmtpAddress", primary_smtp_address), ("DisplayName", display_name),
                           ("FirstName", first_name), ("LastName", last_name), ("Alias", alias)):
            if value is not None:
                params[key] = value
        rows = await self.invoke("New-MailUser", params)
        if rows:
            return _recipient(rows[0])
        return (await self.mail_users(name))[0]

    async def set_mail_user(self, identity: str, *, exchange_guid: str | None = None,
                            archive_guid: str | None = None, add_addresses: Sequence[str] = (),
                            remove_addresses: Sequence[str] = (), primary_smtp_address: str | None = None,
                            external_email_address: str | None = None, **extra: Any) -> CmdletResult:
        """Stamp a target MailUser for the move (reference §2.6); addresses are added/removed, not replaced."""
        params: dict[str, Any] = {"Identity": identity, **extra}
        if exchange_guid is not None:
            params["ExchangeGuid"] = exchange_guid
        if archive_guid is not None:
            params["ArchiveGuid"] = archive_guid
        if add_addresses or remove_addresses:
            params["EmailAddresses"] = hashtable(add=add_addresses or None, remove=remove_addresses or None)
        if primary_smtp_address is not None:
            params["PrimarySmtpAddress"] = primary_smtp_address
        if external_email_address is not None:
            params["ExternalEmailAddress"] = external_email_address
        return await self.invoke("Set-MailUser", params)

    async def remove_mail_user(self, identity: str) -> CmdletResult:
        return await self.invoke("Remove-MailUser", {"Identity": identity, "Confirm": False})

    async def recipients(self, identity: str | None = None, *,
                         types: Sequence[str] | None = None) -> list[Recipient]:
        """Get-Recipient (every kind of recipient; paged with -ResultSize Unlimited)."""
        params: dict[str, Any] = {"Identity": identity} if identity else {"ResultSize": "Unlimited"}
        if types:
            params["RecipientTypeDetails"] = list(types)
        return [_recipient(r) for r in await self.invoke("Get-Recipient", params)]

    async def users(self, identity: str | None = None) -> list[Recipient]:
        """Get-User: directory users, with PreviousRecipientTypeDetails (a target that once had a mailbox)."""
        params: dict[str, Any] = {"Identity": identity} if identity else {"ResultSize": "Unlimited"}
        return [_recipient(r) for r in await self.invoke("Get-User", params)]

    async def set_user(self, identity: str, *, permanently_clear_previous_mailbox_info: bool = False,
                       **extra: Any) -> CmdletResult:
        """Set-User; clearing previous mailbox information is irreversible (reference §2.6)."""
        params: dict[str, Any] = {"Identity": identity, **extra}
        if permanently_clear_previous_mailbox_info:
            params["PermanentlyClearPreviousMailboxInfo"] = True
            params["Confirm"] = False
        return await self.invoke("Set-User", params)

    async def set_mailbox(self, identity: str, changes: Mapping[str, Any]) -> CmdletResult:
        """Set-Mailbox with raw parameters (e.g. LitigationHoldEnabled, RemoveDelayHoldApplied)."""
        return await self.invoke("Set-Mailbox", {"Identity": identity, **changes})

    async def mailbox_statistics(self, identity: str, *, archive: bool = False) -> MailboxStatistics:
        params: dict[str, Any] = {"Identity": identity}
        if archive:
            params["Archive"] = True
        rows = await self.invoke("Get-MailboxStatistics", params)
        r = rows[0] if rows else {}
        return MailboxStatistics(_int(r.get("ItemCount")) or 0, parse_bytes(r.get("TotalItemSize")),
                                 parse_bytes(r.get("TotalDeletedItemSize")), dict(r))

    async def mailbox_folder_statistics(self, identity: str, *, folder_scope: str | None = None,
                                        archive: bool = False) -> list[dict[str, Any]]:
        """Get-MailboxFolderStatistics rows (Name, FolderType, ItemsInFolder, FolderSize, …)."""
        params: dict[str, Any] = {"Identity": identity}
        if folder_scope:
            params["FolderScope"] = folder_scope
        if archive:
            params["Archive"] = True
        return list(await self.invoke("Get-MailboxFolderStatistics", params))

    async def add_distribution_group_member(self, identity: str, member: str) -> CmdletResult:
        return await self.invoke("Add-DistributionGroupMember", {"Identity": identity, "Member": member,
                                                                 "BypassSecurityGroupManagerCheck": True})

    async def remove_distribution_group_member(self, identity: str, member: str) -> CmdletResult:
        return await self.invoke("Remove-DistributionGroupMember", {"Identity": identity, "Member": member,
                                                                    "BypassSecurityGroupManagerCheck": True,
                                                                    "Confirm": False})

    # --- migration batches and users --------------------------------------------------------------------------
    async def new_migration_batch(self, name: str, *, source_endpoint: str, target_delivery_domain: str,
                                  users: Sequence[str] | str, auto_start: bool = False, auto_complete: bool = False,
                                  complete_after: str | None = None,
                                  notification_emails: Sequence[str] = (),
                                  start_after: str | None = None) -> MigrationBatch:
        """A cross-tenant batch (reference §2.7); `users` are the target addresses (or ready CSV text)."""
        csv_rows: Sequence[Mapping[str, str]] | str = (
            users if isinstance(users, str) else [{"EmailAddress": u} for u in users])
        params: dict[str, Any] = {"Name": name, "SourceEndpoint": source_endpoint,
                                  "TargetDeliveryDomain": target_delivery_domain,
                                  "CSVData": encode_csv_data(csv_rows)}
        if auto_start:
            params["AutoStart"] = True
        if auto_complete:
            params["AutoComplete"] = True
        if complete_after:
            params["CompleteAfter"] = complete_after
        if start_after:
            params["StartAfter"] = start_after
        if notification_emails:
            params["NotificationEmails"] = list(notification_emails)
        rows = await self.invoke("New-MigrationBatch", params)
        if rows:
            return self._batch(rows[0])
        return (await self.migration_batches(name))[0]

    @staticmethod
    def _batch(r: Mapping[str, Any]) -> MigrationBatch:
        return MigrationBatch(_s(r.get("Identity")), _s(r.get("Status")), _int(r.get("TotalCount")), dict(r))

    async def migration_batches(self, identity: str | None = None) -> list[MigrationBatch]:
        rows = await self.invoke("Get-MigrationBatch", {"Identity": identity} if identity else None)
        return [self._batch(r) for r in rows]

    async def start_migration_batch(self, identity: str) -> CmdletResult:
        return await self.invoke("Start-MigrationBatch", {"Identity": identity})

    async def stop_migration_batch(self, identity: str) -> CmdletResult:
        return await self.invoke("Stop-MigrationBatch", {"Identity": identity, "Confirm": False})

    async def complete_migration_batch(self, identity: str) -> CmdletResult:
        return await self.invoke("Complete-MigrationBatch", {"Identity": identity, "Confirm": False})

    async def remove_migration_batch(self, identity: str) -> CmdletResult:
        return await self.invoke("Remove-MigrationBatch", {"Identity": identity, "Confirm": False})

    async def migration_users(self, identity: str | None = None, *, batch_id: str | None = None
                              ) -> list[MigrationUser]:
        params: dict[str, Any] = {}
        if identity:
            params["Identity"] = identity
        if batch_id:
            params["BatchId"] = batch_id
        rows = await self.invoke("Get-MigrationUser", params or None)
        return [MigrationUser(_s(r.get("Identity")), _s(r.get("Status")), _s(r.get("BatchId")),
                              _s(r.get("ErrorSummary")), dict(r)) for r in rows]

    async def migration_user_statistics(self, identity: str, *, include_report: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"Identity": identity}
        if include_report:
            params["IncludeReport"] = True
        rows = await self.invoke("Get-MigrationUserStatistics", params)
        return rows[0] if rows else {}

    # --- migration batches: monitoring and per-user actions (issue 6) ---------------------------------------------
    async def all_migration_users(self, *, batch_id: str | None = None) -> list[MigrationUser]:
        """Every migration user (-ResultSize Unlimited), paged 1,000 a request: the monitor's one list call."""
        params: dict[str, Any] = {"ResultSize": "Unlimited"}
        if batch_id:
            params["BatchId"] = batch_id
        rows = await self.invoke("Get-MigrationUser", params)
        return [MigrationUser(_s(r.get("Identity")), _s(r.get("Status")), _s(r.get("BatchId")),
                              _s(r.get("ErrorSummary")), dict(r)) for r in rows]

    async def set_migration_batch(self, identity: str, *, complete_after: str | None = None,
                                  start_after: str | None = None,
                                  notification_emails: Sequence[str] | None = None) -> CmdletResult:
        params: dict[str, Any] = {"Identity": identity}
        if complete_after is not None:
            params["CompleteAfter"] = complete_after
        if start_after is not None:
            params["StartAfter"] = start_after
        if notification_emails is not None:
            params["NotificationEmails"] = list(notification_emails)
        return await self.invoke("Set-MigrationBatch", params)

    async def set_migration_user(self, identity: str, *, complete_after: str | None = None,
                                 approve_skipped_items: bool = False) -> CmdletResult:
        params: dict[str, Any] = {"Identity": identity}
        if complete_after is not None:
            params["CompleteAfter"] = complete_after
        if approve_skipped_items:
            params["ApproveSkippedItems"] = True
        return await self.invoke("Set-MigrationUser", params)

    async def remove_migration_user(self, identity: str) -> CmdletResult:
        return await self.invoke("Remove-MigrationUser", {"Identity": identity, "Confirm": False})

    async def migration_user_details(self, identity: str, *, include_report: bool = False) -> MoveStatistics:
        """Get-MigrationUserStatistics, typed: one user's percent, bytes, size and error."""
        return _move_statistics(await self.migration_user_statistics(identity, include_report=include_report))

    async def move_requests(self, *, batch_name: str | None = None) -> list[MoveRequest]:
        params: dict[str, Any] = {"ResultSize": "Unlimited"}
        if batch_name:
            params["BatchName"] = batch_name
        rows = await self.invoke("Get-MoveRequest", params)
        return [MoveRequest(_s(r.get("Identity")), _s(r.get("Status")), _s(r.get("BatchName")),
                            _s(r.get("ExchangeGuid")), dict(r)) for r in rows]

    async def move_request_statistics(self, identity: str, *, include_report: bool = False) -> MoveStatistics:
        params: dict[str, Any] = {"Identity": identity}
        if include_report:
            params["IncludeReport"] = True
        rows = await self.invoke("Get-MoveRequestStatistics", params)
        return _move_statistics(rows[0] if rows else {})

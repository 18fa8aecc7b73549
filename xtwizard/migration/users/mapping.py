"""Mapping source -> target without the network: CSV in and out, automatic mapping, and row validation against
what the engine read (source mailboxes, target recipients, accepted domains)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ...cloud.exchange import Recipient
from .model import ERROR, OK, WARNING, ZERO_GUID, MappingRow, SourceMailbox

SOURCE_HEADERS = ("sourceuser", "source", "sourceemail", "sourceaddress", "sourcesmtp", "sourceprimarysmtpaddress",
                  "sourcemailbox", "from")
TARGET_HEADERS = ("targetuser", "target", "targetemail", "targetaddress", "targetsmtp", "targetprimarysmtpaddress",
                  "targetmailuser", "to", "emailaddress")
MAILBOX_KINDS = ("UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox", "LinkedMailbox",
                 "SchedulingMailbox", "TeamMailbox")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_address(value: str) -> bool:
    return bool(_ADDRESS.match(value))


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower() if "@" in address else ""


def bare(address: str) -> str:
    """'SMTP:a@b' -> 'a@b'."""
    return address.split(":", 1)[1] if address.lower().startswith("smtp:") else address


def smtp_addresses(addresses: Iterable[str]) -> list[str]:
    return [a.split(":", 1)[1] for a in addresses if a.lower().startswith("smtp:")]


def decode_csv(data: bytes) -> str:
    """CSV bytes as text: UTF-8 (with or without BOM), UTF-16 with BOM (Excel's "Unicode text"), else Windows-1252
    (what Excel saves as "CSV" on Western Windows) — never a crash on an encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _norm_header(h: str) -> str:
    return re.sub(r"[^a-z]", "", h.lower())


def parse_csv(text: str) -> tuple[list[MappingRow], list[str]]:
    """Rows from SourceUser,TargetUser text, and one plain sentence per header or line that could not be used."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        return [], ["The file is empty. It needs a header line 'SourceUser,TargetUser' and one line per user."]
    first = text.splitlines()[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        lines = list(reader)
    except csv.Error as exc:
        return [], [f"The file is not a readable CSV ({exc}). Save it from Excel as 'CSV UTF-8' and try again."]
    header = [_norm_header(h) for h in lines[0]]
    src = next((i for i, h in enumerate(header) if h in SOURCE_HEADERS), None)
    tgt = next((i for i, h in enumerate(header) if h in TARGET_HEADERS and i != src), None)
    if src is None or tgt is None:
        found = ", ".join(repr(h) for h in lines[0]) or "nothing"
        return [], [f"The header line has {found}, but it needs the columns SourceUser and TargetUser (the format of "
                    "Microsoft's validation script). Rename the columns and import again."]
    rows: list[MappingRow] = []
    problems: list[str] = []
    for n, line in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in line):
            continue
        source = line[src].strip() if src < len(line) else ""
        target = line[tgt].strip() if tgt < len(line) else ""
        if not source or not target:
            problems.append(f"Line {n}: {'no source address' if not source else 'no target address'}; the line "
                            "was left out.")
            continue
        rows.append(MappingRow(bare(source), bare(target)))
    if not rows and not problems:
        problems.append("The file has a header but no users.")
    return rows, problems


def to_csv(rows: Sequence[MappingRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["SourceUser", "TargetUser"])
    for r in rows:
        w.writerow([r.source, r.target])
    return buf.getvalue()


@dataclass
class Directory:
    """What validation compares a mapping with: both tenants as last read."""

    source_name: str
    target_name: str
    mailboxes: list[SourceMailbox]
    target_recipients: list[Recipient]
    accepted: set[str]                                   # the target's accepted domains, lower-case
    by_source: dict[str, SourceMailbox] = field(default_factory=dict)
    by_address: dict[str, Recipient] = field(default_factory=dict)   # target: every SMTP proxy and UPN
    by_guid: dict[str, Recipient] = field(default_factory=dict)      # target MailUsers by ExchangeGuid
    by_external: dict[str, Recipient] = field(default_factory=dict)  # target MailUsers by ExternalEmailAddress

    def __post_init__(self) -> None:
        for m in self.mailboxes:
            for a in [m.address, m.user_principal_name, *smtp_addresses(m.email_addresses)]:
                if a:
                    self.by_source.setdefault(a.lower(), m)
        for r in self.target_recipients:
            for a in [r.primary_smtp_address, *smtp_addresses(r.email_addresses)]:
                if a:
                    self.by_address.setdefault(a.lower(), r)
            if r.user_principal_name:
                self.by_address.setdefault(r.user_principal_name.lower(), r)
            if r.recipient_type_details == "MailUser":
                if r.exchange_guid and r.exchange_guid != ZERO_GUID:
                    self.by_guid.setdefault(r.exchange_guid.lower(), r)
                if r.external_email_address:
                    self.by_external.setdefault(bare(r.external_email_address).lower(), r)

    def source(self, address: str) -> SourceMailbox | None:
        return self.by_source.get(address.lower())

    def prepared_for(self, m: SourceMailbox) -> Recipient | None:
        """A target MailUser that was made for this mailbox: its ExchangeGuid, or its ExternalEmailAddress."""
        found = self.by_guid.get(m.exchange_guid.lower())
        if found is None:
            for a in [m.address, *smtp_addresses(m.email_addresses)]:
                found = self.by_external.get(a.lower())
                if found is not None:
                    break
        return found

    def belongs_to(self, r: Recipient, m: SourceMailbox) -> bool:
        if r.exchange_guid and r.exchange_guid != ZERO_GUID:
            return r.exchange_guid.lower() == m.exchange_guid.lower()
        ext = bare(r.external_email_address).lower()
        return bool(ext) and ext in {a.lower() for a in [m.address, *smtp_addresses(m.email_addresses)]}


def auto_map(mailboxes: Sequence[SourceMailbox], target_domain: str, d: Directory | None) -> list[MappingRow]:
    rows = []
    for m in mailboxes:
        existing = d.prepared_for(m) if d is not None else None
        if existing is not None:
            rows.append(MappingRow(m.address, existing.primary_smtp_address))
        else:
            local = m.alias or m.address.split("@", 1)[0]
            rows.append(MappingRow(m.address, f"{local}@{target_domain.strip().lstrip('@')}"))
    return rows


def validate_rows(rows: Sequence[MappingRow], d: Directory, scope_group: str) -> list[MappingRow]:
    seen_source: dict[str, int] = {}
    seen_target: dict[str, int] = {}
    out: list[MappingRow] = []
    for i, row in enumerate(rows):
        out.append(_validate(row, d, scope_group, seen_source, seen_target, i))
    return out


def _validate(row: MappingRow, d: Directory, scope_group: str, seen_source: dict[str, int],
              seen_target: dict[str, int], i: int) -> MappingRow:
    def res(status: str, message: str, fix: str = "", kind: str = "") -> MappingRow:
        return replace(row, status=status, message=message, fix=fix, target_kind=kind)

    if not is_address(row.source):
        return res(ERROR, f"'{row.source}' is not an e-mail address.", "Give the user's current address in "
                   f"{d.source_name}, e.g. name@domain.")
    if not is_address(row.target):
        return res(ERROR, f"'{row.target}' is not an e-mail address.", "Give the user's new address in "
                   f"{d.target_name}.")
    m = d.source(row.source)
    if m is None:
        return res(ERROR, f"{d.source_name} has no mailbox with the address {row.source}.",
                   "Check the spelling: the source column holds the user's current address in the source tenant.")
    if m.address.lower() in seen_source:
        return res(ERROR, f"{m.address} is listed more than once (first on row {seen_source[m.address.lower()] + 1}).",
                   "Keep one row per user.")
    seen_source[m.address.lower()] = i
    if row.target.lower() in seen_target:
        return res(ERROR, f"{row.target} is the target of two users (also row {seen_target[row.target.lower()] + 1}).",
                   "Give each user their own target address.")
    seen_target[row.target.lower()] = i
    dom = domain_of(row.target)
    if dom not in d.accepted:
        return res(ERROR, f"{dom} is not a domain of {d.target_name}.",
                   f"Use one of its accepted domains: {', '.join(sorted(d.accepted))}. (An address in the source's "
                   "domain cannot be used until that domain has moved to the target.)")
    existing = d.by_address.get(row.target.lower())
    note = "" if m.in_scope else (f" Not in the scope group '{scope_group}' yet: readiness offers to add them."
                                  if scope_group else "")
    status = WARNING if note else OK
    if existing is None:
        return res(status, "A MailUser will be created." + note, "", "new")
    kind = existing.recipient_type_details
    if kind == "MailUser":
        if d.belongs_to(existing, m):
            return res(status, "The existing MailUser will be checked and updated." + note, "", "MailUser")
        if existing.exchange_guid and existing.exchange_guid != ZERO_GUID:
            return res(ERROR, f"{row.target} is a MailUser prepared for another mailbox (ExchangeGuid "
                       f"{existing.exchange_guid}).", "Map this user to another address, or fix the other mapping.",
                       kind)
        return res(WARNING, f"{row.target} is an existing MailUser (forwarding to "
                   f"{bare(existing.external_email_address) or 'nothing'}); it will be taken over for this user."
                   + note, "If that MailUser belongs to someone else, map this user to another address.", kind)
    if kind in MAILBOX_KINDS:
        return res(ERROR, f"{row.target} already has a mailbox in {d.target_name} ({kind}); a move needs a MailUser "
                   "there.", "If the mailbox was made by licensing the user too early and is empty, remove it "
                   f"(Remove-Mailbox {row.target}) and prepare again; otherwise map this user to another "
                   "address.", kind)
    return res(ERROR, f"{row.target} is already used by {existing.display_name or existing.name} ({kind}).",
               "Map this user to another address.", kind)

"""Mapping without the network: CSV bad input (headers, encodings, separators, missing values) and row validation
(unknown users, duplicates, foreign domains, a mailbox or someone else's MailUser as target)."""

from __future__ import annotations

from typing import Any

from xtwizard.cloud.exchange import Recipient
from xtwizard.migration.users import MappingRow, SourceMailbox
from xtwizard.migration.users.mapping import Directory, auto_map, decode_csv, parse_csv, to_csv, validate_rows

G1, G2 = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def mailbox(local: str, guid: str, in_scope: bool = True) -> SourceMailbox:
    return SourceMailbox(f"{local}@north.example", local, local.title(), local, f"{local}@north.example",
                         "UserMailbox", guid, "", f"/o=x/cn={local}", (f"SMTP:{local}@north.example",),
                         in_scope=in_scope)


def recipient(address: str, kind: str, guid: str = "", external: str = "", name: str = "") -> Recipient:
    return Recipient(address, name or address, name or address, kind, address, address, external, guid, "", "",
                     (f"SMTP:{address}",), (), False, {"Guid": address})


def directory(*targets: Recipient) -> Directory:
    return Directory("Northwind", "Fabrikam", [mailbox("ann", G1), mailbox("bob", G2, in_scope=False)],
                     list(targets), {"fab.example", "fab.onmicrosoft.com"})


def test_csv_round_trip_and_the_formats_admins_save() -> None:
    rows = [MappingRow("ann@north.example", "ann@fab.example"), MappingRow("bob@north.example", "bob@fab.example")]
    text = to_csv(rows)
    assert text.startswith("SourceUser,TargetUser\r\n")
    assert parse_csv(text) == (rows, [])
    # Excel: UTF-8 with BOM, ';' separators, other header spellings, UTF-16, Windows-1252, blank lines.
    assert parse_csv(decode_csv("\ufeffSource User;Target Email\r\nann@north.example;ann@fab.example\r\n\r\n"
                                .encode("utf-8-sig")))[0] == rows[:1]
    assert parse_csv(decode_csv("SourceUser\tTargetUser\nann@north.example\tann@fab.example\n".encode("utf-16")))[0] \
        == rows[:1]
    text_1252 = "SourceUser,TargetUser\nj\xfcrgen@north.example,juergen@fab.example\n".encode("cp1252")
    assert parse_csv(decode_csv(text_1252))[0][0].source == "j\xfcrgen@north.example"


def test_csv_bad_input_is_reported_line_by_line() -> None:
    rows, problems = parse_csv("Name,Mail\nann,ann@north.example\n")
    assert rows == [] and "'Name', 'Mail'" in problems[0] and "SourceUser and TargetUser" in problems[0]
    rows, problems = parse_csv("SourceUser,TargetUser\nann@north.example,\n,bob@fab.example\nbob@north.example,b@fab.example\n")
    assert [r.source for r in rows] == ["bob@north.example"]
    assert problems == ["Line 2: no target address; the line was left out.",
                        "Line 3: no source address; the line was left out."]
    assert "empty" in parse_csv("")[1][0]
    assert parse_csv("SourceUser,TargetUser\n")[1] == ["The file has a header but no users."]


def test_every_row_is_validated_with_how_to_resolve_it() -> None:
    d = directory(recipient("taken@fab.example", "UserMailbox"),
                  recipient("other@fab.example", "MailUser", guid=G2),
                  recipient("ann.old@fab.example", "MailUser", external="SMTP:ann@north.example"))
    def one(source: str, target: str) -> MappingRow:
        return validate_rows([MappingRow(source, target)], d, "Wave 1")[0]

    new = one("ann@north.example", "ann@fab.example")
    assert (new.status, new.target_kind) == ("ok", "new") and "created" in new.message
    unknown = one("nobody@north.example", "x@fab.example")
    assert unknown.status == "error" and "no mailbox with the address nobody@north.example" in unknown.message
    assert unknown.fix
    foreign = one("bob@north.example", "bob@north.example")
    assert foreign.status == "error" and "north.example is not a domain of Fabrikam" in foreign.message
    assert "fab.example" in foreign.fix
    box = one("bob@north.example", "taken@fab.example")
    assert box.status == "error" and "already has a mailbox" in box.message
    assert "Remove-Mailbox taken@fab.example" in box.fix
    bobs = one("bob@north.example", "other@fab.example")  # the MailUser with Bob's GUID; Bob is outside the scope
    assert bobs.status == "warning" and "scope group 'Wave 1'" in bobs.message
    theirs = one("ann@north.example", "other@fab.example")
    assert theirs.status == "error" and "prepared for another mailbox" in theirs.message
    assert one("not an address", "x@fab.example").status == "error"
    dup = validate_rows([MappingRow("ann@north.example", "ann@fab.example"),
                         MappingRow("ANN@north.example", "ann2@fab.example"),
                         MappingRow("bob@north.example", "ann@fab.example")], d, "")
    assert [r.status for r in dup] == ["ok", "error", "error"]
    assert "listed more than once (first on row 1)" in dup[1].message
    assert "target of two users (also row 1)" in dup[2].message
    # Auto-map keeps the MailUser already prepared for Ann (found by its ExternalEmailAddress).
    assert auto_map(d.mailboxes, "fab.example", d) == [MappingRow("ann@north.example", "ann.old@fab.example"),
                                                       MappingRow("bob@north.example", "other@fab.example")]
    assert auto_map(d.mailboxes, "fab.example", None)[0].target == "ann@fab.example"


def test_source_mailbox_x500s_and_licence(monkeypatch: Any) -> None:
    m = SourceMailbox("a@n.example", "a", "A", "a", "a@n.example", "UserMailbox", G1, "", "/o=x/cn=a",
                      ("SMTP:a@n.example", "x500:/o=old/cn=a", "X500:/o=x/cn=a"), ("ExchangeT2TMbxMove",))
    assert m.x500s == ("X500:/o=x/cn=a", "X500:/o=old/cn=a") and m.licensed and not m.has_archive

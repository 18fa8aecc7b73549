"""The generic OData helpers behind Graph's lists (xtwizard/sandbox/odata.py), without a server."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xtwizard.sandbox.odata import (
    EntityType,
    Field,
    ODataError,
    decode_skiptoken,
    encode_skiptoken,
    next_link,
    page,
    parse_filter,
    parse_orderby,
    parse_search,
    parse_select,
    parse_top,
    project,
)

THING = EntityType("microsoft.graph.thing", "Thing",
                   frozenset({"id", "name", "enabled", "tags", "licenses", "count", "note"}),
                   {"id": Field("Edm.String"), "name": Field("Edm.String"), "enabled": Field("Edm.Boolean"),
                    "tags": Field("Edm.String", collection=True), "count": Field("Edm.Int32"),
                    "licenses": Field("microsoft.graph.assignedLicense", collection=True,
                                      members={"skuId": "Edm.Guid"})},
                   frozenset({"name"}), frozenset({"name"}))
SKU = "946ce899-873d-44bb-9d8b-671870cbfdbf"
ITEMS = [
    {"id": "1", "name": "Migration Wave 1", "enabled": True, "tags": ["a", "b"], "licenses": [{"skuId": SKU}],
     "count": 3},
    {"id": "2", "name": "O'Brien", "enabled": False, "tags": [], "licenses": [], "count": 10},
    {"id": "3", "name": "finance", "enabled": True, "tags": ["b"], "licenses": [], "count": None},
]


def ids(text: str, *, advanced: bool = False) -> list[str]:
    flt = parse_filter(text, THING, advanced=advanced)
    return [i["id"] for i in ITEMS if flt(i)]


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    assert ids("name eq 'finance' or enabled eq true and id eq '1'") == ["1", "3"]
    assert ids("(name eq 'finance' or enabled eq true) and id eq '1'") == ["1"]


def test_string_literals_escape_quotes_and_compare_case_insensitively() -> None:
    assert ids("name eq 'o''brien'") == ["2"]
    assert ids("startswith(name,'MIGRATION')") == ["1"]
    assert ids("id in ('1', '3')") == ["1", "3"]


def test_lambdas_over_primitive_and_complex_collections() -> None:
    assert ids("tags/any(t:t eq 'b')") == ["1", "3"]
    assert ids(f"licenses/any(x:x/skuId eq {SKU})") == ["1"]
    assert ids("tags/any()") == ["1", "3"]
    with pytest.raises(ODataError) as exc:
        ids(f"licenses/any(x:x/skuId eq '{SKU}')")
    assert "incompatible types" in exc.value.message


def test_advanced_operators_only_with_advanced_queries() -> None:
    for text in ("enabled ne true", "not (enabled eq true)", "endswith(name,'ce')", "count gt 2",
                 "tags/all(t:t eq 'b')"):
        with pytest.raises(ODataError) as exc:
            ids(text)
        assert exc.value.code == "Request_UnsupportedQuery", text
    assert ids("enabled ne true", advanced=True) == ["2"]
    assert ids("not (enabled eq true)", advanced=True) == ["2"]
    assert ids("count gt 2", advanced=True) == ["1", "2"]
    assert ids("tags/all(t:t eq 'b')", advanced=True) == ["2", "3"]


@pytest.mark.parametrize("text, code, fragment", [
    ("name eq", "BadRequest", "Syntax error at position 7 in 'name eq'"),
    ("name eq 'x", "BadRequest", "unterminated string literal"),
    ("name eq \"x\"", "BadRequest", "character '\"' is not valid at position 8"),
    ("shoe eq 'x'", "BadRequest", "Could not find a property named 'shoe' on type 'microsoft.graph.thing'"),
    ("note eq 'x'", "Request_UnsupportedQuery", "'note' of resource 'Thing'"),
    ("enabled eq 1", "BadRequest", "'Edm.Boolean' and 'Edm.Int32'"),
    ("", "BadRequest", "Syntax error"),
])
def test_filter_errors_name_the_problem(text: str, code: str, fragment: str) -> None:
    with pytest.raises(ODataError) as exc:
        parse_filter(text, THING)
    assert exc.value.code == code and fragment in exc.value.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_filter_text_parses_or_fails_with_a_400(text: str) -> None:
    try:
        flt = parse_filter(text, THING, advanced=True)
    except ODataError as exc:
        assert exc.status == 400
        return
    for item in ITEMS:
        assert flt(item) in (True, False)


def test_select_top_orderby() -> None:
    assert parse_select("name, enabled", THING) == ["name", "enabled"]
    assert parse_select(None, THING) is None
    assert project(ITEMS[0], ["name"]) == {"id": "1", "name": "Migration Wave 1"}
    for bad in ("", "name,", "shoe"):
        with pytest.raises(ODataError):
            parse_select(bad, THING)
    assert parse_top(None) == 100 and parse_top("999") == 999
    for bad in ("0", "1000", "x", "-1", "1.5"):
        with pytest.raises(ODataError):
            parse_top(bad)
    assert parse_orderby("name desc", THING) == ("name", True)
    with pytest.raises(ODataError) as exc:
        parse_orderby("count", THING)
    assert exc.value.code == "Request_UnsupportedQuery"


def test_search_terms() -> None:
    found = parse_search('"name:wave" OR "name:fin"', THING)
    assert [i["id"] for i in ITEMS if found(i)] == ["1", "3"]
    both = parse_search('"name:migration" AND "name:wave"', THING)
    assert [i["id"] for i in ITEMS if both(i)] == ["1"]
    for bad in ("wave", '"shoe:x"', '"note:x"'):
        with pytest.raises(ODataError):
            parse_search(bad, THING)


def test_skiptoken_round_trip_is_bound_to_its_query() -> None:
    token = encode_skiptoken(40, "abc")
    assert decode_skiptoken(token, "abc") == 40
    for bad_token, fp in ((token, "other"), ("garbage", "abc"), (token[:-3], "abc"), (token + "!!", "abc")):
        with pytest.raises(ODataError) as exc:
            decode_skiptoken(bad_token, fp)
        assert exc.value.code == "Directory_ExpiredPageToken"
    pg = page(list(range(5)), 4, 2)  # type: ignore[arg-type]
    assert pg.items == [4] and pg.next_offset is None
    link = next_link("https://h", "/v1.0/users", {"$top": ["2"], "$skiptoken": ["old"], "$filter": ["a eq 'b c'"]},
                     token)
    assert link.startswith("https://h/v1.0/users?$top=2&$filter=a%20eq%20%27b%20c%27&$skiptoken=")
    assert "old" not in link

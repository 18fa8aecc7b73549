"""OData query options as Microsoft's directory services read them: $filter, $select, $top, paging.

Generic on purpose: a backend describes its entity type once (an `EntityType`) and gets the parser,
the evaluator, projection and skip-token paging.  Errors are raised as `ODataError` (status, code,
message); each backend turns them into its own error body.

$filter grammar (the subset Microsoft Graph accepts for directory objects without advanced queries):
    expr     := or
    or       := and ('or' and)*
    and      := unary ('and' unary)*
    unary    := 'not' unary | '(' expr ')' | call | compare
    call     := ('startswith' | 'endswith' | 'contains') '(' path ',' literal ')'
    compare  := path op literal | path 'in' '(' literal (',' literal)* ')'
                | path '/' ('any' | 'all') '(' var ':' expr ')'
    op       := eq | ne | gt | ge | lt | le
Literals: 'string' ('' escapes a quote), true, false, null, integers, bare GUIDs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

JSON = dict[str, Any]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999

# Operators and functions a directory collection answers without `ConsistencyLevel: eventual` + $count=true.
BASIC_OPERATORS = frozenset({"eq", "in", "startswith", "any", "and", "or"})

_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(_GUID_RE.match(value))


class ODataError(Exception):
    """A query the service refuses: status, service error code, message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Field:
    """A filterable property: its EDM type; for a collection of complex values, the members' types."""

    edm: str  # Edm.String | Edm.Boolean | Edm.Guid | Edm.Int32 | Edm.DateTimeOffset
    collection: bool = False
    members: Mapping[str, str] | None = None


@dataclass(frozen=True)
class EntityType:
    """What queries may name: every property ($select), the filterable ones ($filter), the sortable ones."""

    name: str  # e.g. "microsoft.graph.group"
    resource: str  # the directory's resource name in Request_UnsupportedQuery messages, e.g. "Group"
    properties: frozenset[str]
    filterable: Mapping[str, Field] = field(default_factory=dict)
    sortable: frozenset[str] = frozenset()
    searchable: frozenset[str] = frozenset({"displayName", "description", "mail", "mailNickname",
                                            "userPrincipalName", "givenName", "surname"})


# --- $filter: tokens --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Tok:
    kind: str  # name | str | num | guid | sym | end
    value: Any
    pos: int


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUM_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_GUID_TOKEN_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _syntax(text: str, pos: int) -> ODataError:
    return ODataError("BadRequest", f"Invalid filter clause: Syntax error at position {pos} in '{text}'.")


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in " \t":
            i += 1
            continue
        if c in "(),/:":
            out.append(_Tok("sym", c, i))
            i += 1
            continue
        if c == "'":
            j = i + 1
            buf: list[str] = []
            while True:
                if j >= len(text):
                    raise ODataError("BadRequest", f"Invalid filter clause: There is an unterminated string literal "
                                                   f"at position {j} in '{text}'.")
                if text[j] == "'":
                    if j + 1 < len(text) and text[j + 1] == "'":
                        buf.append("'")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            out.append(_Tok("str", "".join(buf), i))
            i = j + 1
            continue
        m = _GUID_TOKEN_RE.match(text, i)
        if m and (m.end() == len(text) or not (text[m.end()].isalnum() or text[m.end()] == "_")):
            out.append(_Tok("guid", m.group().lower(), i))
            i = m.end()
            continue
        m = _NUM_RE.match(text, i)
        if m and (m.end() == len(text) or not text[m.end()].isalpha()):
            num = m.group()
            out.append(_Tok("num", float(num) if "." in num else int(num), i))
            i = m.end()
            continue
        m = _NAME_RE.match(text, i)
        if m:
            out.append(_Tok("name", m.group(), i))
            i = m.end()
            continue
        raise ODataError("BadRequest", f"Invalid filter clause: Syntax error: character '{c}' is not valid at "
                                       f"position {i} in '{text}'.")
    out.append(_Tok("end", None, len(text)))
    return out


# --- $filter: syntax tree ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Literal:
    value: Any
    edm: str  # Edm.String | Edm.Boolean | Edm.Guid | Edm.Int32 | Edm.Double | null


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]  # ("displayName",) or ("x", "skuId") inside a lambda bound to x


@dataclass(frozen=True)
class Compare:
    op: str
    path: Path
    values: tuple[Literal, ...]  # one, or several for `in`


@dataclass(frozen=True)
class Call:
    name: str
    path: Path
    arg: Literal


@dataclass(frozen=True)
class Lambda:
    path: Path
    kind: str  # any | all
    var: str
    body: Node | None


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    inner: Node


Node = Compare | Call | Lambda | BoolOp | Not

_COMPARE_OPS = ("eq", "ne", "gt", "ge", "lt", "le")
_FUNCTIONS = ("startswith", "endswith", "contains")
_OP_KIND = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual", "lt": "LessThan",
            "le": "LessThanOrEqual"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def expect_sym(self, sym: str) -> None:
        tok = self.take()
        if tok.kind != "sym" or tok.value != sym:
            raise _syntax(self.text, tok.pos)

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "name" and tok.value.lower() == word

    def parse(self) -> Node:
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise _syntax(self.text, tok.pos)
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.is_word("or"):
            self.take()
            node = BoolOp("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.unary()
        while self.is_word("and"):
            self.take()
            node = BoolOp("and", node, self.unary())
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if self.is_word("not"):
            self.take()
            return Not(self.unary())
        if tok.kind == "sym" and tok.value == "(":
            self.take()
            node = self.or_()
            self.expect_sym(")")
            return node
        if tok.kind == "name" and tok.value.lower() in _FUNCTIONS:
            nxt = self.toks[self.i + 1]
            if nxt.kind == "sym" and nxt.value == "(":
                return self.call()
        return self.compare()

    def call(self) -> Node:
        name = self.take().value.lower()
        self.expect_sym("(")
        path = self.path()
        self.expect_sym(",")
        arg = self.literal()
        self.expect_sym(")")
        return Call(name, path, arg)

    def path(self) -> Path:
        tok = self.take()
        if tok.kind != "name" or tok.value.lower() in ("and", "or", "not"):
            raise _syntax(self.text, tok.pos)
        parts = [tok.value]
        while self.peek().kind == "sym" and self.peek().value == "/":
            nxt = self.toks[self.i + 1]
            if nxt.kind == "name" and nxt.value.lower() in ("any", "all"):
                break
            self.take()
            seg = self.take()
            if seg.kind != "name":
                raise _syntax(self.text, seg.pos)
            parts.append(seg.value)
        return Path(tuple(parts))

    def literal(self) -> Literal:
        tok = self.take()
        if tok.kind == "str":
            return Literal(tok.value, "Edm.String")
        if tok.kind == "guid":
            return Literal(tok.value, "Edm.Guid")
        if tok.kind == "num":
            return Literal(tok.value, "Edm.Double" if isinstance(tok.value, float) else "Edm.Int32")
        if tok.kind == "name" and tok.value in ("true", "false"):
            return Literal(tok.value == "true", "Edm.Boolean")
        if tok.kind == "name" and tok.value == "null":
            return Literal(None, "null")
        raise _syntax(self.text, tok.pos)

    def compare(self) -> Node:
        path = self.path()
        tok = self.peek()
        if tok.kind == "sym" and tok.value == "/":
            self.take()
            kind = self.take().value.lower()
            self.expect_sym("(")
            if self.peek().kind == "sym" and self.peek().value == ")":
                self.take()
                return Lambda(path, kind, "", None)
            var_tok = self.take()
            if var_tok.kind != "name":
                raise _syntax(self.text, var_tok.pos)
            self.expect_sym(":")
            body = self.or_()
            self.expect_sym(")")
            return Lambda(path, kind, var_tok.value, body)
        op_tok = self.take()
        if op_tok.kind != "name":
            raise _syntax(self.text, op_tok.pos)
        op = op_tok.value.lower()
        if op == "in":
            self.expect_sym("(")
            values = [self.literal()]
            while self.peek().kind == "sym" and self.peek().value == ",":
                self.take()
                values.append(self.literal())
            self.expect_sym(")")
            return Compare("in", path, tuple(values))
        if op not in _COMPARE_OPS:
            raise _syntax(self.text, op_tok.pos)
        return Compare(op, path, (self.literal(),))


# --- $filter: checking against the entity type and evaluating ------------------------------------------------

@dataclass
class Filter:
    """A parsed, type-checked $filter: call it on an object (the JSON the service shows) to test it."""

    node: Node
    text: str

    def __call__(self, obj: Mapping[str, Any]) -> bool:
        return _eval(self.node, obj, {})


def _unsupported(prop: str, etype: EntityType) -> ODataError:
    return ODataError("Request_UnsupportedQuery", f"Unsupported or invalid query filter clause specified for "
                                                  f"property '{prop}' of resource '{etype.resource}'.")


def _no_property(prop: str, type_name: str) -> ODataError:
    return ODataError("BadRequest", f"Could not find a property named '{prop}' on type '{type_name}'.")


def _compatible(field_edm: str, lit: Literal) -> bool:
    if lit.edm == "null":
        return True
    if field_edm in ("Edm.String", "Edm.DateTimeOffset"):
        return lit.edm == "Edm.String"
    if field_edm in ("Edm.Int32", "Edm.Int64", "Edm.Double"):
        return lit.edm in ("Edm.Int32", "Edm.Double")
    return field_edm == lit.edm


def _incompatible(field_edm: str, lit: Literal, op: str) -> ODataError:
    return ODataError("BadRequest", "Invalid filter clause: A binary operator with incompatible types was detected. "
                                    f"Found operand types '{field_edm}' and '{lit.edm}' for operator kind "
                                    f"'{_OP_KIND.get(op, 'Equal')}'.")


def parse_filter(text: str, etype: EntityType, *, advanced: bool = False) -> Filter:
    """Parse and type-check; `advanced` is true when the caller sent ConsistencyLevel: eventual and $count=true."""
    if not text.strip():
        raise _syntax(text, 0)
    node = _Parser(text).parse()
    _check(node, etype, advanced, {})
    return Filter(node, text)


def _field_of(path: Path, etype: EntityType, scope: dict[str, Field | str]) -> tuple[str, str]:
    """(edm type, display name) of a property path, or the service's error."""
    head = path.parts[0]
    if head in scope:
        bound = scope[head]
        if isinstance(bound, str):  # lambda over a collection of primitives: the variable itself
            if len(path.parts) > 1:
                raise _no_property(path.parts[1], bound)
            return bound, head
        members = bound.members or {}
        if len(path.parts) != 2 or path.parts[1] not in members:
            raise _no_property(path.parts[-1], "microsoft.graph." + head)
        return members[path.parts[1]], path.parts[1]
    name = "/".join(path.parts)
    if head not in etype.properties:
        raise _no_property(head, etype.name)
    fld = etype.filterable.get(name)
    if fld is None or fld.collection:
        raise _unsupported(name, etype)
    return fld.edm, name


def _check(node: Node, etype: EntityType, advanced: bool, scope: dict[str, Field | str]) -> None:
    if isinstance(node, BoolOp):
        _check(node.left, etype, advanced, scope)
        _check(node.right, etype, advanced, scope)
    elif isinstance(node, Not):
        if not advanced:
            raise _unsupported(_first_path(node.inner), etype)
        _check(node.inner, etype, advanced, scope)
    elif isinstance(node, Compare):
        edm, name = _field_of(node.path, etype, scope)
        if node.op not in BASIC_OPERATORS and not advanced:
            raise _unsupported(name, etype)
        for lit in node.values:
            if not _compatible(edm, lit):
                raise _incompatible(edm, lit, node.op)
    elif isinstance(node, Call):
        edm, name = _field_of(node.path, etype, scope)
        if edm != "Edm.String":
            raise ODataError("BadRequest", f"Invalid filter clause: No function signature for the function with "
                                           f"name '{node.name}' matches the specified arguments.")
        if node.arg.edm != "Edm.String":
            raise _incompatible(edm, node.arg, "eq")
        if node.name not in BASIC_OPERATORS and not advanced:
            raise _unsupported(name, etype)
    else:  # Lambda
        name = "/".join(node.path.parts)
        if node.path.parts[0] not in etype.properties:
            raise _no_property(node.path.parts[0], etype.name)
        fld = etype.filterable.get(name)
        if fld is None or not fld.collection:
            raise _unsupported(name, etype)
        if node.kind != "any" and not advanced:
            raise _unsupported(name, etype)
        if node.body is not None:
            inner = dict(scope)
            inner[node.var] = fld if fld.members else fld.edm
            _check(node.body, etype, advanced, inner)


def _first_path(node: Node) -> str:
    if isinstance(node, BoolOp):
        return _first_path(node.left)
    if isinstance(node, Not):
        return _first_path(node.inner)
    return "/".join(node.path.parts)


def _value(obj: Mapping[str, Any], path: Path, scope: dict[str, Any]) -> Any:
    if path.parts[0] in scope:
        cur: Any = scope[path.parts[0]]
        rest = path.parts[1:]
    else:
        cur = obj
        rest = path.parts
    for part in rest:
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    return cur


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _cmp(op: str, left: Any, right: Any) -> bool:
    if op == "eq":
        return bool(_norm(left) == _norm(right))
    if op == "ne":
        return bool(_norm(left) != _norm(right))
    if left is None or right is None:
        return False
    try:
        a, b = _norm(left), _norm(right)
        return bool({"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op])
    except TypeError:
        return False


def _eval(node: Node, obj: Mapping[str, Any], scope: dict[str, Any]) -> bool:
    if isinstance(node, BoolOp):
        if node.op == "and":
            return _eval(node.left, obj, scope) and _eval(node.right, obj, scope)
        return _eval(node.left, obj, scope) or _eval(node.right, obj, scope)
    if isinstance(node, Not):
        return not _eval(node.inner, obj, scope)
    if isinstance(node, Compare):
        value = _value(obj, node.path, scope)
        if node.op == "in":
            return any(_cmp("eq", value, lit.value) for lit in node.values)
        return _cmp(node.op, value, node.values[0].value)
    if isinstance(node, Call):
        value = _value(obj, node.path, scope)
        if not isinstance(value, str) or not isinstance(node.arg.value, str):
            return False
        v, a = value.lower(), node.arg.value.lower()
        return {"startswith": v.startswith(a), "endswith": v.endswith(a), "contains": a in v}[node.name]
    items = _value(obj, node.path, scope)
    if not isinstance(items, list):
        items = []
    if node.body is None:
        return bool(items) if node.kind == "any" else True
    results = (_eval(node.body, obj, {**scope, node.var: item}) for item in items)
    return any(results) if node.kind == "any" else all(results)


# --- $select, $top, $orderby ---------------------------------------------------------------------------------

def parse_select(raw: str | None, etype: EntityType) -> list[str] | None:
    """The selected properties in request order, or None when $select is absent."""
    if raw is None:
        return None
    names = [p.strip() for p in raw.split(",")]
    if not raw.strip() or any(not n for n in names):
        raise ODataError("BadRequest", f"Parsing OData Select and Expand failed: Term '{raw}' is not valid in a "
                                       f"$select or $expand expression.")
    out: list[str] = []
    for n in names:
        if n == "*":
            out.extend(sorted(etype.properties))
            continue
        if n not in etype.properties:
            raise ODataError("BadRequest", f"Parsing OData Select and Expand failed: Could not find a property "
                                           f"named '{n}' on type '{etype.name}'.")
        if n not in out:
            out.append(n)
    return out


def project(obj: Mapping[str, Any], select: Sequence[str] | None, *, keep: Iterable[str] = ("id",)) -> JSON:
    """The object cut down to the selected properties (always with `keep` and any @odata annotations)."""
    if select is None:
        return dict(obj)
    wanted = set(select) | set(keep)
    return {k: v for k, v in obj.items() if k in wanted or k.startswith("@odata.")}


def parse_top(raw: str | None, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if raw is None:
        return default
    text = raw.strip()
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise ODataError("BadRequest", f"Invalid value '{raw}' for $top query option found. The $top query option "
                                       f"requires a non-negative integer value.")
    value = int(text)
    if not 1 <= value <= maximum:
        raise ODataError("Request_UnsupportedQuery", f"Invalid page size specified: '{value}'. Must be between 1 "
                                                     f"and {maximum} inclusive.")
    return value


def parse_orderby(raw: str | None, etype: EntityType) -> tuple[str, bool] | None:
    """(property, descending) or None; only one sortable property, as the directory allows."""
    if raw is None:
        return None
    parts = raw.strip().split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise ODataError("BadRequest", f"Invalid $orderby clause: Syntax error at position 0 in '{raw}'.")
    prop = parts[0]
    if prop not in etype.properties:
        raise ODataError("BadRequest", f"Could not find a property named '{prop}' on type '{etype.name}'.")
    if prop not in etype.sortable:
        raise ODataError("Request_UnsupportedQuery", "Sorting not supported for current query.")
    return prop, len(parts) == 2 and parts[1].lower() == "desc"


def sort_items(items: list[JSON], order: tuple[str, bool] | None) -> list[JSON]:
    if order is None:
        return items
    prop, desc = order
    present = [i for i in items if i.get(prop) is not None]
    missing = [i for i in items if i.get(prop) is None]
    present.sort(key=lambda i: str(i[prop]).lower(), reverse=desc)
    return present + missing


# --- $search (advanced queries: tokenized prefix match on a few string properties) ---------------------------

_SEARCH_TERM_RE = re.compile(r'"([A-Za-z]+):([^"]*)"')


def parse_search(raw: str, etype: EntityType) -> Callable[[Mapping[str, Any]], bool]:
    """`"displayName:wave" OR "mail:wave"`: each term matches when a word of the property starts with the value."""
    text = raw.strip()
    terms = _SEARCH_TERM_RE.findall(text)
    rest = _SEARCH_TERM_RE.sub("", text).replace("AND", "").replace("OR", "").strip()
    if not terms or rest:
        raise ODataError("Request_UnsupportedQuery", f"Syntax error: invalid $search query '{raw}'. Use "
                                                     f"\"property:value\" terms joined by AND or OR.")
    for prop, _ in terms:
        if prop not in etype.properties or prop not in etype.searchable:
            raise ODataError("Request_UnsupportedQuery", f"Unsupported or invalid query filter clause specified for "
                                                         f"property '{prop}' of resource '{etype.resource}'.")
    use_any = " OR " in text

    def term_matches(obj: Mapping[str, Any], prop: str, value: str) -> bool:
        have = obj.get(prop)
        if not isinstance(have, str):
            return False
        want = value.lower()
        words = re.split(r"[^0-9a-z]+", have.lower())
        return have.lower().startswith(want) or any(w.startswith(want) for w in words if w)

    def match(obj: Mapping[str, Any]) -> bool:
        results = (term_matches(obj, p, v) for p, v in terms)
        return any(results) if use_any else all(results)

    return match


# --- paging ----------------------------------------------------------------------------------------------------

def query_fingerprint(path: str, parts: Iterable[str]) -> str:
    """Ties a skip token to the query that made it, so it cannot be replayed on another collection."""
    h = hashlib.sha256(path.lower().encode("utf-8"))
    for p in parts:
        h.update(b"\0" + p.encode("utf-8"))
    return h.hexdigest()[:12]


def encode_skiptoken(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "q": fingerprint}, separators=(",", ":")).encode("utf-8")
    return "RFNwdAIAAQAAA" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_skiptoken(token: str, fingerprint: str) -> int:
    """The offset a skip token stands for, or the directory's expired-token error."""
    expired = ODataError("Directory_ExpiredPageToken", "The specified page token value has expired and can no "
                                                       "longer be included in your request.")
    if not token.startswith("RFNwdAIAAQAAA"):
        raise expired
    body = token[len("RFNwdAIAAQAAA"):]
    try:
        data = json.loads(base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise expired from None
    if (not isinstance(data, dict) or data.get("q") != fingerprint or not isinstance(data.get("o"), int)
            or isinstance(data.get("o"), bool) or data["o"] < 0):
        raise expired
    return int(data["o"])


@dataclass
class Page:
    items: list[JSON]
    next_offset: int | None


def page(items: Sequence[JSON], offset: int, size: int) -> Page:
    chunk = list(items[offset:offset + size])
    nxt = offset + size if offset + size < len(items) else None
    return Page(chunk, nxt)


def next_link(base: str, path: str, query: Mapping[str, list[str]], token: str) -> str:
    """The same request with a new $skiptoken (other options kept, in their original spelling)."""
    pairs = [(k, v) for k, vs in query.items() for v in vs if k.lstrip("$").lower() != "skiptoken"]
    pairs.append(("$skiptoken", token))
    q = "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in pairs)
    return f"{base}{quote(path, safe='/()=,$@:')}?{q}"


def first(query: Mapping[str, list[str]], name: str) -> str | None:
    """A query option by name, with or without `$`, case-insensitively (as Graph reads them)."""
    want = name.lstrip("$").lower()
    for k, vs in query.items():
        if k.lstrip("$").lower() == want and vs:
            return vs[0]
    return None


Predicate = Callable[[Mapping[str, Any]], bool]

"""Request and response types, a small router, and the error every backend raises.

Backends never see sockets: they take a `Request` and return a `Response` (or raise `HttpError`, whose
body is already in the service's own error shape).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

JSON = dict[str, Any]


class Headers:
    """Case-insensitive, single-valued request headers."""

    def __init__(self, items: Mapping[str, str] | list[tuple[str, str]] | None = None) -> None:
        items = items or []
        pairs = items.items() if isinstance(items, Mapping) else items
        self._d = {k.lower(): v for k, v in pairs}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._d.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d

    def items(self) -> list[tuple[str, str]]:
        return list(self._d.items())


@dataclass
class Request:
    service: str
    method: str
    target: str  # the raw request target: path and query
    headers: Headers
    body: bytes = b""
    client: str = "127.0.0.1"
    base_url: str = ""  # scheme://host:port of the port that took the request
    path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)
    raw_query: str = field(init=False)
    request_id: str = ""

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = unquote(parts.path) or "/"
        self.raw_query = parts.query
        self.query = parse_qs(parts.query, keep_blank_values=True)

    def q(self, name: str, default: str | None = None) -> str | None:
        """One query parameter; OData names are matched with or without the `$`."""
        for key in (name, name.lstrip("$"), "$" + name.lstrip("$")):
            if key in self.query:
                return self.query[key][0]
        return default

    def json(self, error: Callable[[str], HttpError]) -> Any:
        """The body as JSON, or the service's own 'bad request' error."""
        if not self.body:
            raise error("A request body is required.")
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise error(f"Unable to read JSON request payload: {exc.__class__.__name__}.") from None

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (first value of each field)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None,
             content_type: str = "application/json; charset=utf-8") -> Response:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode("utf-8"),
                   [("Content-Type", content_type), *(headers or [])])

    @classmethod
    def html(cls, text: str, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, text.encode("utf-8"), [("Content-Type", "text/html; charset=utf-8"),
                                                    ("Cache-Control", "no-store"), *(headers or [])])

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, b"", [("Location", location), ("Cache-Control", "no-store")])

    @classmethod
    def empty(cls, status: int = 204, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, b"", list(headers or []))

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class HttpError(Exception):
    """An error answer, already shaped the way the real service shapes it."""

    def __init__(self, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = headers or []

    def response(self) -> Response:
        if isinstance(self.payload, Response):
            return self.payload
        return Response.json(self.payload, self.status, self.headers)


Handler = Callable[..., Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    handler: Handler


class Router:
    """Method + path-template routing. `{name}` matches one segment; `{name:path}` matches the rest."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", template)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self.routes.append(Route(method.upper(), re.compile("^" + regex + "$", re.IGNORECASE), template, handler))

    def route(self, method: str, template: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, template, fn)
            return fn
        return deco

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_known): path_known tells 405 from 404."""
        path_known = False
        for r in self.routes:
            m = r.pattern.match(path)
            if m:
                path_known = True
                if r.method == method.upper():
                    return r, m.groupdict(), True
        return None, {}, path_known

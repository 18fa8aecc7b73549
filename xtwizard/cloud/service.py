"""What the typed clients share: the token-provider seam, one error base and the send-with-a-token step.

The clients never sign in themselves: they ask an async `TokenProvider` for a token per resource (the app
wraps `TenantSession.access_token` with `asyncio.to_thread`, see `session_token_provider`).  A 401 from a
service gets one forced refresh and one resend — a token revoked or rolled over mid-session heals itself,
a real refusal still reaches the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from .http import HttpPolicy, Retryable

if TYPE_CHECKING:
    from .auth import TenantSession

log = logging.getLogger("xtwizard.cloud")


class TokenProvider(Protocol):
    """An access token for `resource` (e.g. https://graph.microsoft.com); `force_refresh` skips any cache."""

    async def __call__(self, resource: str, *, force_refresh: bool = False) -> str: ...


def session_token_provider(session: TenantSession) -> TokenProvider:
    """The blocking msal session as a TokenProvider: each call runs on a worker thread, never on the loop."""

    async def token_for(resource: str, *, force_refresh: bool = False) -> str:
        return await asyncio.to_thread(session.access_token, resource, force_refresh=force_refresh)

    return token_for


class ServiceError(Exception):
    """A service answered with an error.  `status` is the HTTP status; `code` the service's error code."""

    service = "service"

    def __init__(self, status: int, code: str, message: str, request_id: str = "") -> None:
        super().__init__(f"{self.service} {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


def json_or_none(resp: httpx.Response) -> Any:
    """The body as JSON, or None when it is empty or not JSON (proxies and gateways answer in HTML)."""
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def same_origin(url: str, base: str) -> bool:
    """Whether `url` (a nextLink or an operation URL the service sent) is on the service's own origin.

    The clients send a bearer token with every request, so they follow links only to where they got them."""
    a, b = httpx.URL(url), httpx.URL(base)
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def request_id_of(resp: httpx.Response) -> str:
    return resp.headers.get("request-id") or resp.headers.get("x-ms-request-id") or ""


async def send_with_token(policy: HttpPolicy, token_for: TokenProvider, resource: str, method: str, url: str, *,
                          service: str, route: str, tenant: str = "", json: Any = None, content: bytes | None = None,
                          headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
                          retry_unsafe: bool = False, retryable: Retryable | None = None) -> httpx.Response:
    """Send through the HTTP policy with a bearer token; on 401 refresh the token once and resend once."""
    token = await token_for(resource)
    resp = await policy.send(method, url, service=service, route=route, tenant=tenant, token=token, json=json,
                             content=content, headers=headers, params=params, retry_unsafe=retry_unsafe,
                             retryable=retryable)
    if resp.status_code != 401:
        return resp
    log.info("%s %s %s -> 401; refreshing the token once", service, method, route)
    token = await token_for(resource, force_refresh=True)
    return await policy.send(method, url, service=service, route=route, tenant=tenant, token=token, json=json,
                             content=content, headers=headers, params=params, retry_unsafe=retry_unsafe,
                             retryable=retryable)

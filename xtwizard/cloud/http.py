"""The one HTTP policy for every call to Microsoft (DESIGN.md "One HTTP policy").

Timeouts, retries with backoff, 408/429/5xx with Retry-After, bounded concurrency per tenant and service,
a client-request-id on every request, and logging by allowlist: method, route template, status, duration
and request id — never a header, a query string or a body, which may carry tokens or secrets.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .logsafety import CHATTY_LOGGERS, harden_logging

log = logging.getLogger("xtwizard.http")

__all__ = ["CHATTY_LOGGERS", "HttpPolicy", "NetworkUnavailable", "RetryPolicy", "harden_logging",
           "retry_after_seconds"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
SAFE_TO_RESEND = frozenset({429, 503})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class NetworkUnavailable(Exception):
    """The service could not be reached after every retry."""

    def __init__(self, service: str, route: str, cause: BaseException) -> None:
        super().__init__(f"Could not reach {service} ({route}): {cause.__class__.__name__}")
        self.service = service
        self.route = route
        self.cause = cause


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    statuses: frozenset[int] = RETRY_STATUSES

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter for attempt 1, 2, ..."""
        return float(random.uniform(0, min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


Sleep = Callable[[float], Awaitable[None]]
Retryable = Callable[[httpx.Response], bool]


@dataclass
class HttpPolicy:
    verify: ssl.SSLContext | bool = True
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 4
    sleep: Sleep = asyncio.sleep
    transport: httpx.AsyncBaseTransport | None = None
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _gates: dict[tuple[str, str], asyncio.Semaphore] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        harden_logging()

    @classmethod
    def for_ca_bundle(cls, ca_bundle: str | None, **kwargs: Any) -> HttpPolicy:
        from .tls import client_ssl_context

        return cls(verify=client_ssl_context(ca_bundle), **kwargs)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env off: proxies/CA bundles from the environment must not silently replace ours.
            self._client = httpx.AsyncClient(verify=self.verify, timeout=self.timeout, trust_env=False,
                                             transport=self.transport, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _gate(self, tenant: str, service: str) -> asyncio.Semaphore:
        key = (tenant, service)
        if key not in self._gates:
            self._gates[key] = asyncio.Semaphore(self.concurrency)
        return self._gates[key]

    async def send(self, method: str, url: str, *, service: str, route: str, tenant: str = "",
                   token: str | None = None, json: Any = None, content: bytes | None = None,
                   headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
                   retry_unsafe: bool = False, retryable: Retryable | None = None) -> httpx.Response:
        """Send with the policy; returns the last response (success or not) or raises NetworkUnavailable.

        `route` is the path template logged instead of the URL.  Non-idempotent requests are retried on
        throttling answers (the service did nothing) but not after a lost connection unless `retry_unsafe`.
        `retryable` lets a service add its own transient answers (Exchange's concurrency message)."""
        method = method.upper()
        may_resend = method in IDEMPOTENT or retry_unsafe
        attempt = 0
        async with self._gate(tenant, service):
            while True:
                attempt += 1
                req_headers = {"client-request-id": str(uuid.uuid4()), "Accept": "application/json"}
                if token:
                    req_headers["Authorization"] = f"Bearer {token}"
                req_headers.update(headers or {})
                started = time.perf_counter()
                try:
                    resp = await self.client.request(method, url, json=json, content=content, headers=req_headers,
                                                     params=params)
                except httpx.TransportError as exc:
                    elapsed = (time.perf_counter() - started) * 1000
                    log.info("%s %s %s -> %s after %.0f ms (attempt %d)", service, method, route,
                             exc.__class__.__name__, elapsed, attempt)
                    if not may_resend or attempt >= self.retry.max_attempts:
                        raise NetworkUnavailable(service, route, exc) from exc
                    await self.sleep(self.retry.backoff(attempt))
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                request_id = resp.headers.get("request-id") or resp.headers.get("x-ms-request-id") or ""
                log.info("%s %s %s -> %d in %.0f ms request-id=%s (attempt %d)", service, method, route,
                         resp.status_code, elapsed, request_id, attempt)
                # A POST/PATCH that met a gateway error (500/502/504) may have been carried out: only answers
                # that say "nothing was done, come back later" (429, 503) are safe to resend.
                statuses = self.retry.statuses if may_resend else self.retry.statuses & SAFE_TO_RESEND
                transient = resp.status_code in statuses or (retryable is not None and retryable(resp))
                if not transient or attempt >= self.retry.max_attempts:
                    return resp
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
                if wait is None:
                    wait = self.retry.backoff(attempt)
                if wait > self.retry.max_retry_after:
                    return resp
                await resp.aread()
                await self.sleep(wait)

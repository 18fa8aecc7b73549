"""Exchange's per-tenant concurrency throttle (setting `exchange_max_concurrent`), over real HTTPS.

Requests are made truly concurrent (one connection per thread, all released by a barrier) and held in flight
by injected latency, so the counts below depend on overlap only, never on how fast this machine is."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tests.conftest import ca_context
from tests.sandbox.support import bearer, user_token
from tests.sandbox.test_exchange_support import EXO, SOURCE_ADMIN, TARGET_ADMIN
from xtwizard.sandbox.exchange.invoke import THROTTLED

LATENCY_MS = 1500  # long enough that every request of a burst has arrived while the first ones are in flight


def control(sb: Any, http: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    r = http.request(method, sb.info["control_url"] + path, **kw)
    assert r.status_code < 300, r.text
    return r


def burst(sb: Any, tenant: str, upn: str, n: int) -> list[httpx.Response]:
    """n Get-Mailbox calls at once, each on its own connection."""
    t = sb.state.tenant(tenant)
    url = f"{sb.info['exchange_url']}/{t.id}/InvokeCommand"
    token = user_token(sb, tenant, upn, EXO)
    body = {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {}}}
    gate = threading.Barrier(n)
    out: list[httpx.Response] = []

    def one() -> None:
        with httpx.Client(verify=ca_context(sb.ca_path), trust_env=False, timeout=30) as c:
            c.get(sb.info["control_url"])  # the TLS handshake, before the barrier
            gate.wait()
            out.append(c.post(url, json=body, headers=bearer(token)))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(out) == n
    return out


@pytest.fixture
def slow_exchange(sandbox: Any, http: httpx.Client) -> Any:
    control(sandbox, http, "POST", "/faults", json={"kind": "latency", "service": "exchange",
                                                   "latency_ms": LATENCY_MS})
    return sandbox


def test_without_a_limit_latency_holds_no_global_lock(slow_exchange, http):
    sb = slow_exchange
    answers = burst(sb, "source", SOURCE_ADMIN, 6)
    assert [r.status_code for r in answers] == [200] * 6
    stats = control(sb, http, "GET", "/throttle").json()["exchange"]
    assert stats["max_concurrent"] == 0
    src = stats["tenants"][sb.state.tenant("source").id]
    assert src["peak"] == 6 and src["admitted"] == 6 and src["throttled"] == 0 and src["in_flight"] == 0


def test_the_excess_over_the_limit_gets_the_real_429(slow_exchange, http):
    sb = slow_exchange
    control(sb, http, "PATCH", "/settings", json={"exchange_max_concurrent": 2,
                                                  "exchange_throttle_retry_after_seconds": 3})
    answers = burst(sb, "source", SOURCE_ADMIN, 6)
    assert sorted(r.status_code for r in answers) == [200, 200, 429, 429, 429, 429]
    for r in answers:
        if r.status_code == 429:
            assert r.headers["Retry-After"] == "3"
            err = r.json()["error"]
            assert err["code"] == "TooManyRequests" and err["message"] == THROTTLED
    src = control(sb, http, "GET", "/throttle").json()["exchange"]["tenants"][sb.state.tenant("source").id]
    assert src == {"in_flight": 0, "peak": 2, "admitted": 2, "throttled": 4}


def test_the_limit_is_per_tenant_and_counters_clear(slow_exchange, http):
    sb = slow_exchange
    control(sb, http, "PATCH", "/settings", json={"exchange_max_concurrent": 3})
    results: dict[str, list[httpx.Response]] = {}
    threads = [threading.Thread(target=lambda k=k, u=u: results.__setitem__(k, burst(sb, k, u, 3)))
               for k, u in (("source", SOURCE_ADMIN), ("target", TARGET_ADMIN))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Six requests at once, but three per tenant: nobody is throttled.
    assert all(r.status_code == 200 for rs in results.values() for r in rs)
    tenants = control(sb, http, "GET", "/throttle").json()["exchange"]["tenants"]
    assert {t: c["peak"] for t, c in tenants.items()} == {sb.state.tenant("source").id: 3,
                                                         sb.state.tenant("target").id: 3}
    control(sb, http, "DELETE", "/throttle")
    tenants = control(sb, http, "GET", "/throttle").json()["exchange"]["tenants"]
    assert all(c == {"in_flight": 0, "peak": 0, "admitted": 0, "throttled": 0} for c in tenants.values())


def test_a_throttled_answer_uses_up_no_counted_fault(sandbox, http):
    """A storm of N errors must hit N admitted requests: a 429 from the limit does not consume them."""
    control(sandbox, http, "PATCH", "/settings", json={"exchange_max_concurrent": 1})
    control(sandbox, http, "POST", "/faults", json={"kind": "latency", "service": "exchange",
                                                   "latency_ms": LATENCY_MS})
    control(sandbox, http, "POST", "/faults", json={"kind": "error", "service": "exchange", "count": 1})
    answers = burst(sandbox, "source", SOURCE_ADMIN, 3)
    assert sorted(r.status_code for r in answers) == [429, 429, 503]
    assert [f["kind"] for f in control(sandbox, http, "GET", "/faults").json()["value"]] == ["latency"]

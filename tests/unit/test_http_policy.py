"""The one HTTP policy against the real sandbox over HTTPS: throttling, dropped connections, logging."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from tests.unit.cloud_support import RecordedSleep
from xtwizard.cloud.endpoints import sandbox_endpoints
from xtwizard.cloud.http import HttpPolicy, NetworkUnavailable, RetryPolicy, retry_after_seconds


def _fault(sandbox, http, **spec):
    r = http.post(sandbox.info["control_url"] + "/faults", json=spec)
    assert r.status_code == 201, r.text


def _graph_requests(sandbox, http):
    return [row for row in http.get(sandbox.info["control_url"] + "/requests").json()["value"]
            if row["service"] == "graph"]


def _run(coro):
    return asyncio.run(coro)


def test_throttling_storm_is_waited_out_with_retry_after(sandbox, http):
    _fault(sandbox, http, kind="throttle", service="graph", count=3, retry_after=7)
    sleep = RecordedSleep()
    ep = sandbox_endpoints(sandbox.info)

    async def go():
        policy = HttpPolicy.for_ca_bundle(ep.ca_bundle, sleep=sleep)
        try:
            return await policy.send("GET", ep.graph_url + "/organization", service="graph", route="/organization")
        finally:
            await policy.aclose()

    resp = _run(go())
    assert resp.status_code not in (429, 503)
    assert sleep.waits == [7.0, 7.0, 7.0]
    assert [row["status"] for row in _graph_requests(sandbox, http)][:3] == [429, 429, 429]
    assert len(_graph_requests(sandbox, http)) == 4


def test_gives_up_after_max_attempts_and_returns_the_last_answer(sandbox, http):
    _fault(sandbox, http, kind="error", service="graph", status=503, retry_after=1)
    sleep = RecordedSleep()
    ep = sandbox_endpoints(sandbox.info)

    async def go():
        policy = HttpPolicy.for_ca_bundle(ep.ca_bundle, sleep=sleep, retry=RetryPolicy(max_attempts=3))
        try:
            return await policy.send("GET", ep.graph_url + "/organization", service="graph", route="/organization")
        finally:
            await policy.aclose()

    assert _run(go()).status_code == 503
    assert len(sleep.waits) == 2


def test_dropped_connection_is_retried_for_get_but_not_for_post(sandbox, http):
    ep = sandbox_endpoints(sandbox.info)
    sleep = RecordedSleep()

    async def go(method):
        policy = HttpPolicy.for_ca_bundle(ep.ca_bundle, sleep=sleep)
        try:
            return await policy.send(method, ep.graph_url + "/applications", service="graph", route="/applications",
                                     json={} if method == "POST" else None)
        finally:
            await policy.aclose()

    _fault(sandbox, http, kind="drop", service="graph", count=1)
    assert _run(go("GET")).status_code != 0
    assert len(sleep.waits) == 1
    _fault(sandbox, http, kind="drop", service="graph", count=1)
    with pytest.raises(NetworkUnavailable) as err:
        _run(go("POST"))
    assert err.value.service == "graph"


def test_log_lines_carry_no_token_and_no_query(sandbox, caplog):
    ep = sandbox_endpoints(sandbox.info)
    secret_token = "eyJ.secret-token-value.sig"

    async def go():
        policy = HttpPolicy.for_ca_bundle(ep.ca_bundle)
        try:
            return await policy.send("GET", ep.graph_url + "/users?$filter=secretish", service="graph",
                                     route="/users", token=secret_token)
        finally:
            await policy.aclose()

    with caplog.at_level(logging.DEBUG):
        logging.getLogger().setLevel(logging.DEBUG)
        _run(go())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "graph GET /users" in text
    assert secret_token not in text and "secretish" not in text


def test_untrusted_certificate_is_refused(sandbox):
    ep = sandbox_endpoints(sandbox.info)

    async def go():
        policy = HttpPolicy(verify=True, retry=RetryPolicy(max_attempts=1))
        try:
            return await policy.send("GET", ep.graph_url + "/organization", service="graph", route="/organization")
        finally:
            await policy.aclose()

    with pytest.raises(NetworkUnavailable) as err:
        _run(go())
    assert isinstance(err.value.cause, httpx.ConnectError)


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), ("0", 0.0), (None, None), ("soon", None)])
def test_retry_after_forms(value, expected):
    assert retry_after_seconds(value) == expected


def test_retry_after_http_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_a_create_that_met_a_gateway_error_is_not_sent_twice(sandbox, http):
    _fault(sandbox, http, kind="error", service="graph", status=502, count=1)
    sleep = RecordedSleep()
    ep = sandbox_endpoints(sandbox.info)

    async def go():
        policy = HttpPolicy.for_ca_bundle(ep.ca_bundle, sleep=sleep)
        try:
            return await policy.send("POST", ep.graph_url + "/applications", service="graph", route="/applications",
                                     json={"displayName": "x"})
        finally:
            await policy.aclose()

    assert _run(go()).status_code == 502
    assert sleep.waits == [] and len(_graph_requests(sandbox, http)) == 1

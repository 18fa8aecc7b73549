"""Real clouds are reached through the OS trust store; the sandbox only through its own CA."""

from __future__ import annotations

import ssl

import pytest
import requests
import truststore

from xtwizard.cloud.endpoints import PUBLIC_CLOUD, sandbox_endpoints
from xtwizard.cloud.http import HttpPolicy
from xtwizard.cloud.tls import client_ssl_context, requests_session


def test_real_cloud_contexts_come_from_the_os_trust_store():
    assert isinstance(client_ssl_context(None), truststore.SSLContext)
    policy = HttpPolicy.for_ca_bundle(PUBLIC_CLOUD.ca_bundle)
    assert isinstance(policy.verify, truststore.SSLContext)


def test_os_trust_store_does_not_trust_the_sandbox(sandbox):
    """Proof that the OS store is what decides: the sandbox's per-run CA is not in it."""
    with requests_session(None) as s, pytest.raises(requests.exceptions.SSLError):
        s.get(sandbox.info["control_url"], timeout=10)


def test_sandbox_sessions_trust_its_ca_and_ignore_the_environment(sandbox, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    ep = sandbox_endpoints(sandbox.info)
    with requests_session(ep.ca_bundle) as s:
        assert s.get(sandbox.info["control_url"], timeout=10).status_code == 200
    assert isinstance(client_ssl_context(ep.ca_bundle), ssl.SSLContext)

"""Shared fixtures: a real sandbox over loopback HTTPS, and clients that trust only its CA."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def ca_context(ca_path: str) -> ssl.SSLContext:
    """An SSL context that trusts the sandbox CA and nothing else."""
    return ssl.create_default_context(cafile=ca_path)


@pytest.fixture
def sandbox() -> Iterator[Any]:
    """A fresh sandbox (demo scenario) per test: tests change state, so none share one."""
    from xtwizard.sandbox import Sandbox

    sb = Sandbox("demo")
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def ca_session(sandbox: Any) -> Any:
    """A requests.Session that trusts only the sandbox CA.

    trust_env is off because REQUESTS_CA_BUNDLE on these machines would override `verify` (reference §6.6).
    """
    import requests

    s = requests.Session()
    s.trust_env = False
    s.verify = sandbox.ca_path
    yield s
    s.close()


@pytest.fixture
def http(sandbox: Any) -> Iterator[Any]:
    """An httpx client that trusts only the sandbox CA."""
    import httpx

    with httpx.Client(verify=ca_context(sandbox.ca_path), trust_env=False, timeout=30) as client:
        yield client

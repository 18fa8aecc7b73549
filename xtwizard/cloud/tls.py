"""Which certificate authorities the clients trust.

Real clouds: the operating system's trust store (through `truststore`), so that a company's TLS-inspection
proxy, whose root the IT department installed in the OS, works as it does in the browser — Python's bundled
CA list would refuse it.  The sandbox: its per-run CA bundle and nothing else.  One place for all clients
(httpx, msal's requests session, the Key Vault SDK).
"""

from __future__ import annotations

import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter


def client_ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    import truststore  # imported when a real cloud is used: it is not needed for the sandbox

    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _ContextAdapter(HTTPAdapter):
    """requests/urllib3 with a given SSLContext (requests has no other way to take one)."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ctx
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._ctx
        return super().proxy_manager_for(*args, **kwargs)


def requests_session(ca_bundle: str | None) -> requests.Session:
    """A session for msal and the Azure SDK.  trust_env is off: REQUESTS_CA_BUNDLE would override `verify`
    (reference §6.6)."""
    s = requests.Session()
    s.trust_env = False
    if ca_bundle:
        s.verify = ca_bundle
    else:
        s.mount("https://", _ContextAdapter(client_ssl_context(None)))
    return s

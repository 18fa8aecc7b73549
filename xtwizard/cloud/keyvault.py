"""Key Vault certificates for the Key Vault credential mode, through Microsoft's own SDK.

`TokenProviderCredential` adapts the async token-provider seam to azure-core's synchronous `TokenCredential`
(the SDK is sync and runs on a worker thread; tokens still come from the one tenant session — there is no
second credential with its own cache).  `KeyVaultCertificates` wraps `CertificateClient`: create a
self-signed certificate (subject, 12 months), wait for it, read its public part (DER, SHA-1 thumbprint) for
Graph's keyCredentials, delete it.  Its blocking methods have `a…` async twins that run on a thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.polling import LROPoller
from azure.keyvault.certificates import (
    CertificateClient,
    CertificateOperation,
    CertificatePolicy,
    KeyVaultCertificate,
)

from .endpoints import CloudEndpoints
from .graph import certificate_key_credential
from .http import NetworkUnavailable
from .service import ServiceError, TokenProvider

FALLBACK_TOKEN_SECONDS = 600  # when a token is not a JWT we can read, ask again after ten minutes


class KeyVaultError(ServiceError):
    """Key Vault refused or failed a call (e.g. 403 Forbidden without a data-plane role)."""

    service = "Azure Key Vault"


def _jwt_expiry(token: str) -> int | None:
    """`exp` of a JWT, read without verifying (only to know when to ask again), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
    except (binascii.Error, ValueError, AttributeError, UnicodeDecodeError):
        return None
    return int(exp) if isinstance(exp, (int, float)) else None


class TokenProviderCredential:
    """An azure-core TokenCredential over the app's async TokenProvider.

    Build it on the event loop that runs the cloud work; the SDK then calls `get_token` from a worker
    thread and the token comes from the loop.  Calling it on the loop thread itself would deadlock, so that
    is refused.

    The SDK keeps the token it got and asks again only when it is about to expire or when the vault answered
    401 to it (its challenge flow).  So a second request for a resource whose last token is still valid means
    the vault refused that token: it is answered with a forced refresh — the same "one refresh on 401" as
    the other clients (a new client sharing this credential costs one refresh too, which is harmless)."""

    def __init__(self, token_for: TokenProvider, loop: asyncio.AbstractEventLoop | None = None, *,
                 timeout: float = 300.0) -> None:
        self.token_for = token_for
        self.loop = loop or asyncio.get_running_loop()
        self.timeout = timeout
        self._handed_out: dict[str, int] = {}  # resource -> expiry of the last token given to the SDK
        self._lock = threading.Lock()

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        if not scopes:
            raise ValueError("get_token needs a scope")
        resource = scopes[0].removesuffix("/.default")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("TokenProviderCredential.get_token was called on the event loop thread; run the "
                               "Key Vault SDK with asyncio.to_thread")
        with self._lock:
            previous = self._handed_out.get(resource)
        force = claims is not None or (previous is not None and previous - time.time() > 300)
        future = asyncio.run_coroutine_threadsafe(self.token_for(resource, force_refresh=force), self.loop)
        token = future.result(self.timeout)
        expires_on = _jwt_expiry(token) or int(time.time()) + FALLBACK_TOKEN_SECONDS
        with self._lock:
            self._handed_out[resource] = expires_on
        return AccessToken(token, expires_on)

    def close(self) -> None:
        """Nothing to release: the session owns the cache."""

    def __enter__(self) -> TokenProviderCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class VaultCertificate:
    """The public part of a vault certificate: what Graph's keyCredentials and the journal need."""

    id: str                      # https://<vault>/certificates/<name>/<version> (AppSecretKeyVaultUrl)
    name: str
    version: str
    der: bytes = field(repr=False)
    thumbprint: bytes            # SHA-1 of the DER (x5t)
    subject: str
    not_before: datetime.datetime | None
    expires_on: datetime.datetime | None

    @property
    def thumbprint_hex(self) -> str:
        return self.thumbprint.hex().upper()

    def key_credential(self, display_name: str | None = None) -> dict[str, Any]:
        """This certificate as a Graph keyCredentials entry (reference G5)."""
        return certificate_key_credential(self.der, display_name or self.subject or self.name)


@dataclass
class CertificateCreation:
    """A certificate request in progress (the SDK's poller runs on its own thread)."""

    name: str
    poller: LROPoller[Any] = field(repr=False)


def _certificate(cert: KeyVaultCertificate) -> VaultCertificate:
    der = bytes(cert.cer or b"")
    props = cert.properties
    subject = cert.policy.subject if cert.policy is not None and cert.policy.subject else ""
    version = str(props.version or "") if props is not None else ""
    x5t = bytes(props.x509_thumbprint or b"") if props is not None else b""
    return VaultCertificate(id=str(cert.id or ""), name=str(cert.name or ""), version=version, der=der,
                            thumbprint=hashlib.sha1(der).digest() if der else x5t, subject=subject,
                            not_before=props.not_before if props is not None else None,
                            expires_on=props.expires_on if props is not None else None)


def _error(exc: HttpResponseError) -> KeyVaultError:
    status = int(exc.status_code or 0)
    code = ""
    message = exc.message or str(exc)
    if exc.error is not None:
        code = str(exc.error.code or "")
        message = str(exc.error.message or message)
    headers = getattr(exc.response, "headers", None) or {}
    request_id = str(headers.get("x-ms-request-id", ""))
    return KeyVaultError(status, code or f"HTTP{status}", message.splitlines()[0] if message else "", request_id)


class KeyVaultCertificates:
    """Certificates in one vault, for one signed-in admin (needs Key Vault Certificates Officer on an RBAC vault)."""

    def __init__(self, endpoints: CloudEndpoints, vault_name: str, credential: TokenProviderCredential, *,
                 polling_interval: float = 5.0, **client_kwargs: Any) -> None:
        self.vault_url = endpoints.vault_url(vault_name)
        self.polling_interval = polling_interval
        if endpoints.is_simulated:
            # The sandbox serves vaults under a path on 127.0.0.1, not on <vault>.vault.azure.net, and its CA is
            # made per run (reference §6.5-6.6).  Real clouds keep the SDK's checks and the system trust store.
            client_kwargs.setdefault("verify_challenge_resource", False)
            if endpoints.ca_bundle:
                client_kwargs.setdefault("connection_verify", endpoints.ca_bundle)
        else:
            from azure.core.pipeline.transport import RequestsTransport

            from .tls import requests_session

            # The OS trust store, as for every other client (cloud/tls.py).
            client_kwargs.setdefault("transport", RequestsTransport(session=requests_session(None),
                                                                    session_owner=True))
        self.client = CertificateClient(vault_url=self.vault_url, credential=credential, **client_kwargs)

    def close(self) -> None:
        self.client.close()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call; a 401 is retried once.

        When the vault refuses the very first token of a client (challenge discovery, then 401), the SDK gives
        up without asking for another token; the retry then runs with the cached challenge, the credential
        sees a second request and forces a refresh — one refresh on 401, as everywhere else."""
        for attempt in (1, 2):
            try:
                return fn(*args, **kwargs)
            except HttpResponseError as exc:
                if exc.status_code == 401 and attempt == 1:
                    continue
                raise _error(exc) from None
            except (ServiceRequestError, ServiceResponseError) as exc:
                raise NetworkUnavailable("vault", what, exc) from exc
        raise AssertionError("unreachable")

    # --- create ----------------------------------------------------------------------------------------------
    def begin_create_self_signed(self, name: str, subject: str, *, validity_months: int = 12) -> CertificateCreation:
        """Ask the vault for a self-signed certificate; the private key never leaves the vault."""
        if not subject.upper().startswith("CN="):
            raise ValueError("The certificate subject must start with CN=")
        policy = CertificatePolicy(issuer_name="Self", subject=subject, validity_in_months=validity_months,
                                   exportable=True, key_type="RSA", key_size=2048, reuse_key=False,
                                   content_type="application/x-pkcs12")
        poller = self._call("/certificates/{name}/create", self.client.begin_create_certificate, name, policy,
                            _polling_interval=self.polling_interval)
        return CertificateCreation(name, poller)

    def wait(self, creation: CertificateCreation, timeout: float | None = None) -> VaultCertificate:
        """Wait until the vault has issued the certificate; a failed request raises KeyVaultError, and so does
        `timeout` (status 408) — the request goes on, and a later `wait` can pick it up."""
        result = self._call("/certificates/{name}/pending", creation.poller.result, timeout)
        if not creation.poller.done():
            raise KeyVaultError(408, "Timeout", f"The vault has not issued the certificate '{creation.name}' yet; "
                                "wait again or check the vault.")
        if isinstance(result, KeyVaultCertificate):
            return _certificate(result)
        if isinstance(result, CertificateOperation):
            err = result.error
            raise KeyVaultError(400, str(getattr(err, "code", "") or result.status or "CertificateFailed"),
                                str(getattr(err, "message", "") or result.status_details or
                                    f"The certificate request ended as '{result.status}'."))
        return self.get(creation.name)

    def create_self_signed(self, name: str, subject: str, *, validity_months: int = 12,
                           timeout: float | None = None) -> VaultCertificate:
        return self.wait(self.begin_create_self_signed(name, subject, validity_months=validity_months), timeout)

    # --- read / delete ------------------------------------------------------------------------------------------
    def get(self, name: str) -> VaultCertificate:
        cert = self._call("/certificates/{name}", self.client.get_certificate, name)
        return _certificate(cert)

    def find(self, name: str) -> VaultCertificate | None:
        try:
            return self.get(name)
        except KeyVaultError as exc:
            if exc.status == 404:
                return None
            raise

    def delete(self, name: str, *, purge: bool = False) -> None:
        """Delete (soft-delete) a certificate; `purge` also removes it from the vault's recycle bin."""
        poller = self._call("/certificates/{name}", self.client.begin_delete_certificate, name,
                            _polling_interval=self.polling_interval)
        self._call("/certificates/{name}", poller.result)
        if purge:
            self._call("/deletedcertificates/{name}", self.client.purge_deleted_certificate, name)

    # --- async twins -------------------------------------------------------------------------------------------
    async def acreate_self_signed(self, name: str, subject: str, *, validity_months: int = 12,
                                  timeout: float | None = None) -> VaultCertificate:
        return await asyncio.to_thread(self.create_self_signed, name, subject, validity_months=validity_months,
                                       timeout=timeout)

    async def abegin_create_self_signed(self, name: str, subject: str, *,
                                        validity_months: int = 12) -> CertificateCreation:
        return await asyncio.to_thread(self.begin_create_self_signed, name, subject, validity_months=validity_months)

    async def await_certificate(self, creation: CertificateCreation, timeout: float | None = None) -> VaultCertificate:
        return await asyncio.to_thread(self.wait, creation, timeout)

    async def aget(self, name: str) -> VaultCertificate:
        return await asyncio.to_thread(self.get, name)

    async def afind(self, name: str) -> VaultCertificate | None:
        return await asyncio.to_thread(self.find, name)

    async def adelete(self, name: str, *, purge: bool = False) -> None:
        await asyncio.to_thread(self.delete, name, purge=purge)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

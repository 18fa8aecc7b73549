"""Signing in to a tenant: one MSAL public client per tenant slot, system browser + loopback, device code.

The flow is msal's `initiate_auth_code_flow` with a loopback listener that xtwizard owns (so the wait can
be cancelled from the UI), then silent tokens for every resource from the one sign-in (reference §6.4:
the refresh token is multi-resource).  Blocking calls: run them off the GUI thread.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msal
import requests

from .endpoints import CloudEndpoints
from .http import NetworkUnavailable
from .tls import requests_session
from .tokenstore import TokenStore

# Which public client signs in is configuration (reference §3.5, §8 item 4 — which first-party clients
# accept loopback redirects and which resources each may reach is [U] for real tenants).  The default is the
# Exchange Online PowerShell module's client; an organisation can register its own and pass its id.
DEFAULT_CLIENT_ID = "fb78d390-0c51-40cd-8e17-fdbfab77341b"


class SignInError(Exception):
    """A sign-in that did not give tokens. `kind` is for code, `code` the AADSTS code when there was one."""

    def __init__(self, kind: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # cancelled | timeout | declined | wrong_tenant | same_tenant | needs_sign_in | failed
        self.code = code


@dataclass(frozen=True)
class SignedInAccount:
    tenant_id: str
    username: str
    home_account_id: str
    display_name: str


def _aadsts(description: str | None) -> str | None:
    if description and description.startswith("AADSTS"):
        return description.split(":", 1)[0]
    return None


@contextlib.contextmanager
def _network(route: str) -> Iterator[None]:
    """msal talks through requests: its connection failures become our NetworkUnavailable."""
    try:
        yield
    except requests.RequestException as exc:
        raise NetworkUnavailable("sign-in service", route, exc) from exc


class LoopbackReceiver:
    """A one-shot HTTP listener on 127.0.0.1 for the authorization response (form_post POST or query GET)."""

    DONE_PAGE = ("<!doctype html><meta charset=utf-8><title>xtwizard</title><body style='font-family:sans-serif'>"
                 "<h1>{title}</h1><p>{text}</p></body>")

    def __init__(self) -> None:
        receiver = self
        self.result: dict[str, str] | None = None
        self._got = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Silenced: request lines may carry the authorization code."""

            def _answer(self, fields: dict[str, list[str]]) -> None:
                flat = {k: v[0] for k, v in fields.items()}
                ok = "code" in flat
                if ("code" in flat or "error" in flat) and receiver.result is None:
                    receiver.result = flat
                    receiver._got.set()
                title = "You are signed in" if ok else "Sign-in did not finish"
                text = ("You can close this tab and go back to xtwizard." if ok else
                        html.escape(flat.get("error_description", "Go back to xtwizard to see what happened.")))
                body = receiver.DONE_PAGE.format(title=title, text=text).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(parse_qs(urlsplit(self.path).query))

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                self._answer(parse_qs(self.rfile.read(min(n, 65536)).decode("utf-8", "replace")))

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.redirect_uri = f"http://localhost:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="xtwizard-loopback", daemon=True)
        self._thread.start()

    def wait(self, cancel: threading.Event, timeout: float) -> dict[str, str]:
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not self._got.wait(0.1):
                if cancel.is_set():
                    raise SignInError("cancelled", "Sign-in was cancelled.")
                if deadline.is_set():
                    raise SignInError("timeout", "The browser did not finish the sign-in in time. If you closed "
                                      "the browser tab, start the sign-in again.")
            assert self.result is not None
            return self.result
        finally:
            timer.cancel()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TenantSession:
    """The signed-in admin of one tenant slot ("source" or "target")."""

    def __init__(self, slot: str, endpoints: CloudEndpoints, store: TokenStore, *,
                 client_id: str = DEFAULT_CLIENT_ID, tenant_hint: str = "organizations") -> None:
        self.slot = slot
        self.endpoints = endpoints
        self.store = store
        self.client_id = client_id
        self._cache = store.load()
        self.tenant_hint = tenant_hint
        self._app: msal.PublicClientApplication | None = None
        self._lock = threading.RLock()

    @property
    def app(self) -> msal.PublicClientApplication:
        """The msal application, made on first use: msal reads the authority's OIDC metadata over the network
        when it is constructed, which must happen off the GUI thread and may fail like any other call."""
        with self._lock:
            if self._app is None:
                with _network("sign-in service discovery"):
                    try:
                        self._app = msal.PublicClientApplication(
                            self.client_id, authority=self.endpoints.authority(self.tenant_hint),
                            token_cache=self._cache, instance_discovery=self.endpoints.instance_discovery,
                            http_client=requests_session(self.endpoints.ca_bundle), timeout=30)
                    except ValueError as exc:  # msal: "Unable to get authority configuration for ..."
                        raise SignInError("failed", f"The sign-in service did not answer as expected ({exc}).") \
                            from None
            return self._app

    # --- who ----------------------------------------------------------------------------------------------
    @property
    def account(self) -> SignedInAccount | None:
        """The signed-in account, from the token cache alone (no network: the GUI thread may ask)."""
        accounts = [a for a in self._cache.search(msal.TokenCache.CredentialType.ACCOUNT)
                    if not a.get("client_id") or a.get("client_id") == self.client_id]
        if not accounts:
            return None
        a = accounts[0]
        # home_account_id is "<oid>.<tid>" from client_info; `realm` is the authority's tenant ("organizations").
        tid = str(a.get("home_account_id", ".")).split(".")[-1]
        return SignedInAccount(tenant_id=tid, username=str(a.get("username", "")),
                               home_account_id=str(a.get("home_account_id", "")),
                               display_name=str(a.get("name") or a.get("username", "")))

    # --- sign in ------------------------------------------------------------------------------------------
    def sign_in_browser(self, open_browser: Callable[[str], None], cancel: threading.Event, *,
                        timeout: float = 600, login_hint: str | None = None) -> SignedInAccount:
        """System browser + loopback (auth code with PKCE, response by form_post)."""
        with _network("sign-in"):
            return self._sign_in_browser(open_browser, cancel, timeout, login_hint)

    def _sign_in_browser(self, open_browser: Callable[[str], None], cancel: threading.Event, timeout: float,
                         login_hint: str | None) -> SignedInAccount:
        receiver = LoopbackReceiver()
        try:
            flow = self.app.initiate_auth_code_flow([self.endpoints.scope(self.endpoints.graph_resource)],
                                                    redirect_uri=receiver.redirect_uri, prompt="select_account",
                                                    login_hint=login_hint, response_mode="form_post")
            open_browser(str(flow["auth_uri"]))
            response = receiver.wait(cancel, timeout)
        finally:
            receiver.close()
        if "error" in response:
            raise self._error(response.get("error", ""), response.get("error_description", ""))
        try:
            result = self.app.acquire_token_by_auth_code_flow(flow, response)
        except ValueError as exc:  # state mismatch and similar protocol problems
            raise SignInError("failed", f"The sign-in answer could not be used ({exc}). Try again.") from None
        return self._finish(result)

    def start_device_code(self) -> dict[str, Any]:
        with _network("device code"):
            flow = self.app.initiate_device_flow([self.endpoints.scope(self.endpoints.graph_resource)])
        if "user_code" not in flow:
            raise self._error(str(flow.get("error", "")), str(flow.get("error_description", "")))
        return dict(flow)

    def finish_device_code(self, flow: dict[str, Any], cancel: threading.Event) -> SignedInAccount:
        def should_exit(_: dict[str, Any]) -> bool:
            return cancel.is_set()

        with _network("device code"):
            result = self.app.acquire_token_by_device_flow(flow, exit_condition=should_exit)
        if cancel.is_set():
            raise SignInError("cancelled", "Sign-in was cancelled.")
        return self._finish(result)

    def _finish(self, result: dict[str, Any]) -> SignedInAccount:
        if "error" in result:
            raise self._error(str(result.get("error")), str(result.get("error_description", "")))
        self.store.save(self._cache)
        account = self.account
        if account is None:
            raise SignInError("failed", "The sign-in finished but no account came back. Try again.")
        return account

    @staticmethod
    def _error(error: str, description: str) -> SignInError:
        code = _aadsts(description)
        first_line = description.splitlines()[0] if description else error
        if error == "access_denied":
            return SignInError("declined", first_line or "The sign-in or consent was declined.", code)
        if code == "AADSTS50020":
            return SignInError("wrong_tenant", first_line, code)
        if error == "invalid_grant":
            return SignInError("needs_sign_in", first_line, code)
        return SignInError("failed", first_line or error, code)

    # --- tokens -------------------------------------------------------------------------------------------
    def access_token(self, resource: str, *, force_refresh: bool = False) -> str:
        """A token for `resource` from the cache or the refresh token; NeedsSignIn when neither works."""
        with self._lock:
            accounts = self.app.get_accounts()
            if not accounts:
                raise SignInError("needs_sign_in", f"Sign in to the {self.slot} tenant first.")
            with _network("token refresh"):
                result = self.app.acquire_token_silent_with_error([self.endpoints.scope(resource)], accounts[0],
                                                                  force_refresh=force_refresh)
            if not result or "access_token" not in result:
                desc = str((result or {}).get("error_description", ""))
                raise SignInError("needs_sign_in", f"Your sign-in to the {self.slot} tenant has expired or was "
                                  "revoked; sign in again.", _aadsts(desc))
            self.store.save(self._cache)
            return str(result["access_token"])

    def sign_out(self) -> None:
        with self._lock:
            for a in self.app.get_accounts():
                self.app.remove_account(a)
            self.store.forget()

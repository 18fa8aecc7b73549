"""A scripted browser for the sandbox's sign-in pages.

It does what a person does in a real browser: open the authorize (or admin-consent, or device-login)
URL, press the button of an account (or type a UPN under "Use another account"), accept or cancel the
consent screen, and let the final page hand the result to the app: the auto-submitting form_post is
POSTed to the redirect URI, a 302 is followed with a GET.  Only loopback redirect URIs are contacted;
anything else (e.g. https://office.com) is recorded and not fetched.

    result = ScriptedBrowser(ca_path).sign_in(auth_url, account="admin@contoso.example", consent=True)
    result.params  # {"code": ..., "state": ..., "client_info": ...} or {"error": ..., "error_description": ...}
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx


class SignInPageError(Exception):
    """The sign-in service showed an error page instead of going on (e.g. AADSTS50011)."""

    def __init__(self, code: int | None, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Form:
    id: str
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # (name, value, id)
    inputs: list[str] = field(default_factory=list)  # names of visible text inputs


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.error_code: int | None = None
        self.error_text: list[str] = []
        self.done: str | None = None
        self._in_error = False
        self._form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("id", ""), a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            kind = a.get("type", "text").lower()
            if kind == "hidden":
                self._form.fields[a.get("name", "")] = a.get("value", "")
            elif kind in ("text", "email"):
                self._form.inputs.append(a.get("name", ""))
                self._form.fields[a.get("name", "")] = a.get("value", "")
        elif tag == "button" and self._form is not None:
            self._form.buttons.append((a.get("name", ""), a.get("value", ""), a.get("id", "")))
        elif a.get("id") == "error":
            self._in_error = True
            code = a.get("data-error-code", "")
            self.error_code = int(code) if code.isdigit() else None
        elif a.get("id") == "done":
            self.done = a.get("data-outcome", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "div":
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error and data.strip():
            self.error_text.append(data.strip())


@dataclass
class SignInResult:
    """What reached (or would have reached) the app's redirect URI."""

    params: dict[str, str]
    delivery: str  # "form_post" | "redirect"
    redirect_uri: str
    delivered_status: int | None = None  # the loopback listener's answer, when it was contacted
    pages: list[str] = field(default_factory=list)  # ids of the forms walked, in order

    @property
    def ok(self) -> bool:
        return "error" not in self.params


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1")


class ScriptedBrowser:
    def __init__(self, ca_path: str, *, timeout: float = 30) -> None:
        self.client = httpx.Client(verify=ssl.create_default_context(cafile=ca_path), trust_env=False,
                                   timeout=timeout, follow_redirects=False)
        self.loopback = httpx.Client(trust_env=False, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self.client.close()
        self.loopback.close()

    def __enter__(self) -> ScriptedBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- page mechanics ----------------------------------------------------------------------------------
    def _parse(self, resp: httpx.Response) -> _PageParser:
        parser = _PageParser()
        parser.feed(resp.text)
        if parser.error_code is not None and not any(f.id in ("devicecode",) for f in parser.forms):
            raise SignInPageError(parser.error_code, " ".join(parser.error_text), resp.status_code)
        return parser

    def _submit(self, base: str, form: Form, extra: dict[str, str]) -> httpx.Response:
        url = urljoin(base, form.action)
        data = {**form.fields, **extra}
        if form.method == "post":
            return self.client.post(url, data=data)
        return self.client.get(url, params=data)

    def _finish(self, resp: httpx.Response, url: str, walked: list[str], deliver: bool) -> SignInResult | None:
        """If this response hands the result to the app, deliver it and return the result."""
        if resp.status_code in (301, 302, 303, 307, 308):
            location = resp.headers["location"]
            parts = urlsplit(location)
            query = dict(parse_qsl(parts.fragment or parts.query, keep_blank_values=True))
            redirect_uri = location.split("?", 1)[0].split("#", 1)[0]
            result = SignInResult(query, "redirect", redirect_uri, pages=walked)
            if deliver and _is_loopback(location):
                result.delivered_status = self.loopback.get(location).status_code
            return result
        return None

    def _form_post(self, parser: _PageParser, walked: list[str], deliver: bool) -> SignInResult | None:
        form = next((f for f in parser.forms if f.id == "response"), None)
        if form is None:
            return None
        result = SignInResult(dict(form.fields), "form_post", form.action, pages=walked)
        if deliver and _is_loopback(form.action):
            result.delivered_status = self.loopback.post(form.action, data=form.fields).status_code
        return result

    def _pick(self, url: str, parser: _PageParser, account: str, other: bool) -> httpx.Response:
        if other:
            form = next(f for f in parser.forms if f.id == "other")
            return self._submit(url, form, {"account": account})
        form = next(f for f in parser.forms if f.id == "signin")
        choices = [v for n, v, _ in form.buttons if n == "account"]
        match = next((v for v in choices if v.lower() == account.lower()), None)
        if match is None:
            raise LookupError(f"{account!r} is not offered on the sign-in page; offered: {choices}")
        return self._submit(url, form, {"account": match})

    # --- flows ---------------------------------------------------------------------------------------------
    def sign_in(self, url: str, *, account: str, consent: bool = True, other_account: bool = False,
                deliver: bool = True) -> SignInResult:
        """Walk an authorize or admin-consent URL to the end.

        account: the UPN whose button to press (or to type, with other_account=True).
        consent: press Accept (True) or Cancel (False) if a consent screen appears.
        deliver: hand the result to a loopback redirect URI as the browser would.
        """
        walked: list[str] = []
        resp = self.client.get(url)
        current = url
        for _ in range(6):
            done = self._finish(resp, current, walked, deliver)
            if done is not None:
                return done
            parser = self._parse(resp)
            done = self._form_post(parser, walked, deliver)
            if done is not None:
                return done
            ids = [f.id for f in parser.forms]
            if "consent" in ids:
                walked.append("consent")
                form = next(f for f in parser.forms if f.id == "consent")
                resp = self._submit(current, form, {"consent": "accept" if consent else "cancel"})
            elif "signin" in ids:
                walked.append("signin")
                resp = self._pick(current, parser, account, other_account)
            else:
                raise AssertionError(f"unexpected sign-in page (status {resp.status_code}): {resp.text[:500]}")
        raise AssertionError("the sign-in did not finish within six pages")

    def device_login(self, verification_uri: str, user_code: str, *, account: str, consent: bool = True,
                     other_account: bool = False) -> str:
        """Enter a device code on the verification page and sign in; returns the outcome shown
        ("approved" or "declined")."""
        resp = self.client.get(verification_uri)
        parser = self._parse(resp)
        form = next(f for f in parser.forms if f.id == "devicecode")
        resp = self._submit(verification_uri, form, {"otc": user_code})
        for _ in range(4):
            parser = self._parse(resp)
            if parser.done is not None:
                return parser.done
            ids = [f.id for f in parser.forms]
            if "devicecode" in ids:
                raise SignInPageError(parser.error_code, " ".join(parser.error_text), resp.status_code)
            if "consent" in ids:
                form = next(f for f in parser.forms if f.id == "consent")
                resp = self._submit(verification_uri, form, {"consent": "accept" if consent else "cancel"})
            elif "signin" in ids:
                resp = self._pick(verification_uri, parser, account, other_account)
            else:
                raise AssertionError(f"unexpected device login page: {resp.text[:500]}")
        raise AssertionError("the device login did not finish")


# --- helpers for sign-in tests ----------------------------------------------------------------------------
# They read the scenario instead of hard-coding it, so the tests follow demo.json as it grows.

def account(sb: object, tenant_key: str, *, admin: bool) -> str:
    """The UPN of a sign-in account of a scenario tenant, with (admin=True) or without an admin role that
    may grant application permissions."""
    from xtwizard.sandbox.backends.identity import ADMIN_CONSENT_ROLES

    state = sb.state  # type: ignore[attr-defined]
    with state.lock:
        tenant = state.tenant(tenant_key)
        assert tenant is not None, tenant_key
        for user in tenant.col("users").values():
            if user.get("_account") and user.get("accountEnabled", True) is not False:
                is_admin = any(r in ADMIN_CONSENT_ROLES for r in user.get("_roles", []))
                if is_admin == admin:
                    return str(user["userPrincipalName"])
    raise LookupError(f"the scenario has no {'admin' if admin else 'non-admin'} account in {tenant_key}")


def requests_session(ca_path: str) -> object:
    """What msal needs on these machines: a session that trusts the sandbox CA and ignores
    REQUESTS_CA_BUNDLE (reference §6.6)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_path
    return session

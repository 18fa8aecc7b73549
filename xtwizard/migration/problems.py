"""Errors are for people: every failure a user can meet becomes what happened, why, and what to do.

`explain()` maps the exceptions the cloud layer raises to a `Problem`; the pages show it with Retry, Copy
details and Open log folder.  Details never contain tokens or secrets (the exceptions don't carry them).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ..cloud.auth import SignInError
from ..cloud.http import NetworkUnavailable


@dataclass(frozen=True)
class Problem:
    what: str          # what happened, one sentence
    why: str           # the likely cause
    fix: str           # what to do
    details: str = ""  # for Copy details: codes, request ids, time
    retryable: bool = True


def _stamp(text: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{text}\nTime: {now}".strip()


SIGN_IN_PROBLEMS: dict[str, tuple[str, str, str]] = {
    "cancelled": ("Sign-in was cancelled.", "You pressed Cancel.", "Press Sign in when you are ready."),
    "timeout": ("The sign-in did not finish.", "The browser tab was closed or left open without signing in.",
                "Press Sign in again and finish in the browser, or use a code instead."),
    "declined": ("The sign-in or the consent was declined.",
                 "Cancel was chosen on the sign-in or permissions page.",
                 "Press Sign in again and accept the permissions xtwizard asks for; it needs them to read and "
                 "set up the tenant."),
    "wrong_tenant": ("That account belongs to another organization.",
                     "The account chosen in the browser is not a member of this tenant.",
                     "Sign in again and pick an administrator account of this company."),
    "needs_sign_in": ("The sign-in has expired or was revoked.",
                      "Sign-ins expire after a long time unused, or when an admin revokes sessions or resets "
                      "the password.", "Sign in again."),
    "failed": ("The sign-in failed.", "Microsoft's sign-in service refused it.",
               "Read the details, then try again; if it keeps failing, send the details to your IT contact."),
}


def explain(exc: BaseException) -> Problem:
    if isinstance(exc, SignInError):
        what, why, fix = SIGN_IN_PROBLEMS.get(exc.kind, SIGN_IN_PROBLEMS["failed"])
        if exc.kind in ("failed", "wrong_tenant") and str(exc):
            why = f"{why} Microsoft said: {exc}"
        return Problem(what, why, fix, _stamp(f"SignInError {exc.kind} {exc.code or ''}\n{exc}"),
                       retryable=exc.kind != "cancelled")
    if isinstance(exc, NetworkUnavailable):
        return Problem(f"Could not reach Microsoft ({exc.service}).",
                       "The network is down, a proxy or firewall blocks the connection, or the service is "
                       "not answering.", "Check the internet connection and press Retry. Nothing was changed.",
                       _stamp(f"NetworkUnavailable {exc.service} {exc.route}: {exc.cause.__class__.__name__}"))
    code = getattr(exc, "code", None) or getattr(exc, "exception_type", None)
    status = getattr(exc, "status", None)
    request_id = getattr(exc, "request_id", None)
    if status == 403:
        return Problem("Microsoft refused the request: the signed-in account lacks a permission.",
                       str(exc) or "The account's roles do not allow this.",
                       "Sign in with an account that has the role the check names, or ask an administrator to "
                       "grant it, then press Retry.",
                       _stamp(f"{exc.__class__.__name__} {status} {code or ''} request-id={request_id or ''}\n{exc}"))
    return Problem("Something went wrong.", str(exc) or exc.__class__.__name__,
                   "Press Retry. If it happens again, use Copy details and Open log folder to send the details "
                   "to your IT contact.",
                   _stamp(f"{exc.__class__.__name__} {status or ''} {code or ''} request-id={request_id or ''}\n{exc}"))

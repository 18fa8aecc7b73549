"""Errors are for people: every failure a user can meet becomes what happened, why, and what to do.

`explain()` maps the exceptions the cloud layer raises to a `Problem`; the pages show it with Retry, Copy
details and Open log folder.  Details never contain tokens or secrets (the exceptions don't carry them).
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

from ..cloud.arm import ArmError
from ..cloud.auth import SignInError
from ..cloud.exchange import ExchangeError
from ..cloud.graph import GraphError
from ..cloud.http import NetworkUnavailable
from ..cloud.keyvault import KeyVaultError
from ..cloud.service import ServiceError


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


def _service_problem(exc: ServiceError, doing: str) -> Problem | None:
    """The catalog of service errors the setup meets (reference §2.9, landscape §B.1); None: not known."""
    text = exc.message
    details = _stamp(f"{exc.__class__.__name__} {exc.status} {exc.code} request-id={exc.request_id}\n{exc}")
    doing = f" while doing: {doing}" if doing else ""
    if isinstance(exc, ExchangeError):
        if "AADSTS700016" in text:
            return Problem("Exchange could not reach the source tenant with the migration app" + doing + ".",
                           "The source admin has not consented to the app yet, or the consent has not replicated "
                           "(it can take several minutes).",
                           "Send the source admin kit; once they accepted, wait a few minutes and run the setup "
                           "again.", details)
        if "AADSTS7000215" in text or "AADSTS7000222" in text:
            return Problem("Exchange refused the app's client secret" + doing + ".",
                           "The secret is wrong, was removed, or has expired.",
                           "Run the setup again: it adds a new secret and updates the endpoint.", details)
        if "resource tenant and the accessing tenant cannot be equal" in text:
            return Problem("The endpoint points at the target itself.",
                           "RemoteTenant must be the source tenant's domain.",
                           "Check that the source and target sign-ins are the right way round.", details, False)
        if "MaximumConcurrentMigrationLimitExceeded" in exc.short_type:
            return Problem("The target's migration endpoints allow too many concurrent migrations together.",
                           "The sum of MaxConcurrentMigrations over all endpoints exceeds the tenant's limit.",
                           "Lower MaxConcurrentMigrations of another endpoint or remove an old one, then retry.",
                           details)
        if exc.short_type == "InvalidOperationInDehydratedContextException":
            return Problem("Exchange Online in this tenant is not yet customizable (dehydrated).",
                           "New organization relationships need Enable-OrganizationCustomization first.",
                           "Run the setup again: it enables customization first.", details)
        if exc.short_type == "CmdletAccessDeniedException" or exc.status == 403:
            return Problem("Exchange refused the change: the signed-in admin lacks an Exchange role" + doing + ".",
                           text, "Sign in with a Global Administrator or Exchange Administrator.", details)
        if exc.short_type == "ManagementObjectAmbiguousException":
            return Problem("More than one object has that name" + doing + ".", text,
                           "Give the object's e-mail address (or its ID) instead of its name.", details, False)
        if "maximum number of concurrent requests" in text.lower() or exc.status in (429, 503):
            return Problem("Exchange Online is busy (throttling).", text,
                           "Wait a minute and run the setup again; nothing is duplicated.", details)
    if isinstance(exc, ArmError):
        if exc.code == "AuthorizationFailed" or exc.status == 403:
            return Problem("Azure refused the change: the signed-in admin lacks a role on the subscription" + doing
                           + ".", text, "Ask for the Owner role (or Contributor plus User Access Administrator) on "
                           "the subscription, or use the client-secret mode, which needs no Azure subscription.",
                           details)
        if exc.code in ("VaultAlreadyExists", "ConflictError"):
            return Problem("The key vault name is taken" + doing + ".", text,
                           "Choose another vault name, or purge the deleted vault in the Azure portal.", details)
        if exc.code == "MissingSubscriptionRegistration":
            return Problem("The subscription cannot create key vaults yet.", text,
                           "Register the Microsoft.KeyVault resource provider on the subscription (Azure portal > "
                           "Subscriptions > Resource providers), then run the setup again.", details)
    if isinstance(exc, KeyVaultError) and exc.status == 403:
        return Problem("The key vault refused the request" + doing + ".", text,
                       "A role given a moment ago can take a few minutes to apply: wait, then run the setup again.",
                       details, True)
    if isinstance(exc, GraphError):
        if exc.code == "Authorization_RequestDenied" or exc.status == 403:
            return Problem("Microsoft Graph refused the change: the signed-in admin lacks a role" + doing + ".",
                           text, "Sign in with a Global Administrator (or Application Administrator for the app, "
                                 "Privileged Role Administrator for consent).", details)
        if "does not reference a valid application object" in text:
            return Problem("The source tenant cannot see the migration app yet.",
                           "The app was just created in the target; directory replication can take minutes.",
                           "Wait a few minutes and run the setup again.", details)
    return None


def explain(exc: BaseException, doing: str = "") -> Problem:
    """`doing`: the change that was being made, in the plan's words (it goes into `what`)."""
    if isinstance(exc, ServiceError):
        known = _service_problem(exc, doing)
        if known is not None:
            return known
    p = _explain(exc)
    if doing:
        p = dataclasses.replace(p, what=f"{p.what.rstrip('.')} while doing: {doing}.")
    return p


def _explain(exc: BaseException) -> Problem:
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

"""Errors are for people: every failure a user can meet becomes what happened, why, and what to do.

`explain()` maps the exceptions the cloud layer raises to a `Problem`; the pages show it with Retry, Copy
details and Open log folder.  Details never contain tokens or secrets (the exceptions don't carry them).
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
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
                       "not answering.", "Check the internet connection and press Retry. If the connection broke while a change "
                       "was being sent, the change may have been made anyway: xtwizard looks before it tries again, "
                       "so nothing is made twice.",
                       _stamp(f"NetworkUnavailable {exc.service} {exc.route}: {exc.cause.__class__.__name__}"))
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" ({exc.filename})" if exc.filename else ""
        return Problem("The disk is full: xtwizard could not save the project.",
                       f"Every change is written to the project's journal before and after it is made; writing it "
                       f"failed{where}, so the run stopped. A change that was under way is checked by the next run.",
                       "Free some disk space (or move the project folder to a disk with space) and press Retry: "
                       "the run picks up where it stopped and finds what was already made.",
                       _stamp(f"OSError {exc.errno} {exc.strerror}{where}"), retryable=True)
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


# --- the move service's per-user failures (reference §2.9, landscape §B.1) ----------------------------------
# Each entry: (exception short name, a text fragment that must appear ("" = any), what, why, what to do,
# retry_helps).  The first match wins, so the specific texts of MigrationPermanentException come first.
# `{user}` is the user's address, `{group}` the scoping group's name when the project knows it.
MOVE_FAILURES: list[tuple[str, str, str, str, str, bool]] = [
    ("CrossTenantMigrationWithoutLicensePermanentException", "",
     "{user} has no Cross Tenant User Data Migration licence.",
     "Microsoft requires that licence on the source or the target user for every moved mailbox.",
     "Assign the Cross Tenant User Data Migration licence to the user in either tenant (one is enough), then "
     "press Retry failed users.", True),
    ("MailboxNotInCrossTenantMigrationScopeException", "",
     "{user} is not in the migration scope.",
     "The source mailbox is not a member of the scoping group ({group}) that the source organization "
     "relationship publishes — it may have been removed from the group during the move.",
     "Add the user to {group} in the source tenant, then press Retry failed users.", True),
    ("MigrationRecipientNotFoundException", "",
     "Exchange found no target MailUser for {user}.",
     "The target MailUser is missing, or the batch was given the source address instead of the target address.",
     "Prepare the target user (Prepare target users page), then press Retry failed users.", True),
    ("MissingExchangeGuidException", "",
     "The target MailUser for {user} has no ExchangeGuid.",
     "The move needs the source mailbox's ExchangeGuid stamped on the target MailUser.",
     "Run Readiness and apply its fix (stamp the GUID), then press Retry failed users.", True),
    ("NotAcceptedDomainException", "",
     "The target MailUser for {user} has an address in a domain the target does not own.",
     "A MailUser cannot become a mailbox while it carries an SMTP proxy of a domain that is not an accepted "
     "domain of the target (often the source's domain).",
     "Run Readiness and apply its fix (remove the foreign address), then press Retry failed users.", True),
    ("UserDuplicateInOtherBatchException", "",
     "{user} is already in another migration batch.",
     "A user can be in only one unfinished batch.",
     "Remove the user from the other batch (or remove that batch), then press Retry failed users.", True),
    ("SourceMailboxAlreadyBeingMovedPermanentException", "",
     "The source mailbox of {user} is already being moved.",
     "Another move (an internal Microsoft move or an earlier request) is running for this mailbox.",
     "Wait a few hours, then press Retry failed users.", True),
    ("SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException", "",
     "A new auxiliary archive appeared for {user} during the move.",
     "The source archive auto-expanded while it was being copied; this move cannot continue.",
     "Remove the user from this batch and move them again in a new batch.", False),
    ("AuxArchiveNotFoundInTargetRecipientException", "",
     "The target is missing an auxiliary archive of {user}.",
     "The source has auxiliary archives the target MailUser does not know about (more than 12 are not "
     "supported).",
     "Remove the user from the batch and add them to a new batch; with more than 12 auxiliary archives, the "
     "mailbox cannot be moved between tenants.", False),
    ("MailboxIsNotInExpectedDBException", "",
     "Microsoft is doing maintenance on the mailbox of {user}.",
     "An internal move inside Microsoft's data centre is running.", "Wait a few hours, then press Retry failed "
     "users.", True),
    ("UserAlreadyHasDemotedArchiveException", "",
     "{user} once had an archive that was disabled.",
     "A disabled archive blocks the move.",
     "Delete or re-enable the archive in the source (then prepare the target again), then press Retry failed "
     "users.", True),
    ("KeyVaultFailureErrorException", "",
     "Exchange could not read the migration certificate from the Key Vault.",
     "The certificate was removed or expired, or Exchange lost its access to the vault.",
     "Run the setup again (it checks and repairs the vault), then press Retry failed users.", True),
    ("MigrationMRSPermanentException", "SMTP proxy matching",
     "The target MailUser for {user} has no address in the target delivery domain.",
     "The move sets the source's forwarding address from the target's proxy in the TargetDeliveryDomain.",
     "Run Readiness and apply its fix (add the delivery-domain address), then press Retry failed users.", True),
    ("", "AADSTS7000222",
     "The migration app's client secret has expired.",
     "Exchange signs in with the app's secret at every sync; once it expires every move stops.",
     "Run the setup again: it adds a new secret and updates the endpoint. Then press Retry failed users — "
     "nothing already copied is lost.", True),
    ("", "AADSTS7000215",
     "The migration endpoint's client secret is no longer valid.",
     "The secret was removed from the app, or the endpoint was given a wrong one.",
     "Run the setup again: it adds a new secret and updates the endpoint. Then press Retry failed users.", True),
    ("", "AADSTS700016",
     "Exchange could not sign in to the source with the migration app.",
     "The app was deleted, or the source admin has not consented to it (or withdrew consent).",
     "Run the setup again and, if it asks, send the source admin kit; then press Retry failed users.", True),
    ("", "has not been granted the Mailbox.Migration",
     "The source has not granted the migration permission to the app.",
     "The source admin's consent is missing or was withdrawn.",
     "Run the setup again and, if it asks, send the source admin kit; then press Retry failed users.", True),
    ("", "AADSTS90002",
     "The source tenant named by the migration endpoint was not found.",
     "The endpoint's RemoteTenant is wrong.", "Run the setup again to repair the endpoint.", True),
    ("", "does not authorize 'pull' or Inbound",
     "The target's organization relationship does not allow moves in from the source.",
     "It must name the source tenant ID and have MailboxMoveEnabled and the Inbound capability.",
     "Run the setup again (it repairs the relationship), then press Retry failed users.", True),
    ("", "does not authorize 'push' or RemoteOutbound",
     "The source's organization relationship does not allow moves out to the target.",
     "It must name the target tenant ID, have MailboxMoveEnabled, RemoteOutbound and the migration app.",
     "Run the setup again (it repairs the relationship), then press Retry failed users.", True),
    ("", "already has a primary mailbox",
     "The target user for {user} already has a mailbox.",
     "A licence was assigned to the target before the ExchangeGuid was stamped, so Exchange made a new, empty "
     "mailbox.",
     "Remove the licence from the target user, clear the mailbox (Set-User -PermanentlyClearPreviousMailboxInfo "
     "— this cannot be undone), prepare the user again, then press Retry failed users.", True),
    ("", "previous mailbox",
     "The target MailUser for {user} still remembers a previous mailbox.",
     "It once had a mailbox (a licence given too early).",
     "Run Set-User -PermanentlyClearPreviousMailboxInfo on the target user (this cannot be undone), then press "
     "Retry failed users.", True),
    ("", "on hold",
     "The source mailbox of {user} is on hold.",
     "Mailboxes on any hold (litigation, retention, eDiscovery) cannot be moved to another organization.",
     "Decide with your compliance officer; once the hold is released, press Retry failed users.", True),
    ("", "auxiliary archives",
     "The source mailbox of {user} has too many auxiliary archives.",
     "A cross-tenant move supports at most 12 auxiliary archives.",
     "This mailbox cannot be moved by Microsoft's service; move its content another way and remove the user "
     "from the batch.", False),
    ("", "ArchiveGuid",
     "The archive of {user} does not match between the tenants.",
     "The target MailUser's ArchiveGuid must equal the source archive's (or both have none).",
     "Run Readiness and apply its fix (stamp the archive GUID), then press Retry failed users.", True),
    ("", "proxy address 'X500",
     "The target MailUser for {user} lacks an X500 address of the source.",
     "Without every source X500 (and the LegacyExchangeDN as X500), replies to old mail bounce; the move refuses "
     "to start.", "Run Readiness and apply its fix (add the X500 addresses), then press Retry failed users.", True),
    ("", "No mailbox with the ExchangeGuid",
     "The target MailUser for {user} points at no source mailbox.",
     "Its ExchangeGuid is not the source mailbox's.",
     "Run Readiness and apply its fix (stamp the right GUID), then press Retry failed users.", True),
    ("", "endpoint of this batch no longer exists",
     "The migration endpoint of this batch was removed.", "Somebody removed it outside xtwizard.",
     "Run the setup again (it recreates the endpoint), then launch a new batch for these users.", False),
    ("", "source mailbox of this move no longer exists",
     "The source mailbox of {user} was deleted during the move.", "It was removed in the source tenant.",
     "Restore the mailbox in the source (deleted users can be restored for 30 days), then press Retry failed "
     "users.", True),
    ("MigrationTransientException", "",
     "The move of {user} met a temporary error.", "Microsoft's service will retry it by itself.",
     "Nothing to do; if it still fails in a day, press Retry failed users.", True),
]


def explain_move_failure(error: str, *, user: str = "", group: str = "") -> Problem:
    """A migration user's ErrorSummary ("<Exception>: <text>") for people, from the catalog above."""
    head, _, text = error.partition(":")
    short = head.strip().rsplit(".", 1)[-1] if " " not in head.strip() else ""
    who = user or "the user"
    scope = f"'{group}'" if group else "the scoping group"
    for name, fragment, what, why, fix, retry in MOVE_FAILURES:
        if name and name != short:
            continue
        if fragment and fragment.lower() not in error.lower():
            continue
        fmt = {"user": who, "group": scope}
        return Problem(what.format(**fmt), why.format(**fmt), fix.format(**fmt),
                       _stamp(f"{error}\nUser: {who}"), retry)
    return Problem(f"The move of {who} failed.", text.strip() or error or "Exchange gave no reason.",
                   "Read the details, fix what they name, then press Retry failed users. If it fails again, use "
                   "Copy details and send them to your IT contact.", _stamp(f"{error}\nUser: {who}"), True)

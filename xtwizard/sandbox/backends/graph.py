"""Microsoft Graph v1.0 (reference §4: G1-G13 and $batch; §2.1-2.2 for SKUs, scope groups and the app).

Paths are the real ones under `/v1.0`.  Every answer carries `request-id`/`client-request-id`; errors are
`{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`.  Who may do
what is in one table, `PERMISSIONS` (documented in docs/sandbox/graph.md).  New applications, service
principals, groups and role assignments go through `state.stamp` and reads skip them until the scenario's
replication delay has passed, as a real directory's replicas do.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import hashlib
import json
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..directory import (
    directory_role_objects,
    ensure_service_principal,
    find_application,
    grant_app_role,
    iso,
    parse_iso,
    revoke_user_sessions,
    service_principal,
)
from ..http import Headers, HttpError, Request, Response
from ..odata import (
    EntityType,
    Field,
    ODataError,
    decode_skiptoken,
    encode_skiptoken,
    first,
    is_guid,
    next_link,
    page,
    parse_filter,
    parse_orderby,
    parse_search,
    parse_select,
    parse_top,
    project,
    query_fingerprint,
    sort_items,
)
from ..state import JSON, SandboxState, Tenant, public
from ..tokens import Caller, TokenRejected, sha256_hex
from .base import Backend

V = "/v1.0"
ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
MAX_BATCH = 20
ALT_KEY_RE = re.compile(r"^(applications|servicePrincipals)\(appId='([^']*)'\)$", re.IGNORECASE)
SECRET_ALPHABET = string.ascii_letters + string.digits + "_.~-"
NOT_MAIL_ENABLED_WRITE = "Cannot Update a mail-enabled security groups and or distribution list."
MIN_TIME = -2208988800.0  # 1900-01-01T00:00:00Z
MAX_TIME = 253402300799.0 - 10 * 366 * 86400  # ten years before the end of 9999
SIGN_IN_AUDIENCES = ("AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount",
                     "PersonalMicrosoftAccount")


# --- who may do what -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Permission:
    """Delegated: one of `scopes` in `scp` AND (if `admin_roles`) one of those directory roles held by the user.
    App-only: one of `app_roles` in `roles`.  `self_scopes` suffice when a user acts on their own object."""

    scopes: frozenset[str]
    app_roles: frozenset[str]
    admin_roles: frozenset[str] = frozenset()
    self_scopes: frozenset[str] = frozenset()


def _p(scopes: str, app_roles: str, admin_roles: Iterable[str] = (), self_scopes: str = "") -> Permission:
    return Permission(frozenset(scopes.split()), frozenset(app_roles.split()), frozenset(admin_roles),
                      frozenset(self_scopes.split()))


GA = "Global Administrator"
APP_ADMINS = (GA, "Application Administrator", "Cloud Application Administrator")
CONSENT_ADMINS = (*APP_ADMINS, "Privileged Role Administrator")
USER_ADMINS = (GA, "User Administrator")
LICENSE_ADMINS = (*USER_ADMINS, "License Administrator")
DIR_READ = "Directory.Read.All Directory.ReadWrite.All Directory.AccessAsUser.All"

PERMISSIONS: dict[str, Permission] = {
    "organization.read": _p(f"User.Read Organization.Read.All Organization.ReadWrite.All {DIR_READ}",
                            "Organization.Read.All Organization.ReadWrite.All Directory.Read.All "
                            "Directory.ReadWrite.All"),
    "me.read": _p(f"User.Read User.ReadWrite User.ReadBasic.All User.Read.All User.ReadWrite.All {DIR_READ}", ""),
    "users.read": _p(f"User.ReadBasic.All User.Read.All User.ReadWrite.All {DIR_READ}",
                     "User.Read.All User.ReadWrite.All Directory.Read.All Directory.ReadWrite.All",
                     self_scopes="User.Read User.ReadWrite"),
    "memberships.read": _p(f"GroupMember.Read.All Group.Read.All Group.ReadWrite.All {DIR_READ}",
                           "GroupMember.Read.All Group.Read.All Directory.Read.All Directory.ReadWrite.All",
                           self_scopes="User.Read User.ReadWrite"),
    "licenses.write": _p("LicenseAssignment.ReadWrite.All User.ReadWrite.All Directory.ReadWrite.All "
                         "Directory.AccessAsUser.All",
                         "LicenseAssignment.ReadWrite.All User.ReadWrite.All Directory.ReadWrite.All",
                         LICENSE_ADMINS),
    "sessions.revoke": _p("User.RevokeSessions.All User.ReadWrite.All Directory.ReadWrite.All "
                          "Directory.AccessAsUser.All",
                          "User.RevokeSessions.All User.ReadWrite.All Directory.ReadWrite.All", USER_ADMINS),
    "skus.read": _p(f"LicenseAssignment.Read.All LicenseAssignment.ReadWrite.All Organization.Read.All {DIR_READ}",
                    "LicenseAssignment.Read.All Organization.Read.All Directory.Read.All"),
    "applications.read": _p(f"Application.Read.All Application.ReadWrite.All {DIR_READ}",
                            "Application.Read.All Application.ReadWrite.All Application.ReadWrite.OwnedBy "
                            "Directory.Read.All Directory.ReadWrite.All"),
    "applications.write": _p("Application.ReadWrite.All Directory.AccessAsUser.All",
                             "Application.ReadWrite.All Application.ReadWrite.OwnedBy", APP_ADMINS),
    "appRoleAssignments.write": _p("AppRoleAssignment.ReadWrite.All Directory.AccessAsUser.All",
                                   "AppRoleAssignment.ReadWrite.All", CONSENT_ADMINS),
    # Members may invite guests by default in Entra, so no directory role is required (reference G14).
    "invitations.write": _p("User.Invite.All User.ReadWrite.All Directory.ReadWrite.All Directory.AccessAsUser.All",
                            "User.Invite.All User.ReadWrite.All Directory.ReadWrite.All"),
    "groups.read": _p(f"GroupMember.Read.All Group.Read.All Group.ReadWrite.All {DIR_READ}",
                      "GroupMember.Read.All Group.Read.All Group.ReadWrite.All Directory.Read.All "
                      "Directory.ReadWrite.All"),
    "groups.write": _p("Group.ReadWrite.All GroupMember.ReadWrite.All Directory.ReadWrite.All "
                       "Directory.AccessAsUser.All",
                       "Group.ReadWrite.All GroupMember.ReadWrite.All Directory.ReadWrite.All",
                       (*USER_ADMINS, "Groups Administrator")),
}


# --- entity types: what $select/$filter may name, and what a body may set ----------------------------------------

S, B, G, D = "Edm.String", "Edm.Boolean", "Edm.Guid", "Edm.DateTimeOffset"

APP_DEFAULTS: JSON = {
    "id": None, "deletedDateTime": None, "appId": None, "applicationTemplateId": None,
    "disabledByMicrosoftStatus": None, "createdDateTime": None, "displayName": None, "description": None,
    "groupMembershipClaims": None, "identifierUris": [], "isDeviceOnlyAuthSupported": None,
    "isFallbackPublicClient": None, "nativeAuthenticationApisEnabled": None, "notes": None,
    "publisherDomain": None, "serviceManagementReference": None, "signInAudience": "AzureADMyOrg", "tags": [],
    "tokenEncryptionKeyId": None, "uniqueName": None, "samlMetadataUrl": None, "defaultRedirectUri": None,
    "certification": None, "optionalClaims": None, "servicePrincipalLockConfiguration": None,
    "requestSignatureVerification": None, "addIns": [],
    "api": {"acceptMappedClaims": None, "knownClientApplications": [], "requestedAccessTokenVersion": None,
            "oauth2PermissionScopes": [], "preAuthorizedApplications": []},
    "appRoles": [],
    "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None, "supportUrl": None,
             "termsOfServiceUrl": None},
    "keyCredentials": [],
    "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
    "passwordCredentials": [], "publicClient": {"redirectUris": []}, "requiredResourceAccess": [],
    "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
    "web": {"homePageUrl": None, "logoutUrl": None, "redirectUris": [], "redirectUriSettings": [],
            "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False}},
    "spa": {"redirectUris": []},
}
APPLICATION = EntityType("microsoft.graph.application", "Application", frozenset(APP_DEFAULTS), {
    "id": Field(S), "appId": Field(S), "displayName": Field(S), "signInAudience": Field(S),
    "publisherDomain": Field(S), "identifierUris": Field(S, collection=True), "tags": Field(S, collection=True),
    "web/redirectUris": Field(S, collection=True), "createdDateTime": Field(D),
}, frozenset({"displayName", "createdDateTime"}))

SP_DEFAULTS: JSON = {
    "id": None, "deletedDateTime": None, "accountEnabled": True, "alternativeNames": [], "appDisplayName": None,
    "appDescription": None, "appId": None, "applicationTemplateId": None, "appOwnerOrganizationId": None,
    "appRoleAssignmentRequired": False, "createdDateTime": None, "description": None,
    "disabledByMicrosoftStatus": None, "displayName": None, "homepage": None, "loginUrl": None, "logoutUrl": None,
    "notes": None, "notificationEmailAddresses": [], "preferredSingleSignOnMode": None,
    "preferredTokenSigningKeyThumbprint": None, "replyUrls": [], "servicePrincipalNames": [],
    "servicePrincipalType": "Application", "signInAudience": None, "tags": [], "tokenEncryptionKeyId": None,
    "samlSingleSignOnSettings": None, "addIns": [], "appRoles": [],
    "info": {"logoUrl": None, "marketingUrl": None, "privacyStatementUrl": None, "supportUrl": None,
             "termsOfServiceUrl": None},
    "keyCredentials": [], "oauth2PermissionScopes": [], "passwordCredentials": [],
    "resourceSpecificApplicationPermissions": [],
    "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
}
SERVICE_PRINCIPAL = EntityType("microsoft.graph.servicePrincipal", "ServicePrincipal", frozenset(SP_DEFAULTS), {
    "id": Field(S), "appId": Field(S), "displayName": Field(S), "appOwnerOrganizationId": Field(G),
    "servicePrincipalType": Field(S), "accountEnabled": Field(B), "servicePrincipalNames": Field(S, collection=True),
    "tags": Field(S, collection=True), "signInAudience": Field(S),
}, frozenset({"displayName"}))

GROUP_DEFAULTS: JSON = {
    "id": None, "deletedDateTime": None, "classification": None, "createdDateTime": None, "creationOptions": [],
    "description": None, "displayName": None, "expirationDateTime": None, "groupTypes": [],
    "isAssignableToRole": None, "mail": None, "mailEnabled": False, "mailNickname": None, "membershipRule": None,
    "membershipRuleProcessingState": None, "onPremisesDomainName": None, "onPremisesLastSyncDateTime": None,
    "onPremisesNetBiosName": None, "onPremisesSamAccountName": None, "onPremisesSecurityIdentifier": None,
    "onPremisesSyncEnabled": None, "preferredDataLocation": None, "preferredLanguage": None, "proxyAddresses": [],
    "renewedDateTime": None, "resourceBehaviorOptions": [], "resourceProvisioningOptions": [],
    "securityEnabled": True, "securityIdentifier": None, "theme": None, "visibility": None,
    "onPremisesProvisioningErrors": [], "serviceProvisioningErrors": [],
}
GROUP = EntityType("microsoft.graph.group", "Group", frozenset(GROUP_DEFAULTS), {
    "id": Field(S), "displayName": Field(S), "mail": Field(S), "mailNickname": Field(S), "mailEnabled": Field(B),
    "securityEnabled": Field(B), "groupTypes": Field(S, collection=True), "onPremisesSyncEnabled": Field(B),
    "proxyAddresses": Field(S, collection=True), "description": Field(S), "createdDateTime": Field(D),
    "isAssignableToRole": Field(B),
}, frozenset({"displayName"}))

USER_DEFAULT_SELECT = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                       "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id")
USER_DEFAULTS: JSON = {
    "id": None, "businessPhones": [], "displayName": None, "givenName": None, "jobTitle": None, "mail": None,
    "mobilePhone": None, "officeLocation": None, "preferredLanguage": None, "surname": None,
    "userPrincipalName": None, "accountEnabled": True, "assignedLicenses": [], "assignedPlans": [], "city": None,
    "companyName": None, "country": None, "createdDateTime": None, "creationType": None, "department": None,
    "employeeId": None, "externalUserState": None, "imAddresses": [], "mailNickname": None,
    "onPremisesImmutableId": None, "onPremisesSyncEnabled": None, "otherMails": [], "proxyAddresses": [],
    "showInAddressList": None, "usageLocation": None, "userType": "Member", "deletedDateTime": None,
    "signInSessionsValidFromDateTime": None, "licenseAssignmentStates": [],
}
USER = EntityType("microsoft.graph.user", "User", frozenset(USER_DEFAULTS), {
    "id": Field(S), "userPrincipalName": Field(S), "mail": Field(S), "displayName": Field(S),
    "givenName": Field(S), "surname": Field(S), "mailNickname": Field(S), "accountEnabled": Field(B),
    "usageLocation": Field(S), "userType": Field(S), "jobTitle": Field(S), "department": Field(S),
    "proxyAddresses": Field(S, collection=True), "otherMails": Field(S, collection=True),
    "assignedLicenses": Field("microsoft.graph.assignedLicense", collection=True, members={"skuId": G}),
    "onPremisesSyncEnabled": Field(B),
}, frozenset({"displayName", "userPrincipalName"}))

DIRECTORY_OBJECT = EntityType("microsoft.graph.directoryObject", "DirectoryObject",
                              frozenset(USER_DEFAULTS) | frozenset(GROUP_DEFAULTS) |
                              {"roleTemplateId", "@odata.type"},
                              {"id": Field(S), "displayName": Field(S), "mail": Field(S),
                               "userPrincipalName": Field(S)}, frozenset({"displayName"}))

ASSIGNMENT_DEFAULTS: JSON = {"id": None, "deletedDateTime": None, "appRoleId": None, "createdDateTime": None,
                             "principalDisplayName": None, "principalId": None, "principalType": None,
                             "resourceDisplayName": None, "resourceId": None}
APP_ROLE_ASSIGNMENT = EntityType("microsoft.graph.appRoleAssignment", "AppRoleAssignment",
                                 frozenset(ASSIGNMENT_DEFAULTS),
                                 {"resourceId": Field(G), "principalId": Field(G), "appRoleId": Field(G),
                                  "id": Field(S)})

ORG_LIMITED = ("id", "displayName", "verifiedDomains")
ORG_PROPERTIES = frozenset({
    "id", "deletedDateTime", "businessPhones", "city", "country", "countryLetterCode", "createdDateTime",
    "defaultUsageLocation", "displayName", "marketingNotificationEmails", "onPremisesLastSyncDateTime",
    "onPremisesSyncEnabled", "postalCode", "preferredLanguage", "privacyProfile", "securityComplianceNotificationMails",
    "securityComplianceNotificationPhones", "state", "street", "technicalNotificationMails", "tenantType",
    "assignedPlans", "provisionedPlans", "verifiedDomains"})
ORGANIZATION = EntityType("microsoft.graph.organization", "Organization", ORG_PROPERTIES, {"id": Field(S)})

SKU_PROPERTIES = frozenset({"id", "accountId", "accountName", "appliesTo", "capabilityStatus", "consumedUnits",
                            "prepaidUnits", "servicePlans", "skuId", "skuPartNumber", "subscriptionIds"})
SUBSCRIBED_SKU = EntityType("microsoft.graph.subscribedSku", "SubscribedSku", SKU_PROPERTIES)
LICENSE_DETAILS = EntityType("microsoft.graph.licenseDetails", "LicenseDetails",
                             frozenset({"id", "skuId", "skuPartNumber", "servicePlans"}))


# --- request bodies: a small schema language -------------------------------------------------------------------

@dataclass(frozen=True)
class Obj:
    """A complex or entity type a body may carry: property -> kind; kinds are 'string', 'bool', 'int', 'guid',
    'datetime', 'binary', 'json', a nested Obj, or a one-element list [kind] for a collection."""

    type_name: str
    props: Mapping[str, Any]
    read_only: frozenset[str] = frozenset()


IMPLICIT_GRANT = Obj("microsoft.graph.implicitGrantSettings",
                     {"enableAccessTokenIssuance": "bool", "enableIdTokenIssuance": "bool"})
WEB = Obj("microsoft.graph.webApplication", {"homePageUrl": "string", "logoutUrl": "string",
                                             "redirectUris": ["string"], "implicitGrantSettings": IMPLICIT_GRANT,
                                             "redirectUriSettings": ["json"]})
REDIRECTS = Obj("microsoft.graph.publicClientApplication", {"redirectUris": ["string"]})
SPA = Obj("microsoft.graph.spaApplication", {"redirectUris": ["string"]})
RESOURCE_ACCESS = Obj("microsoft.graph.resourceAccess", {"id": "guid", "type": "string"})
REQUIRED_RESOURCE_ACCESS = Obj("microsoft.graph.requiredResourceAccess",
                               {"resourceAppId": "string", "resourceAccess": [RESOURCE_ACCESS]})
KEY_CREDENTIAL = Obj("microsoft.graph.keyCredential", {
    "customKeyIdentifier": "binary", "displayName": "string", "endDateTime": "datetime", "key": "binary",
    "keyId": "guid", "startDateTime": "datetime", "type": "string", "usage": "string"})
APP_ROLE = Obj("microsoft.graph.appRole", {"allowedMemberTypes": ["string"], "description": "string",
                                           "displayName": "string", "id": "guid", "isEnabled": "bool",
                                           "origin": "string", "value": "string"})
INFO = Obj("microsoft.graph.informationalUrl", {"logoUrl": "string", "marketingUrl": "string",
                                                "privacyStatementUrl": "string", "supportUrl": "string",
                                                "termsOfServiceUrl": "string"})
APPLICATION_BODY = Obj("microsoft.graph.application", {
    "displayName": "string", "description": "string", "signInAudience": "string", "notes": "string",
    "tags": ["string"], "identifierUris": ["string"], "web": WEB, "publicClient": REDIRECTS, "spa": SPA,
    "requiredResourceAccess": [REQUIRED_RESOURCE_ACCESS], "keyCredentials": [KEY_CREDENTIAL], "appRoles": [APP_ROLE],
    "info": INFO, "isFallbackPublicClient": "bool", "groupMembershipClaims": "string",
    "serviceManagementReference": "string", "api": "json", "optionalClaims": "json",
    "parentalControlSettings": "json", "tokenEncryptionKeyId": "guid", "uniqueName": "string",
    "isDeviceOnlyAuthSupported": "bool", "defaultRedirectUri": "string",
    # read-only: present in the type, refused in a body
    "id": "string", "appId": "string", "createdDateTime": "datetime", "publisherDomain": "string",
    "passwordCredentials": ["json"], "deletedDateTime": "datetime",
}, frozenset({"id", "appId", "createdDateTime", "publisherDomain", "passwordCredentials", "deletedDateTime"}))
PASSWORD_CREDENTIAL = Obj("microsoft.graph.passwordCredential", {
    "displayName": "string", "endDateTime": "datetime", "startDateTime": "datetime", "customKeyIdentifier": "binary",
    "hint": "string", "keyId": "guid", "secretText": "string"}, frozenset({"hint", "keyId", "secretText"}))
ADD_KEY_BODY = Obj("microsoft.graph.addKey", {"keyCredential": KEY_CREDENTIAL, "passwordCredential": PASSWORD_CREDENTIAL,
                                             "proof": "string"})
REMOVE_KEY_BODY = Obj("microsoft.graph.removeKey", {"keyId": "guid", "proof": "string"})
ADD_PASSWORD_BODY = Obj("microsoft.graph.addPassword", {"passwordCredential": PASSWORD_CREDENTIAL})
REMOVE_PASSWORD_BODY = Obj("microsoft.graph.removePassword", {"keyId": "guid"})
SERVICE_PRINCIPAL_BODY = Obj("microsoft.graph.servicePrincipal", {
    "appId": "string", "accountEnabled": "bool", "tags": ["string"], "appRoleAssignmentRequired": "bool",
    "notes": "string", "description": "string", "notificationEmailAddresses": ["string"],
    "displayName": "string", "id": "string", "appOwnerOrganizationId": "guid",
}, frozenset({"id", "appOwnerOrganizationId"}))
APP_ROLE_ASSIGNMENT_BODY = Obj("microsoft.graph.appRoleAssignment", {
    "principalId": "guid", "resourceId": "guid", "appRoleId": "guid", "id": "string", "principalType": "string",
    "principalDisplayName": "string", "resourceDisplayName": "string", "createdDateTime": "datetime",
}, frozenset({"id", "principalType", "principalDisplayName", "resourceDisplayName", "createdDateTime"}))
GROUP_BODY = Obj("microsoft.graph.group", {
    "displayName": "string", "description": "string", "mailEnabled": "bool", "mailNickname": "string",
    "securityEnabled": "bool", "groupTypes": ["string"], "visibility": "string", "isAssignableToRole": "bool",
    "members@odata.bind": ["string"], "owners@odata.bind": ["string"], "id": "string", "mail": "string",
}, frozenset({"id", "mail"}))
INVITED_USER_MESSAGE_INFO = Obj("microsoft.graph.invitedUserMessageInfo", {
    "customizedMessageBody": "string", "messageLanguage": "string", "ccRecipients": ["json"]})
INVITATION_BODY = Obj("microsoft.graph.invitation", {
    "invitedUserEmailAddress": "string", "inviteRedirectUrl": "string", "sendInvitationMessage": "bool",
    "invitedUserDisplayName": "string", "invitedUserType": "string", "invitedUserMessageInfo": INVITED_USER_MESSAGE_INFO,
    "resetRedemption": "bool", "id": "string", "inviteRedeemUrl": "string", "status": "string",
}, frozenset({"id", "inviteRedeemUrl", "status"}))
REF_BODY = Obj("microsoft.graph.directoryObjectReference", {"@odata.id": "string"})
ASSIGNED_LICENSE = Obj("microsoft.graph.assignedLicense", {"skuId": "guid", "disabledPlans": ["guid"]})
ASSIGN_LICENSE_BODY = Obj("microsoft.graph.assignLicense", {"addLicenses": [ASSIGNED_LICENSE],
                                                            "removeLicenses": ["guid"]})
EDM = {"string": "Edm.String", "bool": "Edm.Boolean", "int": "Edm.Int32", "guid": "Edm.Guid",
       "datetime": "Edm.DateTimeOffset", "binary": "Edm.Binary"}


@dataclass
class Ctx:
    req: Request
    caller: Caller
    tenant: Tenant
    user: JSON | None  # the signed-in user (delegated), if it still exists
    count_only: bool = False  # a `/$count` path segment: answer the number of matching items as text

    @property
    def base(self) -> str:
        return self.req.base_url + V


def _now_graph(ts: float) -> str:
    """innerError's date: UTC seconds without zone, as Graph writes it."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _iso_frac(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class GraphBackend(Backend):
    name = "graph"
    audience = "https://graph.microsoft.com"

    def __init__(self, sandbox: Any) -> None:
        self._local = threading.local()
        super().__init__(sandbox)

    @property
    def st(self) -> SandboxState:
        state: SandboxState = self.sb.state
        return state

    # --- the service's shapes ----------------------------------------------------------------------------
    def error(self, status: int, code: str, message: str,
              headers: list[tuple[str, str]] | None = None) -> HttpError:
        req: Request | None = getattr(self._local, "req", None)
        rid = req.request_id if req is not None and req.request_id else str(uuid.uuid4())
        cid = (req.headers.get("client-request-id") if req is not None else None) or rid
        body = {"error": {"code": code, "message": message, "innerError": {
            "date": _now_graph(self.st.clock.now()), "request-id": rid, "client-request-id": cid}}}
        return HttpError(status, body, headers)

    def auth_error(self, exc: TokenRejected, req: Request) -> HttpError:
        login = self.sb.urls.get("login", "https://login.microsoftonline.com")
        challenge = (f'Bearer realm="", authorization_uri="{login}/common/oauth2/authorize", '
                     f'client_id="00000003-0000-0000-c000-000000000000"')
        return self.error(401, "InvalidAuthenticationToken", exc.message, [("WWW-Authenticate", challenge)])

    def response_headers(self, req: Request) -> list[tuple[str, str]]:
        out = [("request-id", req.request_id), ("Cache-Control", "no-cache"),
               ("Strict-Transport-Security", "max-age=31536000"),
               ("x-ms-ags-diagnostic", json.dumps({"ServerInfo": {"DataCenter": "Sandbox", "Slice": "E",
                                                                  "Ring": "1", "ScaleUnit": "000",
                                                                  "RoleInstance": "XTWIZARD-SANDBOX"}},
                                                  separators=(",", ":")))]
        if not req.headers.get("client-request-id"):
            out.append(("client-request-id", req.request_id))
        return out

    def throttled(self, req: Request, status: int, retry_after: int, message: str) -> Response:
        prev = getattr(self._local, "req", None)
        self._local.req = req
        try:
            if status == 429:
                err = self.error(429, "TooManyRequests", message or "Too many requests from Identifier:Sandbox under "
                                                              "category:throttle.aad.ags.msgraph. Please try again "
                                                              "later.",
                                 [("Retry-After", str(retry_after))])
            else:
                err = self.error(status, "ServiceUnavailable", message or "The service is temporarily unavailable.",
                                 [("Retry-After", str(retry_after))])
            return err.response()
        finally:
            self._local.req = prev

    def internal_error(self, req: Request) -> Response:
        self._local.req = req
        try:
            return self.error(500, "InternalServerError", "An internal server error occurred; the request id "
                                                          f"{req.request_id} is in the sandbox log.").response()
        finally:
            self._local.req = None

    def bad(self, message: str, code: str = "Request_BadRequest") -> HttpError:
        return self.error(400, code, message)

    def not_found_object(self, ref: str) -> HttpError:
        return self.error(404, "Request_ResourceNotFound",
                          f"Resource '{ref}' does not exist or one of its queried reference-property objects are "
                          f"not present.")

    def denied(self) -> HttpError:
        return self.error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

    def odata(self, exc: ODataError) -> HttpError:
        return self.error(exc.status, exc.code, exc.message)

    @staticmethod
    def ok(payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        return Response.json(payload, status, headers, content_type=ODATA_JSON)

    # --- routing --------------------------------------------------------------------------------------------
    def register(self) -> None:
        r = self.router
        r.add("POST", V + r"/\$batch", self.batch)
        r.add("GET", "/oidc/userinfo", self.userinfo)  # dispatched before the version check; listed for the log
        for collection_path, handler in ((V + "/applications", self.list_applications),
                                         (V + "/servicePrincipals", self.list_service_principals),
                                         (V + "/groups", self.list_groups), (V + "/users", self.list_users),
                                         (V + "/groups/{gid}/members", self.group_members),
                                         (V + "/groups/{gid}/transitiveMembers", self.group_transitive_members),
                                         (V + "/servicePrincipals/{key}/appRoleAssignedTo", self.list_assigned_to),
                                         (V + "/servicePrincipals/{key}/appRoleAssignments", self.list_assignments)):
            r.add("GET", collection_path + r"/\$count", self._counter(handler))
        r.add("GET", V + "/organization", self.list_organization)
        r.add("GET", V + "/organization/{oid}", self.get_organization)
        r.add("GET", V + "/me", self.get_me)
        r.add("GET", V + "/me/transitiveMemberOf", self.me_transitive_member_of)
        r.add("GET", V + "/me/memberOf", self.me_member_of)
        r.add("GET", V + "/me/licenseDetails", self.me_license_details)
        r.add("POST", V + "/me/revokeSignInSessions", self.me_revoke)
        r.add("GET", V + "/applications", self.list_applications)
        r.add("POST", V + "/applications", self.create_application)
        r.add("GET", V + "/applications/{key}", self.get_application)
        r.add("PATCH", V + "/applications/{key}", self.patch_application)
        r.add("DELETE", V + "/applications/{key}", self.delete_application)
        r.add("POST", V + "/applications/{key}/addPassword", self.add_password)
        r.add("POST", V + "/applications/{key}/removePassword", self.remove_password)
        r.add("POST", V + "/applications/{key}/addKey", self.add_key)
        r.add("GET", V + "/applications/{key}/owners", self.list_owners)
        r.add("POST", V + r"/applications/{key}/owners/\$ref", self.add_owner)
        r.add("DELETE", V + r"/applications/{key}/owners/{oid}/\$ref", self.remove_owner)
        r.add("POST", V + "/applications/{key}/removeKey", self.remove_key)
        r.add("GET", V + "/servicePrincipals", self.list_service_principals)
        r.add("POST", V + "/servicePrincipals", self.create_service_principal)
        r.add("GET", V + "/servicePrincipals/{key}", self.get_service_principal)
        r.add("DELETE", V + "/servicePrincipals/{key}", self.delete_service_principal)
        r.add("GET", V + "/servicePrincipals/{key}/appRoleAssignedTo", self.list_assigned_to)
        r.add("POST", V + "/servicePrincipals/{key}/appRoleAssignedTo", self.create_assigned_to)
        r.add("DELETE", V + "/servicePrincipals/{key}/appRoleAssignedTo/{aid}", self.delete_assigned_to)
        r.add("GET", V + "/servicePrincipals/{key}/appRoleAssignments", self.list_assignments)
        r.add("POST", V + "/servicePrincipals/{key}/appRoleAssignments", self.create_assignment)
        r.add("DELETE", V + "/servicePrincipals/{key}/appRoleAssignments/{aid}", self.delete_assignment)
        r.add("GET", V + "/groups", self.list_groups)
        r.add("POST", V + "/groups", self.create_group)
        r.add("GET", V + "/groups/{gid}", self.get_group)
        r.add("PATCH", V + "/groups/{gid}", self.patch_group)
        r.add("GET", V + "/groups/{gid}/members", self.group_members)
        r.add("GET", V + "/groups/{gid}/transitiveMembers", self.group_transitive_members)
        r.add("POST", V + r"/groups/{gid}/members/\$ref", self.add_group_member)
        r.add("DELETE", V + r"/groups/{gid}/members/{mid}/\$ref", self.remove_group_member)
        r.add("GET", V + "/subscribedSkus", self.list_skus)
        r.add("GET", V + "/subscribedSkus/{sid}", self.get_sku)
        r.add("GET", V + "/users", self.list_users)
        r.add("GET", V + "/users/{uid}", self.get_user)
        r.add("GET", V + "/users/{uid}/licenseDetails", self.license_details)
        r.add("GET", V + "/users/{uid}/transitiveMemberOf", self.user_transitive_member_of)
        r.add("GET", V + "/users/{uid}/memberOf", self.user_member_of)
        r.add("POST", V + "/users/{uid}/assignLicense", self.assign_license)
        r.add("POST", V + "/users/{uid}/revokeSignInSessions", self.revoke_sessions)
        r.add("POST", V + "/invitations", self.invite)

    @staticmethod
    def _counter(handler: Callable[..., Response]) -> Callable[..., Response]:
        """`<collection>/$count`: the list handler's filtering and authorization, answered as a number."""
        def count(ctx: Ctx, **params: str) -> Response:
            ctx.count_only = True
            return handler(ctx, **params)
        return count

    def handle(self, req: Request) -> Response:
        self._local.req = req
        try:
            return self._handle(req, in_batch=False)
        finally:
            self._local.req = None

    def _handle(self, req: Request, *, in_batch: bool) -> Response:
        if req.path.rstrip("/").lower() == "/oidc/userinfo" and not in_batch:
            return self.userinfo(req)
        segments = [s for s in req.path.split("/") if s]
        if not segments or segments[0].lower() != "v1.0":
            raise self.error(400, "BadRequest", f"Invalid version: {segments[0] if segments else ''}")
        canon: list[str] = []
        for seg in segments:
            m = ALT_KEY_RE.match(seg)
            if m:
                canon += [m.group(1), "\x00" + m.group(2)]
            else:
                canon.append(seg)
        path = "/" + "/".join(canon)
        self._check_query_options(req)
        caller = self.caller(req)
        tenant = self.st.tenant(caller.tenant_id, by_key=False)
        if tenant is None:
            raise self.error(401, "InvalidAuthenticationToken",
                             f"The tenant for tenant guid '{caller.tenant_id}' does not exist.")
        user = None if caller.is_app else tenant.user(caller.object_id)
        if caller.is_app and tenant.col("servicePrincipals").get(caller.object_id) is None:
            raise self.error(401, "Authorization_IdentityNotFound",
                             "The identity of the calling application could not be established.")
        route, params, known = self.router.match(req.method, path)
        if route is None:
            if known:
                raise self.error(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request "
                                                            "target.")
            raise self.error(400, "BadRequest", f"Resource not found for the segment '{self._bad_segment(canon)}'.")
        if route.handler == self.batch and in_batch:
            raise self.error(400, "BadRequest", "A batch request cannot contain another batch request.")
        return route.handler(Ctx(req, caller, tenant, user), **params)

    def userinfo(self, req: Request) -> Response:
        """The OIDC userinfo endpoint the identity platform's discovery document names (it lives on Graph's host)."""
        if req.method not in ("GET", "POST"):
            raise self.error(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
        caller = self.caller(req)
        tenant = self.st.tenant(caller.tenant_id, by_key=False)
        user = tenant.user(caller.object_id) if tenant is not None and not caller.is_app else None
        if user is None:
            raise self.error(401, "InvalidAuthenticationToken", "The userinfo endpoint needs a token of a signed-in "
                                                                "user of an existing tenant.")
        out: JSON = {"sub": caller.claims.get("sub"), "name": user.get("displayName"),
                     "family_name": user.get("surname"), "given_name": user.get("givenName"),
                     "picture": f"{req.base_url}{V}/me/photo/$value"}
        if user.get("mail"):
            out["email"] = user["mail"]
        return Response.json(out)

    def _bad_segment(self, segments: list[str]) -> str:
        tops = {r.template.split("/")[2].lower().replace("\\", "") for r in self.router.routes}
        if len(segments) > 1 and segments[1].lower() not in tops:
            return segments[1]
        return segments[-1].lstrip("\x00")

    KNOWN_OPTIONS = ("select", "filter", "top", "skiptoken", "count", "orderby", "search", "expand", "format",
                     "skip")

    def _check_query_options(self, req: Request) -> None:
        for key in req.query:
            if key.startswith("$") and key[1:].lower() not in self.KNOWN_OPTIONS:
                raise self.error(400, "BadRequest", f"The query parameter '{key}' is not supported.")
        if first(req.query, "expand") is not None:
            raise self.error(400, "Request_UnsupportedQuery", "The sandbox does not expand navigation properties; "
                                                              "request the related collection instead.")
        if first(req.query, "search") is not None and (req.headers.get("ConsistencyLevel") or "").lower() != "eventual":
            raise self.error(400, "Request_UnsupportedQuery", "Request with $search query parameter only works "
                                                              "through MSGraph with a special request header: "
                                                              "'ConsistencyLevel: eventual'")
        if first(req.query, "skip") is not None:
            raise self.error(400, "Request_BadRequest", "'$skip' is not supported by the service.")

    # --- authorization ---------------------------------------------------------------------------------------
    def authorize(self, ctx: Ctx, op: str, *, target_user_id: str | None = None, owner: bool = False) -> None:
        """`owner`: the signed-in user owns the object, which stands in for the directory role (Entra lets owners
        manage their app registrations); the scope is still needed."""
        perm = PERMISSIONS[op]
        c = ctx.caller
        if c.is_app:
            if not (perm.app_roles & c.roles):
                raise self.denied()
            return
        is_self = target_user_id is not None and target_user_id == c.object_id
        scopes = perm.scopes | (perm.self_scopes if is_self else frozenset())
        if not (scopes & c.scopes):
            raise self.denied()
        if perm.admin_roles and not is_self and not owner:
            roles = set((ctx.user or {}).get("_roles", []))
            if not (roles & perm.admin_roles):
                raise self.denied()

    # --- query helpers ---------------------------------------------------------------------------------------
    def body(self, ctx: Ctx, schema: Obj, *, required: bool = True) -> JSON:
        raw = ctx.req.body
        if not raw.strip():
            if required:
                raise self.error(400, "BadRequest", "Empty Payload. JSON content expected.")
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self.error(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type "
                                                "header is set and payload is of valid JSON format.") from None
        if not isinstance(data, dict):
            raise self.error(400, "BadRequest", "An unexpected 'StartArray' node was found when reading from the "
                                                "JSON reader. A 'StartObject' node was expected."
                             if isinstance(data, list) else
                             "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. "
                             "A 'StartObject' node was expected.")
        return self._validate_obj(data, schema, top=True)

    def _validate_obj(self, data: Mapping[str, Any], schema: Obj, *, top: bool = False) -> JSON:
        out: JSON = {}
        for key, value in data.items():
            if key.startswith("@odata.") and key != "@odata.id":
                continue
            kind = schema.props.get(key)
            if kind is None:
                raise self.error(400, "BadRequest", f"The property '{key}' does not exist on type "
                                                    f"'{schema.type_name}'. Make sure to only use property names "
                                                    f"that are defined by the type or mark the type as open type.")
            if top and key in schema.read_only:
                raise self.bad(f"Property '{key}' is read-only and cannot be set.")
            out[key] = self._validate_value(value, kind, key, schema)
        return out

    def _validate_value(self, value: Any, kind: Any, key: str, parent: Obj) -> Any:
        if value is None:
            if isinstance(kind, list):
                raise self.error(400, "BadRequest", f"A null value was found for the property named '{key}', which "
                                                    f"has the expected type 'Collection({self._edm(kind[0])})"
                                                    f"[Nullable=False]'. The expected type 'Collection("
                                                    f"{self._edm(kind[0])})[Nullable=False]' does not allow null "
                                                    f"values.")
            return None
        if isinstance(kind, list):
            if not isinstance(value, list):
                raise self._node_error(value, "StartArray", key)
            if kind[0] != "json" and any(v is None for v in value):
                raise self.error(400, "BadRequest", f"A null value was found for the property named '{key}', which "
                                                    f"has the expected type '{self._edm(kind[0])}[Nullable=False]'. "
                                                    f"The expected type '{self._edm(kind[0])}[Nullable=False]' does "
                                                    f"not allow null values.")
            return [self._validate_value(v, kind[0], key, parent) for v in value]
        if isinstance(kind, Obj):
            if not isinstance(value, dict):
                raise self._node_error(value, "StartObject", key)
            return self._validate_obj(value, kind)
        if kind == "json":
            return value
        if isinstance(value, dict | list):
            raise self._node_error(value, "PrimitiveValue", key)
        ok = {
            "string": isinstance(value, str), "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "guid": isinstance(value, str) and is_guid(value), "datetime": isinstance(value, str),
            "binary": isinstance(value, str),
        }[kind]
        if ok and kind == "datetime":
            try:  # credentials add years to these: keep them where timestamps stay representable
                ok = MIN_TIME <= parse_iso(value) <= MAX_TIME
            except (ValueError, OverflowError):
                ok = False
        if ok and kind == "binary":
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                ok = False
        if not ok:
            shown = json.dumps(value) if not isinstance(value, str) else value
            raise self.error(400, "BadRequest", f"Cannot convert the literal '{shown}' to the expected type "
                                                f"'{EDM[kind]}'.")
        return value

    @staticmethod
    def _edm(kind: Any) -> str:
        if isinstance(kind, Obj):
            return kind.type_name
        return EDM.get(kind, "Edm.Untyped") if isinstance(kind, str) else "Edm.Untyped"

    def _node_error(self, value: Any, expected: str, key: str) -> HttpError:
        found = "StartObject" if isinstance(value, dict) else "StartArray" if isinstance(value, list) else \
            "PrimitiveValue"
        return self.error(400, "BadRequest", f"An unexpected '{found}' node was found when reading from the JSON "
                                             f"reader. A '{expected}' node was expected. (property '{key}')")

    def _q(self, ctx: Ctx, name: str) -> str | None:
        return first(ctx.req.query, name)

    def collection(self, ctx: Ctx, items: list[JSON], etype: EntityType, context: str, *,
                   render: Callable[[JSON, list[str] | None], JSON], filterable: bool = True,
                   default_top: int = 100, view: Callable[[JSON], Mapping[str, Any]] | None = None) -> Response:
        """A paged list: $filter, $orderby, $select, $top, $skiptoken, $count; `render` shapes each item.

        `view` is a cheap read-only look at every property for filtering and sorting (default: a full render)."""
        req = ctx.req
        eventual = (req.headers.get("ConsistencyLevel") or "").lower() == "eventual"
        advanced = eventual and ((self._q(ctx, "count") or "").lower() == "true" or ctx.count_only)
        if ctx.count_only and not eventual:
            raise self.error(400, "Request_BadRequest", "$count is not currently supported.")
        count_raw = self._q(ctx, "count")
        every = sorted(etype.properties)  # filters and sorting see every property, not the default selection
        look: Callable[[JSON], Mapping[str, Any]] = view or (lambda i: render(i, every))
        try:
            if count_raw is not None and count_raw.lower() not in ("true", "false"):
                raise ODataError("BadRequest", f"Invalid value '{count_raw}' for $count query option found. Valid "
                                               f"values are 'true' and 'false'.")
            if (count_raw or "").lower() == "true" and not advanced:
                raise ODataError("Request_BadRequest", "$count is not currently supported.")
            select = parse_select(self._q(ctx, "select"), etype)
            top = parse_top(self._q(ctx, "top"), default=default_top)
            order = parse_orderby(self._q(ctx, "orderby"), etype)
            ftext = self._q(ctx, "filter")
            if ftext is not None:
                if not filterable:
                    raise ODataError("Request_UnsupportedQuery", "Unsupported Query.")
                flt = parse_filter(ftext, etype, advanced=advanced)
                items = [i for i in items if flt(look(i))]
            search = self._q(ctx, "search")
            if search is not None:
                if not filterable:
                    raise ODataError("Request_UnsupportedQuery", "Unsupported Query.")
                found = parse_search(search, etype)
                items = [i for i in items if found(look(i))]
            if order is not None:
                keyed = sort_items([{**look(i), "\x00src": i} for i in items], order)
                items = [k["\x00src"] for k in keyed]
            fp = query_fingerprint(req.path, [ftext or "", self._q(ctx, "orderby") or "",
                                                self._q(ctx, "search") or ""])
            token = self._q(ctx, "skiptoken")
            offset = decode_skiptoken(token, fp) if token is not None else 0
        except ODataError as exc:
            raise self.odata(exc) from None
        if ctx.count_only:
            return Response(200, str(len(items)).encode("ascii"), [("Content-Type", "text/plain;charset=utf-8")])
        pg = page(items, offset, top)
        ctx_name = f"{context}({','.join(select)})" if select is not None else context
        out: JSON = {"@odata.context": f"{ctx.base}/$metadata#{ctx_name}"}
        if advanced:
            out["@odata.count"] = len(items)
        if pg.next_offset is not None:
            out["@odata.nextLink"] = next_link(req.base_url, req.path, req.query,
                                               encode_skiptoken(pg.next_offset, fp))
        out["value"] = [render(i, select) for i in pg.items]
        return self.ok(out)

    def entity(self, ctx: Ctx, obj: JSON, etype: EntityType, context: str,
               render: Callable[[JSON, list[str] | None], JSON]) -> Response:
        try:
            select = parse_select(self._q(ctx, "select"), etype)
        except ODataError as exc:
            raise self.odata(exc) from None
        ctx_name = f"{context}({','.join(select)})" if select is not None else context
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#{ctx_name}/$entity", **render(obj, select)})

    # --- lookups -----------------------------------------------------------------------------------------------
    def _guid_or_400(self, ref: str) -> str:
        if not is_guid(ref):
            raise self.bad(f"Invalid object identifier '{ref}'.")
        return ref.lower()

    def _visible(self, col: Iterable[JSON]) -> list[JSON]:
        return [o for o in col if self.st.visible(o)]

    def app_by_key(self, ctx: Ctx, key: str) -> JSON:
        app = self._app_by_key(ctx, key)
        if self._owned_only(ctx) and not self._owns(ctx, app):
            raise self.denied()
        return app

    def _app_by_key(self, ctx: Ctx, key: str) -> JSON:
        if key.startswith("\x00"):
            app_id = key[1:]
            self._guid_or_400(app_id)
            for app in ctx.tenant.col("applications").values():
                if app.get("appId", "").lower() == app_id.lower() and self.st.visible(app):
                    return app
            raise self.not_found_object(app_id)
        oid = self._guid_or_400(key)
        found = ctx.tenant.col("applications").get(oid)
        if found is None or not self.st.visible(found):
            raise self.not_found_object(key)
        return found

    def sp_by_key(self, ctx: Ctx, key: str) -> JSON:
        if key.startswith("\x00"):
            app_id = key[1:]
            self._guid_or_400(app_id)
            sp = service_principal(self.st, ctx.tenant, app_id)
            if sp is None:
                raise self.not_found_object(app_id)
            return sp
        oid = self._guid_or_400(key)
        found = ctx.tenant.col("servicePrincipals").get(oid)
        if found is None or not self.st.visible(found):
            raise self.not_found_object(key)
        return found

    def group_by_id(self, ctx: Ctx, gid: str) -> JSON:
        oid = self._guid_or_400(gid)
        group = ctx.tenant.col("groups").get(oid)
        if group is None or not self.st.visible(group):
            raise self.not_found_object(gid)
        return group

    def user_by_ref(self, ctx: Ctx, ref: str) -> JSON:
        if "@" not in ref:
            self._guid_or_400(ref)
        user = ctx.tenant.user(ref)
        if user is None or not self.st.visible(user):
            raise self.not_found_object(ref)
        return user

    def directory_object(self, tenant: Tenant, oid: str) -> tuple[str, JSON] | None:
        for kind in ("users", "groups", "servicePrincipals"):
            obj = tenant.col(kind).get(oid)
            if obj is not None and self.st.visible(obj):
                return kind, obj
        return None

    # --- rendering ---------------------------------------------------------------------------------------------
    @staticmethod
    def _merge(defaults: JSON, obj: JSON) -> JSON:
        out = copy.deepcopy(defaults)
        out.update(copy.deepcopy(public(obj)))
        return out

    def render_app(self, app: JSON, select: list[str] | None, *, with_keys: bool = False) -> JSON:
        shown = self._merge(APP_DEFAULTS, app)
        for kc in shown.get("keyCredentials", []):
            if not with_keys:
                kc["key"] = None
        for pc in shown.get("passwordCredentials", []):
            pc["secretText"] = None
        return project(shown, select)

    def render_sp(self, sp: JSON, select: list[str] | None) -> JSON:
        return project(self._merge(SP_DEFAULTS, sp), select)

    def render_group(self, group: JSON, select: list[str] | None) -> JSON:
        return project(self._merge(GROUP_DEFAULTS, group), select)

    def render_user(self, user: JSON, select: list[str] | None) -> JSON:
        full = self._merge(USER_DEFAULTS, user)
        return project(full, select if select is not None else list(USER_DEFAULT_SELECT))

    def render_assignment(self, a: JSON, select: list[str] | None) -> JSON:
        return project(self._merge(ASSIGNMENT_DEFAULTS, a), select)

    def render_member(self, kind_obj: tuple[str, JSON], select: list[str] | None) -> JSON:
        kind, obj = kind_obj
        if kind == "users":
            body = self.render_user(obj, select)
            odata_type = "#microsoft.graph.user"
        elif kind == "groups":
            body = self.render_group(obj, select)
            odata_type = "#microsoft.graph.group"
        elif kind == "servicePrincipals":
            body = self.render_sp(obj, select)
            odata_type = "#microsoft.graph.servicePrincipal"
        else:  # directory role
            body = project(public(obj), select)
            odata_type = "#microsoft.graph.directoryRole"
        body.pop("@odata.type", None)
        return {"@odata.type": odata_type, **body}

    def render_org(self, tenant: Tenant, select: list[str] | None, *, limited: bool) -> JSON:
        sku_plans = []
        for sku in tenant.col("subscribedSkus").values():
            for plan in sku.get("servicePlans", []):
                sku_plans.append({"assignedDateTime": "2024-01-15T09:00:00Z", "capabilityStatus": "Enabled",
                                  "service": plan.get("servicePlanName"), "servicePlanId": plan.get("servicePlanId")})
        org: JSON = {
            "id": tenant.id, "deletedDateTime": None, "businessPhones": [], "city": None, "country": None,
            "countryLetterCode": "US", "createdDateTime": "2020-03-02T10:00:00Z", "defaultUsageLocation": None,
            "displayName": tenant.display_name, "marketingNotificationEmails": [],
            "onPremisesLastSyncDateTime": None, "onPremisesSyncEnabled": None, "postalCode": None,
            "preferredLanguage": "en", "privacyProfile": None, "securityComplianceNotificationMails": [],
            "securityComplianceNotificationPhones": [], "state": None, "street": None,
            "technicalNotificationMails": [], "tenantType": "AAD", "assignedPlans": sku_plans,
            "provisionedPlans": [], "verifiedDomains": copy.deepcopy(tenant.domains),
        }
        if limited:  # User.Read alone: only id, displayName and verifiedDomains are filled in (reference G1)
            org = {k: (v if k in ORG_LIMITED else ([] if isinstance(v, list) else None)) for k, v in org.items()}
        return project(org, select)

    # --- G1 organization ----------------------------------------------------------------------------------------
    def _org_limited(self, ctx: Ctx) -> bool:
        return not ctx.caller.is_app and not (ctx.caller.scopes & (PERMISSIONS["organization.read"].scopes -
                                                                   {"User.Read"}))

    def list_organization(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "organization.read")
        limited = self._org_limited(ctx)
        return self.collection(ctx, [{"id": ctx.tenant.id}], ORGANIZATION, "organization",
                               render=lambda o, sel: self.render_org(ctx.tenant, sel, limited=limited))

    def get_organization(self, ctx: Ctx, oid: str) -> Response:
        self.authorize(ctx, "organization.read")
        self._guid_or_400(oid)
        if oid.lower() != ctx.tenant.id.lower():
            raise self.not_found_object(oid)
        limited = self._org_limited(ctx)
        return self.entity(ctx, {"id": ctx.tenant.id}, ORGANIZATION, "organization",
                           lambda o, sel: self.render_org(ctx.tenant, sel, limited=limited))

    # --- G2 me, memberships ------------------------------------------------------------------------------------------
    def _me(self, ctx: Ctx) -> JSON:
        if ctx.caller.is_app:
            raise self.error(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        if ctx.user is None:
            raise self.not_found_object(ctx.caller.object_id)
        return ctx.user

    def get_me(self, ctx: Ctx) -> Response:
        me = self._me(ctx)
        self.authorize(ctx, "me.read")
        return self.entity(ctx, me, USER, "users", self.render_user)

    def _memberships(self, tenant: Tenant, oid: str, *, transitive: bool) -> list[tuple[str, JSON]]:
        groups = tenant.col("groups")
        direct = [g for g in groups.values() if oid in g.get("_members", []) and self.st.visible(g)]
        if not transitive:
            return [("groups", g) for g in direct]
        seen: dict[str, JSON] = {}
        todo = list(direct)
        while todo:
            g = todo.pop()
            if g["id"] in seen:
                continue
            seen[g["id"]] = g
            todo += [p for p in groups.values() if g["id"] in p.get("_members", []) and self.st.visible(p)]
        return [("groups", g) for g in seen.values()]

    def _member_of(self, ctx: Ctx, user: JSON, *, transitive: bool) -> Response:
        roles = [("roles", r) for r in directory_role_objects(ctx.tenant, user)]
        items = [{"__m": m} for m in roles + self._memberships(ctx.tenant, user["id"], transitive=transitive)]
        return self.collection(ctx, items, DIRECTORY_OBJECT, "directoryObjects",
                               render=lambda i, sel: self.render_member(i["__m"], sel))

    def me_transitive_member_of(self, ctx: Ctx) -> Response:
        me = self._me(ctx)
        self.authorize(ctx, "memberships.read", target_user_id=me["id"])
        return self._member_of(ctx, me, transitive=True)

    def me_member_of(self, ctx: Ctx) -> Response:
        me = self._me(ctx)
        self.authorize(ctx, "memberships.read", target_user_id=me["id"])
        return self._member_of(ctx, me, transitive=False)

    def user_transitive_member_of(self, ctx: Ctx, uid: str) -> Response:
        user = self.user_by_ref(ctx, uid)
        self.authorize(ctx, "memberships.read", target_user_id=user["id"])
        return self._member_of(ctx, user, transitive=True)

    def user_member_of(self, ctx: Ctx, uid: str) -> Response:
        user = self.user_by_ref(ctx, uid)
        self.authorize(ctx, "memberships.read", target_user_id=user["id"])
        return self._member_of(ctx, user, transitive=False)

    # --- G3-G5 applications ---------------------------------------------------------------------------------------
    @staticmethod
    def _owned_only(ctx: Ctx) -> bool:
        """An app holding only Application.ReadWrite.OwnedBy sees and manages just the applications it owns."""
        roles = ctx.caller.roles
        return (ctx.caller.is_app and "Application.ReadWrite.OwnedBy" in roles
                and not roles & {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All",
                                 "Directory.ReadWrite.All"})

    def _owns(self, ctx: Ctx, app: JSON) -> bool:
        return ctx.caller.object_id in app.get("_owners", [])

    def list_applications(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "applications.read")
        apps = self._visible(ctx.tenant.col("applications").values())
        if self._owned_only(ctx):
            apps = [a for a in apps if self._owns(ctx, a)]
        return self.collection(ctx, apps, APPLICATION, "applications", render=self.render_app,
                               view=lambda o: {**APP_DEFAULTS, **o})

    def get_application(self, ctx: Ctx, key: str) -> Response:
        self.authorize(ctx, "applications.read")
        app = self.app_by_key(ctx, key)
        try:
            select = parse_select(self._q(ctx, "select"), APPLICATION)
        except ODataError as exc:
            raise self.odata(exc) from None
        with_keys = select is not None and "keyCredentials" in select  # reference G5: key only with $select
        return self.entity(ctx, app, APPLICATION, "applications",
                           lambda o, sel: self.render_app(o, sel, with_keys=with_keys))

    def _check_app_values(self, body: JSON, now: float) -> None:
        if "displayName" in body and (not isinstance(body["displayName"], str) or not body["displayName"].strip()):
            raise self.bad("Invalid value specified for property 'displayName' of resource 'Application'.")
        if "signInAudience" in body and body["signInAudience"] not in SIGN_IN_AUDIENCES:
            raise self.bad("Invalid value specified for property 'signInAudience' of resource 'Application'.")
        for holder in ("web", "publicClient", "spa"):
            for uri in (body.get(holder) or {}).get("redirectUris") or []:
                if not re.match(r"^(https://|http://localhost|http://127\.0\.0\.1|ms-appx-web://|urn:ietf:wg:oauth)",
                                uri) or len(uri) > 256:
                    raise self.bad(f"Invalid value specified for property 'redirectUris' of resource "
                                   f"'{holder[0].upper() + holder[1:]}Application'.")
        for rra in body.get("requiredResourceAccess") or []:
            if not is_guid(str(rra.get("resourceAppId") or "")):
                raise self.bad("Invalid value specified for property 'resourceAppId' of resource "
                               "'RequiredResourceAccess'.")
            for access in rra.get("resourceAccess") or []:
                if access.get("type") not in ("Role", "Scope") or not access.get("id"):
                    raise self.bad("Invalid value specified for property 'resourceAccess' of resource "
                                   "'RequiredResourceAccess'.")
        if "keyCredentials" in body:
            body["keyCredentials"] = [self._key_credential(kc, now) for kc in body["keyCredentials"] or []]

    def _key_credential(self, kc: JSON, now: float) -> JSON:
        """A certificate credential: the DER must parse; thumbprint and validity default from the certificate."""
        if kc.get("type", "AsymmetricX509Cert") != "AsymmetricX509Cert" or kc.get("usage", "Verify") not in (
                "Verify", "Sign"):
            raise self.bad("Invalid value specified for property 'keyCredentials' of resource 'Application'.")
        key = kc.get("key")
        if not key:
            raise self.bad("Invalid certificate: Key value is invalid certificate")
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(key, validate=True))
        except (binascii.Error, ValueError):
            raise self.bad("Invalid certificate: Key value is invalid certificate") from None
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
        start = parse_iso(kc["startDateTime"]) if kc.get("startDateTime") else not_before
        end = parse_iso(kc["endDateTime"]) if kc.get("endDateTime") else not_after
        if end <= start or end > not_after + 1 or start < not_before - 1:
            raise self.bad("Key credential end date is invalid.")
        thumb = base64.b64encode(cert.fingerprint(hashes.SHA1())).decode("ascii")
        return {
            "customKeyIdentifier": kc.get("customKeyIdentifier") or thumb,
            "displayName": kc.get("displayName") or cert.subject.rfc4514_string(),
            "endDateTime": _iso_frac(end), "key": key, "keyId": (kc.get("keyId") or str(uuid.uuid4())).lower(),
            "startDateTime": _iso_frac(start), "type": "AsymmetricX509Cert", "usage": kc.get("usage", "Verify"),
        }

    def create_application(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "applications.write")
        body = self.body(ctx, APPLICATION_BODY)
        if not body.get("displayName"):
            raise self.bad("Invalid value specified for property 'displayName' of resource 'Application'.")
        now = self.st.clock.now()
        self._check_app_values(body, now)
        default = next((d["name"] for d in ctx.tenant.domains if d.get("isDefault")), ctx.tenant.initial_domain)
        oid = str(uuid.uuid4())
        app = copy.deepcopy(APP_DEFAULTS)
        for k, v in body.items():
            if isinstance(APP_DEFAULTS.get(k), dict) and isinstance(v, dict):
                app[k] = {**APP_DEFAULTS[k], **v}
            else:
                app[k] = v
        app.update({"id": oid, "appId": str(uuid.uuid4()), "createdDateTime": iso(now), "publisherDomain": default,
                    "passwordCredentials": [], "_secretHashes": {}, "_owners": [ctx.caller.object_id]})
        if app["api"].get("requestedAccessTokenVersion") is None and app["signInAudience"] in SIGN_IN_AUDIENCES[2:]:
            app["api"]["requestedAccessTokenVersion"] = 2
        ctx.tenant.col("applications")[oid] = self.st.stamp(app)
        location = f"{ctx.base}/directoryObjects/{oid}/Microsoft.DirectoryServices.Application"
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#applications/$entity",
                        **self.render_app(app, None)}, 201, [("Location", location)])

    def patch_application(self, ctx: Ctx, key: str) -> Response:
        app = self.app_by_key(ctx, key)
        self._authorize_app_write(ctx, app)
        body = self.body(ctx, APPLICATION_BODY)
        self._check_app_values(body, self.st.clock.now())
        for k, v in body.items():
            if isinstance(APP_DEFAULTS.get(k), dict) and isinstance(v, dict):
                app[k] = {**(app.get(k) or APP_DEFAULTS[k]), **v}
            else:
                app[k] = v
        self.st.touch()
        return Response.empty(204)

    def delete_application(self, ctx: Ctx, key: str) -> Response:
        app = self.app_by_key(ctx, key)
        self._authorize_app_write(ctx, app)
        del ctx.tenant.col("applications")[app["id"]]
        home_sp = service_principal(self.st, ctx.tenant, app["appId"], include_hidden=True)
        if home_sp is not None:  # the home tenant's SP goes with its app
            self._drop_sp(ctx.tenant, home_sp)
        self.st.touch()
        return Response.empty(204)

    def add_password(self, ctx: Ctx, key: str) -> Response:
        app = self.app_by_key(ctx, key)
        self._authorize_app_write(ctx, app)
        body = self.body(ctx, ADD_PASSWORD_BODY, required=False)
        pc_in: JSON = body.get("passwordCredential") or {}
        for ro in ("hint", "keyId", "secretText"):
            if pc_in.get(ro) is not None:
                raise self.bad(f"Property '{ro}' is read-only and cannot be set.")
        now = self.st.clock.now()
        start = parse_iso(pc_in["startDateTime"]) if pc_in.get("startDateTime") else now
        end = parse_iso(pc_in["endDateTime"]) if pc_in.get("endDateTime") else start + 2 * 365.25 * 86400
        if end <= start:
            raise self.bad("Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.")
        secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(3)) + "8Q~" + \
            "".join(secrets.choice(SECRET_ALPHABET) for _ in range(34))
        key_id = str(uuid.uuid4())
        stored = {"customKeyIdentifier": None, "displayName": pc_in.get("displayName"),
                  "endDateTime": _iso_frac(end), "hint": secret[:3], "keyId": key_id, "secretText": None,
                  "startDateTime": _iso_frac(start)}
        app.setdefault("passwordCredentials", []).append(stored)
        app.setdefault("_secretHashes", {})[key_id] = sha256_hex(secret)
        self.st.touch()
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#microsoft.graph.passwordCredential",
                        **stored, "secretText": secret})

    def remove_password(self, ctx: Ctx, key: str) -> Response:
        app = self.app_by_key(ctx, key)
        self._authorize_app_write(ctx, app)
        body = self.body(ctx, REMOVE_PASSWORD_BODY)
        key_id = str(body.get("keyId") or "").lower()
        if not key_id:
            raise self.bad("Invalid value specified for property 'keyId' of resource 'Application'.")
        creds = app.get("passwordCredentials", [])
        if not any(str(c.get("keyId")).lower() == key_id for c in creds):
            raise self.error(404, "Request_ResourceNotFound", f"No password credential found with keyId "
                                                              f"'{key_id}'.")
        app["passwordCredentials"] = [c for c in creds if str(c.get("keyId")).lower() != key_id]
        app.get("_secretHashes", {}).pop(key_id, None)
        self.st.touch()
        return Response.empty(204)

    def _authorize_app_write(self, ctx: Ctx, app: JSON) -> None:
        self.authorize(ctx, "applications.write",
                       owner=not ctx.caller.is_app and ctx.caller.object_id in app.get("_owners", []))

    def _authorize_key_rollover(self, ctx: Ctx, app: JSON) -> None:
        """An app may roll its own certificates with a proof and no permission at all; others need app writes."""
        if ctx.caller.is_app and ctx.caller.app_id.lower() == str(app.get("appId")).lower():
            return
        self._authorize_app_write(ctx, app)

    def list_owners(self, ctx: Ctx, key: str) -> Response:
        self.authorize(ctx, "applications.read")
        app = self.app_by_key(ctx, key)
        found = [self.directory_object(ctx.tenant, oid) for oid in app.get("_owners", [])]
        items = [{"__m": m} for m in found if m is not None]
        return self.collection(ctx, items, DIRECTORY_OBJECT, "directoryObjects",
                               render=lambda i, sel: self.render_member(i["__m"], sel))

    def add_owner(self, ctx: Ctx, key: str) -> Response:
        app = self.app_by_key(ctx, key)
        self._authorize_app_write(ctx, app)
        body = self.body(ctx, REF_BODY)
        if "@odata.id" not in body:
            raise self.bad("Invalid value specified for property '@odata.id' of resource 'DirectoryObjectReference'.")
        oid = self._ref_target(ctx, body["@odata.id"])
        found = self.directory_object(ctx.tenant, oid)
        if found is None or found[0] == "groups":
            raise self.bad("Invalid value specified for property 'owners' of resource 'Application'.")
        owners = app.setdefault("_owners", [])
        if oid in owners:
            raise self.bad("One or more added object references already exist for the following modified "
                           "properties: 'owners'.")
        owners.append(oid)
        self.st.touch()
        return Response.empty(204)

    def remove_owner(self, ctx: Ctx, key: str, oid: str) -> Response:
        app = self.app_by_key(ctx, key)
        self._authorize_app_write(ctx, app)
        ref = self._guid_or_400(oid)
        owners = app.setdefault("_owners", [])
        if ref not in owners:
            raise self.not_found_object(oid)
        owners.remove(ref)
        self.st.touch()
        return Response.empty(204)

    def _check_proof(self, app: JSON, proof: Any) -> None:
        """Reference G5: a JWT signed by a currently valid certificate of the app, aud = the AAD Graph app id,
        iss = the app's object id, lifespan (exp - nbf) at most 10 minutes."""
        if not isinstance(proof, str) or not proof:
            raise self.denied()
        malformed = self.error(401, "Authentication_MissingOrMalformed", "Access Token missing or malformed.")
        now = self.st.clock.now()
        for kc in app.get("keyCredentials", []):
            if kc.get("usage") != "Verify" or not kc.get("key"):
                continue
            try:
                if not parse_iso(kc["startDateTime"]) - 300 <= now <= parse_iso(kc["endDateTime"]):
                    continue
                cert = x509.load_der_x509_certificate(base64.b64decode(kc["key"]))
                claims = jwt.decode(proof, cert.public_key(),  # type: ignore[arg-type]
                                    algorithms=["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"],
                                    audience="00000002-0000-0000-c000-000000000000",
                                    options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                             "require": ["aud", "iss", "nbf", "exp"]})
            except (ValueError, TypeError, KeyError, jwt.PyJWTError):
                continue
            nbf, exp = claims.get("nbf"), claims.get("exp")
            if (str(claims.get("iss")).lower() == str(app["id"]).lower() and isinstance(nbf, int | float)
                    and isinstance(exp, int | float) and 0 < exp - nbf <= 600 and nbf - 300 <= now <= exp):
                return
        raise malformed

    def add_key(self, ctx: Ctx, key: str) -> Response:
        app = self.app_by_key(ctx, key)
        self._authorize_key_rollover(ctx, app)
        body = self.body(ctx, ADD_KEY_BODY)
        if not isinstance(body.get("keyCredential"), dict):
            raise self.bad("Invalid value specified for property 'keyCredential' of resource 'Application'.")
        if body.get("passwordCredential") is not None:
            raise self.bad("Invalid value specified for property 'passwordCredential' of resource 'Application'.")
        self._check_proof(app, body.get("proof"))
        added = self._key_credential(body["keyCredential"], self.st.clock.now())
        if any(str(k.get("keyId")).lower() == added["keyId"] for k in app.get("keyCredentials", [])):
            raise self.bad("Invalid value specified for property 'keyId' of resource 'KeyCredential'.")
        app.setdefault("keyCredentials", []).append(added)
        self.st.touch()
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#microsoft.graph.keyCredential",
                        **added, "key": None})

    def remove_key(self, ctx: Ctx, key: str) -> Response:
        app = self.app_by_key(ctx, key)
        self._authorize_key_rollover(ctx, app)
        body = self.body(ctx, REMOVE_KEY_BODY)
        key_id = str(body.get("keyId") or "").lower()
        if not key_id:
            raise self.bad("Invalid value specified for property 'keyId' of resource 'Application'.")
        self._check_proof(app, body.get("proof"))
        creds = app.get("keyCredentials", [])
        if not any(str(c.get("keyId")).lower() == key_id for c in creds):
            raise self.error(404, "Request_ResourceNotFound", f"No key credential found with keyId '{key_id}'.")
        app["keyCredentials"] = [c for c in creds if str(c.get("keyId")).lower() != key_id]
        self.st.touch()
        return Response.empty(204)

    # --- G6-G9 service principals and app role assignments -------------------------------------------------------------
    def list_service_principals(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "applications.read")
        sps = self._visible(ctx.tenant.col("servicePrincipals").values())
        return self.collection(ctx, sps, SERVICE_PRINCIPAL, "servicePrincipals", render=self.render_sp,
                               view=lambda o: {**SP_DEFAULTS, **o})

    def get_service_principal(self, ctx: Ctx, key: str) -> Response:
        self.authorize(ctx, "applications.read")
        sp = self.sp_by_key(ctx, key)
        return self.entity(ctx, sp, SERVICE_PRINCIPAL, "servicePrincipals", self.render_sp)

    def create_service_principal(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "applications.write")
        body = self.body(ctx, SERVICE_PRINCIPAL_BODY)
        app_id = body.get("appId")
        if not isinstance(app_id, str) or not app_id:
            raise self.bad("Invalid value specified for property 'appId' of resource 'ServicePrincipal'.")
        no_app = self.bad(f"The appId '{app_id}' of the service principal does not reference a valid application "
                          f"object.")
        if not is_guid(app_id):
            raise no_app
        if service_principal(self.st, ctx.tenant, app_id, include_hidden=True) is not None:
            raise self.error(409, "Request_MultipleObjectsWithSameKeyValue",
                             "Another object with the same value for property servicePrincipalNames already "
                             "exists.")
        found = find_application(self.st, app_id)
        if found is None:
            raise no_app
        home, app = found
        if home.id != ctx.tenant.id and app.get("signInAudience") not in SIGN_IN_AUDIENCES[1:3]:
            raise no_app  # a single-tenant app cannot be instantiated in another tenant
        sp, _ = ensure_service_principal(self.st, ctx.tenant, home, app)
        for k in ("accountEnabled", "tags", "appRoleAssignmentRequired", "notes", "description",
                  "notificationEmailAddresses"):
            if k in body and body[k] is not None:
                sp[k] = body[k]
        self.st.touch()
        location = f"{ctx.base}/directoryObjects/{sp['id']}/Microsoft.DirectoryServices.ServicePrincipal"
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#servicePrincipals/$entity",
                        **self.render_sp(sp, None)}, 201, [("Location", location)])

    def _drop_sp(self, tenant: Tenant, sp: JSON) -> None:
        tenant.col("servicePrincipals").pop(sp["id"], None)
        assignments = tenant.col("appRoleAssignments")
        for aid in [a for a, v in assignments.items() if sp["id"] in (v.get("principalId"), v.get("resourceId"))]:
            del assignments[aid]

    def delete_service_principal(self, ctx: Ctx, key: str) -> Response:
        self.authorize(ctx, "applications.write")
        sp = self.sp_by_key(ctx, key)
        self._drop_sp(ctx.tenant, sp)
        self.st.touch()
        return Response.empty(204)

    def _assignments(self, ctx: Ctx, field_name: str, sp_id: str) -> list[JSON]:
        return [a for a in self._visible(ctx.tenant.col("appRoleAssignments").values())
                if a.get(field_name) == sp_id]

    def list_assigned_to(self, ctx: Ctx, key: str) -> Response:
        self.authorize(ctx, "applications.read")
        sp = self.sp_by_key(ctx, key)
        return self.collection(ctx, self._assignments(ctx, "resourceId", sp["id"]), APP_ROLE_ASSIGNMENT,
                               f"servicePrincipals('{sp['id']}')/appRoleAssignedTo", render=self.render_assignment)

    def list_assignments(self, ctx: Ctx, key: str) -> Response:
        self.authorize(ctx, "applications.read")
        sp = self.sp_by_key(ctx, key)
        return self.collection(ctx, self._assignments(ctx, "principalId", sp["id"]), APP_ROLE_ASSIGNMENT,
                               f"servicePrincipals('{sp['id']}')/appRoleAssignments", render=self.render_assignment)

    def _grant(self, ctx: Ctx, body: JSON, context: str) -> Response:
        for k in ("principalId", "resourceId", "appRoleId"):
            if not body.get(k):
                raise self.bad(f"Invalid value specified for property '{k}' of resource 'AppRoleAssignment'.")
        principal = self.directory_object(ctx.tenant, str(body["principalId"]).lower())
        if principal is None:
            raise self.not_found_object(body["principalId"])
        resource = ctx.tenant.col("servicePrincipals").get(str(body["resourceId"]).lower())
        if resource is None or not self.st.visible(resource):
            raise self.not_found_object(body["resourceId"])
        kind, pobj = principal
        member_type = {"users": "User", "groups": "User", "servicePrincipals": "Application"}[kind]
        role_id = str(body["appRoleId"]).lower()
        role = next((r for r in resource.get("appRoles", []) if str(r.get("id")).lower() == role_id), None)
        default_access = role_id == "00000000-0000-0000-0000-000000000000" and kind != "servicePrincipals"
        if not default_access and (role is None or member_type not in role.get("allowedMemberTypes", [])):
            raise self.bad("Permission being assigned was not found on application "
                           f"'{resource.get('appId')}'.")
        assignments = ctx.tenant.col("appRoleAssignments")
        if any(a["principalId"] == pobj["id"] and a["resourceId"] == resource["id"] and a["appRoleId"] == role_id
               for a in assignments.values()):
            raise self.bad("Permission being assigned already exists on the object")
        # The same operation as the identity platform's admin consent (reference §4, note under G8).
        assignment, _ = grant_app_role(self.st, ctx.tenant, pobj, resource, role_id)
        assignment["principalType"] = {"users": "User", "groups": "Group",
                                       "servicePrincipals": "ServicePrincipal"}[kind]
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#{context}/$entity",
                        **self.render_assignment(assignment, None)}, 201)

    def create_assigned_to(self, ctx: Ctx, key: str) -> Response:
        self.authorize(ctx, "appRoleAssignments.write")
        sp = self.sp_by_key(ctx, key)
        body = self.body(ctx, APP_ROLE_ASSIGNMENT_BODY)
        if body.get("resourceId") and str(body["resourceId"]).lower() != sp["id"]:
            raise self.bad("Invalid value specified for property 'resourceId' of resource 'AppRoleAssignment'.")
        body.setdefault("resourceId", sp["id"])
        return self._grant(ctx, body, f"servicePrincipals('{sp['id']}')/appRoleAssignedTo")

    def create_assignment(self, ctx: Ctx, key: str) -> Response:
        self.authorize(ctx, "appRoleAssignments.write")
        sp = self.sp_by_key(ctx, key)
        body = self.body(ctx, APP_ROLE_ASSIGNMENT_BODY)
        if body.get("principalId") and str(body["principalId"]).lower() != sp["id"]:
            raise self.bad("Invalid value specified for property 'principalId' of resource 'AppRoleAssignment'.")
        body.setdefault("principalId", sp["id"])
        return self._grant(ctx, body, f"servicePrincipals('{sp['id']}')/appRoleAssignments")

    def _delete_assignment(self, ctx: Ctx, key: str, aid: str, field_name: str) -> Response:
        self.authorize(ctx, "appRoleAssignments.write")
        sp = self.sp_by_key(ctx, key)
        assignments = ctx.tenant.col("appRoleAssignments")
        found = next((k for k, a in assignments.items() if k == aid and a.get(field_name) == sp["id"]), None)
        if found is None:
            raise self.not_found_object(aid)
        del assignments[found]
        self.st.touch()
        return Response.empty(204)

    def delete_assigned_to(self, ctx: Ctx, key: str, aid: str) -> Response:
        return self._delete_assignment(ctx, key, aid, "resourceId")

    def delete_assignment(self, ctx: Ctx, key: str, aid: str) -> Response:
        return self._delete_assignment(ctx, key, aid, "principalId")

    # --- G10-G11 groups -----------------------------------------------------------------------------------------------
    @staticmethod
    def _exchange_authored(group: JSON) -> bool:
        """Mail-enabled security groups and distribution lists live in Exchange: read-only through Graph."""
        return bool(group.get("mailEnabled")) and "Unified" not in group.get("groupTypes", [])

    def list_groups(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "groups.read")
        groups = self._visible(ctx.tenant.col("groups").values())
        return self.collection(ctx, groups, GROUP, "groups", render=self.render_group,
                               view=lambda o: {**GROUP_DEFAULTS, **o})

    def get_group(self, ctx: Ctx, gid: str) -> Response:
        self.authorize(ctx, "groups.read")
        return self.entity(ctx, self.group_by_id(ctx, gid), GROUP, "groups", self.render_group)

    def create_group(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "groups.write")
        body = self.body(ctx, GROUP_BODY)
        for k in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
            if body.get(k) is None or body.get(k) == "":
                raise self.bad(f"Invalid value specified for property '{k}' of resource 'Group'.")
        if body["mailEnabled"] and "Unified" not in (body.get("groupTypes") or []):
            raise self.bad("Cannot Create a mail-enabled security groups and or distribution list.")
        nick = str(body["mailNickname"])
        if not re.fullmatch(r"[A-Za-z0-9._\-']{1,64}", nick):
            raise self.bad("Invalid value specified for property 'mailNickname' of resource 'Group'.")
        members: list[str] = []
        for ref in body.get("members@odata.bind") or []:
            members.append(self._ref_target(ctx, ref))
        now = self.st.clock.now()
        gid = str(uuid.uuid4())
        unified = "Unified" in (body.get("groupTypes") or [])
        domain = next((d["name"] for d in ctx.tenant.domains if d.get("isDefault")), ctx.tenant.initial_domain)
        group = copy.deepcopy(GROUP_DEFAULTS)
        group.update({k: v for k, v in body.items() if "@" not in k})
        group.update({"id": gid, "createdDateTime": iso(now), "renewedDateTime": iso(now) if unified else None,
                      "mail": f"{nick}@{domain}" if unified else None,
                      "proxyAddresses": [f"SMTP:{nick}@{domain}"] if unified else [],
                      "securityIdentifier": "S-1-12-1-" + "-".join(str(b) for b in uuid.UUID(gid).fields[:4]),
                      "_members": members})
        ctx.tenant.col("groups")[gid] = self.st.stamp(group)
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#groups/$entity", **self.render_group(group, None)},
                       201, [("Location", f"{ctx.base}/directoryObjects/{gid}/Microsoft.DirectoryServices.Group")])

    def patch_group(self, ctx: Ctx, gid: str) -> Response:
        self.authorize(ctx, "groups.write")
        group = self.group_by_id(ctx, gid)
        body = self.body(ctx, GROUP_BODY)
        if self._exchange_authored(group):
            raise self.bad(NOT_MAIL_ENABLED_WRITE)
        for k in ("mailEnabled", "groupTypes", "securityEnabled", "isAssignableToRole"):
            if k in body and body[k] != group.get(k):
                raise self.bad(f"Invalid value specified for property '{k}' of resource 'Group'.")
        for k, v in body.items():
            if "@" not in k:
                group[k] = v
        for ref in body.get("members@odata.bind") or []:
            mid = self._ref_target(ctx, ref)
            if mid not in group["_members"]:
                group["_members"].append(mid)
        self.st.touch()
        return Response.empty(204)

    def _ref_target(self, ctx: Ctx, ref: Any) -> str:
        m = re.search(r"/(?:directoryObjects|users|groups|servicePrincipals)/([^/?]+)$", str(ref))
        if m is None:
            raise self.bad(f"Invalid URL format specified in @odata.bind for members: '{ref}'.")
        oid = self._guid_or_400(m.group(1))
        if self.directory_object(ctx.tenant, oid) is None:
            raise self.not_found_object(m.group(1))
        return oid

    def add_group_member(self, ctx: Ctx, gid: str) -> Response:
        self.authorize(ctx, "groups.write")
        group = self.group_by_id(ctx, gid)
        body = self.body(ctx, REF_BODY)
        if "@odata.id" not in body:
            raise self.bad("Invalid value specified for property '@odata.id' of resource 'DirectoryObjectReference'.")
        mid = self._ref_target(ctx, body["@odata.id"])
        if self._exchange_authored(group):
            raise self.bad(NOT_MAIL_ENABLED_WRITE)
        if mid in group["_members"]:
            raise self.bad("One or more added object references already exist for the following modified "
                           "properties: 'members'.")
        group["_members"].append(mid)
        self.st.touch()
        return Response.empty(204)

    def remove_group_member(self, ctx: Ctx, gid: str, mid: str) -> Response:
        self.authorize(ctx, "groups.write")
        group = self.group_by_id(ctx, gid)
        oid = self._guid_or_400(mid)
        if self._exchange_authored(group):
            raise self.bad(NOT_MAIL_ENABLED_WRITE)
        if oid not in group["_members"]:
            raise self.not_found_object(mid)
        group["_members"].remove(oid)
        self.st.touch()
        return Response.empty(204)

    def _members(self, ctx: Ctx, group: JSON, *, transitive: bool) -> list[tuple[str, JSON]]:
        out: dict[str, tuple[str, JSON]] = {}
        todo = [group]
        seen = {group["id"]}
        while todo:
            g = todo.pop(0)
            for mid in g.get("_members", []):
                found = self.directory_object(ctx.tenant, mid)
                if found is None or mid in out:
                    continue
                out[mid] = found
                if transitive and found[0] == "groups" and mid not in seen:
                    seen.add(mid)
                    todo.append(found[1])
        return list(out.values())

    def _member_list(self, ctx: Ctx, gid: str, transitive: bool) -> Response:
        self.authorize(ctx, "groups.read")
        group = self.group_by_id(ctx, gid)
        items = [{"__m": m} for m in self._members(ctx, group, transitive=transitive)]
        return self.collection(ctx, items, DIRECTORY_OBJECT, "directoryObjects",
                               render=lambda i, sel: self.render_member(i["__m"], sel))

    def group_members(self, ctx: Ctx, gid: str) -> Response:
        return self._member_list(ctx, gid, False)

    def group_transitive_members(self, ctx: Ctx, gid: str) -> Response:
        return self._member_list(ctx, gid, True)

    # --- G12 subscribedSkus -------------------------------------------------------------------------------------------
    def _consumed(self, tenant: Tenant, sku_id: str) -> int:
        return sum(1 for u in tenant.col("users").values()
                   if any(str(a.get("skuId")).lower() == sku_id.lower() for a in u.get("assignedLicenses", [])))

    def render_sku(self, tenant: Tenant, sku: JSON, select: list[str] | None) -> JSON:
        shown = copy.deepcopy(public(sku))
        shown["consumedUnits"] = self._consumed(tenant, sku["skuId"])
        return project(shown, select)

    def list_skus(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "skus.read")
        skus = list(ctx.tenant.col("subscribedSkus").values())
        return self.collection(ctx, skus, SUBSCRIBED_SKU, "subscribedSkus", filterable=False,
                               render=lambda s, sel: self.render_sku(ctx.tenant, s, sel))

    def get_sku(self, ctx: Ctx, sid: str) -> Response:
        self.authorize(ctx, "skus.read")
        sku = next((s for s in ctx.tenant.col("subscribedSkus").values() if s["id"].lower() == sid.lower()), None)
        if sku is None:
            raise self.not_found_object(sid)
        return self.entity(ctx, sku, SUBSCRIBED_SKU, "subscribedSkus",
                           lambda s, sel: self.render_sku(ctx.tenant, s, sel))

    # --- G13 users and licenses ---------------------------------------------------------------------------------------
    def list_users(self, ctx: Ctx) -> Response:
        self.authorize(ctx, "users.read")
        users = self._visible(ctx.tenant.col("users").values())
        return self.collection(ctx, users, USER, "users", render=self.render_user,
                               view=lambda o: {**USER_DEFAULTS, **o})

    def get_user(self, ctx: Ctx, uid: str) -> Response:
        user = self.user_by_ref(ctx, uid)
        self.authorize(ctx, "users.read", target_user_id=user["id"])
        return self.entity(ctx, user, USER, "users", self.render_user)

    def _license_details(self, ctx: Ctx, user: JSON) -> Response:
        skus = ctx.tenant.col("subscribedSkus")
        items: list[JSON] = []
        for a in user.get("assignedLicenses", []):
            sku = skus.get(str(a.get("skuId")))
            if sku is None:
                continue
            disabled = {str(p).lower() for p in a.get("disabledPlans", [])}
            did = base64.urlsafe_b64encode(hashlib.sha256((user["id"] + sku["skuId"]).encode()).digest()[:24])
            items.append({"id": did.decode("ascii"), "skuId": sku["skuId"], "skuPartNumber": sku["skuPartNumber"],
                          "servicePlans": [{**p, "provisioningStatus": "Disabled"
                                            if str(p["servicePlanId"]).lower() in disabled else "Success"}
                                           for p in sku.get("servicePlans", [])]})
        return self.collection(ctx, items, LICENSE_DETAILS, f"users('{user['id']}')/licenseDetails",
                               filterable=False, render=lambda i, sel: project(i, sel))

    def license_details(self, ctx: Ctx, uid: str) -> Response:
        user = self.user_by_ref(ctx, uid)
        self.authorize(ctx, "users.read", target_user_id=user["id"])
        return self._license_details(ctx, user)

    def me_license_details(self, ctx: Ctx) -> Response:
        me = self._me(ctx)
        self.authorize(ctx, "users.read", target_user_id=me["id"])
        return self._license_details(ctx, me)

    def assign_license(self, ctx: Ctx, uid: str) -> Response:
        self.authorize(ctx, "licenses.write")
        user = self.user_by_ref(ctx, uid)
        body = self.body(ctx, ASSIGN_LICENSE_BODY)
        for k in ("addLicenses", "removeLicenses"):
            if body.get(k) is None:
                raise self.bad(f"Invalid value specified for property '{k}' of resource 'User'.")
        skus = ctx.tenant.col("subscribedSkus")
        current = {str(a["skuId"]).lower(): a for a in user.get("assignedLicenses", [])}
        adds: list[JSON] = body["addLicenses"]
        removes = [str(r).lower() for r in body["removeLicenses"]]
        if adds and not user.get("usageLocation"):
            raise self.bad("License assignment cannot be done for user with invalid usage location.")
        for lic in adds:
            sku_id = str(lic.get("skuId") or "").lower()
            sku = skus.get(sku_id)
            if sku is None:
                raise self.bad(f"License {lic.get('skuId')} does not correspond to a valid company License.")
            plan_ids = {str(p["servicePlanId"]).lower() for p in sku.get("servicePlans", [])}
            for plan in lic.get("disabledPlans") or []:
                if str(plan).lower() not in plan_ids:
                    raise self.bad(f"Invalid value specified for property 'disabledPlans' of resource "
                                   f"'AssignedLicense'. Service plan {plan} is not part of license {sku_id}.")
            if sku_id not in current:
                enabled = int((sku.get("prepaidUnits") or {}).get("enabled", 0))
                if self._consumed(ctx.tenant, sku_id) >= enabled:
                    raise self.bad(f"Subscription with SKU {sku_id} does not have any available licenses.")
        for sku_id in removes:
            if sku_id not in current:
                raise self.bad("User does not have a corresponding license.")
        for sku_id in removes:
            current.pop(sku_id)
        for lic in adds:
            sku_id = str(lic["skuId"]).lower()
            current[sku_id] = {"disabledPlans": [str(p).lower() for p in lic.get("disabledPlans") or []],
                               "skuId": sku_id}
        user["assignedLicenses"] = list(current.values())
        for sku in skus.values():
            sku["consumedUnits"] = self._consumed(ctx.tenant, sku["skuId"])
        self.st.touch()
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#users/$entity", **self.render_user(user, None)})

    def _revoke(self, ctx: Ctx, user: JSON) -> Response:
        revoke_user_sessions(self.st, ctx.tenant, user["id"])
        user["signInSessionsValidFromDateTime"] = iso(self.st.clock.now())
        self.st.touch()
        return self.ok({"@odata.context": f"{ctx.base}/$metadata#Edm.Boolean", "value": True})

    def revoke_sessions(self, ctx: Ctx, uid: str) -> Response:
        user = self.user_by_ref(ctx, uid)
        self.authorize(ctx, "sessions.revoke", target_user_id=user["id"])
        return self._revoke(ctx, user)

    def me_revoke(self, ctx: Ctx) -> Response:
        me = self._me(ctx)
        self.authorize(ctx, "sessions.revoke", target_user_id=me["id"])
        return self._revoke(ctx, me)

    # --- G14 invitations (legacy target script only) ---------------------------------------------------------------
    def invite(self, ctx: Ctx) -> Response:
        """B2B invitation: creates (or finds) the guest user and answers with the invitation, as CT-T reads it."""
        self.authorize(ctx, "invitations.write")
        body = self.body(ctx, INVITATION_BODY)
        email = body.get("invitedUserEmailAddress")
        if not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise self.bad("Invalid value specified for property 'invitedUserEmailAddress' of resource 'Invitation'.")
        redirect = body.get("inviteRedirectUrl")
        if not isinstance(redirect, str) or not re.match(r"^https?://", redirect):
            raise self.bad("Invalid value specified for property 'inviteRedirectUrl' of resource 'Invitation'.")
        user_type = body.get("invitedUserType") or "Guest"
        if user_type not in ("Guest", "Member"):
            raise self.bad("Invalid value specified for property 'invitedUserType' of resource 'Invitation'.")
        users = ctx.tenant.col("users")
        guest = next((u for u in users.values() if str(u.get("mail") or "").lower() == email.lower()), None)
        if guest is None:
            now = self.st.clock.now()
            uid = str(uuid.uuid4())
            upn = f"{email.replace('@', '_')}#EXT#@{ctx.tenant.initial_domain}"
            guest = {"id": uid, "userPrincipalName": upn, "displayName": body.get("invitedUserDisplayName") or email,
                     "mail": email, "mailNickname": email.replace("@", "_"), "accountEnabled": True,
                     "userType": user_type, "usageLocation": None, "assignedLicenses": [], "proxyAddresses": [],
                     "otherMails": [email], "creationType": "Invitation", "externalUserState": "PendingAcceptance",
                     "createdDateTime": iso(now), "_roles": [], "_account": False}
            users[uid] = self.st.stamp(guest)
        info = {"ccRecipients": [], "customizedMessageBody": None, "messageLanguage": None,
                **(body.get("invitedUserMessageInfo") or {})}
        token = base64.urlsafe_b64encode(secrets.token_bytes(18)).decode("ascii")
        login = self.sb.urls.get("login", "https://login.microsoftonline.com")
        return self.ok({
            "@odata.context": f"{ctx.base}/$metadata#invitations/$entity", "id": str(uuid.uuid4()),
            "inviteRedeemUrl": f"{login}/redeem?rd={token}&tenant={ctx.tenant.id}",
            "invitedUserDisplayName": body.get("invitedUserDisplayName"), "invitedUserType": user_type,
            "invitedUserEmailAddress": email, "sendInvitationMessage": bool(body.get("sendInvitationMessage")),
            "resetRedemption": bool(body.get("resetRedemption")), "inviteRedirectUrl": redirect,
            "status": "PendingAcceptance", "invitedUserMessageInfo": info,
            "invitedUser": {"id": guest["id"]},
        }, 201)

    # --- $batch -------------------------------------------------------------------------------------------------------
    def batch(self, ctx: Ctx) -> Response:
        """JSON batching (reference §4): ≤ 20 parts, unique ids, dependsOn, each part authorized and throttled."""
        try:
            data = json.loads(ctx.req.body.decode("utf-8")) if ctx.req.body.strip() else None
        except (UnicodeDecodeError, ValueError):
            raise self.error(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type "
                                                "header is set and payload is of valid JSON format.") from None
        if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
            raise self.error(400, "BadRequest", "Invalid batch payload format.")
        parts: list[Any] = data["requests"]
        if not parts:
            raise self.error(400, "BadRequest", "Invalid batch payload format.")
        if len(parts) > MAX_BATCH:
            raise self.error(400, "BadRequest", f"The number of batch requests ({len(parts)}) exceeds the maximum "
                                                f"of {MAX_BATCH}.")
        ids: list[str] = []
        for part in parts:
            if not isinstance(part, dict) or not isinstance(part.get("id"), str) or not part["id"]:
                raise self.error(400, "BadRequest", "Invalid batch payload format.")
            if part["id"] in ids:
                raise self.error(400, "BadRequest", "Batch request contains duplicate ids.")
            ids.append(part["id"])
            if not isinstance(part.get("method"), str) or not isinstance(part.get("url"), str):
                raise self.error(400, "BadRequest", "Invalid batch payload format.")
            headers = part.get("headers", {})
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                raise self.error(400, "BadRequest", "Invalid batch payload format.")
            if "body" in part and part["body"] is not None and not any(
                    k.lower() == "content-type" for k in headers):
                raise self.error(400, "BadRequest", f"Write request id : {part['id']} does not contain Content-Type "
                                                    f"header or body.")
            deps = part.get("dependsOn", [])
            if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
                raise self.error(400, "BadRequest", "Invalid batch payload format.")
            for d in deps:
                if d not in [p.get("id") for p in parts if isinstance(p, dict)] or d == part["id"]:
                    raise self.error(400, "BadRequest", f"Dependency '{d}' of request '{part['id']}' is not a request "
                                                        f"of this batch.")
        results: dict[str, JSON] = {}
        for part in parts:
            results[part["id"]] = self._batch_part(ctx, part, results)
        return self.ok({"responses": [results[i] for i in ids]})

    def _batch_part(self, ctx: Ctx, part: JSON, done: Mapping[str, JSON]) -> JSON:
        pid = part["id"]
        sub_id = str(uuid.uuid4())
        deps = part.get("dependsOn", [])
        if any(d not in done or int(done[d]["status"]) >= 400 for d in deps):
            sub = Request(service="graph", method="GET", target=V, headers=ctx.req.headers,
                          base_url=ctx.req.base_url)
            sub.request_id = sub_id
            resp = self._as_part(sub, lambda: self.error(424, "FailedDependency", "Failed dependency").response())
            return self._part_json(pid, resp)
        url: str = part["url"]
        if re.match(r"^[a-z]+://", url, re.IGNORECASE):
            target = "/v1.0/"  # absolute URLs are not allowed in a batch
        else:
            target = V + "/" + url.lstrip("/")
        method = part["method"].upper()
        headers = [(k, v) for k, v in ctx.req.headers.items()
                   if k.lower() in ("authorization", "client-request-id")]
        headers += [(k, str(v)) for k, v in (part.get("headers") or {}).items()]
        body = b""
        if part.get("body") is not None:
            body = part["body"].encode("utf-8") if isinstance(part["body"], str) else \
                json.dumps(part["body"]).encode("utf-8")
        sub = Request(service="graph", method=method, target=target, headers=Headers(headers), body=body,
                      client=ctx.req.client, base_url=ctx.req.base_url)
        sub.request_id = sub_id

        def run() -> Response:
            if re.match(r"^[a-z]+://", url, re.IGNORECASE):
                return self.error(400, "BadRequest", "Invalid request URL: batch requests must use relative "
                                                     "URLs.").response()
            for rule in self.sb.faults.take("graph", method, sub.path):
                if rule.kind == "throttle":
                    return self.throttled(sub, rule.status, rule.retry_after, rule.message)
                if rule.kind in ("error", "drop"):
                    return self.error(rule.status or 503, "ServiceUnavailable",
                                      rule.message or "The service is temporarily unavailable.",
                                      [("Retry-After", str(rule.retry_after))]).response()
            try:
                return self._handle(sub, in_batch=True)
            except HttpError as exc:
                return exc.response()

        resp = self._as_part(sub, run)
        return self._part_json(pid, resp)

    def _as_part(self, sub: Request, run: Callable[[], Response]) -> Response:
        prev = getattr(self._local, "req", None)
        self._local.req = sub
        try:
            resp = run()
        finally:
            self._local.req = prev
        resp.headers += [(k, v) for k, v in self.response_headers(sub) if k.lower() in ("request-id",
                                                                                        "client-request-id")]
        return resp

    @staticmethod
    def _part_json(pid: str, resp: Response) -> JSON:
        headers = {k: v for k, v in resp.headers}
        out: JSON = {"id": pid, "status": resp.status, "headers": headers}
        if resp.body:
            try:
                out["body"] = json.loads(resp.body)
            except ValueError:
                out["body"] = resp.body.decode("utf-8", "replace")
        return out

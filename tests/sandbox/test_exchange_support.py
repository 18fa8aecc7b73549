"""Helpers for the Exchange tests (no tests here): an InvokeCommand client and the demo's org setup.

The app registration, its secret and the source admin's consent are written straight into the state with
the shared directory helpers, because Graph and the identity platform are tested on their own.
"""

from __future__ import annotations

import base64
import datetime
import uuid
from typing import Any

import httpx

from tests.sandbox.support import bearer, user_token
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.catalog import CROSS_TENANT_MIGRATION_SKU_ID, MAILBOX_MIGRATION_ROLE_ID
from xtwizard.sandbox.directory import ensure_service_principal, grant_app_role, resource_service_principal
from xtwizard.sandbox.tokens import sha256_hex

EXO = "https://outlook.office365.com"
SOURCE_ADMIN = "admin@northwindtraders.onmicrosoft.com"
TARGET_ADMIN = "exadmin@fabrikam.example"
APP_SECRET = "sandbox-secret-value-1234567890"  # test-only secret; the sandbox keeps only its hash


def plain(obj: dict[str, Any]) -> dict[str, Any]:
    """An output object without its `@odata.type` annotations (what clients like EXOH keep)."""
    return {k: v for k, v in obj.items() if "@" not in k}


class Exo:
    """One admin's InvokeCommand session against one organization."""

    def __init__(self, sb: Sandbox, http: httpx.Client, tenant: str, upn: str, *, path_tenant: str | None = None):
        self.sb, self.http, self.upn = sb, http, upn
        t = sb.state.tenant(tenant)
        assert t is not None
        self.tenant = t
        self.url = f"{sb.info['exchange_url']}/{path_tenant or t.id}/InvokeCommand"
        self.tenant_key = tenant

    @property
    def token(self) -> str:
        """A fresh token per call, as a client refreshes it (tests jump the clock by days)."""
        return user_token(self.sb, self.tenant_key, self.upn, EXO)

    def call(self, cmdlet: str, params: dict[str, Any] | None = None, *, url: str | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": params or {}}}
        h = {**bearer(self.token), "X-CmdletName": cmdlet, "X-ResponseFormat": "json",
             "X-AnchorMailbox": f"UPN:{self.upn}", **(headers or {})}
        return self.http.post(url or self.url, json=body, headers=h)

    def ok(self, cmdlet: str, **params: Any) -> list[dict[str, Any]]:
        r = self.call(cmdlet, params)
        assert r.status_code == 200, r.text
        return [plain(v) for v in r.json()["value"]]

    def one(self, cmdlet: str, **params: Any) -> dict[str, Any]:
        rows = self.ok(cmdlet, **params)
        assert len(rows) == 1, rows
        return rows[0]

    def fail(self, cmdlet: str, status: int = 400, **params: Any) -> tuple[str, str]:
        """(exception type, text) of a cmdlet error, after checking the error shape of reference §3.4."""
        r = self.call(cmdlet, params)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        exid, etype, text = err["details"][0]["message"].split("|", 2)
        assert exid.startswith("Ex") and etype.rsplit(".", 1)[-1] == r.headers["X-ExceptionType"]
        assert err["innererror"]["internalexception"]["type"] == etype
        return etype.rsplit(".", 1)[-1], text


def csv_data(*addresses: str) -> str:
    return base64.b64encode(("EmailAddress\r\n" + "\r\n".join(addresses) + "\r\n").encode()).decode()


def register_app(sb: Sandbox, *, consent: bool = True, secret_days: float = 365) -> str:
    """The migration app in the target (secret known only as a hash) and, optionally, the source's consent."""
    st = sb.state
    target, source = st.tenant("target"), st.tenant("source")
    assert target and source
    app_id, key_id = str(uuid.uuid4()), str(uuid.uuid4())
    end = datetime.datetime.fromtimestamp(st.clock.now() + secret_days * 86400, datetime.UTC)
    app = {"id": str(uuid.uuid4()), "appId": app_id, "displayName": "Fabrikam_Friends_Northwind",
           "signInAudience": "AzureADMultipleOrgs", "web": {"redirectUris": ["https://office.com"]},
           "requiredResourceAccess": [{"resourceAppId": "00000002-0000-0ff1-ce00-000000000000",
                                       "resourceAccess": [{"id": MAILBOX_MIGRATION_ROLE_ID, "type": "Role"}]}],
           "passwordCredentials": [{"keyId": key_id, "displayName": "migration",
                                    "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}],
           "_secretHashes": {key_id: sha256_hex(APP_SECRET)}}
    with st.lock:
        target.col("applications")[app["id"]] = app
        ensure_service_principal(st, target, target, app)
        if consent:
            grant_consent(sb, app_id)
    return app_id


def grant_consent(sb: Sandbox, app_id: str) -> None:
    st = sb.state
    target, source = st.tenant("target"), st.tenant("source")
    assert target and source
    app = next(a for a in target.col("applications").values() if a["appId"] == app_id)
    sp, _ = ensure_service_principal(st, source, target, app)
    grant_app_role(st, source, sp, resource_service_principal(source, EXO), MAILBOX_MIGRATION_ROLE_ID)


def give_license(sb: Sandbox, tenant: str, upn: str) -> None:
    t = sb.state.tenant(tenant)
    assert t is not None
    user = t.user(upn)
    assert user is not None
    user["assignedLicenses"].append({"skuId": CROSS_TENANT_MIGRATION_SKU_ID, "disabledPlans": []})


def setup_org(sb: Sandbox, http: httpx.Client) -> tuple[Exo, Exo, str]:
    """What the wizard does before the first batch: hydrate, endpoint, both relationships (reference §2.3-2.4)."""
    src, tgt = Exo(sb, http, "source", SOURCE_ADMIN), Exo(sb, http, "target", TARGET_ADMIN)
    app_id = register_app(sb)
    tgt.ok("Enable-OrganizationCustomization")
    tgt.ok("New-MigrationEndpoint", Name="NorthwindMove", ExchangeRemoteMove=True, RemoteServer="outlook.office.com",
           RemoteTenant="northwindtraders.onmicrosoft.com", ApplicationId=app_id,
           Credentials={"UserName": app_id, "Password": APP_SECRET})
    tgt.ok("New-OrganizationRelationship", Name="Northwind", DomainNames=[src.tenant.id], Enabled=True,
           MailboxMoveEnabled=True, MailboxMoveCapability="Inbound")
    src.ok("New-OrganizationRelationship", Name="Fabrikam", DomainNames=[tgt.tenant.id], Enabled=True,
           MailboxMoveEnabled=True, MailboxMoveCapability="RemoteOutbound", OAuthApplicationId=app_id,
           MailboxMovePublishedScopes=["Migration Wave 1"])
    return src, tgt, app_id


def advance(sb: Sandbox, hours: float) -> None:
    sb.clock.advance(hours * 3600)

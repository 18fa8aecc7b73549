"""Test helpers for the sandbox: tokens minted straight from the sandbox's issuer.

Only for testing a resource backend (Graph, ARM, Key Vault, Exchange) in isolation from the identity
platform; the identity platform itself is tested with msal and azure-identity.
"""

from __future__ import annotations

from typing import Any

from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.catalog import DELEGATED_SCOPES
from xtwizard.sandbox.directory import user_role_template_ids


def user_token(sb: Sandbox, tenant: str, upn: str, resource: str = "https://graph.microsoft.com",
               scopes: list[str] | None = None, lifetime: float = 3599,
               client_id: str = "14d82eec-204b-4c2f-b7e8-296a70dab67e") -> str:
    t = sb.state.tenant(tenant)
    assert t is not None, tenant
    user = t.user(upn)
    assert user is not None, upn
    return sb.issuer.access_token(tenant_id=t.id, audience=resource, app_id=client_id, lifetime=lifetime,
                                  user=user, scopes=scopes if scopes is not None else DELEGATED_SCOPES[resource],
                                  wids=user_role_template_ids(user))


def app_token(sb: Sandbox, tenant: str, app_id: str, sp_object_id: str, roles: list[str],
              resource: str = "https://outlook.office365.com", lifetime: float = 3599) -> str:
    t = sb.state.tenant(tenant)
    assert t is not None, tenant
    return sb.issuer.access_token(tenant_id=t.id, audience=resource, app_id=app_id, lifetime=lifetime,
                                  sp_object_id=sp_object_id, roles=roles)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class StaticCredential:
    """An azure-core TokenCredential that hands out sandbox-minted tokens (for SDK tests of one backend)."""

    def __init__(self, sb: Sandbox, tenant: str, upn: str) -> None:
        self.sb, self.tenant, self.upn = sb, tenant, upn

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        from xtwizard.sandbox.catalog import resource_for

        resource = resource_for(scopes[0].rsplit("/.default", 1)[0]) or scopes[0]
        tenant = kwargs.get("tenant_id") or self.tenant
        token = user_token(self.sb, tenant, self.upn, resource)
        return AccessToken(token, int(self.sb.clock.now()) + 3000)

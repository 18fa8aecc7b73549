"""Where Microsoft's services live, as data: the public cloud, the built-in sandbox, later US Gov and China.

Nothing else in xtwizard writes a Microsoft host name: every URL and resource identifier comes from a
`CloudEndpoints` value, so a sovereign cloud is one more value, not a code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CloudEndpoints:
    name: str
    authority_host: str            # e.g. https://login.microsoftonline.com
    graph_url: str                 # base incl. version, e.g. https://graph.microsoft.com/v1.0
    arm_url: str                   # https://management.azure.com
    exchange_url: str              # https://outlook.office365.com/adminapi/beta
    vault_url_template: str        # https://{vault}.vault.azure.net
    # Resource identifiers: token audiences and scope prefixes; they do not change with the sandbox.
    graph_resource: str = "https://graph.microsoft.com"
    arm_resource: str = "https://management.azure.com"
    vault_resource: str = "https://vault.azure.net"
    exchange_resource: str = "https://outlook.office365.com"
    # What New-MigrationEndpoint -RemoteServer takes in this cloud (reference §2.3).
    exchange_remote_server: str = "outlook.office.com"
    ca_bundle: str | None = None   # extra CA to trust (the sandbox's); None = the system store
    instance_discovery: bool = True
    is_simulated: bool = False
    # Where a person's browser goes for admin consent, when not authority_host (the sandbox's plain-HTTP
    # sign-in pages, which a browser opens without trusting the sandbox CA).
    browser_authority_host: str | None = None

    def authority(self, tenant: str) -> str:
        return f"{self.authority_host.rstrip('/')}/{tenant}"

    def vault_url(self, vault_name: str) -> str:
        return self.vault_url_template.replace("{vault}", vault_name)

    def scope(self, resource: str) -> str:
        return f"{resource.rstrip('/')}/.default"

    def invoke_command_url(self, tenant: str) -> str:
        return f"{self.exchange_url.rstrip('/')}/{tenant}/InvokeCommand"

    def admin_consent_url(self, tenant: str, client_id: str, redirect_uri: str) -> str:
        from urllib.parse import urlencode

        query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri})
        host = (self.browser_authority_host or self.authority_host).rstrip("/")
        return f"{host}/{tenant}/adminconsent?{query}"


PUBLIC_CLOUD = CloudEndpoints(
    name="public",
    authority_host="https://login.microsoftonline.com",
    graph_url="https://graph.microsoft.com/v1.0",
    arm_url="https://management.azure.com",
    exchange_url="https://outlook.office365.com/adminapi/beta",
    vault_url_template="https://{vault}.vault.azure.net",
)


def sandbox_endpoints(info: dict[str, Any]) -> CloudEndpoints:
    """Endpoints of a running sandbox, from its ready line (`python -m xtwizard.sandbox serve`)."""
    return CloudEndpoints(
        name="sandbox",
        authority_host=str(info["authority_host"]),
        graph_url=str(info["graph_url"]),
        arm_url=str(info["arm_url"]),
        exchange_url=str(info["exchange_url"]),
        vault_url_template=str(info["vault_url_template"]),
        ca_bundle=str(info["ca_bundle"]),
        instance_discovery=False,
        is_simulated=True,
        browser_authority_host=str(info["browser_url"]) if info.get("browser_url") else None,
    )

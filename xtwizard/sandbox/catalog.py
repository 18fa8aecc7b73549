"""Well-known identifiers of Microsoft's first-party apps, resources and roles (reference §2.2, §3.5, §4, §5.1).

Each tenant in the sandbox gets a service principal for every first-party resource here, as real tenants do.
Values marked [U] in the reference are assumptions; they are kept here, in one place, so that a capture from
a real tenant corrects them once.
"""

from __future__ import annotations

import uuid
from typing import Any

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
KEYVAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
ARM_APP_ID = "797f4846-ba00-4fd7-ba43-dac1f8f63013"

# Mailbox.Migration: third-party sources only (reference §2.2, §8 item 7); clients must resolve it from appRoles.
MAILBOX_MIGRATION_ROLE_ID = "f7264778-fba9-422d-8e9e-2675a2c4b513"
EXCHANGE_MANAGE_AS_APP_ROLE_ID = "dc50a0fb-09a3-484d-be87-e023b12c6440"
# Cross Tenant User Data Migration SKU (reference §2.1, [3P] single source).
CROSS_TENANT_MIGRATION_SKU_ID = "946ce899-873d-44bb-9d8b-671870cbfdbf"
CROSS_TENANT_MIGRATION_SKU_PART = "Cross_tenant_user_data_migration"

_NS = uuid.UUID("6f1d1e60-52a4-4c44-9c5e-8f0b1b6a1d00")


def stable_id(*parts: str) -> str:
    """A GUID that is the same every run for the same inputs (first-party SPs, built-in role rows)."""
    return str(uuid.uuid5(_NS, "/".join(parts)))


def _role(value: str, name: str, rid: str | None = None) -> dict[str, Any]:
    return {
        "allowedMemberTypes": ["Application"],
        "description": name,
        "displayName": name,
        "id": rid or stable_id("approle", value),
        "isEnabled": True,
        "origin": "Application",
        "value": value,
    }


# resource identifier (audience) -> first-party app.  `aliases` are other spellings clients use.
RESOURCES: dict[str, dict[str, Any]] = {
    "https://graph.microsoft.com": {
        "app_id": GRAPH_APP_ID,
        "name": "Microsoft Graph",
        "aliases": ["https://graph.microsoft.com/", GRAPH_APP_ID, "https://graph.windows.net"],
        "app_roles": [
            _role("User.Invite.All", "Invite guest users to the organization", "09850681-111b-4a89-9bed-3f2cae46d706"),
            _role("Directory.Read.All", "Read directory data", "7ab1d382-f21e-4acd-a863-ba3e13f7da61"),
            _role("Application.ReadWrite.All", "Read and write all applications",
                  "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9"),
            _role("Organization.Read.All", "Read organization information", "498476ce-e0fe-48b0-b801-37ba7e2685c6"),
        ],
    },
    "https://outlook.office365.com": {
        "app_id": EXCHANGE_APP_ID,
        "name": "Office 365 Exchange Online",
        "aliases": ["https://outlook.office365.com/", EXCHANGE_APP_ID, "https://outlook.office.com"],
        "app_roles": [
            _role("Mailbox.Migration", "Move mailboxes between organizations", MAILBOX_MIGRATION_ROLE_ID),
            _role("Exchange.ManageAsApp", "Manage Exchange As Application", EXCHANGE_MANAGE_AS_APP_ROLE_ID),
        ],
    },
    "https://management.azure.com": {
        "app_id": ARM_APP_ID,
        "name": "Windows Azure Service Management API",
        "aliases": ["https://management.azure.com/", "https://management.core.windows.net/",
                    "https://management.core.windows.net", ARM_APP_ID],
        "app_roles": [],
    },
    "https://vault.azure.net": {
        "app_id": KEYVAULT_APP_ID,
        "name": "Azure Key Vault",
        "aliases": ["https://vault.azure.net/", KEYVAULT_APP_ID],
        "app_roles": [],
    },
}


def resource_for(identifier: str) -> str | None:
    """The canonical resource for an audience / scope prefix / app id, or None if unknown."""
    ident = identifier.rstrip("/").lower()
    for canonical, info in RESOURCES.items():
        if ident == canonical.lower() or ident in (a.rstrip("/").lower() for a in info["aliases"]):
            return canonical
    return None


# Delegated permissions the sandbox grants per resource when a client asks for `<resource>/.default`
# or names them.  Graph's are what the wizard's steps need (reference §4, "least delegated permission").
DELEGATED_SCOPES: dict[str, list[str]] = {
    "https://graph.microsoft.com": [
        "User.Read", "User.Read.All", "Directory.Read.All", "Organization.Read.All",
        "Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "Group.Read.All",
        "GroupMember.Read.All", "LicenseAssignment.ReadWrite.All", "User.ReadWrite.All",
        "Directory.AccessAsUser.All",
    ],
    "https://outlook.office365.com": ["Exchange.Manage"],
    "https://management.azure.com": ["user_impersonation"],
    "https://vault.azure.net": ["user_impersonation"],
}

# Entra built-in directory roles: display name -> role template id (reference §4, G2).
DIRECTORY_ROLES: dict[str, str] = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Application Administrator": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "Cloud Application Administrator": "158c047a-c907-4556-b7ef-446551a6b5f7",
    "Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "License Administrator": "4d6ac14f-3453-41d0-bef9-a3e0c569773a",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
}

# Azure built-in RBAC roles: name -> role definition GUID (reference §5.1; [3P], canonical page not re-read).
AZURE_ROLES: dict[str, str] = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Key Vault Certificates Officer": "a4417e6f-fecd-4de8-b567-7b0420556985",
    "Key Vault Certificate User": "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Reader": "21090545-7ca7-4776-b22c-e363652d74d2",
    "Key Vault Contributor": "f25e0fa2-a7c8-4377-a976-54943a77a395",
}

# First-party public clients the wizard may use by default (reference §3.5, §8 item 4).  A scenario
# declares which of them (and which of its own) may sign in, with their redirect URIs.
WELL_KNOWN_PUBLIC_CLIENTS: dict[str, str] = {
    "fb78d390-0c51-40cd-8e17-fdbfab77341b": "Microsoft Exchange REST API Based Powershell",
    "14d82eec-204b-4c2f-b7e8-296a70dab67e": "Microsoft Graph Command Line Tools",
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Microsoft Azure CLI",
    "1950a258-227b-4e31-a9cf-717495945fc2": "Microsoft Azure PowerShell",
}

"""Migration endpoints (reference §2.3 item 2, §1.2 step 12) and the credential checks behind them.

Only a hash of the -Credentials secret is kept (`_credentialHash`); it is compared with the app's
`_secretHashes` whenever the credential is used, so removing or expiring the secret later breaks the
endpoint the way it breaks in Exchange Online.
"""

from __future__ import annotations

import re

from ..catalog import stable_id
from ..directory import (
    app_roles_granted,
    find_application,
    parse_iso,
    resource_service_principal,
    service_principal,
)
from ..state import JSON, SandboxState, Tenant, public
from ..tokens import sha256_hex
from .cmdlets import Ctx, cmdlet
from .errors import (
    KEY_VAULT,
    MAX_CONCURRENT,
    MIGRATION_PERMANENT,
    NOT_FOUND,
    PARAMETER_BINDING,
    CmdletError,
    MoveFailure,
    name_in_use,
)
from .params import ID, SW, N, Param, S, req
from .wire import PSCredential

EXCHANGE = "https://outlook.office365.com"
ENDPOINT_TYPES = ("ExchangeRemoteMove", "IMAP", "ExchangeOutlookAnywhere", "PublicFolder")


def endpoints(t: Tenant) -> dict[str, JSON]:
    return t.col("exchange.endpoints")


def find(t: Tenant, identity: str) -> JSON:
    low = identity.lower()
    for ep in endpoints(t).values():
        if low in (ep["Identity"].lower(), ep["Guid"].lower()):
            return ep
    raise CmdletError(NOT_FOUND, f"The migration endpoint '{identity}' couldn't be found.")


def endpoint_out(ep: JSON) -> JSON:
    return public(ep)


def source_tenant(state: SandboxState, ep: JSON) -> Tenant | None:
    return state.tenant(str(ep.get("RemoteTenant") or ""), by_key=False)


# --- credential checks ---------------------------------------------------------------------------------
def secret_problem(state: SandboxState, app: JSON, app_id: str, credential_hash: str) -> str | None:
    """None if the secret behind `credential_hash` is a current secret of the app; else the AADSTS text."""
    key_id = next((k for k, h in (app.get("_secretHashes") or {}).items() if h == credential_hash), None)
    if key_id is None:
        return (f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app '{app_id}'.")
    for pc in app.get("passwordCredentials", []):
        if pc.get("keyId") == key_id and pc.get("endDateTime"):
            try:
                expired = parse_iso(str(pc["endDateTime"])) <= state.clock.now()
            except ValueError:
                expired = False
            if expired:
                return (f"AADSTS7000222: The provided client secret keys for app '{app_id}' are expired. Visit the "
                        "Azure portal to create new keys for your app or consider using certificate credentials "
                        "for added security.")
    return None


def certificate_problem(state: SandboxState, target: Tenant, url: str) -> str | None:
    """Can Exchange read the certificate and its private key at `url` (the deprecated AppSecretKeyVaultUrl path)?

    The one place that asks the Key Vault backend (backends/keyvault.py): the URL names a certificate of a vault
    in the target tenant, its version is enabled and not expired, its private key is there (the sandbox does
    not keep keys across restarts), and Exchange's service principal may get certificates and secrets."""
    from ..backends.keyvault import can_read_certificate, parse_object_id

    parsed = parse_object_id(url)
    if parsed is None or parsed[1] != "certificates":
        return "the URL is not a Key Vault certificate identifier"
    vault, _collection, name, version = parsed
    cert = target.col("kv.certificates").get(f"{vault}/{name.lower()}")
    if cert is None or not cert.get("versions"):
        return "certificate not found"
    versions = cert["versions"]
    record = next((v for v in versions if v.get("version") == version), None) if version else versions[-1]
    if record is None:
        return "certificate version not found"
    attrs = record.get("attributes") or {}
    if attrs.get("enabled") is False:
        return "certificate is disabled"
    exp = attrs.get("exp")
    if isinstance(exp, int | float) and exp <= state.clock.now():
        return "certificate has expired"
    if not record.get("_unsavedKey"):
        return "the certificate's secret (private key) is not available"
    exo_sp = resource_service_principal(target, EXCHANGE)
    if not can_read_certificate(state, vault, exo_sp["id"], exo_sp["appId"]):
        return "Exchange does not have permission to get the certificate and its secret from the vault"
    return None


def credential_problem(state: SandboxState, target: Tenant, ep: JSON) -> MoveFailure | None:
    """Everything the service needs to get a token for the source: the app, its credential, the source's consent."""
    app_id = str(ep.get("ApplicationId") or "")
    found = find_application(state, app_id) if app_id else None
    if found is None or found[0] is not target:
        return MoveFailure("MigrationPermanentException",
                           f"AADSTS700016: Application with identifier '{app_id}' was not found in the directory "
                           f"'{target.initial_domain}'.", "Target")
    _home, app = found
    if ep.get("_credentialHash"):
        text = secret_problem(state, app, app_id, str(ep["_credentialHash"]))
        if text:
            return MoveFailure("MigrationPermanentException", text, "Target")
    elif ep.get("AppSecretKeyVaultUrl"):
        why = certificate_problem(state, target, str(ep["AppSecretKeyVaultUrl"]))
        if why:
            name = re.search(r"/certificates/([^/]+)", str(ep["AppSecretKeyVaultUrl"]))
            return MoveFailure("KeyVaultFailureErrorException",
                               f"Error finding certificate '{name.group(1) if name else ''}' from azure key vault "
                               f"for tenant {target.id} ({why}).", "Target")
    else:
        return MoveFailure("MigrationPermanentException", "The migration endpoint has no credential: set -Credentials "
                                                          "(application ID and secret) or -AppSecretKeyVaultUrl.")
    source = source_tenant(state, ep)
    if source is None:
        return MoveFailure("MigrationPermanentException",
                           f"AADSTS90002: Tenant '{ep.get('RemoteTenant')}' not found.", "Source")
    sp = service_principal(state, source, app_id)
    if sp is None:
        return MoveFailure("MigrationPermanentException",
                           f"AADSTS700016: Application with identifier '{app_id}' was not found in the directory "
                           f"'{source.initial_domain}'. This can happen if the application has not been installed "
                           "by the administrator of the tenant or consented to by any user in the tenant.", "Source")
    if "Mailbox.Migration" not in app_roles_granted(source, sp["id"], resource_service_principal(source, EXCHANGE)):
        return MoveFailure("MigrationPermanentException",
                           f"The application '{app_id}' has not been granted the Mailbox.Migration permission in "
                           f"the organization '{source.initial_domain}'. An administrator of that organization must "
                           "consent to it.", "Source")
    return None


# --- cmdlets --------------------------------------------------------------------------------------------
SPEC = {"RemoteServer": S, "RemoteTenant": S, "ApplicationId": Param("guid"), "AppSecretKeyVaultUrl": S,
        "Credentials": Param("credential"), "MaxConcurrentMigrations": N, "MaxConcurrentIncrementalSyncs": N,
        "SkipVerification": SW}


def _apply_credentials(ctx: Ctx, ep: JSON) -> None:
    cred: PSCredential | None = ctx.p("Credentials")
    if cred is not None:
        if not ep.get("ApplicationId"):
            ep["ApplicationId"] = cred.user_name
        ep["Username"] = cred.user_name
        ep["_credentialHash"] = sha256_hex(cred.password)  # the secret itself is never kept
    for key in ("RemoteServer", "RemoteTenant", "ApplicationId", "AppSecretKeyVaultUrl"):
        if ctx.given(key):
            ep[key] = ctx.p(key)
    for key in ("MaxConcurrentMigrations", "MaxConcurrentIncrementalSyncs"):
        if ctx.given(key):
            value = int(ctx.p(key))
            if value < 1 or value > 1000:
                raise CmdletError(PARAMETER_BINDING, f"Cannot validate argument on parameter '{key}'. The {value} "
                                                     "argument is outside the range 1-1000.")
            ep[key] = value


def _verify(ctx: Ctx, ep: JSON) -> None:
    t = ctx.tenant
    remote = str(ep.get("RemoteTenant") or "")
    if remote and (t.owns_domain(remote) or remote.lower() == t.id.lower()):
        raise CmdletError(MIGRATION_PERMANENT, "ASSERT: The resource tenant and the accessing tenant cannot be equal.")
    limit = int(t.col("exchange.org")["config"]["MigrationLimits"]["MaxConcurrentMigrations"])
    total = sum(int(e.get("MaxConcurrentMigrations", 100)) for e in endpoints(t).values() if e is not ep) + \
        int(ep.get("MaxConcurrentMigrations", 100))
    if total > limit:
        raise CmdletError(MAX_CONCURRENT, f"The sum of MaxConcurrentMigrations of all migration endpoints ({total}) "
                                          f"exceeds the limit of the organization ({limit}). Lower the value on "
                                          "existing endpoints.")
    if ctx.p("SkipVerification"):
        return
    problem = credential_problem(ctx.state, t, ep)
    if problem is not None:
        if problem.short_type == "KeyVaultFailureErrorException":
            raise CmdletError(KEY_VAULT, problem.message)
        raise CmdletError(MIGRATION_PERMANENT, f"The connection to the server '{ep.get('RemoteServer')}' could not be "
                                               f"completed. {problem.message}")


@cmdlet("Get-MigrationEndpoint", {"Identity": ID, "Type": S}, "MigrationEndpoint")
def get_migration_endpoint(ctx: Ctx) -> list[JSON]:
    if ctx.p("Identity"):
        return [endpoint_out(find(ctx.tenant, ctx.p("Identity")))]
    rows = list(endpoints(ctx.tenant).values())
    if ctx.p("Type"):
        rows = [e for e in rows if e["EndpointType"].lower() == str(ctx.p("Type")).lower()]
    return [endpoint_out(e) for e in rows]


@cmdlet("New-MigrationEndpoint", {"Name": req("string"), "ExchangeRemoteMove": SW, **SPEC}, "MigrationEndpoint")
def new_migration_endpoint(ctx: Ctx) -> list[JSON]:
    if not ctx.p("ExchangeRemoteMove"):
        raise CmdletError(PARAMETER_BINDING, "Parameter set cannot be resolved using the specified named parameters. "
                                             "The sandbox serves the ExchangeRemoteMove parameter set only.")
    if not ctx.p("RemoteServer"):
        from .errors import missing_parameters
        raise missing_parameters(["RemoteServer"])
    name = ctx.p("Name")
    if any(e["Identity"].lower() == name.lower() for e in endpoints(ctx.tenant).values()):
        raise name_in_use(name)
    gid = stable_id(ctx.tenant.id, "endpoint", name.lower(), str(ctx.now))
    ep: JSON = {"Identity": name, "Name": name, "Guid": gid, "EndpointType": "ExchangeRemoteMove",
                "RemoteServer": None, "RemoteTenant": None, "ApplicationId": None, "AppSecretKeyVaultUrl": None,
                "IsRemote": True, "MaxConcurrentMigrations": 100, "MaxConcurrentIncrementalSyncs": 20,
                "Username": None, "UseAutoDiscover": False, "LastModifiedTime": None}
    _apply_credentials(ctx, ep)
    _verify(ctx, ep)
    endpoints(ctx.tenant)[gid] = ep
    ctx.state.touch()
    return [endpoint_out(ep)]


@cmdlet("Set-MigrationEndpoint", {"Identity": req("identity"), **SPEC}, "MigrationEndpoint")
def set_migration_endpoint(ctx: Ctx) -> list[JSON]:
    ep = find(ctx.tenant, ctx.p("Identity"))
    candidate = dict(ep)
    _apply_credentials(ctx, candidate)
    _verify(ctx, candidate)
    ep.update(candidate)
    ctx.state.touch()
    return []


@cmdlet("Remove-MigrationEndpoint", {"Identity": req("identity")})
def remove_migration_endpoint(ctx: Ctx) -> list[JSON]:
    ep = find(ctx.tenant, ctx.p("Identity"))
    for b in ctx.tenant.col("exchange.batches").values():
        if b.get("_endpoint") == ep["Guid"]:
            raise CmdletError(MIGRATION_PERMANENT, f"The migration endpoint '{ep['Identity']}' can't be removed "
                                                   f"because it's used by the migration batch '{b['Identity']}'.")
    del endpoints(ctx.tenant)[ep["Guid"]]
    ctx.state.touch()
    return []

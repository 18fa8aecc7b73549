"""Key Vault data plane (<vault>.vault.azure.net): challenge auth, certificates and their PKCS#12 secrets.

Follows reference §5.2 and §6.5-6.6: one loopback port serves every vault, the vault name is the first path
segment (`https://127.0.0.1:<port>/<vault>/certificates/...`), which azure-keyvault-certificates accepts as a
vault URL with `verify_challenge_resource=False`.  Route notes, RBAC and errors: docs/sandbox/arm-keyvault.md.

Object identifiers.  The SDK's id parser only accepts `/{collection}/{name}[/{version}]` paths, so ids
(`id`, `kid`, `sid`, `target`, `recoveryId`) use the real host form
`https://<vault>.vault.azure.net/certificates/<name>/<version>` -- exactly what real vaults return (and what
the deprecated `AppSecretKeyVaultUrl` regex of reference §1.4 expects).  Clients reach the vault through
the sandbox URL (`vault_url_template`), never through an id; `parse_object_id` maps either form back.

State, in the collections of the tenant that owns the vault (see backends/arm.py); keys are
"<vault>/<name>", both lower-cased:
  kv.certificates   {"vault", "name", "policy" (wire shape), "tags", "versions": [version record, oldest
                     first]}; a version record is {"version", "cer" (base64 DER), "x5t" (base64url SHA-1),
                     "contentType", "attributes": {enabled, nbf, exp, created, updated}, "_unsavedKey" (PEM
                     of the private key, in memory only)}
  kv.operations     pending/finished create operations: the CertificateOperation wire shape plus
                     "_version", "_readyAt" (sandbox time), "_policy", "_tags", "_enabled", "_unsavedKey"
  kv.deletedcertificates  a kv.certificates record plus "deletedDate", "scheduledPurgeDate", "recoveryId"
A self-signed certificate is issued `settings.certificate_issue_seconds` of sandbox time after create.
Private keys are only ever under `_unsaved*` keys, which `SandboxState.save` strips: after a restart with
--state-dir the certificates (public parts) are still there, but their secrets answer 404 SecretNotFound
with a message saying the sandbox does not keep private keys; create a new version to get one.
How another backend asks "can principal X read this certificate?": `can_read_certificate(...)`.
"""

from __future__ import annotations

import base64
import calendar
import datetime
import hashlib
import ipaddress
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ..azure_rbac import is_allowed, principal_ids
from ..http import HttpError, Request, Response
from ..state import JSON, SandboxState, Tenant
from ..tokens import Caller, TokenRejected
from .arm import find_vault
from .base import Backend

API_VERSIONS = ("2026-04-01", "2025-07-01", "7.6", "7.5", "7.4", "7.3", "7.2", "7.1", "7.0", "2016-10-01")
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
PUBLIC_HOST = "vault.azure.net"
DEFAULT_EKUS = ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]
KEY_USAGES = ("digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
              "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly")
SUBJECT_ATTRS: dict[str, ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "S": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME, "E": NameOID.EMAIL_ADDRESS, "EMAIL": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT, "SERIALNUMBER": NameOID.SERIAL_NUMBER, "STREET": NameOID.STREET_ADDRESS,
    "G": NameOID.GIVEN_NAME, "SN": NameOID.SURNAME, "T": NameOID.TITLE,
}
CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(),
                                       "P-521": ec.SECP521R1(), "P-256K": ec.SECP256K1()}
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
CERT_READ = "Microsoft.KeyVault/vaults/certificates/read"
PRINTABLE_RE = re.compile(r"^[A-Za-z0-9 '()+,\-./:=?]+$")


def object_base(vault_name: str) -> str:
    """The host part of object ids, as real vaults write them."""
    return f"https://{vault_name.lower()}.{PUBLIC_HOST}"


def parse_object_id(url: str) -> tuple[str, str, str, str | None] | None:
    """(vault, collection, name, version) from an object id in the real host form or the sandbox path form."""
    parts = urlsplit(url)
    segs = [s for s in parts.path.split("/") if s]
    host = (parts.hostname or "").lower()
    if host.endswith("." + PUBLIC_HOST):
        vault = host[: -len(PUBLIC_HOST) - 1]
    elif segs:
        vault, segs = segs[0], segs[1:]
    else:
        return None
    if len(segs) not in (2, 3):
        return None
    return vault.lower(), segs[0].lower(), segs[1], segs[2] if len(segs) == 3 else None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _add_months(ts: float, months: int) -> float:
    dt = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    month0 = dt.month - 1 + months
    year, month = dt.year + month0 // 12, month0 % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day).timestamp()


@dataclass
class VaultCall:
    """A request that got past the vault's front door: who is calling which vault."""

    tenant: Tenant
    vault: JSON
    caller: Caller
    api_version: str

    @property
    def name(self) -> str:
        return str(self.vault["name"])

    @property
    def key(self) -> str:
        return self.name.lower()


def vault_permits(state: SandboxState, tenant: Tenant, vault: JSON, object_id: str, app_id: str,
                  data_action: str, policy_kind: str, policy_perm: str, resource: str = "") -> bool:
    """Data-plane authorization as Key Vault does it: RBAC on RBAC-mode vaults, access policies otherwise."""
    props = vault["properties"]
    if props.get("enableRbacAuthorization"):
        return is_allowed(tenant, object_id, resource or str(vault["id"]), data_action, data=True)
    ids = principal_ids(tenant, object_id)
    for p in props.get("accessPolicies", []):
        if str(p.get("objectId", "")).lower() not in ids:
            continue
        if str(p.get("tenantId", "")).lower() != str(props.get("tenantId", "")).lower():
            continue
        if p.get("applicationId") and str(p["applicationId"]).lower() != app_id.lower():
            continue
        granted = [str(v).lower() for v in p.get("permissions", {}).get(policy_kind, [])]
        if policy_perm in granted or "all" in granted:
            return True
    return False


def can_read_certificate(state: SandboxState, vault_name: str, object_id: str, app_id: str = "") -> bool:
    """May this principal read the certificate and its secret (PFX) in the vault?  What Exchange needs for the
    deprecated AppSecretKeyVaultUrl path: certificates get + secrets get (access policy) or the matching data
    roles (RBAC)."""
    found = find_vault(state, vault_name)
    if found is None:
        return False
    tenant, vault = found
    return (vault_permits(state, tenant, vault, object_id, app_id, CERT_READ, "certificates", "get")
            and vault_permits(state, tenant, vault, object_id, app_id,
                              "Microsoft.KeyVault/vaults/secrets/getSecret/action", "secrets", "get"))


class KeyVaultBackend(Backend):
    name = "vault"
    audience = "https://vault.azure.net"

    # --- shapes -------------------------------------------------------------------------------------------
    def error(self, status: int, code: str, message: str,
              headers: list[tuple[str, str]] | None = None, inner: str | None = None) -> HttpError:
        err: JSON = {"code": code, "message": message}
        if inner:
            err["innererror"] = {"code": inner}
        return HttpError(status, {"error": err}, headers)

    def response_headers(self, req: Request) -> list[tuple[str, str]]:
        return [("x-ms-request-id", req.request_id), ("x-ms-keyvault-service-version", "1.9.sandbox"),
                ("x-ms-keyvault-region", "sandbox"), ("Cache-Control", "no-cache")]

    def not_found(self, req: Request) -> HttpError:
        return self.error(404, "NotFound" if req.path.count("/") > 1 else "VaultNotFound",
                          f"The requested resource {req.path} was not found.")

    def method_not_allowed(self, req: Request) -> HttpError:
        return self.error(405, "MethodNotAllowed", f"The requested resource does not support http method "
                          f"'{req.method}'.")

    def throttled(self, req: Request, status: int, retry_after: int, message: str) -> Response:
        if status != 429:
            return super().throttled(req, status, retry_after, message)
        return self.error(429, "Throttled", message or "Request was not processed because too many requests "
                          "were received. Reason: VaultRequestTypeLimitReached",
                          [("Retry-After", str(retry_after))]).response()

    def _challenge(self, tenant_id: str) -> list[tuple[str, str]]:
        return [("WWW-Authenticate", f'Bearer authorization="{self.sb.urls["login"]}/{tenant_id}", '
                                     f'resource="https://vault.azure.net"')]

    # --- dispatch -------------------------------------------------------------------------------------------
    def register(self) -> None:
        c = "/{vault}/certificates"
        d = "/{vault}/deletedcertificates"
        s = "/{vault}/secrets"
        add = self._add
        add("GET", c, self.list_certificates, CERT_READ, "certificates", "list")
        add("POST", c + "/{name}/create", self.create_certificate,
            "Microsoft.KeyVault/vaults/certificates/create/action", "certificates", "create")
        add("GET", c + "/{name}/pending", self.get_operation, CERT_READ, "certificates", "get")
        add("DELETE", c + "/{name}/pending", self.delete_operation,
            "Microsoft.KeyVault/vaults/certificates/delete", "certificates", "delete")
        add("GET", c + "/{name}/policy", self.get_policy, CERT_READ, "certificates", "get")
        add("GET", c + "/{name}/versions", self.list_versions, CERT_READ, "certificates", "list")
        add("GET", c + "/{name}/", self.get_certificate, CERT_READ, "certificates", "get")
        add("GET", c + "/{name}", self.get_certificate, CERT_READ, "certificates", "get")
        add("GET", c + "/{name}/{version}", self.get_certificate, CERT_READ, "certificates", "get")
        add("DELETE", c + "/{name}", self.delete_certificate,
            "Microsoft.KeyVault/vaults/certificates/delete", "certificates", "delete")
        add("GET", d, self.list_deleted, CERT_READ, "certificates", "list")
        add("GET", d + "/{name}", self.get_deleted, CERT_READ, "certificates", "get")
        add("DELETE", d + "/{name}", self.purge_deleted,
            "Microsoft.KeyVault/vaults/certificates/purge/action", "certificates", "purge")
        add("POST", d + "/{name}/recover", self.recover_deleted,
            "Microsoft.KeyVault/vaults/certificates/recover/action", "certificates", "recover")
        add("GET", s, self.list_secrets, "Microsoft.KeyVault/vaults/secrets/readMetadata/action", "secrets", "list")
        for tpl in (s + "/{name}", s + "/{name}/", s + "/{name}/{version}"):
            add("GET", tpl, self.get_secret, "Microsoft.KeyVault/vaults/secrets/getSecret/action", "secrets", "get")

    def _add(self, method: str, template: str, fn: Callable[..., Response], action: str, kind: str,
             perm: str) -> None:
        def run(req: Request, vault: str, **params: str) -> Response:
            call = self._front_door(req, vault)
            name = params.get("name")
            if name is not None and not NAME_RE.match(name):
                raise self.error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
            resource = str(call.vault["id"]).lower()
            if name is not None:
                collection = "secrets" if kind == "secrets" else "certificates"
                resource += f"/{collection}/{name.lower()}"
            if not vault_permits(self.sb.state, call.tenant, call.vault, call.caller.object_id, call.caller.app_id,
                                 action, kind, perm, resource):
                raise self._forbidden(call, action, kind, perm, resource)
            self._settle(call)
            return fn(req, call, **params)

        self.router.add(method, template, run)

    def _front_door(self, req: Request, vault_name: str) -> VaultCall:
        found = find_vault(self.sb.state, vault_name)
        if found is None:
            # A real vault name that does not exist does not resolve in DNS; 404 is the nearest HTTP answer.
            raise self.error(404, "VaultNotFound", f"The vault '{vault_name}' does not exist (no such host "
                             f"{vault_name.lower()}.{PUBLIC_HOST}).")
        tenant, vault = found
        vault_tenant = str(vault["properties"].get("tenantId", tenant.id))
        challenge = self._challenge(vault_tenant)
        if not req.headers.get("authorization"):
            raise self.error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", challenge)
        try:
            caller = self.sb.issuer.validate(req.headers.get("authorization"), self.audience)
        except TokenRejected as exc:
            raise self._token_error(exc, req, challenge) from None
        if caller.tenant_id.lower() != vault_tenant.lower():
            raise self.error(401, "Unauthorized", f"AKV10032: Invalid issuer. Expected one of "
                             f"https://sts.windows.net/{vault_tenant}/, found "
                             f"https://sts.windows.net/{caller.tenant_id}/.", challenge)
        version = req.query.get("api-version", [None])[0]
        if not version:
            raise self.error(400, "BadParameter", "The request URI is missing the required 'api-version' query "
                             "parameter.")
        if version not in API_VERSIONS:
            raise self.error(400, "BadParameter", f"The specified version ({version}) is not recognized. Consider "
                             f"using the latest supported version ({API_VERSIONS[0]}).")
        if vault["properties"].get("publicNetworkAccess") == "Disabled":
            raise self.error(403, "Forbidden", f"Public network access is disabled and request is not from a "
                             f"trusted service nor via an approved private link.\r\nCaller: "
                             f"{self._who(caller)}\r\nVault: {vault['name']};location={vault['location']}",
                             inner="ForbiddenByConnection")
        return VaultCall(tenant, vault, caller, version)

    def _token_error(self, exc: TokenRejected, req: Request, challenge: list[tuple[str, str]]) -> HttpError:
        if exc.reason == "expired":
            return self.error(401, "Unauthorized", "[TokenExpired] Error validating token: 'S2S12086'.", challenge)
        if exc.reason == "audience":
            token = (req.headers.get("authorization") or "").partition(" ")[2].strip()
            aud = ""
            try:
                import jwt

                aud = str(jwt.decode(token, options={"verify_signature": False}).get("aud", ""))
            except jwt.PyJWTError:
                pass
            return self.error(401, "Unauthorized", f"AKV10022: Invalid audience. Expected https://vault.azure.net, "
                              f"found: {aud}.", challenge)
        if exc.reason == "signature":
            header = (req.headers.get("authorization") or "").partition(" ")[2].split(".")[0]
            return self.error(401, "Unauthorized", "AKV10046: Unable to resolve the key used for signature "
                              f"validation. EncodedJwtHeader: '{header[:200]}'.", challenge)
        return self.error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", challenge)

    @staticmethod
    def _who(caller: Caller) -> str:
        return f"appid={caller.app_id};oid={caller.object_id};iss=https://sts.windows.net/{caller.tenant_id}/"

    def _forbidden(self, call: VaultCall, action: str, kind: str, perm: str, resource: str) -> HttpError:
        vault = call.vault
        where = f"{vault['name']};location={vault['location']}"
        if vault["properties"].get("enableRbacAuthorization"):
            return self.error(403, "Forbidden", "Caller is not authorized to perform action on resource.\r\nIf role "
                              "assignments, deny assignments or role definitions were changed recently, please "
                              f"observe propagation time.\r\nCaller: {self._who(call.caller)}\r\nAction: '{action}'"
                              f"\r\nResource: '{resource}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\n"
                              f"DecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {where}\r\n",
                              inner="ForbiddenByRbac")
        return self.error(403, "Forbidden", f"The user, group or application '{self._who(call.caller)}' does not "
                          f"have {kind} {perm} permission on key vault '{where}'. For help resolving this issue, "
                          "please see https://go.microsoft.com/fwlink/?linkid=2125287", inner="AccessDenied")

    # --- helpers ----------------------------------------------------------------------------------------------
    def _body(self, req: Request) -> JSON:
        if not req.body:
            raise self.error(400, "BadParameter", "The request body is required.")
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self.error(400, "BadParameter", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise self.error(400, "BadParameter", "The request body must be a JSON object.")
        return body

    def _retention(self, call: VaultCall) -> int:
        return int(call.vault["properties"].get("softDeleteRetentionInDays", 90))

    def _recovery_level(self, call: VaultCall) -> str:
        return "Recoverable" if call.vault["properties"].get("enablePurgeProtection") else "Recoverable+Purgeable"

    def _cert(self, call: VaultCall, name: str) -> JSON | None:
        return call.tenant.col("kv.certificates").get(f"{call.key}/{name.lower()}")

    def _not_found(self, name: str, version: str | None = None) -> HttpError:
        ref = f"{name}/{version}" if version else name
        return self.error(404, "CertificateNotFound", f"A certificate with (name/id) {ref} was not found in this key "
                          "vault. If you recently deleted this certificate you may be able to recover it using the "
                          "correct recovery command. For help resolving this issue, please see "
                          "https://go.microsoft.com/fwlink/?linkid=2125182")

    def _page(self, req: Request, call: VaultCall, items: list[JSON]) -> Response:
        raw = req.q("maxresults")
        size = 25
        if raw is not None:
            if not raw.isdigit() or not 1 <= int(raw) <= 25:
                raise self.error(400, "BadParameter", "maxresults must be an integer between 1 and 25.")
            size = int(raw)
        token = req.q("$skiptoken") or "0"
        if not token.isdigit() or len(token) > 9:
            raise self.error(400, "BadParameter", f"The skip token '{token}' is invalid.")
        skip = int(token)
        out: JSON = {"value": items[skip:skip + size], "nextLink": None}
        if skip + size < len(items):
            query = {k: v[0] for k, v in req.query.items() if k not in ("$skiptoken", "skiptoken")}
            query["$skiptoken"] = str(skip + size)
            out["nextLink"] = f"{req.base_url}{req.path}?{urlencode(query)}"
        return Response.json(out)

    def _attributes(self, call: VaultCall, version: JSON) -> JSON:
        attrs = dict(version["attributes"])
        attrs["recoveryLevel"] = self._recovery_level(call)
        attrs["recoverableDays"] = self._retention(call)
        return attrs

    def _policy_json(self, call: VaultCall, cert: JSON) -> JSON:
        policy = dict(cert["policy"])
        policy["id"] = f"{object_base(call.name)}/certificates/{cert['name']}/policy"
        return policy

    def _bundle(self, call: VaultCall, cert: JSON, version: JSON) -> JSON:
        base = object_base(call.name)
        ver = version["version"]
        return {
            "id": f"{base}/certificates/{cert['name']}/{ver}", "kid": f"{base}/keys/{cert['name']}/{ver}",
            "sid": f"{base}/secrets/{cert['name']}/{ver}", "x5t": version["x5t"], "cer": version["cer"],
            "contentType": version["contentType"], "attributes": self._attributes(call, version),
            "policy": self._policy_json(call, cert), "tags": cert.get("tags") or {},
        }

    def _item(self, call: VaultCall, cert: JSON, version: JSON | None = None, with_version: bool = False) -> JSON:
        v = version or cert["versions"][-1]
        suffix = f"/{v['version']}" if with_version else ""
        return {"id": f"{object_base(call.name)}/certificates/{cert['name']}{suffix}",
                "attributes": self._attributes(call, v), "tags": cert.get("tags") or {}, "x5t": v["x5t"]}

    # --- issuing ---------------------------------------------------------------------------------------------
    def _settle(self, call: VaultCall) -> None:
        """Issue every self-signed certificate of this vault whose issuance time has come."""
        now = self.sb.clock.now()
        prefix = call.key + "/"
        for key, op in list(call.tenant.col("kv.operations").items()):
            if (key.startswith(prefix) and op["status"] == "inProgress" and op["issuer"]["name"] == "Self"
                    and not op["cancellation_requested"] and now >= float(op["_readyAt"])):
                try:
                    self._issue(call, key, op)
                except ValueError as exc:  # what cryptography refuses to encode: the operation fails, as in Key Vault
                    op.update({"status": "failed", "status_details": None, "_unsavedKey": None,
                               "error": {"code": "BadParameter", "message": f"The certificate could not be "
                                                                           f"issued: {exc}"}})
                    self.sb.state.touch()

    def _issue(self, call: VaultCall, key: str, op: JSON) -> None:
        policy = op["_policy"]
        x509_props = policy["x509_props"]
        pem = op.get("_unsavedKey")
        loaded = (serialization.load_pem_private_key(pem.encode("ascii"), None) if pem
                  else self._new_key(policy["key_props"]))
        assert isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        private_key = loaded
        now = self.sb.clock.now()
        not_before = datetime.datetime.fromtimestamp(int(now), datetime.UTC)
        not_after = datetime.datetime.fromtimestamp(int(_add_months(now, int(x509_props["validity_months"]))),
                                                    datetime.UTC)
        subject = self._subject(x509_props.get("subject") or "")
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(private_key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(not_before)
                   .not_valid_after(not_after))
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        ekus = x509_props.get("ekus") or []
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ObjectIdentifier(e) for e in ekus]), critical=False)
        usages = set(x509_props.get("key_usage") or [])
        if usages:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature="digitalSignature" in usages, content_commitment="nonRepudiation" in usages,
                key_encipherment="keyEncipherment" in usages, data_encipherment="dataEncipherment" in usages,
                key_agreement="keyAgreement" in usages, key_cert_sign="keyCertSign" in usages,
                crl_sign="cRLSign" in usages, encipher_only="encipherOnly" in usages and "keyAgreement" in usages,
                decipher_only="decipherOnly" in usages and "keyAgreement" in usages), critical=True)
        sans = self._sans(x509_props.get("sans"))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(private_key.public_key()), critical=False)
        cert = builder.sign(private_key, hashes.SHA256())
        der = cert.public_bytes(serialization.Encoding.DER)
        ts = int(now)
        version = {
            "version": op["_version"], "cer": base64.b64encode(der).decode("ascii"),
            "x5t": _b64url(hashlib.sha1(der).digest()),  # x5t is SHA-1 by definition
            "contentType": policy["secret_props"]["contentType"],
            "attributes": {"enabled": bool(op.get("_enabled", True)), "nbf": int(not_before.timestamp()),
                           "exp": int(not_after.timestamp()), "created": ts, "updated": ts},
            "_unsavedKey": private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()).decode("ascii"),
        }
        certs = call.tenant.col("kv.certificates")
        record = certs.get(key)
        if record is None:
            record = {"vault": call.name, "name": op["_name"], "policy": policy, "tags": op.get("_tags") or {},
                      "versions": []}
            certs[key] = record
        record["policy"] = policy
        if op.get("_tags") is not None:
            record["tags"] = op["_tags"]
        record["versions"].append(version)
        op["status"] = "completed"
        op["status_details"] = None
        op.pop("_unsavedKey", None)
        self.sb.state.touch()

    @staticmethod
    def _new_key(key_props: JSON) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        if str(key_props["kty"]).startswith("EC"):
            return ec.generate_private_key(CURVES[str(key_props["crv"])])
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_props["key_size"]))

    def _subject(self, text: str) -> x509.Name:
        attrs: list[x509.NameAttribute[str]] = []
        for part in re.split(r"(?<!\\)[,;]", text):
            part = part.strip()
            if not part:
                continue
            typ, sep, value = part.partition("=")
            oid = SUBJECT_ATTRS.get(typ.strip().upper())
            value = value.strip().replace("\\,", ",").replace("\\;", ";")
            bad = self.error(400, "BadParameter", f"Subject '{text}' is not a valid X.500 distinguished name.")
            if not sep or oid is None or not value:
                raise bad
            if oid in (NameOID.COUNTRY_NAME, NameOID.SERIAL_NUMBER) and not PRINTABLE_RE.match(value):
                raise bad  # these are PrintableString in X.509
            try:
                attrs.append(x509.NameAttribute(oid, value))
            except ValueError:  # length limits (CN at most 64, C exactly 2, ...) and character sets
                raise bad from None
        try:
            name = x509.Name(attrs)
            name.public_bytes()  # PrintableString attributes (C, serialNumber) reject other characters here
        except ValueError:
            raise self.error(400, "BadParameter", f"Subject '{text}' is not a valid X.500 distinguished name.") from None
        return name

    def _sans(self, sans: Any) -> list[x509.GeneralName]:
        out: list[x509.GeneralName] = []
        if not isinstance(sans, dict):
            return out
        for dns in sans.get("dns_names") or []:
            out.append(x509.DNSName(str(dns)))
        for email in sans.get("emails") or []:
            out.append(x509.RFC822Name(str(email)))
        for upn in sans.get("upns") or []:
            raw = str(upn).encode("utf-8")
            if len(raw) > 127:
                raise self.error(400, "BadParameter", "A UPN in subject alternative names is too long.")
            out.append(x509.OtherName(UPN_OID, b"\x0c" + bytes([len(raw)]) + raw))
        for uri in sans.get("uris") or []:
            out.append(x509.UniformResourceIdentifier(str(uri)))
        for ip in sans.get("ipAddresses") or []:
            out.append(x509.IPAddress(ipaddress.ip_address(str(ip))))
        return out

    def _normalize_policy(self, given: Any) -> JSON:
        """The policy as the service stores and echoes it, with its defaults filled in; 400 for bad input."""
        if not isinstance(given, dict):
            raise self.error(400, "BadParameter", "Property 'policy' is required and must be an object.")

        def obj(name: str) -> JSON:
            value = given.get(name)
            if value is None:
                return {}
            if not isinstance(value, dict):
                raise self.error(400, "BadParameter", f"Property 'policy.{name}' must be an object.")
            return value

        key_in, secret_in, x509_in, issuer_in = obj("key_props"), obj("secret_props"), obj("x509_props"), obj("issuer")
        kty = key_in.get("kty") or "RSA"
        if kty not in ("RSA", "RSA-HSM", "EC", "EC-HSM"):
            raise self.error(400, "BadParameter", f"Key type '{kty}' is not supported for certificates.")
        key_props: JSON = {"exportable": key_in.get("exportable", True), "kty": kty,
                           "reuse_key": key_in.get("reuse_key", False)}
        if not isinstance(key_props["exportable"], bool) or not isinstance(key_props["reuse_key"], bool):
            raise self.error(400, "BadParameter", "key_props.exportable and key_props.reuse_key must be booleans.")
        if kty.startswith("EC"):
            crv = key_in.get("crv") or "P-256"
            if crv not in CURVES:
                raise self.error(400, "BadParameter", f"Curve '{crv}' is not supported; use one of {sorted(CURVES)}.")
            key_props["crv"] = crv
        else:
            size = key_in.get("key_size")
            size = 2048 if size is None else size
            if isinstance(size, bool) or size not in (2048, 3072, 4096):
                raise self.error(400, "BadParameter", f"RSA key size {size!r} is not supported; use 2048, 3072 "
                                 "or 4096.")
            key_props["key_size"] = size
        content_type = secret_in.get("contentType") or "application/x-pkcs12"
        if content_type not in ("application/x-pkcs12", "application/x-pem-file"):
            raise self.error(400, "BadParameter", f"Content type '{content_type}' is not supported; use "
                             "application/x-pkcs12 or application/x-pem-file.")
        subject = x509_in.get("subject")
        sans = x509_in.get("sans")
        if subject is not None and not isinstance(subject, str):
            raise self.error(400, "BadParameter", "x509_props.subject must be a string.")
        if sans is not None and not isinstance(sans, dict):
            raise self.error(400, "BadParameter", "x509_props.sans must be an object.")
        if sans:
            for field in ("dns_names", "emails", "upns", "uris", "ipAddresses"):
                vals = sans.get(field)
                if vals is not None and (not isinstance(vals, list) or not all(isinstance(v, str) for v in vals)):
                    raise self.error(400, "BadParameter", f"x509_props.sans.{field} must be an array of strings.")
            try:
                self._sans(sans)
            except ValueError:
                raise self.error(400, "BadParameter", "x509_props.sans contains an invalid value.") from None
        if not subject and not self._sans(sans):
            raise self.error(400, "BadParameter", "Either a subject or subject alternative names must be given "
                             "in the certificate policy.")
        if subject:
            self._subject(subject)
        months = x509_in.get("validity_months")
        months = 12 if months is None else months
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 1200:
            raise self.error(400, "BadParameter", "x509_props.validity_months must be an integer from 1 to 1200.")
        ekus = x509_in.get("ekus")
        if ekus is None:
            ekus = list(DEFAULT_EKUS)
        if not isinstance(ekus, list) or not all(isinstance(e, str) and re.fullmatch(r"[0-2](\.\d{1,9})+", e)
                                                 for e in ekus):
            raise self.error(400, "BadParameter", "x509_props.ekus must be an array of OIDs.")
        usage = x509_in.get("key_usage")
        if usage is None:
            usage = ["digitalSignature", "keyEncipherment"] if not kty.startswith("EC") else ["digitalSignature"]
        if not isinstance(usage, list) or not all(u in KEY_USAGES for u in usage):
            raise self.error(400, "BadParameter", f"x509_props.key_usage must be drawn from {list(KEY_USAGES)}.")
        issuer_name = issuer_in.get("name") or "Self"
        if issuer_name not in ("Self", "Unknown"):
            raise self.error(400, "BadParameter", f"Issuer '{issuer_name}' is not configured in this vault; the "
                             "sandbox issues only 'Self' certificates (or waits for a merge with 'Unknown').")
        lifetime = given.get("lifetime_actions")
        if lifetime is None:
            lifetime = [{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": "AutoRenew"}}]
        if not isinstance(lifetime, list):
            raise self.error(400, "BadParameter", "policy.lifetime_actions must be an array.")
        attrs = given.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise self.error(400, "BadParameter", "policy.attributes must be an object.")
        now = int(self.sb.clock.now())
        x509_props: JSON = {"subject": subject or "", "ekus": ekus, "key_usage": usage, "validity_months": months,
                            "basic_constraints": {"ca": False}}
        if sans:
            x509_props["sans"] = sans
        return {"key_props": key_props, "secret_props": {"contentType": content_type}, "x509_props": x509_props,
                "lifetime_actions": lifetime,
                "issuer": {"name": issuer_name, **({"cty": issuer_in["cty"]} if issuer_in.get("cty") else {})},
                "attributes": {"enabled": bool(attrs.get("enabled", True)), "created": now, "updated": now}}

    # --- certificates ------------------------------------------------------------------------------------------
    def create_certificate(self, req: Request, call: VaultCall, name: str) -> Response:
        body = self._body(req)
        key = f"{call.key}/{name.lower()}"
        if key in call.tenant.col("kv.deletedcertificates"):
            raise self.error(409, "Conflict", f"Certificate {name} is currently in a deleted but recoverable state, "
                             "and its name cannot be reused; in this state, the certificate can only be recovered "
                             "or purged.")
        existing_op = call.tenant.col("kv.operations").get(key)
        if existing_op is not None and existing_op["status"] == "inProgress":
            raise self.error(409, "Conflict", f"There was a conflict while trying to create certificate {name}. A "
                             "certificate operation for it is already in progress.")
        policy = self._normalize_policy(body.get("policy") if "policy" in body else None)
        tags = body.get("tags")
        if tags is not None and (not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values())):
            raise self.error(400, "BadParameter", "tags must be an object of strings.")
        attrs = body.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise self.error(400, "BadParameter", "attributes must be an object.")
        cert = self._cert(call, name)
        pem: str | None = None
        if policy["key_props"]["reuse_key"] and cert is not None and cert["versions"][-1].get("_unsavedKey"):
            pem = cert["versions"][-1]["_unsavedKey"]
        if pem is None:
            private_key = self._new_key(policy["key_props"])
            pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()).decode("ascii")
        else:
            loaded = serialization.load_pem_private_key(pem.encode("ascii"), None)
            assert isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
            private_key = loaded
        subject = self._subject(policy["x509_props"]["subject"]) if policy["x509_props"]["subject"] else x509.Name([])
        try:
            csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(private_key, hashes.SHA256())
        except ValueError:
            raise self.error(400, "BadParameter", "The certificate policy cannot be turned into a certificate "
                             "request.") from None
        base = object_base(call.name)
        op: JSON = {
            "id": f"{base}/certificates/{name}/pending", "issuer": dict(policy["issuer"]),
            "csr": base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode("ascii"),
            "cancellation_requested": False, "status": "inProgress",
            "status_details": "Pending certificate created. Certificate request is in progress. This may take some "
                              "time based on the issuer provider. Please check again later.",
            "target": f"{base}/certificates/{name}", "request_id": secrets.token_hex(16),
            "_name": cert["name"] if cert else name, "_version": secrets.token_hex(16),
            "_readyAt": self.sb.clock.now() + float(self.sb.state.settings.get("certificate_issue_seconds", 2)),
            "_policy": policy, "_tags": tags, "_enabled": attrs.get("enabled", True), "_unsavedKey": pem,
        }
        call.tenant.col("kv.operations")[key] = op
        self.sb.state.touch()
        self._settle(call)
        return Response.json(self._operation_json(op), 202,
                             [("Location", f"{req.base_url}/{call.name}/certificates/{name}/pending?"
                                           f"api-version={call.api_version}"), ("Retry-After", "10")])

    @staticmethod
    def _operation_json(op: JSON) -> JSON:
        out = {k: v for k, v in op.items() if not k.startswith("_")}
        if op["status"] == "completed":
            out.pop("status_details", None)
        return out

    def get_operation(self, req: Request, call: VaultCall, name: str) -> Response:
        op = call.tenant.col("kv.operations").get(f"{call.key}/{name.lower()}")
        if op is None:
            raise self.error(404, "PendingCertificateNotFound", f"Pending certificate not found: {name}")
        return Response.json(self._operation_json(op))

    def delete_operation(self, req: Request, call: VaultCall, name: str) -> Response:
        op = call.tenant.col("kv.operations").pop(f"{call.key}/{name.lower()}", None)
        if op is None:
            raise self.error(404, "PendingCertificateNotFound", f"Pending certificate not found: {name}")
        self.sb.state.touch()
        return Response.json(self._operation_json(op))

    def get_policy(self, req: Request, call: VaultCall, name: str) -> Response:
        cert = self._cert(call, name)
        if cert is None:
            raise self._not_found(name)
        return Response.json(self._policy_json(call, cert))

    def get_certificate(self, req: Request, call: VaultCall, name: str, version: str = "") -> Response:
        cert = self._cert(call, name)
        if cert is None:
            raise self._not_found(name)
        if not version:
            return Response.json(self._bundle(call, cert, cert["versions"][-1]))
        match = next((v for v in cert["versions"] if v["version"].lower() == version.lower()), None)
        if match is None:
            raise self._not_found(name, version)
        return Response.json(self._bundle(call, cert, match))

    def list_certificates(self, req: Request, call: VaultCall) -> Response:
        prefix = call.key + "/"
        rows = [self._item(call, c) for k, c in sorted(call.tenant.col("kv.certificates").items())
                if k.startswith(prefix)]
        if (req.q("includePending") or "").lower() == "true":
            have = {k for k in call.tenant.col("kv.certificates")}
            for k, op in sorted(call.tenant.col("kv.operations").items()):
                if k.startswith(prefix) and k not in have and op["status"] == "inProgress":
                    rows.append({"id": op["target"], "attributes": {"enabled": False}, "tags": op.get("_tags") or {}})
        return self._page(req, call, rows)

    def list_versions(self, req: Request, call: VaultCall, name: str) -> Response:
        cert = self._cert(call, name)
        if cert is None:
            raise self._not_found(name)
        return self._page(req, call, [self._item(call, cert, v, with_version=True) for v in cert["versions"]])

    def delete_certificate(self, req: Request, call: VaultCall, name: str) -> Response:
        key = f"{call.key}/{name.lower()}"
        cert = call.tenant.col("kv.certificates").pop(key, None)
        if cert is None:
            raise self._not_found(name)
        call.tenant.col("kv.operations").pop(key, None)
        now = self.sb.clock.now()
        cert["deletedDate"] = int(now)
        cert["scheduledPurgeDate"] = int(now + self._retention(call) * 86400)
        cert["recoveryId"] = f"{object_base(call.name)}/deletedcertificates/{cert['name']}"
        call.tenant.col("kv.deletedcertificates")[key] = cert
        self.sb.state.touch()
        return Response.json(self._deleted_json(call, cert))

    def _deleted_json(self, call: VaultCall, cert: JSON) -> JSON:
        out = self._bundle(call, cert, cert["versions"][-1])
        out.update({"recoveryId": cert["recoveryId"], "deletedDate": cert["deletedDate"],
                    "scheduledPurgeDate": cert["scheduledPurgeDate"]})
        return out

    def _deleted(self, call: VaultCall, name: str) -> JSON:
        cert = call.tenant.col("kv.deletedcertificates").get(f"{call.key}/{name.lower()}")
        if cert is None:
            raise self.error(404, "CertificateNotFound", f"Deleted Certificate not found: {name}")
        return cert

    def list_deleted(self, req: Request, call: VaultCall) -> Response:
        prefix = call.key + "/"
        rows = []
        for k, c in sorted(call.tenant.col("kv.deletedcertificates").items()):
            if k.startswith(prefix):
                item = self._item(call, c)
                item.update({"recoveryId": c["recoveryId"], "deletedDate": c["deletedDate"],
                             "scheduledPurgeDate": c["scheduledPurgeDate"]})
                rows.append(item)
        return self._page(req, call, rows)

    def get_deleted(self, req: Request, call: VaultCall, name: str) -> Response:
        return Response.json(self._deleted_json(call, self._deleted(call, name)))

    def purge_deleted(self, req: Request, call: VaultCall, name: str) -> Response:
        self._deleted(call, name)
        if call.vault["properties"].get("enablePurgeProtection"):
            raise self.error(403, "Forbidden", f"Operation \"purge\" is not allowed because purge protection is "
                             f"enabled for this vault. Key Vault service will automatically purge it after the "
                             f"retention period has passed.\r\nVault: {call.name};location={call.vault['location']}",
                             inner="ForbiddenByPolicy")
        call.tenant.col("kv.deletedcertificates").pop(f"{call.key}/{name.lower()}", None)
        self.sb.state.touch()
        return Response.empty(204)

    def recover_deleted(self, req: Request, call: VaultCall, name: str) -> Response:
        cert = self._deleted(call, name)
        key = f"{call.key}/{name.lower()}"
        del call.tenant.col("kv.deletedcertificates")[key]
        for k in ("deletedDate", "scheduledPurgeDate", "recoveryId"):
            cert.pop(k, None)
        call.tenant.col("kv.certificates")[key] = cert
        self.sb.state.touch()
        return Response.json(self._bundle(call, cert, cert["versions"][-1]))

    # --- secrets (the certificate-backed ones) ------------------------------------------------------------------
    def list_secrets(self, req: Request, call: VaultCall) -> Response:
        prefix = call.key + "/"
        base = object_base(call.name)
        rows = []
        for k, c in sorted(call.tenant.col("kv.certificates").items()):
            if k.startswith(prefix):
                v = c["versions"][-1]
                rows.append({"id": f"{base}/secrets/{c['name']}", "attributes": self._attributes(call, v),
                             "tags": c.get("tags") or {}, "contentType": v["contentType"], "managed": True})
        return self._page(req, call, rows)

    def get_secret(self, req: Request, call: VaultCall, name: str, version: str = "") -> Response:
        cert = self._cert(call, name)
        missing = self.error(404, "SecretNotFound", f"A secret with (name/id) {name}{'/' + version if version else ''} "
                             "was not found in this key vault. If you recently deleted this secret you may be able "
                             "to recover it using the correct recovery command. For help resolving this issue, "
                             "please see https://go.microsoft.com/fwlink/?linkid=2125182")
        if cert is None:
            raise missing
        match = cert["versions"][-1] if not version else next(
            (v for v in cert["versions"] if v["version"].lower() == version.lower()), None)
        if match is None:
            raise missing
        pem = match.get("_unsavedKey")
        if not pem:
            raise self.error(404, "SecretNotFound", f"The secret of certificate {name} is not available: the sandbox "
                             "keeps private keys only in memory and was restarted since this version was issued. "
                             "Create a new version of the certificate.")
        key = serialization.load_pem_private_key(pem.encode("ascii"), None)
        cert_obj = x509.load_der_x509_certificate(base64.b64decode(match["cer"]))
        if match["contentType"] == "application/x-pem-file":
            value = (pem + cert_obj.public_bytes(serialization.Encoding.PEM).decode("ascii"))
        else:
            assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
            pfx = pkcs12.serialize_key_and_certificates(None, key, cert_obj, None, serialization.NoEncryption())
            value = base64.b64encode(pfx).decode("ascii")
        base = object_base(call.name)
        return Response.json({
            "value": value, "contentType": match["contentType"],
            "id": f"{base}/secrets/{cert['name']}/{match['version']}",
            "kid": f"{base}/keys/{cert['name']}/{match['version']}", "managed": True,
            "attributes": self._attributes(call, match), "tags": cert.get("tags") or {},
        })

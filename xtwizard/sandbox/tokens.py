"""Signed JWTs for the sandbox's identity platform, and their validation by the resource backends.

The signing key is made per run and never written down: after a restart, old access tokens fail
signature validation (as after a real key rollover) and clients fall back on their refresh tokens,
which the state keeps only as hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .catalog import resource_for
from .clock import SandboxClock


class TokenRejected(Exception):
    """Why a bearer token was not accepted; each backend turns this into its own error body."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # missing | malformed | signature | expired | audience | not_yet_valid
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who a validated access token speaks for."""

    tenant_id: str
    object_id: str  # user oid, or the service principal's object id for app-only tokens
    app_id: str
    audience: str  # canonical resource identifier
    scopes: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)
    upn: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_app(self) -> bool:
        return self.upn is None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class TokenIssuer:
    def __init__(self, clock: SandboxClock) -> None:
        self.clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = b64url(secrets.token_bytes(12))
        self.authority_host = ""  # set by the server once it knows its port

    def issuer(self, tenant_id: str) -> str:
        return f"{self.authority_host}/{tenant_id}/v2.0"

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def access_token(self, *, tenant_id: str, audience: str, app_id: str, lifetime: float,
                     user: dict[str, Any] | None = None, sp_object_id: str | None = None,
                     scopes: list[str] | None = None, roles: list[str] | None = None,
                     wids: list[str] | None = None) -> str:
        now = int(self.clock.now())
        claims: dict[str, Any] = {
            "aud": audience, "iss": self.issuer(tenant_id), "iat": now, "nbf": now,
            "exp": now + int(lifetime), "tid": tenant_id, "appid": app_id, "azp": app_id,
            "ver": "2.0", "uti": b64url(secrets.token_bytes(16)), "xms_sandbox": True,
        }
        if user is not None:
            claims.update({"oid": user["id"], "sub": sha256_hex(user["id"] + app_id)[:43],
                           "upn": user["userPrincipalName"], "preferred_username": user["userPrincipalName"],
                           "name": user.get("displayName", ""), "idtyp": "user",
                           "scp": " ".join(scopes or []), "wids": wids or []})
        else:
            claims.update({"oid": sp_object_id, "sub": sp_object_id, "idtyp": "app", "roles": roles or []})
        return self._sign(claims)

    def id_token(self, *, tenant_id: str, client_id: str, user: dict[str, Any], nonce: str | None,
                 lifetime: float = 3600) -> str:
        now = int(self.clock.now())
        claims: dict[str, Any] = {
            "aud": client_id, "iss": self.issuer(tenant_id), "iat": now, "nbf": now, "exp": now + int(lifetime),
            "tid": tenant_id, "oid": user["id"], "sub": sha256_hex(user["id"] + client_id)[:43],
            "preferred_username": user["userPrincipalName"], "name": user.get("displayName", ""), "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        return self._sign(claims)

    @staticmethod
    def client_info(tenant_id: str, user_id: str) -> str:
        return b64url(json.dumps({"uid": user_id, "utid": tenant_id}).encode())

    def validate(self, authorization: str | None, audience: str) -> Caller:
        """Check a bearer token the way a resource does: signature, lifetime on the sandbox clock, audience."""
        if not authorization:
            raise TokenRejected("missing", "Access token is empty.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("malformed", "Authorization header is not a Bearer token.")
        try:
            claims = jwt.decode(token.strip(), self._key.public_key(), algorithms=["RS256"],
                                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False,
                                         "verify_iat": False})
        except jwt.InvalidSignatureError:
            raise TokenRejected("signature", "Access token validation failure: signature is invalid.") from None
        except jwt.PyJWTError:
            raise TokenRejected("malformed", "IDX14100: JWT is not well formed.") from None
        now = self.clock.now()
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise TokenRejected("expired", "Lifetime validation failed, the token is expired.")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 300:
            raise TokenRejected("not_yet_valid", "Lifetime validation failed, the token is not yet valid.")
        if resource_for(str(claims.get("aud", ""))) != audience:
            raise TokenRejected("audience", "Access token validation failure. Invalid audience.")
        return Caller(
            tenant_id=str(claims.get("tid")), object_id=str(claims.get("oid")), app_id=str(claims.get("appid")),
            audience=audience, scopes=frozenset(str(claims.get("scp", "")).split()),
            roles=frozenset(claims.get("roles") or []), upn=claims.get("upn"), claims=claims,
        )


def new_refresh_token() -> str:
    return "0.SANDBOX." + b64url(secrets.token_bytes(48))


def new_guid() -> str:
    return str(uuid.uuid4())

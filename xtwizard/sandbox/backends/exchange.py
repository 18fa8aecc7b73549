"""The Exchange Online admin API: POST /adminapi/{beta|v1.0}/{tenant}/InvokeCommand (reference §3).

The cmdlets and the move service live in `xtwizard/sandbox/exchange/`; this backend only routes, and gives
every error the OData shape Exchange uses (reference §3.4).
"""

from __future__ import annotations

from ..exchange.invoke import THROTTLED, InvokeCommand, odata_error
from ..http import HttpError, Request, Response
from ..tokens import TokenRejected
from .base import Backend

CHALLENGE = ('Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
             'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
             'token_types="app_asserted_user_v1 service_asserted_app_v1", error="invalid_token"')


class ExchangeBackend(Backend):
    name = "exchange"
    audience = "https://outlook.office365.com"

    def register(self) -> None:
        self.invoke = InvokeCommand(self)
        self.router.add("POST", "/adminapi/{version}/{tenant}/InvokeCommand", self._invoke)

    def _invoke(self, req: Request, version: str, tenant: str) -> Response:
        if version.lower() not in ("beta", "v1.0"):
            raise self.not_found(req)
        return self.invoke.handle(req, version.lower(), tenant)

    def error(self, status: int, code: str, message: str,
              headers: list[tuple[str, str]] | None = None) -> HttpError:
        return odata_error(status, code, message, headers)

    def auth_error(self, exc: TokenRejected, req: Request) -> HttpError:
        return odata_error(401, "Unauthorized", exc.message, [("WWW-Authenticate", CHALLENGE)])

    def throttled(self, req: Request, status: int, retry_after: int, message: str) -> Response:
        return odata_error(status, "TooManyRequests" if status == 429 else "ServiceUnavailable",
                           message or THROTTLED, [("Retry-After", str(retry_after))]).response()

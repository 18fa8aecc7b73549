"""What every backend shares: routing, the service's error shape, bearer-token checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..http import HttpError, Request, Response, Router
from ..tokens import Caller, TokenRejected

if TYPE_CHECKING:
    from ..server import Sandbox


class Backend:
    name = ""
    audience = ""  # the resource identifier this service accepts tokens for

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.router = Router()
        self.register()

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.sb.state

    def register(self) -> None:
        """Add routes to self.router."""

    def error(self, status: int, code: str, message: str,
              headers: list[tuple[str, str]] | None = None) -> HttpError:
        """The service's own error body; overridden per service."""
        return HttpError(status, {"error": {"code": code, "message": message}}, headers)

    def auth_error(self, exc: TokenRejected, req: Request) -> HttpError:
        return self.error(401, "InvalidAuthenticationToken", exc.message)

    def caller(self, req: Request) -> Caller:
        try:
            return self.sb.issuer.validate(req.headers.get("authorization"), self.audience)
        except TokenRejected as exc:
            raise self.auth_error(exc, req) from None

    def response_headers(self, req: Request) -> list[tuple[str, str]]:
        return [("x-ms-request-id", req.request_id)]

    def not_found(self, req: Request) -> HttpError:
        return self.error(404, "NotFound", f"No route for {req.method} {req.path}.")

    def method_not_allowed(self, req: Request) -> HttpError:
        return self.error(405, "MethodNotAllowed", f"The method {req.method} is not allowed for {req.path}.")

    def handle(self, req: Request) -> Response:
        route, params, known = self.router.match(req.method, req.path)
        if route is None:
            raise self.method_not_allowed(req) if known else self.not_found(req)
        return route.handler(req, **params)

    def internal_error(self, req: Request) -> Response:
        return self.error(500, "InternalServerError", "The service had an internal error; the request id "
                          f"{req.request_id} is in the sandbox log.").response()

    def throttled(self, req: Request, status: int, retry_after: int, message: str) -> Response:
        return self.error(status, "TooManyRequests" if status == 429 else "ServiceUnavailable",
                          message or "Too many requests. Retry after the time given in Retry-After.",
                          [("Retry-After", str(retry_after))]).response()


def json_or_error(backend: Backend, req: Request) -> Any:
    return req.json(lambda m: backend.error(400, "BadRequest", m))

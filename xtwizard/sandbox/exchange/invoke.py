"""POST /adminapi/beta/{tenant}/InvokeCommand (reference §3): authorization, the request body, paging by
re-POSTing the same body to @odata.nextLink, and the OData success and error shapes."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..http import HttpError, Request, Response
from ..state import Tenant
from ..tokens import Caller
from . import batches, endpoints, moves, orgrel, recipients, store  # noqa: F401 - registers the cmdlets
from .cmdlets import REGISTRY, Ctx, Lazy
from .errors import ACCESS_DENIED, COMMAND_NOT_FOUND, ODATA, CmdletError, exid
from .params import bind
from .wire import annotate

if TYPE_CHECKING:
    from ..backends.base import Backend

PAGE_DEFAULT = 1000
PAGE_MAX = 1000
PAGE_EXPIRY_SECONDS = 30 * 60
EXCHANGE_ADMIN_ROLES = ("Global Administrator", "Exchange Administrator")
# Organization Management (needed to change MailboxMoveCapability, reference §2.1): in this model the same roles.
ORG_MANAGEMENT_ROLES = ("Global Administrator", "Exchange Administrator")
THROTTLED = "You have reached the maximum number of concurrent requests per tenant. Please wait and try again"
INVOKE_PATH = re.compile(r"^/adminapi/[^/]+/(?P<tenant>[^/]+)/InvokeCommand$", re.IGNORECASE)


class TenantThrottle:
    """Exchange's per-tenant limit on concurrent InvokeCommand requests (reference §3.5).

    [U] Microsoft publishes neither the limit nor the Retry-After it sends: both are settings
    (`exchange_max_concurrent`, 0 = no limit, and `exchange_throttle_retry_after_seconds`).  A request is
    in flight from its arrival (before injected latency) until its answer is ready; one over the limit is
    answered 429 at once and is not counted in flight.  Per tenant id, the counters kept are: `in_flight`,
    `peak` (the most admitted at once, also kept with no limit, to prove requests overlap), `admitted` and
    `throttled`.  Thread-safe; never holds the state lock."""

    FIELDS = ("in_flight", "peak", "admitted", "throttled")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def enter(self, tenant_id: str, limit: int) -> bool:
        """Admit one request (True) or count it as throttled (False)."""
        with self._lock:
            c = self._counts.setdefault(tenant_id, dict.fromkeys(self.FIELDS, 0))
            if limit > 0 and c["in_flight"] >= limit:
                c["throttled"] += 1
                return False
            c["in_flight"] += 1
            c["admitted"] += 1
            c["peak"] = max(c["peak"], c["in_flight"])
            return True

    def leave(self, tenant_id: str) -> None:
        with self._lock:
            self._counts[tenant_id]["in_flight"] -= 1

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {t: dict(c) for t, c in self._counts.items()}

    def clear(self) -> None:
        """Counters back to zero (requests still in flight stay counted, so `leave` keeps balancing)."""
        with self._lock:
            for c in self._counts.values():
                c.update(peak=c["in_flight"], admitted=0, throttled=0)


def invoke_cmdlet(req: Request) -> str:
    """The cmdlet an InvokeCommand request runs ("" for other requests or unreadable bodies), for fault rules."""
    if req.service != "exchange" or not INVOKE_PATH.match(req.path):
        return ""
    try:
        name = json.loads(req.body.decode("utf-8"))["CmdletInput"]["CmdletName"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return ""
    return name.strip() if isinstance(name, str) else ""


def invoke_tenant(st: Any, req: Request) -> str | None:
    """The id of the tenant an InvokeCommand request is for; None for other requests or unknown tenants."""
    m = INVOKE_PATH.match(req.path) if req.service == "exchange" and req.method == "POST" else None
    if m is None:
        return None
    with st.lock:
        t = st.tenant(m["tenant"], by_key=False)
        return t.id if t is not None else None


def odata_error(status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> HttpError:
    return HttpError(status, {"error": {"code": code, "message": message,
                                        "innererror": {"message": message, "type": ODATA, "stacktrace": ""}}},
                     headers)


def cmdlet_error(exc: CmdletError) -> HttpError:
    """`details[].message` = `ExId|ExceptionType|text`; the exception also in innererror and X-ExceptionType."""
    short = exc.exception_type.rsplit(".", 1)[-1]
    code = {400: "BadRequest", 403: "Forbidden", 404: "NotFound"}.get(exc.status, "BadRequest")
    body = {"error": {
        "code": code, "message": "Error executing cmdlet",
        "details": [{"code": "Client", "target": "", "message": f"{exid(exc.exception_type)}|{exc.exception_type}|"
                                                                 f"{exc.message}"}],
        "innererror": {"message": "Error executing cmdlet", "type": ODATA, "stacktrace": "",
                       "internalexception": {"message": exc.message, "type": exc.exception_type,
                                             "stacktrace": ""}}}}
    return HttpError(exc.status, body, [("X-ExceptionType", short)])


@dataclass
class Page:
    tenant_id: str
    body_hash: str
    offset: int
    expires: float


class InvokeCommand:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pages: dict[str, Page] = {}

    @property
    def state(self) -> Any:
        return self.backend.sb.state

    def handle(self, req: Request, version: str, tenant_ref: str) -> Response:
        caller = self.backend.caller(req)
        st = self.state
        tenant = st.tenant(tenant_ref, by_key=False)
        if tenant is None:
            raise odata_error(404, "NotFound", f"The organization '{tenant_ref}' wasn't found.")
        if caller.tenant_id.lower() != tenant.id.lower():
            raise odata_error(401, "Unauthorized", f"The access token was issued for the tenant '{caller.tenant_id}', "
                                                   f"not for the organization '{tenant_ref}' of the request.")
        try:
            body = json.loads(req.body.decode("utf-8")) if req.body else None
        except (UnicodeDecodeError, ValueError):
            raise odata_error(400, "BadRequest", "The request body isn't valid JSON.") from None
        if not isinstance(body, dict) or not isinstance(body.get("CmdletInput"), dict):
            raise odata_error(400, "BadRequest", "The request body must be {\"CmdletInput\": {\"CmdletName\": ..., "
                                                 "\"Parameters\": {...}}}.")
        cmd_input = body["CmdletInput"]
        name = cmd_input.get("CmdletName")
        if not isinstance(name, str) or not name.strip():
            raise odata_error(400, "BadRequest", "CmdletInput.CmdletName is required.")
        try:
            return self._run(req, version, tenant, caller, name.strip(), cmd_input.get("Parameters"),
                             hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest())
        except CmdletError as exc:
            raise cmdlet_error(exc) from None

    def _run(self, req: Request, version: str, tenant: Tenant, caller: Caller, name: str, raw_params: Any,
             body_hash: str) -> Response:
        st = self.state
        upn = caller.upn or f"app:{caller.app_id}"
        roles: list[str] = []
        if caller.is_app:
            if "Exchange.ManageAsApp" not in caller.roles:
                raise CmdletError(ACCESS_DENIED, f"The application '{caller.app_id}' isn't granted "
                                                 "Exchange.ManageAsApp and can't run Exchange cmdlets.", 403)
        else:
            user = tenant.user(caller.object_id) or tenant.user(caller.upn or "")
            roles = list(user.get("_roles", [])) if user else []
            if not any(r in roles for r in EXCHANGE_ADMIN_ROLES):
                raise CmdletError(ACCESS_DENIED, f"The user \"{caller.upn}\" isn't assigned to any management roles.",
                                  403)
        cmd = REGISTRY.get(name.lower())
        if cmd is not None and cmd.org_management and not caller.is_app and not any(
                r in roles for r in ORG_MANAGEMENT_ROLES):
            raise CmdletError(ACCESS_DENIED, f"The user \"{caller.upn}\" isn't assigned to the Organization Management "
                                             f"role group, which {cmd.name} requires.", 403)
        if cmd is None:
            raise CmdletError(COMMAND_NOT_FOUND, f"The term '{name}' is not recognized as the name of a cmdlet, "
                                                 "function, script file, or operable program. Check the spelling of "
                                                 "the name, or if a path was included, verify that the path is "
                                                 "correct and try again.")
        params = bind(cmd.params, raw_params)
        start = self._page(req, tenant.id, body_hash)  # a stale link is refused before anything runs
        store.ensure(st)
        store.reconcile_licenses(st)
        moves.advance_all(st, self.backend.sb.faults)
        ctx = Ctx(st, tenant, upn, params, self.backend.sb.faults, object_type=cmd.object_type)
        out = cmd.handler(ctx)
        store.settled(st)
        items: list[Any] = out.items if isinstance(out, Lazy) else out
        size = self._page_size(req)
        page_items = items[start:start + size] if cmd.name.startswith("Get-") else items
        page = [out.render(x) for x in page_items] if isinstance(out, Lazy) else page_items
        select = req.q("$select")
        if select:
            wanted = {s.strip().lower() for s in select.split(",") if s.strip()}
            page = [{k: v for k, v in r.items() if k.lower() in wanted} for r in page]
        base = f"{req.base_url}/adminapi/{version}/{tenant.id}"
        payload: dict[str, Any] = {"@odata.context": f"{base}/$metadata#Collection(Exchange.{cmd.object_type})"}
        if ctx.warnings:
            payload["adminapi.warnings@odata.type"] = "#Collection(String)"
            payload["@adminapi.warnings"] = [w if w.startswith("WARNING") else f"WARNING: {w}" for w in ctx.warnings]
        payload["value"] = [annotate(r) for r in page]
        if cmd.name.startswith("Get-") and start + size < len(items):
            token = secrets.token_urlsafe(24)
            self.pages[token] = Page(tenant.id, body_hash, start + size, st.clock.now() + PAGE_EXPIRY_SECONDS)
            payload["@odata.nextLink"] = f"{base}/InvokeCommand?$skiptoken={token}"
        return Response.json(payload, headers=[("X-CmdletName", cmd.name)],
                             content_type="application/json;odata.metadata=minimal;odata.streaming=true;"
                                          "IEEE754Compatible=false;charset=utf-8")

    @staticmethod
    def _page_size(req: Request) -> int:
        prefer = req.headers.get("prefer") or ""
        m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer, re.IGNORECASE)
        if not m:
            return PAGE_DEFAULT
        return max(1, min(int(m.group(1)), PAGE_MAX))

    def _page(self, req: Request, tenant_id: str, body_hash: str) -> int:
        """The offset a $skiptoken stands for (0 without one); unknown, expired or other-body links are refused."""
        now = self.state.clock.now()
        for tok in [k for k, p in self.pages.items() if p.expires <= now]:
            del self.pages[tok]
        token = req.q("$skiptoken")
        start = 0
        if token is not None:
            page = self.pages.get(token)
            if page is None or page.tenant_id != tenant_id or page.body_hash != body_hash:
                raise CmdletError(ODATA, "Expired or Invalid pagination request. Default Expiry time is 00:30:00")
            start = page.offset
        return start

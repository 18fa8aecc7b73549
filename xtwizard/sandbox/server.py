"""The sandbox process: one HTTPS listener per Microsoft service on loopback, over one shared state.

Each real host (login.microsoftonline.com, graph.microsoft.com, management.azure.com, *.vault.azure.net,
outlook.office365.com) becomes its own 127.0.0.1 port, so every path stays exactly the real one and each
official client is pointed at it with its documented knobs only (authority, base URL, vault URL, CA).
The control API is served under the reserved path `/_sandbox` on every port.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .backends.arm import ArmBackend
from .backends.base import Backend
from .backends.control import ControlBackend
from .backends.exchange import ExchangeBackend
from .backends.graph import GraphBackend
from .backends.identity import IdentityBackend
from .backends.keyvault import KeyVaultBackend
from .clock import SandboxClock
from .exchange.invoke import THROTTLED, TenantThrottle, invoke_cmdlet, invoke_tenant
from .faults import FaultSet, parse_rule
from .http import Headers, HttpError, Request, Response
from .scenario import build_state, load_scenario
from .state import load_saved
from .tls import make_loopback_tls
from .tokens import TokenIssuer

log = logging.getLogger("xtwizard.sandbox")

SERVICES: dict[str, type[Backend]] = {
    "login": IdentityBackend,
    "graph": GraphBackend,
    "arm": ArmBackend,
    "vault": KeyVaultBackend,
    "exchange": ExchangeBackend,
}
CONTROL_PREFIX = "/_sandbox"
MAX_BODY = 16 * 1024 * 1024
# What the plain-HTTP browser listener serves: the pages a person's browser opens, nothing else.
BROWSER_PATHS = re.compile(r"^/(devicelogin|[^/]+/(v2\.0/)?adminconsent|[^/]+/oauth2/(v2\.0/)?authorize)$",
                           re.IGNORECASE)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], sandbox: Sandbox, service: str, ctx: ssl.SSLContext | None) -> None:
        self.sandbox = sandbox
        self.service = service
        self.ssl_ctx = ctx  # None: the plain-HTTP browser listener (sign-in pages only)
        super().__init__(addr, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        if self.ssl_ctx is None:
            return sock, addr
        # The TLS handshake runs in the handler's thread, so one slow client cannot stall the listener.
        return self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended abnormally", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms to
        # every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.ssl_ctx is None:
            return
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: request lines carry query strings; the control API's request log has what is needed."""

    def _serve(self) -> None:
        sb = self.server.sandbox
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length else 0
        except ValueError:
            size = -1
        if size < 0 or size > MAX_BODY:
            self._send(Response.json({"error": {"code": "BadRequest", "message": "Invalid Content-Length."}}, 400))
            self.close_connection = True
            return
        body = self.rfile.read(size) if size else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        port = self.server.server_address[1]
        req = Request(service=self.server.service, method=self.command, target=self.path,
                      headers=Headers(list(self.headers.items())), body=body, client=self.client_address[0],
                      base_url=f"{'https' if self.server.ssl_ctx else 'http'}://127.0.0.1:{port}")
        if self.server.ssl_ctx is None and not BROWSER_PATHS.match(req.path):
            self._send(Response.json({"error": {"code": "NotFound", "message": "The browser listener serves only "
                                                "the sign-in pages."}}, 404))
            return
        resp = sb.dispatch(req)
        if resp is None:  # a dropped-connection fault
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(resp)

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            line = self.rfile.readline(64)
            n = int(line.strip().split(b";")[0] or b"0", 16)
            if n == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(n)
            self.rfile.readline()
            if len(out) > MAX_BODY:
                raise ValueError("body too large")

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class Sandbox:
    """The emulator.  `start()` returns the same description the CLI prints as its one JSON line."""

    def __init__(self, scenario: str = "demo", *, port: int = 0, host: str = "127.0.0.1",
                 state_dir: str | None = None, latency_ms: int = 0, time_scale: float | None = None,
                 save_interval: float = 1.0, browser_http: bool = False,
                 faults: list[dict[str, Any]] | None = None) -> None:
        self.scenario_ref = scenario
        self.browser_http = browser_http
        self.browser_url = ""  # the sign-in pages over plain HTTP, when browser_http
        self.host = host
        self.base_port = port
        self.state_dir = state_dir
        self.save_interval = save_interval
        restored = load_saved(state_dir, lambda t: SandboxClock(time_scale or 1.0, start=t)) if state_dir else None
        if restored is not None:
            self.state = restored
        else:
            data = load_scenario(scenario)
            scale = time_scale or float(data.get("settings", {}).get("time_scale", 1.0))
            self.state = build_state(data, SandboxClock(scale))
        self.clock = self.state.clock
        self.issuer = TokenIssuer(self.clock)
        self.faults = FaultSet()
        self.exchange_throttle = TenantThrottle()
        if latency_ms:
            self.faults.add(parse_rule({"kind": "latency", "latency_ms": latency_ms}))
        for spec in [*self.state.initial_faults, *(faults or [])]:
            self.faults.add(parse_rule(spec))
        self.request_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=20_000)
        self._log_seq = 0
        self._log_lock = threading.Lock()
        self.tls = make_loopback_tls()
        self.urls: dict[str, str] = {}
        self.backends: dict[str, Backend] = {}
        self.control = ControlBackend(self)
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.ca_path = ""
        self.info: dict[str, Any] = {}

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        ctx = self.tls.server_context()
        for i, (name, cls) in enumerate(SERVICES.items()):
            port = self.base_port + i if self.base_port else 0
            srv = _Server((self.host, port), self, name, ctx)
            self._servers.append(srv)
            self.urls[name] = f"https://{self.host}:{srv.server_address[1]}"
            self.backends[name] = cls(self)
        self.issuer.authority_host = self.urls["login"]
        if self.browser_http:
            # For a person's real browser, which does not trust this run's CA: the same sign-in pages over
            # plain HTTP on loopback (a secure context for browsers).  Tokens still come over HTTPS.
            srv = _Server((self.host, 0), self, "login", None)
            self._servers.append(srv)
            self.browser_url = f"http://{self.host}:{srv.server_address[1]}"
        for srv in self._servers:
            th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                                  name=f"sandbox-{srv.service}", daemon=True)
            th.start()
            self._threads.append(th)
        if self.state_dir:
            os.makedirs(self.state_dir, exist_ok=True)
            self.ca_path = self.tls.write_ca_bundle(self.state_dir)
            saver = threading.Thread(target=self._saver, name="sandbox-saver", daemon=True)
            saver.start()
            self._threads.append(saver)
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="xtwizard-sandbox-")
            self.ca_path = self.tls.write_ca_bundle(self._tmpdir.name)
        self.info = self.describe()
        return self.info

    def stop(self) -> None:
        self._stop.set()
        # Shut the listeners down side by side: each shutdown() waits up to one poll interval.
        stoppers = [threading.Thread(target=srv.shutdown, daemon=True) for srv in self._servers]
        for th in stoppers:
            th.start()
        for th in stoppers:
            th.join(timeout=5)
        for srv in self._servers:
            srv.server_close()
        for th in self._threads:
            th.join(timeout=5)
        if self.state_dir:
            self.state.save(self.state_dir)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def reset(self) -> None:
        """Back to the scenario's starting state, with a fresh clock, no faults and an empty request log, while
        the listeners keep running (tests share one server per module; the control API's POST /_sandbox/reset).
        Backends are rebuilt too, so nothing they keep in memory (codes, sessions) outlives the old state."""
        with self.state.lock:
            data = load_scenario(self.scenario_ref)
            scale = float(data.get("settings", {}).get("time_scale", self.clock.scale))
            state = build_state(data, SandboxClock(scale))
            self.state = state
            self.clock = state.clock
            self.issuer.clock = state.clock
            self.faults.clear()
            for spec in state.initial_faults:
                self.faults.add(parse_rule(spec))
            self.request_log.clear()
            self.exchange_throttle.clear()
            self.backends = {name: cls(self) for name, cls in SERVICES.items()}

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _saver(self) -> None:
        seen = self.state.changes
        while not self._stop.wait(self.save_interval):
            if self.state.changes != seen:
                seen = self.state.changes
                try:
                    self.state.save(self.state_dir or "")
                except OSError:
                    log.exception("could not save sandbox state")

    def describe(self) -> dict[str, Any]:
        st = self.state
        with st.lock:
            tenants = [{
                "key": t.key, "id": t.id, "displayName": t.display_name, "initialDomain": t.initial_domain,
                "domains": t.domain_names(),
                "accounts": [{"userPrincipalName": u["userPrincipalName"], "displayName": u["displayName"],
                              "roles": u["_roles"]} for u in t.col("users").values() if u.get("_account")],
            } for t in st.tenants.values()]
        return {
            "sandbox": "xtwizard", "ready": True, "scenario": st.scenario_name, "pid": os.getpid(),
            "authority_host": self.urls["login"],
            "graph_url": self.urls["graph"] + "/v1.0",
            "arm_url": self.urls["arm"],
            "exchange_url": self.urls["exchange"] + "/adminapi/beta",
            "vault_url_template": self.urls["vault"] + "/{vault}",
            "ca_bundle": self.ca_path,
            "control_url": self.urls["login"] + CONTROL_PREFIX,
            "browser_url": self.browser_url or None,
            "service_urls": dict(self.urls),
            "time_scale": self.clock.scale,
            "public_clients": sorted(st.public_clients),
            "tenants": tenants,
        }

    # --- request path ------------------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response | None:
        start = time.perf_counter()
        req.request_id = str(uuid.uuid4())
        backend: Backend = self.backends[req.service]
        resp: Response | None
        if req.path == CONTROL_PREFIX or req.path.startswith(CONTROL_PREFIX + "/"):
            resp = self._run(self.control, req)
        else:
            resp = self._with_faults(backend, req)
        if resp is not None:
            resp.headers.extend(backend.response_headers(req))
            cid = req.headers.get("client-request-id")
            if cid:
                resp.headers.append(("client-request-id", cid))
        self._record(req, resp, time.perf_counter() - start)
        return resp

    def _with_faults(self, backend: Backend, req: Request) -> Response | None:
        tenant = invoke_tenant(self.state, req)
        if tenant is None:
            return self._faulted(backend, req)
        settings = self.state.settings
        if not self.exchange_throttle.enter(tenant, int(settings["exchange_max_concurrent"])):
            # Over Exchange's per-tenant limit: answered after the injected latency (a round trip is a round
            # trip) but not counted in flight, and without using up any counted fault rule.
            self._stop.wait(self.faults.latency_ms(req.service, req.method, req.path) / 1000)
            return backend.throttled(req, 429, int(settings["exchange_throttle_retry_after_seconds"]), THROTTLED)
        try:
            return self._faulted(backend, req)
        finally:  # before the answer is written, so a client's next request never finds this one counted
            self.exchange_throttle.leave(tenant)

    def _faulted(self, backend: Backend, req: Request) -> Response | None:
        # Injected latency waits outside the state lock: concurrent requests really overlap.
        for rule in self.faults.take(req.service, req.method, req.path, invoke_cmdlet(req)):
            if rule.kind == "latency":
                self._stop.wait(rule.latency_ms / 1000)  # real latency, seen by real clients
            elif rule.kind == "drop":
                return None
            elif rule.kind == "lose":  # carried out, but the answer never reaches the client
                self._run(backend, req)
                return None
            elif rule.kind == "throttle":
                return backend.throttled(req, rule.status, rule.retry_after, rule.message)
            elif rule.kind == "error":
                return backend.error(rule.status, "ServiceUnavailable" if rule.status == 503 else "InternalServerError",
                                     rule.message or "The service is temporarily unavailable.",
                                     [("Retry-After", str(rule.retry_after))]).response()
        return self._run(backend, req)

    def _run(self, backend: Backend, req: Request) -> Response:
        try:
            with self.state.lock:
                return backend.handle(req)
        except HttpError as exc:
            return exc.response()
        except Exception:  # the sandbox answers in the service's shape, never with a traceback
            log.exception("sandbox %s failed on %s %s (request id %s)", req.service, req.method, req.path,
                          req.request_id)
            return backend.internal_error(req)

    def _record(self, req: Request, resp: Response | None, seconds: float) -> None:
        is_control = req.path == CONTROL_PREFIX or req.path.startswith(CONTROL_PREFIX + "/")
        router = self.control.router if is_control else self.backends[req.service].router
        route, _, _ = router.match(req.method, req.path)
        with self._log_lock:
            self._log_seq += 1
            self.request_log.append({
                "seq": self._log_seq, "time": self.clock.now(), "service": req.service, "method": req.method,
                "path": req.path, "route": route.template if route else None,
                "status": resp.status if resp is not None else 0, "duration_ms": round(seconds * 1000, 2),
                "request_id": req.request_id,
            })


def print_ready_line(info: dict[str, Any]) -> str:
    return json.dumps(info, separators=(",", ":"))

"""`xtwizard --self-test` and `--measure-startup`: checks that run inside the frozen (PyInstaller) build.

The self-test exercises each path a frozen build can lose (engineering-practice §4.6): logging to a file with
no stdout/stderr, the keyring backend, the token store round trip, cryptography (PKCS#12), the TLS context
from the OS trust store (truststore), the Qt platform and SVG plugins (the wizard painted off screen), and a
real run against the sandbox: both demo tenants signed in through a small scripted browser, then the first
step of the setup applied by the setup engine.  It writes only to its log file (and a temporary folder it
removes); it prints at most one summary line to stdout, when there is one.  Exit 0 = passed; 1 = failed,
with the reason in the log.

Nothing secret is logged: tokens stay in msal's memory cache, the log is scanned for token-like strings at
the end, and a hit fails the test.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

log = logging.getLogger("xtwizard.selftest")

# A JWT ("eyJ" + base64url header), a PEM private key, or an OAuth field with a value: none may reach the log.
SECRET_PATTERNS = (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
                   re.compile(r"PRIVATE KEY-----"),
                   re.compile(r"(refresh_token|access_token|client_secret|secretText)\W{1,4}[A-Za-z0-9._~-]{8,}"))


def default_log_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_log_dir("xtwizard", appauthor=False)) / "self-test.log"


def _log_to(path: Path) -> tuple[logging.Handler, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    from .cloud.http import harden_logging

    harden_logging()
    crash = open(path.with_suffix(".crash.log"), "a", encoding="utf-8")  # faulthandler needs a real file
    faulthandler.enable(crash)
    return handler, crash


def _say(line: str) -> None:
    """One line for a person at a terminal; nothing when the windowed build has no stdout."""
    if sys.stdout is not None:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass


# --- a minimal scripted browser for the sandbox's sign-in pages --------------------------------------------
class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: dict[str, dict[str, Any]] = {}
        self._form: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = {"action": a.get("action", ""), "method": a.get("method", "get").lower(), "fields": {},
                          "accounts": []}
            self.forms[a.get("id", "")] = self._form
        elif self._form is not None and tag == "input" and a.get("type", "text").lower() == "hidden":
            self._form["fields"][a.get("name", "")] = a.get("value", "")
        elif self._form is not None and tag == "button" and a.get("name") == "account":
            self._form["accounts"].append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")


def browse_sign_in(url: str, account: str, tls: Any) -> None:
    """What the admin does in the browser: pick the account, accept the consent, let the page post back."""
    import httpx

    with httpx.Client(verify=tls, trust_env=False, timeout=30, follow_redirects=False) as web, \
            httpx.Client(trust_env=False, timeout=30, follow_redirects=False) as loopback:
        resp = web.get(url)
        current = url
        for _ in range(6):
            if resp.is_redirect:
                location = resp.headers["location"]
                if not _is_loopback(location):
                    raise RuntimeError(f"sign-in redirected away from the app (status {resp.status_code})")
                loopback.get(location)
                return
            page = _Forms()
            page.feed(resp.text)
            if "response" in page.forms:  # the auto-submitting form_post to the app's loopback listener
                form = page.forms["response"]
                if not _is_loopback(form["action"]):
                    raise RuntimeError("the sign-in page posts its answer somewhere other than the app")
                loopback.post(form["action"], data=form["fields"])
                return
            if "consent" in page.forms:
                form, extra = page.forms["consent"], {"consent": "accept"}
            elif "signin" in page.forms:
                form = page.forms["signin"]
                if account not in form["accounts"]:
                    raise RuntimeError(f"{account} is not offered on the sign-in page")
                extra = {"account": account}
            else:
                raise RuntimeError(f"unexpected sign-in page (status {resp.status_code}, forms {sorted(page.forms)})")
            target = urljoin(current, form["action"])
            data = {**form["fields"], **extra}
            resp = web.post(target, data=data) if form["method"] == "post" else web.get(target, params=data)
            current = target
    raise RuntimeError("the sign-in did not finish within six pages")


# --- the checks ---------------------------------------------------------------------------------------------
class SelfTest:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.tls: Any = None
        self.info: dict[str, Any] = {}

    def keyring_backend(self) -> str:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring):
            return ("no usable keyring (fail backend): sign-ins stay in memory; this is allowed and the "
                    "app says so")
        return f"{type(backend).__module__}.{type(backend).__name__} (priority {getattr(backend, 'priority', '?')})"

    def token_store(self) -> str:
        import msal

        from .cloud.tokenstore import TokenStore

        slot = f"selftest-{os.getpid()}-{int(time.time())}"
        store = TokenStore(slot, self.work)
        cache = msal.SerializableTokenCache()
        cache.deserialize('{"Account": {"selftest": {"username": "self-test", "environment": "selftest"}}}')
        cache.has_state_changed = True
        try:
            store.save(cache)
            if not store.persistent:
                return f"memory only ({store.reason})"
            if not store.path.exists():
                raise RuntimeError("the sealed token cache was not written")
            if b"self-test" in store.path.read_bytes():
                raise RuntimeError("the token cache was written unencrypted")
            loaded = TokenStore(slot, self.work).load()
            if '"self-test"' not in loaded.serialize():
                raise RuntimeError("the token cache did not read back")
            return "sealed, written, read back and removed (key in the keyring)"
        finally:
            store.forget()

    def cryptography(self) -> str:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xtwizard self-test")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        password = os.urandom(16).hex().encode()
        blob = pkcs12.serialize_key_and_certificates(b"selftest", key, cert, None, BestAvailableEncryption(password))
        _, back, _ = pkcs12.load_key_and_certificates(blob, password)
        if back is None or back.fingerprint(hashes.SHA256()) != cert.fingerprint(hashes.SHA256()):
            raise RuntimeError("PKCS#12 round trip changed the certificate")
        return "EC key, certificate and PKCS#12 round trip in memory"

    def tls_context(self) -> str:
        import ssl

        import truststore

        ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ctx.verify_mode != ssl.CERT_REQUIRED or not ctx.check_hostname:
            raise RuntimeError("the TLS context does not verify certificates")
        where = "the platform verifier"
        if sys.platform.startswith("linux"):  # truststore reads the distribution's CA file there
            found = [f for f in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                                 "/etc/ssl/ca-bundle.pem", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
                                 "/etc/ssl/cert.pem") if os.path.exists(f)]
            if not found:
                raise RuntimeError("no system CA file found: install the ca-certificates package")
            where = found[0]
        self.tls = ctx
        return f"truststore {truststore.__version__}: the OS trust store ({where})"

    def sandbox(self) -> str:
        from .sandbox import Sandbox

        self.sb = Sandbox("demo", state_dir=str(self.work / "sandbox"))
        self.info = self.sb.start()
        self.tls.load_verify_locations(cafile=self.info["ca_bundle"])  # the sandbox's own CA, on top of the OS's
        return f"demo scenario on {self.info['authority_host']}"

    def _admin(self, key: str) -> str:
        tenant = next(t for t in self.info["tenants"] if t["key"] == key)
        for a in tenant["accounts"]:
            if "Global Administrator" in a["roles"]:
                return str(a["userPrincipalName"])
        raise RuntimeError(f"the demo scenario has no Global Administrator in the {key} tenant")

    async def _setup(self) -> str:
        from keyring.backends.fail import Keyring as NoKeyring

        from .cloud.endpoints import sandbox_endpoints
        from .migration.project import ProjectStore
        from .migration.setup import SetupEngine, SetupOptions
        from .migration.workspace import Workspace

        data = self.work / "data"
        project = ProjectStore(data / "projects").create("self-test")
        ws = Workspace(sandbox_endpoints(self.info), project, data, keyring_backend=NoKeyring())  # type: ignore[no-untyped-call]
        try:
            for slot in ("target", "source"):
                account = self._admin(slot)
                errors: list[BaseException] = []

                def open_browser(url: str, account: str = account, errors: list[BaseException] = errors,
                                 slot: str = slot) -> None:
                    def walk() -> None:
                        try:
                            browse_sign_in(url, account, self.tls)
                        except Exception as exc:  # noqa: BLE001 - reported below, with the sign-in's own error
                            errors.append(exc)

                    threading.Thread(target=walk, name=f"selftest-browser-{slot}", daemon=True).start()

                cancel = threading.Event()
                try:
                    ident = await ws.sign_in_browser(slot, open_browser, cancel)
                except Exception as exc:
                    raise RuntimeError(f"{slot} sign-in failed: {exc}; browser: {errors}") from exc
                log.info("signed in to the %s: %s (%s) as %s", slot, ident.display_name, ident.initial_domain,
                         ident.username)
            engine = SetupEngine(ws, SetupOptions(scope_groups=["Migration Wave 1"]))
            plan = await engine.plan()
            for line in plan.lines():
                log.info("plan: %s", line)
            if not plan.pending:
                raise RuntimeError("the plan for a fresh demo has no change to make")
            # One step through the public API: apply() checks `cancel` before each change and reports each
            # change before making it, so cancelling at the first report stops after exactly one change.
            stop = threading.Event()
            result = await engine.apply(lambda done, total, what: stop.set(), stop)
            if len(result.done) != 1 or not result.cancelled:
                raise RuntimeError(f"expected one applied change, got {len(result.done)}")
            first = result.done[0]
            after = await engine.plan()
            if any(c.key == first.key and c.kind == first.kind for c in after.pending):
                raise RuntimeError(f"the first step did not take effect: {first.line}")
            return f"both tenants signed in; plan of {len(plan.pending)} change(s); applied: {first.line}"
        finally:
            await ws.aclose()

    def sign_in_and_setup(self) -> str:
        import asyncio

        return asyncio.run(self._setup())

    def wizard(self) -> str:
        """The Qt platform plugin, the SVG icon and the wizard's first page painted (off screen if no display)."""
        from PySide6.QtCore import QEventLoop, QTimer, qInstallMessageHandler
        from PySide6.QtWidgets import QApplication

        from .cloud.endpoints import sandbox_endpoints
        from .ui.context import AppContext
        from .ui.runner import AsyncRunner
        from .ui.wizard import ICON, MigrationWizard

        def qt_message(mode: Any, context: Any, message: str) -> None:  # Qt's messages go to the log, too
            logging.getLogger("xtwizard.qt").warning("%s", message)

        qInstallMessageHandler(qt_message)
        app = QApplication.instance() or QApplication([sys.argv[0]])
        runner = AsyncRunner()
        try:
            ctx = AppContext(endpoints=sandbox_endpoints(self.info), runner=runner, data_dir=self.work / "gui",
                             log_dir=self.work / "gui-logs", open_browser=lambda url: None, demo=True)
            wizard = MigrationWizard(ctx)
            if wizard.windowIcon().pixmap(64, 64).isNull():
                raise RuntimeError(f"the window icon ({ICON.name}) did not render: SVG plugin missing?")
            wizard.show()
            loop = QEventLoop()
            QTimer.singleShot(300, loop.quit)
            loop.exec()
            image = wizard.grab()
            if image.isNull() or image.width() < 100:
                raise RuntimeError("the wizard did not paint")
            platform = QApplication.platformName()
            wizard.close()
            return f"first page painted on the {platform!r} platform, {image.width()}x{image.height()}"
        finally:
            runner.shutdown()
            assert isinstance(app, QApplication)


def _scan_for_secrets(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [p.pattern for p in SECRET_PATTERNS if p.search(text)]


def run(log_file: Path | None = None) -> int:
    """The whole self-test; returns the process exit code."""
    log_file = log_file or default_log_file()
    handler, crash = _log_to(log_file)
    if sys.platform.startswith("linux") and not (os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from . import __version__

    log.info("xtwizard %s self-test; frozen=%s; python %s on %s", __version__, getattr(sys, "frozen", False),
             sys.version.split()[0], sys.platform)
    failed: str | None = None
    with tempfile.TemporaryDirectory(prefix="xtwizard-selftest-") as tmp:
        test = SelfTest(Path(tmp))
        steps: list[tuple[str, Callable[[], str]]] = [
            ("keyring backend", test.keyring_backend), ("token store", test.token_store),
            ("cryptography", test.cryptography), ("TLS context", test.tls_context), ("sandbox", test.sandbox),
            ("sign-in and first setup step", test.sign_in_and_setup), ("wizard", test.wizard)]
        try:
            for name, step in steps:
                started = time.monotonic()
                try:
                    detail = step()
                except Exception as exc:
                    log.error("FAILED: %s: %s", name, exc, exc_info=True)
                    failed = f"{name}: {exc}"
                    break
                log.info("ok: %s: %s (%.2f s)", name, detail, time.monotonic() - started)
        finally:
            sb = getattr(test, "sb", None)
            if sb is not None:
                sb.stop()
    hits = _scan_for_secrets(log_file)
    if hits and failed is None:
        failed = f"the log contains secret-looking text ({', '.join(hits)})"
        log.error("FAILED: %s", failed)  # the patterns only, never the matched text
    log.info("self-test %s", "PASSED" if failed is None else f"FAILED ({failed})")
    logging.getLogger().removeHandler(handler)
    handler.close()
    faulthandler.disable()
    crash.close()
    _say(f"xtwizard self-test {'passed' if failed is None else 'FAILED: ' + failed}; log: {log_file}")
    return 0 if failed is None else 1

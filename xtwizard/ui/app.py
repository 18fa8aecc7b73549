"""Application bootstrap: logging first, crash capture, then the wizard.

A rotating log file in the user log directory (allowlisted content only: see cloud/http.py), uncaught
exceptions from any thread logged, Qt's own messages logged, and faulthandler writing hard crashes to a file.
"""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

from ..cloud.endpoints import CloudEndpoints
from ..cloud.logsafety import harden_logging
from .context import AppContext, SystemBrowser
from .runner import AsyncRunner
from .wizard import MigrationWizard

log = logging.getLogger("xtwizard")


def default_dirs(demo: bool) -> tuple[Path, Path]:
    import platformdirs

    data = Path(platformdirs.user_data_dir("xtwizard", appauthor=False))
    logs = Path(platformdirs.user_log_dir("xtwizard", appauthor=False))
    return (data / "rehearsal" if demo else data), logs


def setup_logging(log_dir: Path, level: int = logging.INFO) -> Callable[[], None]:
    """Install logging and the crash hooks; returns a function that undoes them (for tests)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(log_dir / "xtwizard.log", maxBytes=2_000_000, backupCount=5,
                                                   encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    harden_logging()

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.critical("uncaught exception", exc_info=(kind, value, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            log.critical("uncaught exception in thread %s", getattr(args.thread, "name", "?"),
                         exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    old_hooks = (sys.excepthook, threading.excepthook, root.level)
    sys.excepthook = excepthook
    threading.excepthook = thread_hook
    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}

    def qt_handler(mode: QtMsgType, context: Any, message: str) -> None:
        logging.getLogger("xtwizard.qt").log(levels.get(mode, logging.WARNING), "%s", message)

    old_qt = qInstallMessageHandler(qt_handler)
    crash = open(log_dir / "crash.log", "a", encoding="utf-8")  # open until undo/exit: faulthandler writes here
    faulthandler.enable(crash)

    def undo() -> None:
        sys.excepthook, threading.excepthook, level_before = old_hooks
        root.removeHandler(handler)
        root.setLevel(level_before)
        handler.close()
        qInstallMessageHandler(old_qt)
        faulthandler.disable()
        crash.close()

    return undo


def warm_up() -> None:
    """Import what the pages after Welcome need while the admin reads the first page."""
    import importlib

    for name in ("xtwizard.migration.workspace", "xtwizard.migration.setup"):
        importlib.import_module(name)


class _FirstPaint(QObject):
    """Runs `then` once, from the event loop, after the watched widget's first paint."""

    def __init__(self, then: Callable[[], None]) -> None:
        super().__init__()
        self.then: Callable[[], None] | None = then

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and self.then is not None:
            then, self.then = self.then, None
            QTimer.singleShot(0, then)
        return False


def run_wizard(endpoints: CloudEndpoints, *, demo: bool = False, data_dir: Path | None = None,
               log_dir: Path | None = None, client_id: str | None = None,
               first_paint: Callable[[], None] | None = None) -> int:
    """Show the wizard and run the event loop.  Only the Welcome page is built before the first paint; the other
    pages, then the cloud layer (msal, httpx, the Azure SDK, off the GUI thread) come right after it.
    `first_paint` is called then too (`xtwizard --measure-startup` uses it)."""
    if data_dir is None or log_dir is None:
        default_data, default_logs = default_dirs(demo)
        data_dir = data_dir or default_data
        log_dir = log_dir or default_logs
    undo = setup_logging(log_dir)
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("xtwizard")
    runner = AsyncRunner()
    ctx = AppContext(endpoints=endpoints, runner=runner, data_dir=data_dir, log_dir=log_dir,
                     open_browser=SystemBrowser(), demo=demo, client_id=client_id)
    wizard = MigrationWizard(ctx, lazy=True)

    warming = threading.Thread(target=warm_up, name="xtwizard-warm-up", daemon=True)

    def after_first_paint() -> None:
        if first_paint is not None:
            first_paint()
        wizard.add_pages()
        warming.start()

    probe = _FirstPaint(after_first_paint)
    wizard.welcome.installEventFilter(probe)
    wizard.show()
    try:
        return int(app.exec())
    finally:
        if ctx.workspace is not None:
            runner.submit(ctx.workspace.aclose)
        runner.shutdown()
        if warming.is_alive():  # closed within a second of starting: let the imports finish, or the interpreter's
            warming.join(30)    # shutdown can crash inside a half-imported extension module (seen as SIGSEGV)
        undo()

"""GUI fixtures: the real wizard against a real sandbox, a scripted browser standing in for the user's."""

from __future__ import annotations

import threading
import time

import keyring.backends.fail
import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

from tests.sandbox.browser import ScriptedBrowser
from xtwizard.cloud.endpoints import sandbox_endpoints
from xtwizard.ui.context import AppContext
from xtwizard.ui.runner import AsyncRunner
from xtwizard.ui.wizard import MigrationWizard


class UserAtBrowser:
    """What the admin does when xtwizard opens the browser: which account, accept or decline.

    `plan` is consumed one entry per sign-in: (account, consent) or None (walk away: nothing happens)."""

    def __init__(self, ca_path: str) -> None:
        self.ca_path = ca_path
        self.plan: list[tuple[str, bool] | None] = []
        self.opened: list[str] = []
        self.results: list[object] = []
        self.errors: list[BaseException] = []

    def __call__(self, url: str) -> None:
        self.opened.append(url)
        step = self.plan.pop(0) if self.plan else None
        if step is None:
            return
        account, consent = step

        def walk() -> None:
            try:
                with ScriptedBrowser(self.ca_path) as b:
                    self.results.append(b.sign_in(url, account=account, consent=consent))
            except Exception as exc:  # noqa: BLE001 - surfaced by the test through self.errors
                self.errors.append(exc)

        threading.Thread(target=walk, daemon=True).start()


class StallProbe:
    """A timer on the GUI thread: the longest gap between its ticks is the worst stall the user would feel."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.clock = QElapsedTimer()
        self.worst_ms = 0
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        """Start (or restart) measuring; `worst_ms` keeps the worst gap over every measured span."""
        self.clock.start()
        self.timer.start()

    def _tick(self) -> None:
        gap = self.clock.restart()
        self.worst_ms = max(self.worst_ms, gap)

    def stop(self) -> int:
        self.timer.stop()
        return self.worst_ms


@pytest.fixture
def user(sandbox):
    return UserAtBrowser(sandbox.ca_path)


@pytest.fixture
def app_ctx(sandbox, tmp_path, user, qtbot):
    runner = AsyncRunner()
    ctx = AppContext(endpoints=sandbox_endpoints(sandbox.info), runner=runner, data_dir=tmp_path / "data",
                     log_dir=tmp_path / "logs", open_browser=user, demo=True,
                     keyring_backend=keyring.backends.fail.Keyring())
    yield ctx
    runner.cancel_all()
    if ctx.workspace is not None:
        op = runner.submit(ctx.workspace.aclose)
        deadline = time.monotonic() + 5
        while op.running and time.monotonic() < deadline:
            qtbot.wait(10)
    runner.shutdown()


@pytest.fixture
def wizard(app_ctx, qtbot):
    w = MigrationWizard(app_ctx)
    qtbot.addWidget(w)
    w.show()
    return w

"""Render every wizard page, in a light and a dark palette, from the real app against the sandbox.

    QT_QPA_PLATFORM=offscreen python -m tests.gui.screenshots docs/screenshots

The README shows the result.  tests/gui/test_screenshots.py runs this too, so it cannot rot.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring.backends.fail
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QAbstractItemView, QApplication, QWizard

from tests.gui.conftest import UserAtBrowser
from xtwizard.cloud.endpoints import sandbox_endpoints
from xtwizard.sandbox import Sandbox
from xtwizard.ui.context import AppContext
from xtwizard.ui.runner import AsyncRunner
from xtwizard.ui.widgets import PageState
from xtwizard.ui.wizard import MigrationWizard

SOURCE_ADMIN = "admin@northwindtraders.onmicrosoft.com"
TARGET_ADMIN = "admin@fabrikaminc.onmicrosoft.com"


def dark_palette() -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#202124", QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#17181a", QPalette.ColorRole.AlternateBase: "#26282b",
        QPalette.ColorRole.Text: "#e8eaed", QPalette.ColorRole.Button: "#2d2f33",
        QPalette.ColorRole.ButtonText: "#e8eaed", QPalette.ColorRole.Highlight: "#4c8bf5",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#3c3a2a",
        QPalette.ColorRole.ToolTipText: "#fff3c4", QPalette.ColorRole.Link: "#8ab4f8",
        QPalette.ColorRole.PlaceholderText: "#9aa0a6",
    }
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6f7378"))
    return p


def _wait(app: QApplication, cond, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("page did not settle")
        app.processEvents()
        time.sleep(0.01)


def render(out: Path, palettes: tuple[str, ...] = ("light", "dark")) -> list[Path]:
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setStyle("Fusion")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in palettes:
        app.setPalette(dark_palette() if name == "dark" else app.style().standardPalette())
        written += _render_palette(app, out, name)
        written += _render_run_pages(app, out, name)
    return written


@contextlib.contextmanager
def _session(app: QApplication, out: Path, palette: str, written: list[Path],
             before: Callable[[Sandbox, AppContext], object]) -> Iterator[tuple[Sandbox, Path, MigrationWizard,
                                                                               UserAtBrowser, Callable[[str], None]]]:
    """The demo sandbox, a rehearsal context prepared by `before`, and the wizard shown; `shot(label)` saves it.
    Afterwards the wizard is closed and its workspace and runner shut down."""
    with Sandbox("demo") as sb, tempfile.TemporaryDirectory() as tmp:
        user = UserAtBrowser(sb.ca_path)
        runner = AsyncRunner()
        ctx = AppContext(endpoints=sandbox_endpoints(sb.info), runner=runner, data_dir=Path(tmp) / "data",
                         log_dir=Path(tmp) / "logs", open_browser=user, demo=True,
                         keyring_backend=keyring.backends.fail.Keyring())
        before(sb, ctx)
        w = MigrationWizard(ctx)
        w.show()

        def shot(label: str) -> None:
            app.processEvents()
            path = out / f"{label}-{palette}.png"
            w.grab().save(str(path))
            written.append(path)

        try:
            yield sb, Path(tmp), w, user, shot
        finally:
            w.close()
            runner.cancel_all()
            workspace = ctx.workspace
            if workspace is not None:
                op = runner.submit(workspace.aclose)
                _wait(app, lambda: not op.running, 5)
            runner.shutdown()


def _render_palette(app: QApplication, out: Path, palette: str) -> list[Path]:
    written: list[Path] = []

    def earlier_project(sb: Sandbox, ctx: AppContext) -> None:
        ctx.projects.create("Contoso to Fabrikam (rehearsal from last week)")

    with _session(app, out, palette, written, earlier_project) as (sb, _tmp, w, user, shot):
        w.welcome.name.setText("Northwind to Fabrikam")
        shot("1-welcome")
        w.button(QWizard.WizardButton.NextButton).click()
        user.plan.append((TARGET_ADMIN, True))
        w.target.browser_btn.click()
        _wait(app, lambda: w.target.state is PageState.OK)
        shot("2-sign-in-target")
        w.button(QWizard.WizardButton.NextButton).click()
        shot("3-sign-in-source")
        user.plan.append((SOURCE_ADMIN, True))
        w.source.browser_btn.click()
        _wait(app, lambda: w.source.state is PageState.OK)
        w.button(QWizard.WizardButton.NextButton).click()
        _wait(app, lambda: w.prereqs.checks is not None)
        w.prereqs.tree.setFocus(Qt.FocusReason.OtherFocusReason)
        shot("4-prerequisites")
        w.button(QWizard.WizardButton.NextButton).click()
        _wait(app, lambda: w.credential.subscription.count() > 0)
        shot("5-credential")
        w.button(QWizard.WizardButton.NextButton).click()
        _wait(app, lambda: w.scope.groups.count() > 0)
        w.scope.groups.setCurrentRow(next(i for i in range(w.scope.groups.count())
                                          if "Migration Wave 1" in w.scope.groups.item(i).text()))
        _wait(app, lambda: "member(s) now" in w.scope.members_now.text())
        shot("6-scoping-group")
        w.button(QWizard.WizardButton.NextButton).click()
        _wait(app, lambda: w.plan.plan is not None)
        shot("7-plan")
        w.plan.apply_btn.click()
        _wait(app, lambda: w.plan.applied, 120)
        w.button(QWizard.WizardButton.NextButton).click()
        _wait(app, lambda: w.verify.checks is not None)
        shot("8-verify")
        w.button(QWizard.WizardButton.NextButton).click()
        _wait(app, lambda: w.mapping.validated and not w.mapping.busy)
        w.mapping.outside.setChecked(True)  # Gina is outside the scoping group: readiness offers to add her
        _wait(app, lambda: w.mapping.validated and not w.mapping.busy)
        w.mapping.table.setCurrentIndex(w.mapping.proxy.index(next(
            i for i, r in enumerate(w.mapping.model.records) if r.status == "error"), 0))
        w.mapping.table.scrollTo(w.mapping.table.currentIndex(), QAbstractItemView.ScrollHint.PositionAtCenter)
        shot("9-mapping")
        w.button(QWizard.WizardButton.NextButton).click()
        _wait(app, lambda: w.prepare.plan is not None and not w.prepare.busy)
        w.prepare.only.setChecked(True)
        w.prepare.table.setCurrentIndex(w.prepare.proxy.index(0, 0))
        shot("10-prepare")
        w.prepare.apply_btn.click()
        _wait(app, lambda: w.prepare.last is not None and not w.prepare.busy, 120)
        w.button(QWizard.WizardButton.NextButton).click()
        _wait(app, lambda: w.readiness.results is not None and not w.readiness.busy)
        w.readiness.only.setChecked(True)
        w.readiness.table.setCurrentIndex(w.readiness.proxy.index(0, 0))
        shot("11-readiness")
        w.readiness.fix_btn.click()
        shot("12-readiness-fixes")
    return written



def _render_run_pages(app: QApplication, out: Path, palette: str) -> list[Path]:
    """Launch, Monitor and Finish (issue 6 pages B) on tenants set up and checked by the engines, with a batch
    that runs on the sandbox clock until one user completes and one needs attention."""
    from tests.gui.test_batches_pages import ready_workspace

    written: list[Path] = []
    with _session(app, out, palette, written, ready_workspace) as (sb, tmp, w, _user, shot):
        w.setStartId(next(i for i in w.pageIds() if w.page(i) is w.launch))
        w.restart()
        w.launch.emails.setText("it@fabrikam.example")
        shot("13-launch")
        w.launch.launch()
        _wait(app, lambda: bool(w.launch.launched), 60)
        w.button(QWizard.WizardButton.NextButton).click()
        monitor = w.monitor
        monitor.auto.setChecked(False)
        _wait(app, lambda: monitor.refreshes >= 1)
        for step in (lambda: monitor.advance(3600), lambda: monitor.advance(3600), lambda: monitor.set_speed(600.0)):
            seen = monitor.refreshes
            step()
            _wait(app, lambda seen=seen: monitor.refreshes > seen)  # type: ignore[misc]
        proxy = monitor.users_proxy
        failed = [r for r in range(proxy.rowCount()) if proxy.record(proxy.index(r, 0)).stage == "failed"]
        monitor.users_view.setCurrentIndex(proxy.index(failed[0] if failed else 0, 0))
        shot("14-monitor")
        w.button(QWizard.WizardButton.NextButton).click()
        finish = w.finish
        finish.folder.setText(str(tmp / "reports"))
        finish.write_reports()
        _wait(app, lambda: bool(finish.written), 60)
        finish.plan_teardown()
        _wait(app, lambda: finish.plan is not None, 60)
        shot("15-finish")
    return written

if __name__ == "__main__":
    for p in render(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")):
        print(p)

"""The wizard window: pages in Microsoft's order (target first), ModernStyle, keyboard-driven.

With `lazy=True` (the application does this) only the Welcome page is built before the window is first painted;
`add_pages()` imports and builds the others right after, while the admin reads the first page.  That keeps the
start close to a bare QWizard's (issue 7).  Tests build the whole wizard at once (`lazy=False`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QWidget, QWizard

from .context import AppContext
from .pages.welcome import WelcomePage

if TYPE_CHECKING:
    from .pages.batches import FinishPage, LaunchPage, MonitorPage
    from .pages.prereqs import PrerequisitesPage
    from .pages.setup import CredentialPage, PlanPage, ScopingGroupPage, VerifyPage
    from .pages.signin import SignInPage
    from .pages.users import MappingPage, PreparePage, ReadinessPage


def resource(name: str) -> Path:
    """A file from the repository's resources/ folder (beside the package, or inside a PyInstaller bundle)."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent.parent))
    return base / "resources" / name


ICON = resource("xtwizard.svg")


class MigrationWizard(QWizard):
    target: SignInPage
    source: SignInPage
    prereqs: PrerequisitesPage
    credential: CredentialPage
    scope: ScopingGroupPage
    plan: PlanPage
    verify: VerifyPage
    mapping: MappingPage
    prepare: PreparePage
    readiness: ReadinessPage
    launch: LaunchPage
    monitor: MonitorPage
    finish: FinishPage

    def __init__(self, ctx: AppContext, parent: QWidget | None = None, *, lazy: bool = False) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)  # Aero breaks in dark mode (engineering-practice §2)
        self.setWindowTitle("xtwizard — cross-tenant mailbox migration" + (" (rehearsal)" if ctx.demo else ""))
        if ICON.exists():
            self.setWindowIcon(QIcon(str(ICON)))
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.welcome = WelcomePage(ctx)
        self.addPage(self.welcome)
        self._pending = True
        self.resize(900, 680)
        if not lazy:
            self.add_pages()

    def add_pages(self) -> None:
        """Build every page after Welcome (once)."""
        if not self._pending:
            return
        self._pending = False
        from .pages.prereqs import PrerequisitesPage
        from .pages.setup import CredentialPage, PlanPage, ScopingGroupPage, VerifyPage
        from .pages.signin import SignInPage

        ctx = self.ctx
        self.target = SignInPage(ctx, "target")
        self.source = SignInPage(ctx, "source")
        self.prereqs = PrerequisitesPage(ctx)
        self.credential = CredentialPage(ctx)
        self.scope = ScopingGroupPage(ctx)
        self.plan = PlanPage(ctx, self.credential, self.scope)
        self.verify = VerifyPage(ctx, self.plan)
        for p in (self.target, self.source, self.prereqs, self.credential, self.scope, self.plan, self.verify):
            self.addPage(p)
        self._add_users_pages(ctx)
        self._add_run_pages(ctx)

    def _add_users_pages(self, ctx: AppContext) -> None:
        """Pages A of issue 6, after Verify: choose users and mapping, prepare target users, readiness."""
        from .pages.users import MappingPage, PreparePage, ReadinessPage

        self.mapping = MappingPage(ctx)
        self.prepare = PreparePage(ctx)
        self.readiness = ReadinessPage(ctx)
        for p in (self.mapping, self.prepare, self.readiness):
            self.addPage(p)

    def _add_run_pages(self, ctx: AppContext) -> None:
        """Pages B of issue 6, after the users pages: launch the batches, watch them, finish."""
        from .pages.batches import FinishPage, LaunchPage, MonitorPage

        self.launch = LaunchPage(ctx)
        self.monitor = MonitorPage(ctx)
        self.finish = FinishPage(ctx, self.monitor)
        for p in (self.launch, self.monitor, self.finish):
            self.addPage(p)

    def nextId(self) -> int:
        if self._pending:  # Welcome, before the other pages exist: Next (not Finish) leads to the first of them
            return self.currentId() + 1
        return super().nextId()

    def validateCurrentPage(self) -> bool:
        self.add_pages()  # in case Next comes before the event loop has built them
        return super().validateCurrentPage()

    def reject(self) -> None:
        """Closing stops what runs; nothing is lost (the project and journal are on disk)."""
        self.ctx.runner.cancel_all()
        super().reject()

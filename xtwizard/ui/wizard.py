"""The wizard window: pages in Microsoft's order (target first), ModernStyle, keyboard-driven."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QWidget, QWizard

from .context import AppContext
from .pages.prereqs import PrerequisitesPage
from .pages.setup import CredentialPage, PlanPage, ScopingGroupPage, VerifyPage
from .pages.signin import SignInPage
from .pages.welcome import WelcomePage


def resource(name: str) -> Path:
    """A file from the repository's resources/ folder (beside the package, or inside a PyInstaller bundle)."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent.parent))
    return base / "resources" / name


ICON = resource("xtwizard.svg")


class MigrationWizard(QWizard):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)  # Aero breaks in dark mode (engineering-practice §2)
        self.setWindowTitle("xtwizard — cross-tenant mailbox migration" + (" (rehearsal)" if ctx.demo else ""))
        if ICON.exists():
            self.setWindowIcon(QIcon(str(ICON)))
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.welcome = WelcomePage(ctx)
        self.target = SignInPage(ctx, "target")
        self.source = SignInPage(ctx, "source")
        self.prereqs = PrerequisitesPage(ctx)
        self.credential = CredentialPage(ctx)
        self.scope = ScopingGroupPage(ctx)
        self.plan = PlanPage(ctx, self.credential, self.scope)
        self.verify = VerifyPage(ctx, self.plan)
        for p in (self.welcome, self.target, self.source, self.prereqs, self.credential, self.scope, self.plan,
                  self.verify):
            self.addPage(p)
        self.resize(900, 680)

    def reject(self) -> None:
        """Closing stops what runs; nothing is lost (the project and journal are on disk)."""
        self.ctx.runner.cancel_all()
        super().reject()

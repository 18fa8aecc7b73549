"""The page every wizard page builds on: banner, title, content, and the status panel that drives Next."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget, QWizardPage

from ..context import AppContext
from ..widgets import PageState, RehearsalBanner, StatusPanel


class BasePage(QWizardPage):
    def __init__(self, ctx: AppContext, title: str, subtitle: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setTitle(title)
        self.setSubTitle(subtitle)
        outer = QVBoxLayout(self)
        if ctx.demo:
            outer.addWidget(RehearsalBanner())
        self.body = QVBoxLayout()
        outer.addLayout(self.body, 1)
        self.status = StatusPanel(str(ctx.log_dir))
        outer.addWidget(self.status)
        self.status.retryRequested.connect(self.retry)
        self.status.cancelRequested.connect(self.cancel)

    @property
    def state(self) -> PageState:
        return self.status.state

    def changed(self) -> None:
        self.completeChanged.emit()

    def retry(self) -> None:
        """Run the page's work again (override)."""

    def cancel(self) -> None:
        """Stop the page's running work (override)."""

    def cleanupPage(self) -> None:  # going Back: stop what this page started
        self.cancel()
        super().cleanupPage()

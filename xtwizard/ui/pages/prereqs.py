"""Prerequisites: a checklist that explains every item and its fix, and rechecks on demand."""

from __future__ import annotations

import textwrap
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QStyle, QTreeWidget, QTreeWidgetItem

from ...migration.prereqs import Check, Status, can_continue
from ..context import AppContext
from ..lazy import explain
from ..runner import Operation
from .base import BasePage

WRAP = 100  # characters per line of an explanation (QTreeView does not wrap item text by itself)
STATUS_TEXT = {Status.OK: "OK", Status.WARNING: "Note", Status.ACTION: "xtwizard will fix",
               Status.BLOCKER: "Must fix"}
STATUS_ICON = {Status.OK: QStyle.StandardPixmap.SP_DialogApplyButton,
               Status.WARNING: QStyle.StandardPixmap.SP_MessageBoxInformation,
               Status.ACTION: QStyle.StandardPixmap.SP_BrowserReload,
               Status.BLOCKER: QStyle.StandardPixmap.SP_MessageBoxCritical}


class PrerequisitesPage(BasePage):
    _progress = Signal(int, int, str)

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, "Check prerequisites",
                         "xtwizard reads both tenants and tells you what is ready, what it will fix for you, and what "
                         "you must fix first. Nothing is changed here.")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Summary of the checks")
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Status", "Check"])
        self.tree.setAccessibleName("Prerequisite checks")
        self.tree.setWordWrap(True)
        self.tree.setColumnWidth(0, 150)
        self.recheck = QPushButton("Rec&heck")
        self.recheck.setAccessibleName("Run the prerequisite checks again")
        self.body.addWidget(self.summary)
        self.body.addWidget(self.tree, 1)
        self.body.addWidget(self.recheck, alignment=Qt.AlignmentFlag.AlignLeft)
        self.recheck.clicked.connect(self.run_checks)
        self._progress.connect(self._on_progress)
        self.checks: list[Check] | None = None
        self._op: Operation | None = None

    def initializePage(self) -> None:
        self.run_checks()

    def isComplete(self) -> bool:
        return self.checks is not None and self._op is None and can_continue(self.checks)

    def run_checks(self) -> None:
        ws = self.ctx.workspace
        assert ws is not None
        self.checks = None
        self.tree.clear()
        self.summary.setText("")
        self.recheck.setEnabled(False)
        self.status.set_busy("Reading both tenants…")

        def progress(done: int, total: int, what: str) -> None:
            self._progress.emit(done, total, what)  # from the loop's thread: queued to the GUI thread

        self._op = self.ctx.runner.submit(lambda: ws.check_prerequisites(progress), on_done=self._show,
                                          on_error=self._failed, key="prereqs")
        self.changed()

    def _on_progress(self, done: int, total: int, what: str) -> None:
        if self._op is not None:
            self.status.set_busy(f"Reading both tenants: {what}", done, total)

    def cancel(self) -> None:
        if self._op is not None:
            self._op.cancel()
            self._op = None
            self.recheck.setEnabled(True)
            self.status.set_idle("Checks cancelled; press Recheck to run them.")
            self.changed()

    def retry(self) -> None:
        self.run_checks()

    def _show(self, checks: list[Check]) -> None:
        self._op = None
        self.checks = checks
        self.recheck.setEnabled(True)
        style = self.style()
        for c in checks:
            item = QTreeWidgetItem([STATUS_TEXT[c.status], c.title])
            item.setIcon(0, style.standardIcon(STATUS_ICON[c.status]))
            item.setData(0, Qt.ItemDataRole.UserRole, c.id)
            item.setToolTip(1, c.explanation)
            item.addChild(QTreeWidgetItem(["", textwrap.fill(c.explanation, WRAP)]))
            if c.fix:
                item.addChild(QTreeWidgetItem(["What to do", textwrap.fill(c.fix, WRAP)]))
            self.tree.addTopLevelItem(item)
            item.setExpanded(c.status is not Status.OK)
        blockers = [c for c in checks if c.status is Status.BLOCKER]
        actions = [c for c in checks if c.status is Status.ACTION]
        if blockers:
            self.summary.setText(f"<b>{len(blockers)} item(s) must be fixed before the move can be set up.</b> "
                                 "Each says what to do; press Recheck when done.")
            self.status.set_idle("")
        else:
            extra = f" xtwizard will take care of {len(actions)} item(s) in the setup steps." if actions else ""
            self.summary.setText(f"<b>Ready to set up the move.</b>{extra}")
            self.status.set_ok("All checks done.")
        self.changed()

    def _failed(self, exc: BaseException) -> None:
        self._op = None
        self.recheck.setEnabled(True)
        self.status.set_error(explain(exc))
        self.changed()

    def check_by_id(self, check_id: str) -> Any:
        return next((c for c in self.checks or [] if c.id == check_id), None)

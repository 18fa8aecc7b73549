"""Welcome: start a new migration project, or resume one (MSP technicians come back weeks later)."""

from __future__ import annotations

import datetime

from PySide6.QtWidgets import QButtonGroup, QLabel, QLineEdit, QListWidget, QListWidgetItem, QRadioButton

from ...migration.project import ProjectError
from ..context import AppContext
from .base import BasePage


class WelcomePage(BasePage):
    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, "Move mailboxes to another Microsoft 365 tenant",
                         "xtwizard sets up Microsoft's cross-tenant mailbox migration step by step. Every change is "
                         "shown to you before it is made, and recorded so that you can stop and come back.")
        self.new = QRadioButton("Start a ne&w migration project")
        self.new.setAccessibleName("Start a new migration project")
        self.name = QLineEdit()
        self.name.setPlaceholderText("For example: Northwind to Fabrikam")
        self.name.setAccessibleName("Project name")
        name_label = QLabel("Project na&me:")
        name_label.setBuddy(self.name)
        self.resume = QRadioButton("Res&ume a project")
        self.resume.setAccessibleName("Resume a project")
        self.list = QListWidget()
        self._ids: list[str] = []  # the project of each row (not item data: `Qt`'s enums slow the first paint)
        self.list.setAccessibleName("Saved projects")
        group = QButtonGroup(self)
        group.addButton(self.new)
        group.addButton(self.resume)
        for w in (self.new, name_label, self.name, self.resume, self.list):
            self.body.addWidget(w)
        self.new.setChecked(True)
        self.name.textChanged.connect(self._sync)
        self.new.toggled.connect(self._sync)
        self.list.currentItemChanged.connect(self._sync)
        self.list.itemDoubleClicked.connect(lambda _: self.wizard().next())
        self.setTabOrder(self.new, self.name)
        self.setTabOrder(self.name, self.resume)
        self.setTabOrder(self.resume, self.list)

    def initializePage(self) -> None:
        self.list.clear()
        self._ids = []
        for s in self.ctx.projects.summaries():
            when = datetime.datetime.fromtimestamp(s.updated).strftime("%Y-%m-%d %H:%M")
            pair = f"{s.source or '?'} → {s.target or '?'}"
            self.list.addItem(QListWidgetItem(f"{s.name}    ({pair}, last changed {when})"))
            self._ids.append(s.id)
        self.resume.setEnabled(self.list.count() > 0)
        if self.list.count():
            self.list.setCurrentRow(0)
        self._sync()

    @property
    def project_ids(self) -> list[str]:
        """The saved projects' ids, in the order the list shows them."""
        return list(self._ids)

    def _sync(self) -> None:
        self.name.setEnabled(self.new.isChecked())
        self.list.setEnabled(self.resume.isChecked())
        self.changed()

    def isComplete(self) -> bool:
        if self.new.isChecked():
            return bool(self.name.text().strip())
        return self.list.currentItem() is not None

    def validatePage(self) -> bool:
        """Local disk only (no network): create or open the project and its workspace."""
        try:
            if self.new.isChecked():
                project = self.ctx.projects.create(self.name.text())
                project.data["cloud"] = self.ctx.endpoints.name
                project.save()
            else:
                project = self.ctx.projects.open(self._ids[self.list.currentRow()])
        except ProjectError as exc:
            self.status.set_idle(str(exc))
            return False
        from ...cloud.auth import DEFAULT_CLIENT_ID
        from ...migration.workspace import Workspace

        if self.ctx.workspace is not None:
            self.ctx.runner.submit(self.ctx.workspace.aclose)
        self.ctx.workspace = Workspace(self.ctx.endpoints, project, self.ctx.data_dir,
                                       keyring_backend=self.ctx.keyring_backend,
                                       client_id=self.ctx.client_id or DEFAULT_CLIENT_ID)
        return True

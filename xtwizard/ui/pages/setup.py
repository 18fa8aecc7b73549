"""Setting up the migration (issue 5): credential choice, scoping group, the plan and its apply, verification.

Thin views over migration/setup: the engine inspects, plans, applies (journaled) and verifies; these pages
collect the admin's choices, show the plan before anything changes, and report progress and problems.
"""

from __future__ import annotations

import csv
import io
import threading
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
)

from ..context import AppContext
from ..lazy import explain
from ..runner import Operation
from ..widgets import label
from .base import BasePage

if TYPE_CHECKING:
    from ...migration.setup import Check, Plan, SetupEngine, SetupOptions


class CredentialPage(BasePage):
    """Choose how Exchange proves it is the migration app: a client secret or a Key Vault certificate."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, "Migration app and its credential",
                         "xtwizard registers a migration app in the target tenant with one permission, Exchange's "
                         "\"Move mailboxes between organizations\". Exchange signs in as that app to copy the "
                         "mailboxes; choose how it proves who it is.")
        self.secret = QRadioButton("Client &secret (recommended)")
        self.secret.setAccessibleName("Use a client secret")
        self.secret_text = label("Microsoft's current method; needs no Azure subscription. xtwizard creates a secret "
                                  "that expires after the migration window and hands it straight to Exchange. It is "
                                  "never saved on this computer.")
        self.vault = QRadioButton("&Key Vault certificate")
        self.vault.setAccessibleName("Use a certificate in Azure Key Vault")
        self.vault_text = label("The original design: a certificate whose private key never leaves a Key Vault in "
                                 "your Azure subscription; Exchange reads it from there.")
        group = QButtonGroup(self)
        group.addButton(self.secret)
        group.addButton(self.vault)
        self.subscription = QComboBox()
        self.subscription.setAccessibleName("Azure subscription for the Key Vault")
        sub_label = QLabel("Azure s&ubscription:")
        sub_label.setBuddy(self.subscription)
        self.window_days = QSpinBox()
        self.window_days.setRange(14, 730)
        self.window_days.setValue(90)
        self.window_days.setSuffix(" days")
        self.window_days.setAccessibleName("Migration window in days")
        days_label = QLabel("How long the migration may take (the credential lasts this long): &window")
        days_label.setBuddy(self.window_days)
        for w in (self.secret, self.secret_text, self.vault, self.vault_text, sub_label, self.subscription,
                  days_label, self.window_days):
            self.body.addWidget(w)
        self.body.addStretch(1)
        self.secret.setChecked(True)
        self.vault.toggled.connect(lambda on: self.subscription.setEnabled(on))
        self.subscription.setEnabled(False)
        self._op: Operation | None = None

    def initializePage(self) -> None:
        ws = self.ctx.workspace
        assert ws is not None
        choices = ws.project.data.get("choices", {})
        self.window_days.setValue(int(choices.get("migrationWindowDays", 90)))
        (self.vault if choices.get("exchangeSignInMode") == "keyvault" else self.secret).setChecked(True)
        self.subscription.clear()
        self.status.set_busy("Looking for Azure subscriptions in the target…")
        tid = ws.identities["target"].tenant_id
        self._op = self.ctx.runner.submit(lambda: ws.arm("target").subscriptions(tid), on_done=self._subs,
                                          on_error=self._no_subs, key="subscriptions")

    def _subs(self, subs: list[Any]) -> None:
        self._op = None
        for s in subs:
            self.subscription.addItem(f"{s.display_name} ({s.subscription_id})", s.subscription_id)
        if subs:
            self.status.set_idle("")
        else:
            self._no_subs(None)

    def _no_subs(self, exc: BaseException | None) -> None:
        self._op = None
        self.vault.setEnabled(False)
        self.secret.setChecked(True)
        self.vault_text.setText(self.vault_text.text() + " <i>Not available: no Azure subscription of the target "
                                "was found for this account.</i>")
        self.status.set_idle("")

    def cancel(self) -> None:
        if self._op is not None:
            self._op.cancel()
            self._op = None
            self.status.set_idle("")

    def options(self) -> dict[str, Any]:
        return {"credential": "keyvault" if self.vault.isChecked() else "secret",
                "migration_window_days": self.window_days.value(),
                "subscription": self.subscription.currentData() if self.vault.isChecked() else None}

    def validatePage(self) -> bool:
        ws = self.ctx.workspace
        assert ws is not None
        o = self.options()
        ws.project.data.setdefault("choices", {}).update({"exchangeSignInMode": o["credential"],
                                                          "migrationWindowDays": o["migration_window_days"]})
        ws.project.save()
        return True


class ScopingGroupPage(BasePage):
    """The mail-enabled security group in the source that says which mailboxes may move."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, "Choose the scoping group in the source",
                         "Microsoft's service moves only mailboxes that are members of one mail-enabled security "
                         "group of the source tenant. Pick one, or let xtwizard create it; then add the people "
                         "who move.")
        self.existing = QRadioButton("Use an &existing mail-enabled security group")
        self.existing.setAccessibleName("Use an existing group")
        self.groups = QListWidget()
        self.groups.setAccessibleName("Mail-enabled security groups of the source")
        self.create_new = QRadioButton("Create a ne&w group")
        self.create_new.setAccessibleName("Create a new group")
        self.new_name = QLineEdit("Cross-tenant migration")
        self.new_name.setAccessibleName("Name of the new group")
        self.members_now = label("")
        self.members_now.setAccessibleName("Current members of the chosen group")
        self.add = QPlainTextEdit()
        self.add.setPlaceholderText("One address per line: the people to add to the group")
        self.add.setAccessibleName("Members to add, one address per line")
        add_label = QLabel("&Add members:")
        add_label.setBuddy(self.add)
        self.import_btn = QPushButton("&Import from CSV…")
        self.import_btn.setAccessibleName("Import members to add from a CSV file")
        group = QButtonGroup(self)
        group.addButton(self.existing)
        group.addButton(self.create_new)
        row = QHBoxLayout()
        row.addWidget(self.create_new)
        row.addWidget(self.new_name, 1)
        self.body.addWidget(self.existing)
        self.body.addWidget(self.groups)
        self.body.addLayout(row)
        for widget in (self.members_now, add_label, self.add, self.import_btn):
            self.body.addWidget(widget)
        self.existing.setChecked(True)
        for sig in (self.existing.toggled, self.new_name.textChanged):
            sig.connect(lambda *_: self._sync())
        self.groups.currentItemChanged.connect(lambda *_: self._show_members())
        self.import_btn.clicked.connect(self._import_csv)
        self._op: Operation | None = None

    def initializePage(self) -> None:
        ws = self.ctx.workspace
        assert ws is not None
        self.groups.clear()
        self.status.set_busy("Reading the source's mail-enabled security groups…")
        self._op = self.ctx.runner.submit(lambda: ws.exchange("source").distribution_groups(security_only=True),
                                          on_done=self._groups, on_error=self._failed, key="scope-groups")

    def _groups(self, groups: list[Any]) -> None:
        self._op = None
        chosen = (self.ctx.workspace.project.data.get("setup", {}) if self.ctx.workspace else {}).get("scopeGroup")
        for g in groups:
            item = QListWidgetItem(f"{g.display_name}  <{g.primary_smtp_address}>")
            item.setData(256, g.name)
            self.groups.addItem(item)
            if chosen and chosen in (g.name, g.display_name, g.primary_smtp_address):
                self.groups.setCurrentItem(item)
        if not groups:
            self.create_new.setChecked(True)
        self.status.set_idle("" if groups else "The source has no mail-enabled security group yet: xtwizard will "
                             "create one.")
        self._sync()

    def _show_members(self) -> None:
        item = self.groups.currentItem()
        ws = self.ctx.workspace
        self._sync()
        if item is None or ws is None:
            return
        name = str(item.data(256))
        self.members_now.setText("Reading members…")

        def shown(members: list[Any]) -> None:
            names = ", ".join(m.primary_smtp_address or m.name for m in members[:12])
            more = f" and {len(members) - 12} more" if len(members) > 12 else ""
            self.members_now.setText(f"{len(members)} member(s) now: {names}{more}" if members else "No members yet.")

        self.ctx.runner.submit(lambda: ws.exchange("source").distribution_group_members(name), on_done=shown,
                               on_error=lambda e: self.members_now.setText(explain(e).what), key="scope-members")

    def _import_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Members to add", "", "CSV files (*.csv);;All files (*)")
        if path:
            with open(path, encoding="utf-8-sig") as fh:
                self.add_from_csv(fh.read())

    def add_from_csv(self, text: str) -> int:
        """Addresses from a CSV: the EmailAddress or SourceUser column, else the first column."""
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return 0
        header = [h.strip().lower() for h in rows[0]]
        col = next((header.index(h) for h in ("emailaddress", "sourceuser", "email") if h in header), None)
        body = rows[1:] if col is not None else rows
        found = [r[col or 0].strip() for r in body if r and "@" in r[col or 0]]
        existing = [line for line in self.add.toPlainText().splitlines() if line.strip()]
        self.add.setPlainText("\n".join(existing + [a for a in found if a not in existing]))
        self.status.set_ok(f"{len(found)} address(es) read from the CSV.") if found else self.status.set_idle(
            "No e-mail addresses were found in that file: it needs an EmailAddress or SourceUser column.")
        return len(found)

    def _sync(self) -> None:
        self.groups.setEnabled(self.existing.isChecked())
        self.new_name.setEnabled(self.create_new.isChecked())
        self.changed()

    def _failed(self, exc: BaseException) -> None:
        self._op = None
        self.status.set_error(explain(exc))

    def retry(self) -> None:
        self.initializePage()

    def cancel(self) -> None:
        if self._op is not None:
            self._op.cancel()
            self._op = None
            self.status.set_idle("")

    def isComplete(self) -> bool:
        if self.create_new.isChecked():
            return bool(self.new_name.text().strip())
        return self.groups.currentItem() is not None

    def options(self) -> dict[str, Any]:
        members = [line.strip() for line in self.add.toPlainText().splitlines() if line.strip()]
        if self.create_new.isChecked():
            return {"scope_groups": [self.new_name.text().strip()], "create_scope_group": True, "members_add": members}
        item = self.groups.currentItem()
        return {"scope_groups": [str(item.data(256))] if item else [], "create_scope_group": False,
                "members_add": members}


class PlanPage(BasePage):
    """The commit page: the whole plan per tenant, then apply it with progress; Cancel stops between changes."""

    _progress = Signal(int, int, str)  # emitted on the loop's thread, delivered on the GUI thread

    def __init__(self, ctx: AppContext, credential: CredentialPage, scope: ScopingGroupPage) -> None:
        super().__init__(ctx, "Review and apply the setup",
                         "This is everything xtwizard will create or change, in which tenant. Nothing has changed "
                         "yet. Every change is recorded in the project's journal before and after it is made.")
        self.credential_page = credential
        self.scope_page = scope
        self.setCommitPage(True)  # past this page, Back does not silently undo what was applied
        self.plan_view = QPlainTextEdit()
        self.plan_view.setReadOnly(True)
        self.plan_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.plan_view.setAccessibleName("The setup plan")
        self.apply_btn = QPushButton("&Apply these changes")
        self.apply_btn.setAccessibleName("Apply the planned changes to both tenants")
        self.kit = QPlainTextEdit()
        self.kit.setReadOnly(True)
        self.kit.setAccessibleName("Text for the source tenant's administrator")
        self.copy_kit = QPushButton("Cop&y the text for the source admin")
        self.copy_kit.setAccessibleName("Copy the source admin kit")
        self.open_consent = QPushButton("&Open the consent page")
        self.open_consent.setAccessibleName("Open the source consent page in the browser")
        self.body.addWidget(self.plan_view, 2)
        self.body.addWidget(self.apply_btn)
        self.body.addWidget(self.kit, 1)
        row = QHBoxLayout()
        row.addWidget(self.copy_kit)
        row.addWidget(self.open_consent)
        row.addStretch(1)
        self.body.addLayout(row)
        self.apply_btn.clicked.connect(self.apply)
        self._progress.connect(self._show_progress)
        self.copy_kit.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.kit.toPlainText()))
        self.open_consent.clicked.connect(self._open_consent)
        self.engine: SetupEngine | None = None
        self.plan: Plan | None = None
        self.applied = False
        self._op: Operation | None = None
        self._cancel = threading.Event()
        self._show_kit(False)

    def _show_kit(self, on: bool) -> None:
        for w in (self.kit, self.copy_kit, self.open_consent):
            w.setVisible(on)

    def _options(self) -> SetupOptions:
        from ...migration.setup import SetupOptions

        o = {**self.credential_page.options(), **self.scope_page.options()}
        return SetupOptions(credential=o["credential"], migration_window_days=o["migration_window_days"],
                            subscription=o["subscription"], scope_groups=o["scope_groups"],
                            create_scope_group=o["create_scope_group"], members_add=o["members_add"])

    def initializePage(self) -> None:
        from ...migration.setup import SetupEngine, SetupProblem

        ws = self.ctx.workspace
        assert ws is not None
        try:
            self.engine = SetupEngine(ws, self._options())
        except SetupProblem as exc:
            self.status.set_error(exc.problem)
            return
        self.applied = False
        self._show_kit(False)
        self.make_plan()

    def make_plan(self) -> None:
        engine = self.engine
        assert engine is not None
        self.plan = None
        self.apply_btn.setEnabled(False)
        self.plan_view.setPlainText("")
        self.status.set_busy("Reading both tenants and working out the plan…")
        self._op = self.ctx.runner.submit(engine.plan, on_done=self._planned, on_error=self._failed, key="setup")
        self.changed()

    def _planned(self, plan: Plan) -> None:
        self._op = None
        self.plan = plan
        self.plan_view.setPlainText("\n".join(plan.lines()))
        if plan.is_empty:
            self.applied = True
            self.status.set_ok("The setup is complete: nothing to change.")
        else:
            n = len(plan.pending)
            self.status.set_idle(f"{n} change(s) to make. Read them, then press Apply.")
            self.apply_btn.setEnabled(True)
        self.changed()

    def apply(self) -> None:
        engine = self.engine
        assert engine is not None
        self._cancel = threading.Event()
        cancel = self._cancel
        self.apply_btn.setEnabled(False)
        self._show_kit(False)
        self.status.set_busy("Applying the setup…")
        self._op = self.ctx.runner.submit(lambda: engine.apply(self._progress.emit, cancel), on_done=self._applied,
                                          on_error=self._failed, key="setup")
        self.changed()

    def _show_progress(self, done: int, total: int, line: str) -> None:
        if self._op is not None:
            self.status.set_busy(f"Step {done + 1} of {total}: {line}", done, total)

    def _applied(self, result: Any) -> None:
        self._op = None
        if getattr(result, "cancelled", False):
            self.status.set_idle(f"Stopped after {len(result.done)} change(s); nothing is half-made. Press Apply to "
                                 "continue.")
            self.apply_btn.setEnabled(True)
            self.changed()
            return
        self.make_plan()  # read back: the plan must now be empty

    def _failed(self, exc: BaseException) -> None:
        self._op = None
        problem = explain(exc)
        self.status.set_error(problem)
        waiting = bool(self.plan and self.plan.waiting) or "not approved" in problem.what
        if waiting and self.engine is not None and self.engine.facts is not None:
            self.kit.setPlainText(self.engine.source_admin_kit())
            self._show_kit(True)
        self.apply_btn.setEnabled(self.plan is not None)
        self.changed()

    def _open_consent(self) -> None:
        if self.engine is not None and self.engine.facts is not None:
            self.ctx.open_browser(self.engine.consent_url())

    def retry(self) -> None:
        if self.plan is None:
            self.make_plan()
        else:
            self.apply()

    def cancel(self) -> None:
        self._cancel.set()
        if self._op is not None and self.plan is None:
            self._op.cancel()
            self._op = None
            self.status.set_idle("Planning cancelled.")

    def isComplete(self) -> bool:
        return self.applied and self._op is None


class VerifyPage(BasePage):
    """Verification equal to and beyond Microsoft's VerifySetup.ps1."""

    def __init__(self, ctx: AppContext, plan_page: PlanPage) -> None:
        super().__init__(ctx, "Verify the setup",
                         "xtwizard checks both tenants the way Microsoft's verification script does, with its "
                         "mistakes fixed, and more.")
        self.plan_page = plan_page
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Result", "Tenant", "Check"])
        self.tree.setAccessibleName("Verification results")
        self.body.addWidget(self.tree, 1)
        self.checks: list[Check] | None = None
        self._op: Operation | None = None

    def initializePage(self) -> None:
        engine = self.plan_page.engine
        assert engine is not None
        self.tree.clear()
        self.checks = None
        self.status.set_busy("Verifying both tenants…")
        self._op = self.ctx.runner.submit(engine.verify, on_done=self._show, on_error=self._failed, key="verify")

    def _show(self, checks: list[Check]) -> None:
        self._op = None
        self.checks = checks
        style = self.style()
        for c in checks:
            icon = (QStyle.StandardPixmap.SP_DialogApplyButton if c.ok else
                    QStyle.StandardPixmap.SP_MessageBoxWarning if c.warning else
                    QStyle.StandardPixmap.SP_MessageBoxCritical)
            item = QTreeWidgetItem(["Passed" if c.ok else "Warning" if c.warning else "Failed", c.tenant, c.name])
            item.setIcon(0, style.standardIcon(icon))
            item.addChild(QTreeWidgetItem(["", "", c.message]))
            if not c.ok and c.fix:
                item.addChild(QTreeWidgetItem(["What to do", "", c.fix]))
            self.tree.addTopLevelItem(item)
            item.setExpanded(not c.ok)
        failed = [c for c in checks if not c.ok and not c.warning]
        if failed:
            self.status.set_idle(f"{len(failed)} check(s) failed; each says what to do.")
        else:
            self.status.set_ok("Ready to migrate: the setup is verified in both tenants.")
        self.changed()

    def _failed(self, exc: BaseException) -> None:
        self._op = None
        self.status.set_error(explain(exc))

    def retry(self) -> None:
        self.initializePage()

    def isComplete(self) -> bool:
        return self.checks is not None and all(c.ok or c.warning for c in self.checks)

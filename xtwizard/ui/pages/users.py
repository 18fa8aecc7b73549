"""Preparing the users (issue 6, pages A): choose users and their target addresses, prepare the target MailUsers,
prove each user ready.

Thin views over migration/users: the engine reads both tenants, maps, validates, plans and applies (journaled)
and checks; these pages show its rows in record tables (one model and one view per table, never a widget per
row, so 10,000 users stay fast), put every plan in front of the admin before anything changes, and run all
cloud work through the async runner with Cancel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase, QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QSplitter,
    QStyle,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..context import AppContext
from ..lazy import explain
from ..runner import Operation
from ..tables import Column, RecordTableModel, record_table
from ..widgets import button, label
from .base import BasePage

if TYPE_CHECKING:
    from ...migration import Progress
    from ...migration.setup.model import Check, Plan
    from ...migration.users import (
        MappingRow,
        PreparePlan,
        PrepareResult,
        SourceMailbox,
        UserChange,
        UserEngine,
        UserReadiness,
    )

# Mnemonics the wizard and the status panel already use on every page: &Back, &Next, &Finish, &Help, &Cancel,
# &Retry, Copy &details, Open &log folder.  The pages below pick other letters.


def users_engine(ctx: AppContext) -> UserEngine:
    """The one UserEngine of the open project, shared by the three pages (it keeps what inventory read)."""
    from ...migration.users import UserEngine

    ws = ctx.workspace
    assert ws is not None
    held = ctx.extra.get("users_engine")
    if not isinstance(held, UserEngine) or held.ctx is not ws:
        held = ctx.extra["users_engine"] = UserEngine(ws)
    return held


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


class StatusIcons:
    """ok / warning / error as the style's standard icons (they follow the palette; no hard-coded colours)."""

    def __init__(self, style: QStyle) -> None:
        px = QStyle.StandardPixmap
        self.by_status = {"ok": style.standardIcon(px.SP_DialogApplyButton),
                          "warning": style.standardIcon(px.SP_MessageBoxWarning),
                          "error": style.standardIcon(px.SP_MessageBoxCritical),
                          "info": style.standardIcon(px.SP_MessageBoxInformation)}

    def __call__(self, status: str) -> QIcon | None:
        return self.by_status.get(status)


class _TablePage(BasePage):
    """A page around one record table: a filter box, an optional "only problems" switch, counts, and a detail
    pane for the current row."""

    _progress = Signal(int, int, str)  # emitted on the loop's thread, delivered on the GUI thread

    def __init__(self, ctx: AppContext, title: str, subtitle: str, columns: list[Column], table_name: str,
                 widths: list[int], only_text: str, only: Callable[[Any], bool]) -> None:
        super().__init__(ctx, title, subtitle)
        self.icons = StatusIcons(self.style())
        self.model = RecordTableModel(columns, self)
        self.table, self.proxy = record_table(self.model, table_name, widths)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Part of a name or address")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter the table")
        self.only = QCheckBox(only_text)
        self.only.setAccessibleName(only_text.replace("&", ""))
        self.counts = label("")
        self.counts.setAccessibleName("Counts")
        self.filter.textChanged.connect(self.proxy.set_text)
        self.only.toggled.connect(lambda on: self.proxy.set_predicate(only if on else None))
        # counts once per burst of changes: a filter over 10,000 rows can remove a thousand separate ranges
        self._counts_soon = QTimer(self)
        self._counts_soon.setSingleShot(True)
        self._counts_soon.setInterval(0)
        self._counts_soon.timeout.connect(self._show_counts)
        for sig in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset, self.proxy.layoutChanged,
                    self.model.dataChanged):
            sig.connect(lambda *_: self._counts_soon.start())
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._show_current(cur))
        self._progress.connect(self._show_progress)
        self._op: Operation | None = None
        self._cancel = threading.Event()

    def filter_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(label("Fil&ter:", self.filter, wrap=False))
        row.addWidget(self.filter, 1)
        row.addWidget(self.only)
        return row

    @property
    def busy(self) -> bool:
        return self._op is not None

    def current(self) -> Any:
        return self.proxy.record(self.table.currentIndex())

    def _show_current(self, index: QModelIndex) -> None:
        """Show the current row's details (override)."""

    def _show_counts(self) -> None:
        """Update the counts line (override)."""

    def _show_progress(self, done: int, total: int, line: str) -> None:
        if self._op is not None:
            self.status.set_busy(line, done, total)

    def _run(self, work: Callable[[Progress, threading.Event], Any], on_done: Callable[[Any], None], busy: str,
             key: str) -> None:
        """Run engine work on the loop with a fresh cancel event; the page is busy until it answers.  Work it
        replaces is told to stop, and progress from stopped work is dropped (it would show in the new status)."""
        self._cancel.set()
        self._cancel = cancel = threading.Event()

        def progress(done: int, total: int, line: str) -> None:
            if not cancel.is_set():
                self._progress.emit(done, total, line)

        self.status.set_busy(busy)
        self._op = self.ctx.runner.submit(lambda: work(progress, cancel), on_done=lambda r: self._done(on_done, r),
                                          on_error=self._failed, key=key)
        self._sync()

    def _done(self, then: Callable[[Any], None], result: Any) -> None:
        self._op = None
        then(result)
        self._sync()

    def _failed(self, exc: BaseException) -> None:
        self._op = None
        self.status.set_error(explain(exc))
        self._sync()

    def _sync(self) -> None:
        """Enable the page's buttons for its state (override) and tell the wizard (Next)."""
        self.changed()

    def cancel(self) -> None:
        """Cancel between changes; reads are simply dropped (Retry reads again)."""
        from ...migration.problems import Problem

        self._cancel.set()
        if self._op is not None and not self.applying():
            self._op.cancel()
            self._op = None
            self.status.set_error(Problem("Stopped.", "Cancel was pressed before the answer came.",
                                          "Press Retry to read again."))
            self._sync()

    def applying(self) -> bool:
        """True while changes are being made (Cancel then stops between two changes; override)."""
        return False


# ---------------------------------------------------------------------------------------------------------------
# 1. Choose users and mapping


def _mapping_status(row: MappingRow) -> str:
    return {"ok": "OK", "warning": "Warning", "error": "Problem"}.get(row.status, "Not checked")


def _mapping_note(row: MappingRow) -> str:
    if row.fix:
        return f"{row.message} What to do: {row.fix}" if row.message else row.fix
    return row.message


class MappingPage(_TablePage):
    """The mailboxes that move and the target address of each: auto-mapped, edited, or imported from a CSV."""

    def __init__(self, ctx: AppContext) -> None:
        columns = [
            Column("Status", _mapping_status, sort_key=lambda r: ("error", "warning", "", "ok").index(r.status)
                   if r.status in ("error", "warning", "", "ok") else 9,
                   icon=lambda r: self.icons(r.status), tip=_mapping_note),
            Column("Source mailbox", lambda r: r.source),
            Column("Target address", lambda r: r.target,
                   edit=lambda r, text: replace(r, target=text, status="", message="", fix="")),
            Column("What xtwizard found", _mapping_note, tip=_mapping_note),
        ]
        super().__init__(ctx, "Choose users and their target addresses",
                         "These are the mailboxes in the scoping group. Each moves to the target address in its "
                         "row: pick the target domain and let xtwizard fill the addresses in, change any of them "
                         "(double-click it, or F2), or import a CSV with SourceUser and TargetUser columns.", columns,
                         "Source mailboxes and their target addresses", [110, 250, 250],
                         "Only rows with &problems", lambda r: r.status in ("warning", "error"))
        self.domain = QComboBox()
        self.domain.setAccessibleName("Target domain for the new addresses")
        self.auto_btn = button("&Auto-map", "Fill in every target address from the alias and the target domain")
        self.outside = QCheckBox("Also map mailboxes &outside the scoping group")
        self.outside.setAccessibleName("Also map mailboxes outside the scoping group")
        self.import_btn = button("&Import CSV…", "Import the mapping from a CSV file")
        self.export_btn = button("E&xport CSV…", "Export the mapping to a CSV file")
        self.detail = label("")
        self.detail.setAccessibleName("The selected row")
        self.notes = QPlainTextEdit()
        self.notes.setReadOnly(True)
        self.notes.setAccessibleName("Notes on the imported CSV: lines that could not be used")
        self.notes.setMaximumHeight(self.fontMetrics().height() * 5 + 12)
        top = QHBoxLayout()
        top.addWidget(label("Target do&main:", self.domain, wrap=False))
        top.addWidget(self.domain, 1)
        top.addWidget(self.auto_btn)
        top.addWidget(self.import_btn)
        top.addWidget(self.export_btn)
        self.body.addLayout(top)
        self.body.addWidget(self.outside)
        self.body.addLayout(self.filter_row())
        self.body.addWidget(self.table, 1)
        self.body.addWidget(self.counts)
        self.body.addWidget(self.detail)
        self.body.addWidget(self.notes)
        self.notes.hide()
        for w in (self.domain, self.auto_btn, self.import_btn, self.export_btn, self.outside, self.filter, self.only,
                  self.table):
            w.setEnabled(False)
        QWidget.setTabOrder(self.domain, self.auto_btn)
        QWidget.setTabOrder(self.auto_btn, self.import_btn)
        QWidget.setTabOrder(self.import_btn, self.export_btn)
        QWidget.setTabOrder(self.export_btn, self.outside)
        QWidget.setTabOrder(self.outside, self.filter)
        QWidget.setTabOrder(self.filter, self.only)
        QWidget.setTabOrder(self.only, self.table)
        self.auto_btn.clicked.connect(self.auto_map)
        self.outside.toggled.connect(lambda _on: self._outside_toggled())
        self.domain.activated.connect(lambda _i: self._domain_chosen())
        self.import_btn.clicked.connect(self._import_dialog)
        self.export_btn.clicked.connect(self._export_dialog)
        self.model.edited.connect(lambda _row: self._edited())
        self.mailboxes: list[SourceMailbox] | None = None
        self.validated = False
        self._hand_edited = False  # edits or an import since the last auto-map: a domain change does not overwrite

    # --- loading ---------------------------------------------------------------------------------------------
    def initializePage(self) -> None:
        self.mailboxes = None
        self.validated = False
        self.model.set_records([])
        self.notes.hide()
        self.load()

    def load(self) -> None:
        engine = users_engine(self.ctx)
        ws = self.ctx.workspace
        assert ws is not None

        async def read(progress: Progress, cancel: threading.Event) -> tuple[list[SourceMailbox], list[str]]:
            mailboxes = await engine.inventory(progress, cancel)
            domains = [d.domain_name for d in await ws.exchange("target").accepted_domains()]
            return mailboxes, domains

        self._run(read, self._loaded, "Reading the source mailboxes and the target's domains…", "users-inventory")

    def _loaded(self, got: tuple[list[SourceMailbox], list[str]]) -> None:
        from ...migration.users import load_mapping

        self.mailboxes, domains = got
        ws = self.ctx.workspace
        assert ws is not None
        saved = ws.project.data.get("users", {})
        chosen = str(saved.get("targetDomain") or "")
        self.domain.clear()
        # the company's own domains first; the .onmicrosoft.com ones work too but are rarely what people want
        for d in sorted(domains, key=lambda d: (d.lower().endswith(".onmicrosoft.com"), d.lower())):
            self.domain.addItem(d)
        if chosen and self.domain.findText(chosen) >= 0:
            self.domain.setCurrentIndex(self.domain.findText(chosen))
        rows = load_mapping(ws.project)
        if rows:
            self._hand_edited = True
            self.check(rows, "The saved mapping is back. ")
        else:
            self.auto_map()

    def to_map(self) -> list[SourceMailbox]:
        """The mailboxes Auto-map maps: the scoping group's members, or every mailbox when asked."""
        return [m for m in self.mailboxes or [] if m.in_scope or self.outside.isChecked()]

    # --- mapping ---------------------------------------------------------------------------------------------
    def auto_map(self) -> None:
        if self.mailboxes is None or not self.domain.currentText():
            return
        self._hand_edited = False
        self.notes.hide()
        rows = users_engine(self.ctx).auto_map(self.to_map(), self.domain.currentText())
        self.check(rows, "")

    def _outside_toggled(self) -> None:
        """Add (or take away) the rows of the mailboxes outside the scoping group; other rows stay as they are."""
        if self.mailboxes is None:
            return
        outside = {m.address.lower() for m in self.mailboxes if not m.in_scope}
        rows = [r for r in self.model.records if self.outside.isChecked() or r.source.lower() not in outside]
        if self.outside.isChecked():
            mapped = {r.source.lower() for r in rows}
            new = [m for m in self.mailboxes if m.address.lower() in outside and m.address.lower() not in mapped]
            rows += users_engine(self.ctx).auto_map(new, self.domain.currentText())
        self.check(rows, "")

    def _domain_chosen(self) -> None:
        if not self._hand_edited:
            self.auto_map()
        else:
            self.status.set_idle(f"New addresses will use {self.domain.currentText()}. Press Auto-map to change "
                                 "every row to it (your edits and the imported addresses are replaced).")

    def _edited(self) -> None:
        self._hand_edited = True
        self.check(self.model.records, "")

    def check(self, rows: Sequence[MappingRow], prefix: str) -> None:
        """Show the rows and validate them (every row: accepted domain, duplicates, collisions)."""
        engine = users_engine(self.ctx)
        self.validated = False
        self.model.update_records(list(rows), key=lambda r: (r.source, r.target))
        if not rows:
            self._checked([], prefix)
            return
        self._run(lambda _p, _c: engine.validate(list(rows)), lambda checked: self._checked(checked, prefix),
                  f"Checking {_plural(len(rows), 'row')}…", "users-validate")

    def _checked(self, rows: list[MappingRow], prefix: str) -> None:
        self.model.update_records(rows, key=lambda r: (r.source, r.target))
        self.validated = True
        errors = sum(1 for r in rows if r.status == "error")
        usable = sum(1 for r in rows if r.status in ("ok", "warning"))
        if not rows:
            self.status.set_idle(prefix + "No mailbox to map: the scoping group has no members yet. Add members on "
                                 "the scoping group page, or tick 'Also map mailboxes outside the scoping group'.")
        elif errors:
            self.status.set_idle(prefix + f"{_plural(errors, 'row needs', 'rows need')} attention: select one to "
                                 f"read what to do. {_plural(usable, 'user')} can go ahead; rows with problems are "
                                 "kept and explained again on the next pages.")
        else:
            self.status.set_ok(prefix + f"{_plural(usable, 'user')} mapped. Next: prepare their target MailUsers.")
        self._show_current(self.table.currentIndex())

    def _show_counts(self) -> None:
        rows = self.model.records
        found = self.mailboxes or []
        scoped = sum(1 for m in found if m.in_scope)
        by = {s: sum(1 for r in rows if r.status == s) for s in ("ok", "warning", "error")}
        text = (f"{_plural(len(found), 'mailbox', 'mailboxes')} in the source, {scoped} in the scoping group. "
                f"{_plural(len(rows), 'row')}: {by['ok']} OK, {_plural(by['warning'], 'warning')}, "
                f"{_plural(by['error'], 'problem')}.")
        if self.proxy.rowCount() != len(rows):
            text += f" Showing {self.proxy.rowCount()}."
        self.counts.setText(text)

    def _show_current(self, index: QModelIndex) -> None:
        row = self.proxy.record(index)
        if row is None:
            self.detail.setText("")
            return
        text = f"<b>{escape(row.source)}</b> → <b>{escape(row.target)}</b>"
        if row.message:
            text += f": {escape(row.message)}"
        if row.fix:
            text += f"<br><i>What to do:</i> {escape(row.fix)}"
        self.detail.setText(text)

    # --- CSV -------------------------------------------------------------------------------------------------
    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import the mapping", "", "CSV files (*.csv *.txt);;All files (*)")
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> int:
        """Read a mapping CSV (UTF-8 with or without BOM, UTF-16 with BOM, else Windows-1252, noted); the number of
        rows imported."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self._import_refused("The file could not be read.", str(exc), "Check the file name and that you may "
                                 "open it, then import again.")
            return 0
        if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            self._import_refused("The file is 16-bit Unicode text without a byte-order mark.",
                                 "Without the mark its byte order cannot be known, so the addresses cannot be read.",
                                 "In Excel choose File > Save As > 'CSV UTF-8 (Comma delimited)', then import that "
                                 "file.")
            return 0
        from ...migration.users.mapping import decode_csv

        notes = []
        if not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                notes.append("The file is not UTF-8; it was read as Windows-1252 (what Excel saves as plain 'CSV'). "
                             "If a name with accents looks wrong, save the file as 'CSV UTF-8' and import again.")
        return self.import_text(decode_csv(raw), notes)

    def import_text(self, text: str, notes: list[str] | None = None) -> int:
        """Import mapping rows from CSV text; lines that could not be used are listed under the table."""
        rows, problems = users_engine(self.ctx).import_csv(text)
        notes = [*(notes or []), *problems]
        self.notes.setPlainText("\n".join(notes))
        self.notes.setVisible(bool(notes))
        if not rows:
            self._import_refused("Nothing was imported.", problems[0] if problems else "The file has no rows.",
                                 "The file needs a header line 'SourceUser,TargetUser' and one line per user, as "
                                 "Microsoft's validation script uses. Correct it and import again.")
            return 0
        self._hand_edited = True
        skipped = f" {_plural(len(problems), 'line')} could not be used (listed below)." if problems else ""
        self.check(rows, f"{_plural(len(rows), 'row')} imported.{skipped} ")
        return len(rows)

    def _import_refused(self, what: str, why: str, fix: str) -> None:
        from ...migration.problems import Problem

        self.status.set_error(Problem(what, why, fix, retryable=False))

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the mapping", "mapping.csv", "CSV files (*.csv)")
        if path:
            self.export_file(Path(path))

    def export_file(self, path: Path) -> None:
        text = users_engine(self.ctx).export_csv(self.model.records)
        try:
            path.write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            self._import_refused("The file could not be written.", str(exc), "Choose another folder and export "
                                 "again.")
            return
        self.status.set_ok(f"{_plural(len(self.model.records), 'row')} exported to {path}.")

    # --- state -----------------------------------------------------------------------------------------------
    def _sync(self) -> None:
        loaded = self.mailboxes is not None and not self.busy
        for w in (self.domain, self.auto_btn, self.import_btn, self.outside, self.filter, self.only, self.table):
            w.setEnabled(loaded)
        self.export_btn.setEnabled(loaded and bool(self.model.records))
        super()._sync()

    def retry(self) -> None:
        if self.mailboxes is None:
            self.load()
        else:
            self.check(self.model.records, "")

    def rows(self) -> list[MappingRow]:
        return list(self.model.records)

    def isComplete(self) -> bool:
        return (self.validated and not self.busy
                and any(r.status in ("ok", "warning") for r in self.model.records))

    def validatePage(self) -> bool:
        """Save the mapping (every row: those with problems are prepared never, explained on every page)."""
        users_engine(self.ctx).save_mapping(self.model.records, self.domain.currentText() or None)
        return True


# ---------------------------------------------------------------------------------------------------------------
# 2. Prepare target users

KIND_TEXT = {"create": "Create", "update": "Update", "keep": "Already prepared", "skip": "Skipped"}
KIND_STATUS = {"create": "info", "update": "info", "keep": "ok", "skip": "error"}


def _change_summary(c: UserChange) -> str:
    if c.kind == "skip" and c.problem is not None:
        return c.problem.what
    diff = c.diff() if c.changes_tenant else []
    return ", ".join(k for k, _b, _a in diff) if diff else c.line


class PreparePage(_TablePage):
    """The preparation plan (per user, per attribute before → after), then Apply with progress and Cancel."""

    def __init__(self, ctx: AppContext) -> None:
        columns = [
            Column("Change", lambda c: KIND_TEXT.get(c.kind, c.kind),
                   sort_key=lambda c: ("skip", "create", "update", "keep").index(c.kind)
                   if c.kind in KIND_TEXT else 9, icon=lambda c: self.icons(KIND_STATUS.get(c.kind, ""))),
            Column("Source mailbox", lambda c: c.source),
            Column("Target MailUser", lambda c: c.target),
            Column("Attributes that change", _change_summary, tip=lambda c: c.text()),
        ]
        super().__init__(ctx, "Prepare the target users",
                         "Each user needs a MailUser in the target that carries the source mailbox's identity "
                         "(ExchangeGuid, ArchiveGuid, X500 addresses) and a target address. This is what xtwizard "
                         "will create or change; nothing has changed yet. Select a user to see every attribute "
                         "before → after.", columns, "Target MailUsers to prepare", [140, 250, 250],
                         "&Only users with changes", lambda c: c.kind != "keep")
        self.summary = label("")
        self.summary.setAccessibleName("Summary of the plan")
        self.detail = QPlainTextEdit()
        self.detail.setReadOnly(True)
        self.detail.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.detail.setAccessibleName("Attributes of the selected user, before and after")
        self.apply_btn = button("&Apply these changes", "Create and update the target MailUsers as planned")
        self.result = label("")
        self.result.setAccessibleName("Result of the last apply")
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(self.table)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.body.addWidget(self.summary)
        self.body.addLayout(self.filter_row())
        self.body.addWidget(split, 1)
        self.body.addWidget(self.counts)
        row = QHBoxLayout()
        row.addWidget(self.apply_btn)
        row.addWidget(self.result, 1)
        self.body.addLayout(row)
        QWidget.setTabOrder(self.filter, self.only)
        QWidget.setTabOrder(self.only, self.table)
        QWidget.setTabOrder(self.table, self.detail)
        QWidget.setTabOrder(self.detail, self.apply_btn)
        self.apply_btn.clicked.connect(self.apply)
        self.plan: PreparePlan | None = None
        self.last: PrepareResult | None = None
        self._applying = False

    def initializePage(self) -> None:
        self.last = None
        self.result.setText("")
        self.make_plan()

    def make_plan(self) -> None:
        engine = users_engine(self.ctx)
        self.plan = None
        self.model.set_records([])
        self._run(lambda progress, cancel: engine.plan_prepare(progress, cancel), self._planned,
                  "Reading both tenants and working out what each target MailUser needs…", "users-prepare")

    def _planned(self, plan: PreparePlan) -> None:
        self.plan = plan
        self.model.set_records(plan.changes)
        skipped = len(plan.skipped)
        self.summary.setText(plan.lines()[0] + ("." if not plan.warnings else ". " + " ".join(plan.warnings)))
        note = (f" {_plural(skipped, 'user')} cannot be prepared; select one to read why and what to do."
                if skipped else "")
        if plan.is_empty:
            self.status.set_ok("Nothing to change: every mapped user's target MailUser is prepared." + note)
        else:
            self.status.set_idle(f"{_plural(len(plan.pending), 'user')} to prepare. Read the plan, then press "
                                 "Apply." + note)
        if self.model.records and not self.table.currentIndex().isValid():
            self.table.setCurrentIndex(self.proxy.index(0, 0))

    def apply(self) -> None:
        plan = self.plan
        if plan is None or plan.is_empty or self.busy:
            return
        engine = users_engine(self.ctx)
        self._applying = True
        self.result.setText("")
        self._run(lambda progress, cancel: engine.apply_prepare(plan, progress, cancel), self._applied,
                  f"Preparing {_plural(len(plan.pending), 'target MailUser')}…", "users-prepare")

    def applying(self) -> bool:
        return self._applying

    def _show_progress(self, done: int, total: int, line: str) -> None:
        if self._op is not None:
            self.status.set_busy(f"{line}" if not self._applying else f"Preparing: {line}", done, total)

    def _applied(self, result: PrepareResult) -> None:
        self._applying = False
        self.last = result
        made = len(result.done)
        created = sum(1 for c in result.done if c.kind == "create")
        text = f"{_plural(made, 'user')} prepared ({created} created, {made - created} updated)"
        if result.seconds:
            text += f" in {result.seconds:.0f} s"
        text += "."
        if result.failed:
            text += f" {_plural(len(result.failed), 'user')} failed: " + "; ".join(
                f"{c.source}: {p.what}" for c, p in result.failed[:3]) + (" …" if len(result.failed) > 3 else "")
        if result.cancelled:
            text += " Stopped: nothing is half-made. Press Apply to continue."
        self.result.setText(text)
        self.make_plan()  # read back: what is left (nothing, when everything worked)

    def _failed(self, exc: BaseException) -> None:
        self._applying = False
        super()._failed(exc)

    def _show_current(self, index: QModelIndex) -> None:
        change = self.proxy.record(index)
        self.detail.setPlainText("" if change is None else _change_detail(change))

    def _show_counts(self) -> None:
        shown = self.proxy.rowCount()
        total = len(self.model.records)
        self.counts.setText(f"Showing {shown} of {total}." if shown != total else "")

    def _sync(self) -> None:
        self.apply_btn.setEnabled(self.plan is not None and not self.plan.is_empty and not self.busy)
        super()._sync()

    def retry(self) -> None:
        if self.plan is None or self.plan.is_empty:
            self.make_plan()
        else:
            self.apply()

    def isComplete(self) -> bool:
        """Next once nothing is left to do, or an apply ran to its end (users it could not prepare are explained,
        and readiness explains them again); not after a Cancel."""
        return self.plan is not None and not self.busy and (
            self.plan.is_empty or (self.last is not None and not self.last.cancelled))


def _change_detail(c: UserChange) -> str:
    from ...migration.setup.model import _show

    out = [c.line, ""]
    if c.kind == "skip" and c.problem is not None:
        out += [f"Why: {c.problem.why}", f"What to do: {c.problem.fix}"]
        return "\n".join(out)
    def shown(value: Any) -> list[str]:
        # one address per line: X500 addresses are long
        return ([str(v) for v in value] or ["(none)"]) if isinstance(value, list | tuple) else [_show(value)]

    for k in dict.fromkeys([*c.before, *c.after]):
        b, a = c.before.get(k), c.after.get(k, c.before.get(k))
        if b == a:
            lines = shown(b)
            out += [f"  {k}: {lines[0]}", *(f"      {v}" for v in lines[1:])]
            continue
        out.append(f"~ {k}:")
        for side, value in (("before", b), ("after ", a)) if c.kind == "update" else (("", a),):
            lines = shown(value)
            head = f"    {side + ': ' if side else ''}"
            out += [head + lines[0], *(" " * len(head) + v for v in lines[1:])]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
# 3. Readiness


def _ready_text(r: UserReadiness) -> str:
    if not r.ready:
        return "Not ready"
    return "Ready, with warnings" if r.problems else "Ready"


def _ready_status(r: UserReadiness) -> str:
    return "error" if not r.ready else "warning" if r.problems else "ok"


def _findings_summary(r: UserReadiness) -> str:
    problems = r.problems
    if not problems:
        return "Every check passed."
    return "; ".join(f.what for f in problems)


class ReadinessPage(_TablePage):
    """Every mapped user checked (Microsoft's validation script's checks and more), safe fixes in one click after
    their plan is shown, and a dry run of the move service for one user."""

    def __init__(self, ctx: AppContext) -> None:
        columns = [
            Column("Readiness", _ready_text, sort_key=lambda r: ("error", "warning", "ok").index(_ready_status(r)),
                   icon=lambda r: self.icons(_ready_status(r))),
            Column("Source mailbox", lambda r: r.source),
            Column("Target MailUser", lambda r: r.target),
            Column("One-click fix", lambda r: _plural(len(r.fixable), "fix", "fixes") if r.fixable else "",
                   sort_key=lambda r: -len(r.fixable)),
            Column("What was found", _findings_summary, tip=_findings_summary),
        ]
        super().__init__(ctx, "Check that every user is ready",
                         "xtwizard checks each user the way Microsoft's validation script does, and more. Users "
                         "that are not ready stay out of the batches until they pass; each problem says what to "
                         "do, and the safe ones can be fixed in one click.", columns, "Readiness of every user",
                         [160, 220, 220, 90], "Only users with &problems", lambda r: bool(r.problems))
        self.detail = QTextBrowser()
        self.detail.setAccessibleName("Findings for the selected user")
        self.detail.setOpenLinks(False)
        self.fix_btn = button("Fix &safely…", "Plan the safe one-click fixes")
        self.recheck_btn = button("Check &again", "Check every user again")
        self.dry_btn = button("Dry r&un for this user", "Ask the move service whether it would accept the selected "
                               "user (Test-MigrationServerAvailability)")
        self.dry_result = label("")
        self.dry_result.setAccessibleName("Result of the dry run")
        # the safe fixes, shown as a plan before anything changes
        self.fix_box = QWidget()
        fix_lay = QVBoxLayout(self.fix_box)
        fix_lay.setContentsMargins(0, 0, 0, 0)
        self.fix_plan = QPlainTextEdit()
        self.fix_plan.setReadOnly(True)
        self.fix_plan.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.fix_plan.setAccessibleName("The planned fixes")
        self.apply_fixes_btn = button("Appl&y these fixes", "Apply the planned fixes")
        self.discard_btn = button("&Keep things as they are", "Close the plan without changing anything")
        fix_lay.addWidget(label("<b>These fixes will be made</b> (nothing has changed yet):", self.fix_plan))
        fix_lay.addWidget(self.fix_plan, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_fixes_btn)
        buttons.addWidget(self.discard_btn)
        buttons.addStretch(1)
        fix_lay.addLayout(buttons)
        # the plan of fixes takes the detail pane's place while it is shown
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(self.table)
        split.addWidget(self.detail)
        split.addWidget(self.fix_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setStretchFactor(2, 2)
        self.body.addLayout(self.filter_row())
        self.body.addWidget(split, 1)
        self.body.addWidget(self.counts)
        row = QHBoxLayout()
        for b in (self.fix_btn, self.recheck_btn, self.dry_btn):
            row.addWidget(b)
        row.addWidget(self.dry_result, 1)
        self.body.addLayout(row)
        self.fix_box.hide()
        QWidget.setTabOrder(self.filter, self.only)
        QWidget.setTabOrder(self.only, self.table)
        QWidget.setTabOrder(self.table, self.detail)
        QWidget.setTabOrder(self.detail, self.fix_btn)
        QWidget.setTabOrder(self.fix_btn, self.recheck_btn)
        QWidget.setTabOrder(self.recheck_btn, self.dry_btn)
        QWidget.setTabOrder(self.dry_btn, self.fix_plan)
        QWidget.setTabOrder(self.fix_plan, self.apply_fixes_btn)
        QWidget.setTabOrder(self.apply_fixes_btn, self.discard_btn)
        self.fix_btn.clicked.connect(self.plan_fixes)
        self.recheck_btn.clicked.connect(self.check)
        self.dry_btn.clicked.connect(self.dry_run)
        self.apply_fixes_btn.clicked.connect(self.apply_fixes)
        self.discard_btn.clicked.connect(self.discard_fixes)
        self.results: list[UserReadiness] | None = None
        self.fixes: Plan | None = None
        self.dry: Check | None = None
        self._applying = False

    def initializePage(self) -> None:
        self.check()

    def check(self) -> None:
        engine = users_engine(self.ctx)
        self.discard_fixes()
        self.results = None
        self.dry_result.setText("")
        self._run(lambda progress, cancel: engine.readiness(progress, cancel), self._checked,
                  "Checking every user in both tenants…", "users-readiness")

    def _checked(self, results: list[UserReadiness]) -> None:
        self.results = results
        current = self.current()
        self.model.update_records(results, key=lambda r: r.source)
        if current is None and results:
            self.table.setCurrentIndex(self.proxy.index(0, 0))
        self._show_current(self.table.currentIndex())
        ready = sum(1 for r in results if r.ready)
        blocked = len(results) - ready
        fixable = sum(1 for r in results if r.fixable)
        if not results:
            self.status.set_idle("No user is mapped yet: go back and choose users.")
        elif blocked:
            fixes = f" {_plural(fixable, 'user')} can be fixed in one click (Fix safely)." if fixable else ""
            self.status.set_idle(f"{ready} of {len(results)} users are ready. {blocked} are not: select one to read "
                                 f"why and what to do; they stay out of the batches until they pass.{fixes}")
        else:
            self.status.set_ok(f"All {len(results)} users are ready to move.")

    # --- safe fixes ------------------------------------------------------------------------------------------
    def plan_fixes(self) -> None:
        if not self.results or self.busy:
            return
        plan = users_engine(self.ctx).plan_fixes([r for r in self.results if r.fixable])
        self.fixes = plan
        self.fix_plan.setPlainText("\n".join(plan.lines()))
        self.detail.hide()
        self.fix_box.show()
        self.fix_plan.setFocus()
        self.status.set_idle(f"{_plural(len(plan.pending), 'fix', 'fixes')} planned. Read them, then press Apply "
                             "these fixes, or keep things as they are.")
        self._sync()

    def discard_fixes(self) -> None:
        self.fixes = None
        self.fix_box.hide()
        self.detail.show()
        self._sync()

    def apply_fixes(self) -> None:
        plan = self.fixes
        if plan is None or self.busy:
            return
        engine = users_engine(self.ctx)
        self._applying = True
        self._run(lambda progress, cancel: engine.apply_fixes(plan, progress, cancel), self._fixed,
                  "Applying the fixes…", "users-fixes")

    def applying(self) -> bool:
        return self._applying

    def _fixed(self, result: Any) -> None:
        self._applying = False
        n = len(getattr(result, "done", []))
        if getattr(result, "cancelled", False):
            self.discard_fixes()
            self.status.set_idle(f"Stopped after {_plural(n, 'fix', 'fixes')}; nothing is half-made. Check again, "
                                 "then Fix safely to continue.")
            return
        self.check()  # read back: the fixed users should now pass
        self.status.set_busy(f"{_plural(n, 'fix', 'fixes')} made. Checking every user again…")

    def _failed(self, exc: BaseException) -> None:
        self._applying = False
        super()._failed(exc)

    # --- dry run ---------------------------------------------------------------------------------------------
    def dry_run(self) -> None:
        r = self.current()
        if r is None or self.busy:
            return
        engine = users_engine(self.ctx)
        self.dry = None
        self.dry_result.setText("")
        self._run(lambda _p, _c: engine.dry_run(r.source), self._dried,
                  f"Asking the move service about {r.source}…", "users-dry-run")

    def _dried(self, check: Check) -> None:
        self.dry = check
        head = "The move service would accept this user" if check.ok else "The move service would refuse this user"
        text = f"<b>{escape(head)}:</b> {escape(check.message)}"
        if not check.ok and check.fix:
            text += f" <i>What to do:</i> {escape(check.fix)}"
        self.dry_result.setText(text)
        self.status.set_idle("")

    # --- views -----------------------------------------------------------------------------------------------
    def _show_current(self, index: QModelIndex) -> None:
        r = self.proxy.record(index)
        self.detail.setHtml("" if r is None else readiness_html(r))
        self.dry_btn.setEnabled(r is not None and not self.busy)

    def _show_counts(self) -> None:
        rows = self.model.records
        ready = sum(1 for r in rows if r.ready)
        text = f"{ready} ready, {len(rows) - ready} not ready."
        if self.proxy.rowCount() != len(rows):
            text += f" Showing {self.proxy.rowCount()}."
        self.counts.setText(text if rows else "")

    def _sync(self) -> None:
        idle = not self.busy
        fixable = any(r.fixable for r in self.results or [])
        self.fix_btn.setEnabled(idle and fixable and self.fixes is None)
        self.recheck_btn.setEnabled(idle)
        self.dry_btn.setEnabled(idle and self.current() is not None)
        self.apply_fixes_btn.setEnabled(idle and self.fixes is not None and bool(self.fixes.pending))
        self.discard_btn.setEnabled(idle)
        super()._sync()

    def retry(self) -> None:
        self.check()

    def isComplete(self) -> bool:
        """Next when at least one user is ready; the others are listed with their reasons, not dropped silently."""
        return self.results is not None and not self.busy and any(r.ready for r in self.results)


def readiness_html(r: UserReadiness) -> str:
    """One user's findings as the detail pane shows them: problems first (what, why, what to do), then passes."""
    head = f"<p><b>{escape(r.source)}</b> → <b>{escape(r.target)}</b>: {escape(_ready_text(r))}</p>"
    parts = [head]
    for f in sorted(r.problems, key=lambda f: f.severity != "error"):
        kind = "Blocks the move" if f.severity == "error" else "Warning"
        fix = " <i>(Fix safely can do this.)</i>" if f.fix_id else ""
        parts.append(f"<p><b>{kind}: {escape(f.what)}</b><br>{escape(f.why)}<br>"
                     f"<i>What to do:</i> {escape(f.fix)}{fix}</p>")
    passed = [f.title for f in r.findings if f.ok]
    if passed:
        parts.append(f"<p><i>Passed:</i> {escape(', '.join(passed))}</p>")
    return "".join(parts)


__all__ = ["MappingPage", "PreparePage", "ReadinessPage", "readiness_html", "users_engine"]

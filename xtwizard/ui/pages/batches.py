"""Running the move (issue 6, pages B): launch the batches, monitor them, finish (reports, checklist, teardown).

Thin views over migration/batches: the engine plans waves, creates and drives the batches, reads their state
with paged list calls, writes the reports and tears down what the setup made.  These pages show its data in
record tables (one model and one view per table, never a widget per row, so 10,000 users stay fast), put a
plan in front of every change, and run all cloud work through the async runner.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from PySide6.QtCore import QDateTime, QModelIndex, QPersistentModelIndex, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFontDatabase, QPainter, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QRadioButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
    QWizard,
)

from ..context import AppContext
from ..lazy import explain
from ..runner import Operation
from ..tables import Column, PreparedRows, RecordFilter, RecordTableModel, Sort, prepare_rows, record_table
from ..widgets import button, format_eta, label
from .base import BasePage

if TYPE_CHECKING:
    from ...cloud.http import HttpPolicy
    from ...migration.batches import (
        BatchEngine,
        BatchOptions,
        BatchStatus,
        Snapshot,
        UserStatus,
        Wave,
    )
    from ...migration.problems import Problem
    from ...migration.setup.model import Plan

EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
STAGE_TEXT = {"waiting": "Waiting", "syncing": "Copying", "synced": "Copied, waiting to complete",
              "completing": "Completing", "completed": "Completed", "failed": "Needs attention",
              "stopped": "Stopped"}


def size_text(n: int) -> str:
    if n <= 0:
        return ""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def time_text(t: datetime.datetime | None) -> str:
    """A service time (UTC) in the admin's local time."""
    if t is None:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def batch_engine(ctx: AppContext) -> BatchEngine:
    """The one BatchEngine of the open project, shared by the three pages; in the rehearsal it tells time by the
    simulated tenants' clock (`RehearsalClock`), else by the real one."""
    from ...migration.batches import BatchEngine

    ws = ctx.workspace
    assert ws is not None
    held = ctx.extra.get("batch_engine")
    if not isinstance(held, BatchEngine) or held.ctx is not ws:
        held = ctx.extra["batch_engine"] = BatchEngine(ws, clock=rehearsal_clock(ctx))
    return held


class RehearsalClock:
    """The simulated tenants' time, for the rehearsal: what the sandbox's control API (`/_sandbox/clock`: its time
    and speed) said last, run on at that speed in between.  The batches engine reads it as its clock (its percent
    estimates) and the Monitor's time left follows it, so "Speed up the rehearsal" and "Skip ahead one hour" speed
    up the estimates too.  Read it (`read`) before engine work that tells time: someone else may have moved it.
    Until the first reading it is the real time, which the sandbox's clock starts at."""

    def __init__(self, control_url: str) -> None:
        self.url = control_url + "/clock"
        self._last: tuple[float, float, float] | None = None  # (simulated epoch seconds, monotonic, speed)

    def __call__(self) -> datetime.datetime:
        last = self._last  # one tuple, replaced whole: safe to read from any thread
        if last is None:
            return datetime.datetime.now(datetime.UTC)
        simulated, at, scale = last
        return datetime.datetime.fromtimestamp(simulated + (time.monotonic() - at) * scale, datetime.UTC)

    def update(self, answer: dict[str, Any]) -> None:
        self._last = (float(answer["now"]), time.monotonic(), float(answer.get("scale") or 1))

    @property
    def speed(self) -> float:
        """How many times faster than real time it runs (as last read)."""
        last = self._last
        return last[2] if last is not None else 1.0

    async def read(self, policy: HttpPolicy, change: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET the clock (or POST `change`: advance_seconds, scale) and remember the answer."""
        r = await policy.send("POST" if change else "GET", self.url, service="sandbox", route="/_sandbox/clock",
                              json=change)
        r.raise_for_status()
        answer = dict(r.json())
        self.update(answer)
        return answer


def rehearsal_clock(ctx: AppContext) -> RehearsalClock | None:
    """The simulated tenants' clock in the rehearsal (`--demo`); None for real tenants."""
    url = sandbox_control_url(ctx.endpoints) if ctx.demo else None
    if url is None:
        return None
    held = ctx.extra.get("rehearsal_clock")
    if not isinstance(held, RehearsalClock) or held.url != url + "/clock":
        held = ctx.extra["rehearsal_clock"] = RehearsalClock(url)
    return held


async def read_clock(ctx: AppContext) -> None:
    """In the rehearsal, read the simulated clock (on the runner, before engine work that tells time)."""
    clock, ws = rehearsal_clock(ctx), ctx.workspace
    if clock is not None and ws is not None:
        await clock.read(ws.policy)


def clock_words(ctx: AppContext) -> str:
    """How the pages name the time the batches run by: the admin's own, or in the rehearsal the simulated one."""
    return "simulated time" if rehearsal_clock(ctx) is not None else "your time"


def awaiting_new_batch(engine: BatchEngine) -> list[str]:
    """The users (target addresses) `apply_rebatch` took out of a batch to move again that no batch of the
    project has taken since: they wait for readiness to pass anew, then for a launch."""
    records = engine.recorded_batches()
    out = [str(r[1]) for rec in records for r in rec.get("rebatched") or [] if len(r) > 1]
    if not out:
        return []
    batched = {str(t).lower() for rec in records if not rec.get("removedOutside") for _s, t in rec.get("users", [])}
    return [t for t in dict.fromkeys(out) if t.lower() not in batched]


def needs_new_batch(u: UserStatus | None) -> bool:
    """A failed user Retry cannot mend (the engine's judgement): offered "Move again in a new batch…"."""
    if u is None or not u.failed:
        return False
    from ...migration.batches import BatchEngine

    return BatchEngine.needs_new_batch(u)


AFTER_REBATCH = ("To move them again: go Back to Readiness and press Check again; once they pass, the Launch page "
                 "offers them in a new batch.")


def ask(parent: QWidget, title: str, text: str, yes: str, then: Callable[[], None]) -> QMessageBox:
    """A window-modal question whose Yes runs `then` (No is the default: Enter never changes a tenant)."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName("confirm")
    ok = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
    no = box.addButton("Do&n't", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(no)
    box.setEscapeButton(no)
    box.setAccessibleName(title)

    def done() -> None:
        if box.clickedButton() is ok:
            then()
        box.deleteLater()

    box.finished.connect(lambda _=0: done())
    box.open()
    return box


def problem_html(p: Problem) -> str:
    from html import escape

    return (f"<p><b>{escape(p.what)}</b></p><p>{escape(p.why)}</p>"
            f"<p><i>What to do:</i> {escape(p.fix)}</p>")


class ProgressDelegate(QStyledItemDelegate):
    """Draws a row's percent as a progress bar inside the cell (one painter call; no widget per row)."""

    def __init__(self, proxy: RecordFilter, percent: Callable[[Any], int | None]) -> None:
        super().__init__(proxy)
        self.proxy = proxy
        self.percent = percent

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        record = self.proxy.record(index) if isinstance(index, QModelIndex) else None
        value = self.percent(record) if record is not None else None
        if value is None:
            super().paint(painter, option, index)
            return
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        cell = QStyleOptionViewItem(option)
        self.initStyleOption(cell, index)
        cell.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, cell, painter, widget)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(3, 3, -3, -3)
        bar.minimum, bar.maximum, bar.progress = 0, 100, max(0, min(100, int(value)))
        bar.text, bar.textVisible = f"{int(value)} %", True
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        bar.fontMetrics = option.fontMetrics
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)


# --- 1. Launch batches ---------------------------------------------------------------------------------------

WAVE_COLUMNS = [
    Column("Batch", lambda w: w.name),
    Column("Users", lambda w: str(len(w.users)), sort_key=lambda w: len(w.users)),
    Column("Kept together", lambda w: f"{w.delegate_groups} delegate group(s)" if w.delegate_groups else "",
           sort_key=lambda w: w.delegate_groups,
           tip=lambda w: "People who share mailboxes or calendars move in the same batch: permissions between "
                         "tenants do not survive a split."),
    Column("Size", lambda w: size_text(w.size_bytes), sort_key=lambda w: w.size_bytes),
    Column("Notes", lambda w: " ".join(w.warnings), tip=lambda w: "\n".join(w.warnings)),
]
WAVE_USER_COLUMNS = [
    Column("Source mailbox", lambda u: u.source),
    Column("Moves to", lambda u: u.target),
    Column("Delegates", lambda u: ", ".join(u.delegates)),
    Column("Size", lambda u: size_text(u.size_bytes), sort_key=lambda u: u.size_bytes),
]


def times_passed(options: BatchOptions, now: datetime.datetime, words: str) -> Problem | None:
    """A chosen start or switch-over time that has passed by `now` (the batches' clock, read again just before
    the launch); None when none has."""
    from ...migration.problems import Problem

    chosen = (("start", options.start_after if options.start == "after" else None),
              ("switch-over", options.complete_after if options.completion == "after" else None))
    late = [what for what, t in chosen if t is not None and t <= now]
    if not late:
        return None
    faster = ", and the rehearsal's clock may run faster than real time" if words == "simulated time" else ""
    return Problem(f"The {' and '.join(late)} time has passed: nothing was launched.",
                   f"The batches run by {words}: it is {time_text(now)} there now{faster}.",
                   "Pick a later time (or start right away), then press Launch again.", retryable=False)


class LaunchPage(BasePage):
    """The waves (≤ 2,000 users, delegates together) with their users; when they start and complete; launch."""

    _progress = Signal(int, int, str)

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, "Launch the migration batches",
                         "Users move in batches of at most 2,000, with people who share mailboxes or calendars "
                         "kept together. Choose when the copy starts and when users switch over, then launch.")
        self.waves_model = RecordTableModel(WAVE_COLUMNS, self)
        self.waves_view, self.waves_proxy = record_table(self.waves_model, "Batches to launch", [70, 50, 110, 70])
        waves_label = label("Batc&hes to launch (select one to see its users):", self.waves_view)
        self.users_model = RecordTableModel(WAVE_USER_COLUMNS, self)
        self.users_view, self.users_proxy = record_table(self.users_model, "Users of the selected batch",
                                                         [210, 200, 120])
        self.search = QLineEdit()
        self.search.setPlaceholderText("Part of a name or address")
        self.search.setAccessibleName("Find a user in the selected batch")
        self.search.setClearButtonEnabled(True)
        find_label = label("F&ind:", self.search)

        # when: start and completion
        self.start_now = QRadioButton("Start copying right &away")
        self.start_now.setAccessibleName("Start copying right away")
        self.start_at = QRadioButton("Start copying a&t:")
        self.start_at.setAccessibleName("Start copying at a set time")
        self.start_time = QDateTimeEdit()
        self.start_time.setCalendarPopup(True)
        self.start_time.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.start_time.setAccessibleName(f"Time the copy starts ({clock_words(ctx)})")
        start_group = QButtonGroup(self)
        for b in (self.start_now, self.start_at):
            start_group.addButton(b)
        self.complete_manual = QRadioButton("Switch over &manually: you press Complete on the next page when "
                                            "the copy is done (recommended)")
        self.complete_manual.setAccessibleName("Complete manually")
        self.complete_at = QRadioButton("Switch over at a s&et time:")
        self.complete_at.setAccessibleName("Complete at a set time")
        self.complete_time = QDateTimeEdit()
        self.complete_time.setCalendarPopup(True)
        self.complete_time.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.complete_time.setAccessibleName(f"Time the switch-over happens ({clock_words(ctx)})")
        self.complete_auto = QRadioButton("Switch over a&utomatically as soon as each copy is done")
        self.complete_auto.setAccessibleName("Complete automatically")
        complete_group = QButtonGroup(self)
        for b in (self.complete_manual, self.complete_at, self.complete_auto):
            complete_group.addButton(b)
        self.emails = QLineEdit()
        self.emails.setPlaceholderText("it@fabrikam.example, helpdesk@fabrikam.example")
        self.emails.setAccessibleName("Addresses that receive the batch status e-mails")
        emails_label = label("Send status e-mails t&o:", self.emails)
        # In the rehearsal the batches run by the simulated tenants' clock (which the Monitor can speed up or skip
        # ahead): times are chosen, checked and shown in it, and this line says what time it is there.
        self.clock_text = label("")
        self.clock_text.setAccessibleName("The simulated time the batches run by")
        self.clock_text.setVisible(rehearsal_clock(ctx) is not None)
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.summary.setAccessibleName("The launch plan")
        self.launch_btn = button("&Launch…", "Launch the batches in the plan")

        top = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(waves_label)
        lv.addWidget(self.waves_view)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(find_label)
        row.addWidget(self.search, 1)
        rv.addLayout(row)
        rv.addWidget(self.users_view)
        top.addWidget(left)
        top.addWidget(right)
        top.setSizes([300, 560])
        when = QGroupBox("When")
        grid = QGridLayout(when)
        grid.addWidget(self.start_now, 0, 0)
        grid.addWidget(self.start_at, 0, 1)
        grid.addWidget(self.start_time, 0, 2)
        grid.addWidget(self.complete_manual, 1, 0, 1, 3)
        grid.addWidget(self.complete_at, 2, 0)
        grid.addWidget(self.complete_time, 2, 1, 1, 2)
        grid.addWidget(self.complete_auto, 3, 0, 1, 3)
        grid.addWidget(emails_label, 4, 0)
        grid.addWidget(self.emails, 4, 1, 1, 2)
        grid.addWidget(self.clock_text, 5, 0, 1, 3)
        grid.setColumnStretch(2, 1)
        self.body.addWidget(top, 3)
        self.body.addWidget(when)
        self.body.addWidget(self.summary, 1)
        self.body.addWidget(self.launch_btn, alignment=Qt.AlignmentFlag.AlignLeft)

        self.start_now.setChecked(True)
        self.complete_manual.setChecked(True)
        for w in (self.start_now, self.start_at, self.complete_manual, self.complete_at, self.complete_auto):
            w.toggled.connect(lambda *_: self._sync())
        for sig in (self.start_time.dateTimeChanged, self.complete_time.dateTimeChanged, self.emails.textChanged):
            sig.connect(lambda *_: self._sync())
        self.search.textChanged.connect(self.users_proxy.set_text)
        self.waves_view.selectionModel().currentRowChanged.connect(lambda *_: self._show_wave())
        self.launch_btn.clicked.connect(self.confirm_launch)
        self._progress.connect(self._on_progress)
        self.timer = QTimer(self)  # times pass while the page is open (600x faster in a sped-up rehearsal)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self._tick)
        self.waves: list[Wave] = []
        self.launched: list[str] = []      # batch names this project has (launched now or before)
        self.awaiting: list[str] = []      # taken out of a batch to move again, not ready again yet
        self._fresh = False                # initialized, not shown since
        self._watching = False             # connected to the wizard's page changes
        self._op: Operation | None = None
        self._clock_op: Operation | None = None
        self._cancel = threading.Event()

    # -- state --------------------------------------------------------------------------------------------
    def initializePage(self) -> None:
        self._default_times(force=True)
        self.load()
        self._fresh = True
        self.timer.start()
        wizard = self.wizard()
        if wizard is not None and not self._watching:
            self._watching = True
            wizard.currentIdChanged.connect(lambda _id: self._page_changed())
        clock, ws = rehearsal_clock(self.ctx), self.ctx.workspace
        if clock is not None and ws is not None:  # the Monitor may have sped the clock up, or someone moved it
            self._clock_op = self.ctx.runner.submit(lambda: clock.read(ws.policy), on_done=self._clock_read,
                                                    on_error=lambda _e: None, key="launch-clock")

    def cleanupPage(self) -> None:
        self.timer.stop()
        if self._clock_op is not None:
            self._clock_op.cancel()
            self._clock_op = None
        super().cleanupPage()

    def _page_changed(self) -> None:
        """Back from the Monitor: the lists again (users taken out of a batch meanwhile), and the times live."""
        wizard = self.wizard()
        if wizard is None or wizard.currentPage() is not self:
            return
        fresh, self._fresh = self._fresh, False
        if not fresh and self._op is None:
            self.load()
        self.timer.start()

    def now(self) -> QDateTime:
        """The time the batches run by: the admin's clock, or in the rehearsal the simulated tenants' clock (the
        one the Monitor and the batches engine use), in the admin's time zone."""
        clock = rehearsal_clock(self.ctx)
        if clock is None:
            return QDateTime.currentDateTime()
        return QDateTime.fromMSecsSinceEpoch(int(clock().timestamp() * 1000))

    def _default_times(self, force: bool = False) -> None:
        """An hour from now for the start and a week for the switch-over, by `now()`: for a time the admin has not
        chosen (its option is off; all of them when the page opens)."""
        now = self.now()
        whole = QDateTime.fromSecsSinceEpoch(now.toSecsSinceEpoch() // 60 * 60)
        for chosen, edit, default in ((self.start_at, self.start_time, whole.addSecs(3600)),
                                      (self.complete_at, self.complete_time, whole.addDays(7))):
            if (force or not chosen.isChecked()) and edit.dateTime() != default:
                edit.setDateTime(default)

    def _clock_read(self, _answer: dict[str, Any]) -> None:
        self._clock_op = None
        self._tick()

    def _tick(self) -> None:
        """Every second while the page shows: the defaults move on, a chosen time that has passed is named."""
        if not self.isVisible():
            self.timer.stop()
            return
        self._default_times()
        self._sync()

    def load(self) -> None:
        """The waves still to launch and the batches already launched, from the project."""
        engine = batch_engine(self.ctx)
        self.launched = [str(b.get("name", "")) for b in engine.recorded_batches()]
        users = engine.ready_users()
        self.waves = engine.plan_waves(users)
        self.waves_model.set_records(self.waves)
        if self.waves:
            self.waves_view.selectRow(0)
        self._show_wave()
        offered = {u.target.lower() for w in self.waves for u in w.users}
        self.awaiting = [t for t in awaiting_new_batch(engine) if t.lower() not in offered]
        note = (f" {len(self.awaiting)} user(s) taken out of a batch to move again ("
                f"{', '.join(self.awaiting[:5])}{', …' if len(self.awaiting) > 5 else ''}) are not ready again yet: "
                "go Back to Readiness and press Check again; once they pass, they are offered here."
                if self.awaiting else "")
        if not self.waves and not self.launched:
            self.status.set_idle("No user is ready to move yet. Go back to Readiness: users appear here once their "
                                 "checks pass." + note)
        elif not self.waves:
            self.status.set_ok(f"Every ready user is already in a batch ({', '.join(self.launched)}). Press Next to "
                               "watch them." + note)
        else:
            n = sum(len(w.users) for w in self.waves)
            self.status.set_idle(f"{n} user(s) ready in {len(self.waves)} batch(es). Nothing has been created yet."
                                 + note)
        self._sync()

    def _show_wave(self) -> None:
        wave = self.waves_proxy.record(self.waves_view.currentIndex())
        self.users_model.set_records(list(wave.users) if wave is not None else [])

    def options_for(self, wave: Wave) -> BatchOptions:
        from ...migration.batches import BatchOptions

        def utc(edit: QDateTimeEdit) -> datetime.datetime:
            local = edit.dateTime().toPython()
            assert isinstance(local, datetime.datetime)
            return local.astimezone(datetime.UTC)  # a naive local time: astimezone reads it as local

        return BatchOptions(
            name=wave.name,
            start="after" if self.start_at.isChecked() else "now",
            start_after=utc(self.start_time) if self.start_at.isChecked() else None,
            completion="after" if self.complete_at.isChecked() else
            "automatic" if self.complete_auto.isChecked() else "manual",
            complete_after=utc(self.complete_time) if self.complete_at.isChecked() else None,
            notification_emails=tuple(self.email_list()))

    def email_list(self) -> list[str]:
        return [e.strip() for e in re.split(r"[,;\s]+", self.emails.text()) if e.strip()]

    def problems(self) -> list[str]:
        """What stops a launch, in plain words."""
        out = []
        bad = [e for e in self.email_list() if not EMAIL.match(e)]
        if bad:
            out.append(f"Not an e-mail address: {', '.join(bad)}.")
        now = self.now()
        simulated = (f" in the rehearsal's simulated time (it is {now.toString('yyyy-MM-dd HH:mm')} there)"
                     if rehearsal_clock(self.ctx) is not None else "")
        if self.start_at.isChecked() and self.start_time.dateTime() <= now:
            out.append(f"The start time has passed{simulated}: pick a later time, or start right away.")
        if self.complete_at.isChecked():
            begin = self.start_time.dateTime() if self.start_at.isChecked() else now
            if self.complete_time.dateTime() <= begin:
                out.append("The switch-over time must come after the copy starts"
                           + (f"{simulated}." if not self.start_at.isChecked() else "."))
        return out

    def plan_lines(self) -> list[str]:
        """The launch plan as the admin reads it before anything is created."""
        if not self.waves:
            return ["Nothing to launch."]
        ws = self.ctx.workspace
        target = ws.identities["target"].display_name if ws and "target" in ws.identities else "the target"
        o = self.options_for(self.waves[0])
        words = clock_words(self.ctx)
        start = (f"starts copying at {self.start_time.dateTime().toString('yyyy-MM-dd HH:mm')} ({words})"
                 if o.start == "after" else "starts copying right away")
        end = {"manual": "switches over when you press Complete",
               "automatic": "switches each user over as soon as the copy is done",
               "after": f"switches over at {self.complete_time.dateTime().toString('yyyy-MM-dd HH:mm')} "
                        f"({words})"}[o.completion]
        lines = [f"Target tenant ({target}): {len(self.waves)} migration batch(es) to create"]
        for w in self.waves:
            lines.append(f"  + batch '{w.name}': {len(w.users)} user(s)"
                         + (f", {size_text(w.size_bytes)}" if w.size_bytes else ""))
            lines.extend(f"      note: {warning}" for warning in w.warnings)
        lines.append(f"Each batch {start} and {end}.")
        emails = self.email_list()
        lines.append(f"Status e-mails go to: {', '.join(emails)}." if emails else
                     "No status e-mails (Exchange sends them to the signed-in admin).")
        lines.extend(f"Fix first: {p}" for p in self.problems())
        return lines

    def _sync(self) -> None:
        self.start_time.setEnabled(self.start_at.isChecked())
        self.complete_time.setEnabled(self.complete_at.isChecked())
        text = "\n".join(self.plan_lines())
        if text != self.summary.toPlainText():  # every second: only when it changed (the admin may be reading it)
            self.summary.setPlainText(text)
        clock = rehearsal_clock(self.ctx)
        if clock is not None:
            speed = clock.speed
            self.clock_text.setText("Times are the rehearsal's simulated time: it is "
                                    f"{self.now().toString('yyyy-MM-dd HH:mm')} there"
                                    + (f", running {speed:g}× faster than real time." if speed != 1 else "."))
        self.launch_btn.setEnabled(bool(self.waves) and not self.problems() and self._op is None)
        self.changed()

    # -- launch -------------------------------------------------------------------------------------------
    def confirm_launch(self) -> None:
        if not self.waves or self.problems():
            return
        n = sum(len(w.users) for w in self.waves)
        ask(self, "Launch the batches?",
            f"Create {len(self.waves)} migration batch(es) for {n} user(s) in the target tenant?\n\n"
            + "\n".join(self.plan_lines()), "&Launch", self.launch)

    def launch(self) -> None:
        engine = batch_engine(self.ctx)
        waves = list(self.waves)
        plans = [(w, self.options_for(w)) for w in waves]
        self._cancel = threading.Event()
        cancel = self._cancel
        progress = self._progress.emit
        words = clock_words(self.ctx)

        async def run() -> list[Any]:
            from ...migration.batches import BatchProblem

            done = []
            await read_clock(self.ctx)  # the batches' recorded creation times, in the rehearsal's time
            late = times_passed(plans[0][1], engine.now(), words) if plans else None
            if late is not None:  # while the confirmation was open (minutes pass in seconds in a sped-up rehearsal)
                raise BatchProblem(late)
            for i, (wave, options) in enumerate(plans):
                if cancel.is_set():
                    break
                progress(i, len(plans), f"creating batch '{wave.name}' ({len(wave.users)} users)")
                done.append(await engine.create(wave, options))
            return done

        self.status.set_busy("Creating the batches…")
        self._op = self.ctx.runner.submit(run, on_done=self._launched, on_error=self._failed, key="launch")
        self._sync()

    def _on_progress(self, done: int, total: int, what: str) -> None:
        if self._op is not None:
            self.status.set_busy(f"Batch {done + 1} of {total}: {what}", done, total)

    def _launched(self, results: list[Any]) -> None:
        self._op = None
        names = [r.name for r in results]
        self.load()  # the launched waves leave the list
        warnings = [w for r in results for w in r.warnings]
        text = f"Launched {len(names)} batch(es): {', '.join(names)}." if names else "Nothing was launched."
        if self._cancel.is_set() and self.waves:
            text += " Stopped before the others; press Launch to create them."
        if warnings:
            text += " Exchange said: " + " ".join(warnings)
        self.status.set_ok(text + " Press Next to watch them.")
        self.changed()
        wizard = self.wizard()
        if wizard is not None and self.launched:  # the Launch button is gone from the focus chain: go on from Next
            wizard.button(QWizard.WizardButton.NextButton).setFocus(Qt.FocusReason.OtherFocusReason)

    def _failed(self, exc: BaseException) -> None:
        self._op = None
        problem = explain(exc)
        self.load()  # a batch made before the failure is listed as launched, not offered again
        self.status.set_error(problem)
        self._sync()

    def retry(self) -> None:
        self.confirm_launch()

    def cancel(self) -> None:
        self._cancel.set()  # between batches: a batch is created whole or not at all

    def isComplete(self) -> bool:
        return bool(self.launched) and self._op is None


# --- 2. Monitor ------------------------------------------------------------------------------------------------

BATCH_COLUMNS = [
    Column("Batch", lambda b: b.name),
    Column("Status", lambda b: b.status, tip=lambda b: b.problem.what if b.problem else ""),
    Column("Progress", lambda b: f"{b.percent} %", sort_key=lambda b: b.percent),
    Column("Users", lambda b: str(b.total), sort_key=lambda b: b.total),
    Column("Completed", lambda b: str(b.counts.get("completed", 0)), sort_key=lambda b: b.counts.get("completed", 0)),
    Column("Need attention", lambda b: str(b.counts.get("failed", 0)), sort_key=lambda b: b.counts.get("failed", 0)),
    Column("Last sync", lambda b: time_text(b.last_sync),
           sort_key=lambda b: b.last_sync or datetime.datetime.min.replace(tzinfo=datetime.UTC)),
]
USER_COLUMNS = [
    Column("User (target address)", lambda u: u.target, tip=lambda u: f"Source: {u.source}" if u.source else ""),
    Column("Batch", lambda u: u.batch),
    Column("Status", lambda u: STAGE_TEXT.get(u.stage, u.stage), sort_key=lambda u: (u.stage, u.status),
           tip=lambda u: f"Exchange status: {u.status}"),
    Column("Progress", lambda u: f"{u.percent} %", sort_key=lambda u: u.percent),
    Column("Size", lambda u: size_text(u.size_bytes), sort_key=lambda u: u.size_bytes),
    Column("Last sync", lambda u: time_text(u.last_sync),
           sort_key=lambda u: u.last_sync or datetime.datetime.min.replace(tzinfo=datetime.UTC)),
    Column("Problem", lambda u: u.problem.what if u.problem else "",
           tip=lambda u: f"{u.problem.why}\nWhat to do: {u.problem.fix}" if u.problem else ""),
]


def user_key(u: UserStatus) -> Hashable:
    return (u.batch, u.target)


def batch_key(b: BatchStatus) -> Hashable:
    return b.name


@dataclass(frozen=True)
class MonitorRows:
    """One refresh made ready to show on the runner's thread (`monitor_rows`): both tables' rows — every cell's
    text, the filter's text, in the views' sort order — and the totals, so the GUI thread only swaps them in."""

    snapshot: Snapshot
    users: PreparedRows
    batches: PreparedRows
    counts: dict[str, int]
    percent: int
    awaiting: tuple[str, ...] = ()  # taken out of their batch to move again, not in a batch since


def monitor_rows(snap: Snapshot, users: tuple[Sort | None, list[Hashable]],
                 batches: tuple[Sort | None, list[Hashable]]) -> MonitorRows:
    """`users` / `batches`: each view's sort and the identities of its rows in the order shown."""
    return MonitorRows(snap, prepare_rows(USER_COLUMNS, snap.users, user_key, *users),
                       prepare_rows(BATCH_COLUMNS, snap.batches, batch_key, *batches), snap.counts(), snap.percent)


def freeze_long_lived() -> None:
    """Move every object that exists now (the app's code and pages: ~125,000 objects that live as long as the app)
    to the garbage collector's permanent generation; called when the monitor first opens.

    CPython's full collections stop every thread, the GUI's too, and walk every object they track.  With 10,000
    users a refresh makes and drops tens of thousands of objects, which sets off about one full collection per
    refresh: over the app's own objects as well it stalled the window for 120-400 ms on a loaded 2-core machine;
    over the monitor's data alone it takes 15-80 ms.  Frozen objects are still freed when no longer used, but a
    reference cycle among them would not be: so what an earlier call froze is thawed and the garbage collected
    first (one full collection, as the page opens)."""
    import gc

    gc.unfreeze()
    gc.collect()
    gc.freeze()


def view_sort(view: QTableView) -> Sort | None:
    """The view's sort column and order (None until the admin sorts)."""
    h = view.horizontalHeader()
    return (h.sortIndicatorSection(), h.sortIndicatorOrder()) if h.isSortIndicatorShown() \
        and h.sortIndicatorSection() >= 0 else None


SPEEDS = [("Real time", 1.0), ("1 minute per second (60×)", 60.0), ("10 minutes per second (600×)", 600.0),
          ("1 hour per second (3,600×)", 3600.0)]


def sandbox_control_url(endpoints: Any) -> str | None:
    """The simulated tenants' control API (served under /_sandbox on every sandbox port); None for real tenants."""
    if not getattr(endpoints, "is_simulated", False):
        return None
    parts = urlsplit(str(endpoints.exchange_url))
    return f"{parts.scheme}://{parts.netloc}/_sandbox"


class MonitorPage(BasePage):
    """A dashboard of every batch and user: status, progress bars, size, last sync, each error explained."""

    _progress = Signal(int, int, str)

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx, "Watch the move",
                         "Microsoft's service copies the mailboxes; this page reads its progress every little "
                         "while. Select a batch to start, stop, complete or remove it; select a user to see what "
                         "is happening and, for a problem, what to do.")
        self.overall = QProgressBar()
        self.overall.setRange(0, 100)
        self.overall.setAccessibleName("Overall progress of the move")
        self.overall_text = label("")
        self.overall_text.setAccessibleName("Overall progress in words")
        self.refresh_btn = button("Refres&h now", "Refresh the progress now")
        self.auto = QCheckBox("&Keep refreshing every few seconds")
        self.auto.setAccessibleName("Refresh automatically")
        self.auto.setChecked(True)

        self.batches_model = RecordTableModel(BATCH_COLUMNS, self)
        self.batches_view, self.batches_proxy = record_table(self.batches_model, "Migration batches",
                                                             [120, 150, 120, 50, 80, 110])
        self.batches_view.setItemDelegateForColumn(2, ProgressDelegate(self.batches_proxy, lambda b: b.percent))
        batches_label = label("Ba&tches:", self.batches_view)
        self.start_btn = button("&Start", "Start or resume the selected batch")
        self.stop_btn = button("St&op", "Stop the selected batch")
        self.complete_btn = button("Com&plete", "Complete the selected batch: switch its copied users over now")
        self.remove_btn = button("Remo&ve…", "Remove the selected batch")
        self.retry_btn = button("Retr&y failed users", "Retry the failed users of the selected batch")

        self.users_model = RecordTableModel(USER_COLUMNS, self)
        self.users_view, self.users_proxy = record_table(self.users_model, "Users being moved",
                                                         [210, 70, 150, 100, 70, 120])
        self.users_view.setItemDelegateForColumn(3, ProgressDelegate(self.users_proxy, lambda u: u.percent))
        users_label = label("&Users:", self.users_view)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Part of an address, a batch or a status")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Find a user")
        find_label = label("F&ind:", self.search)
        self.only_problems = QCheckBox("Only users &with problems")
        self.only_problems.setAccessibleName("Show only users that need attention")
        self.details = QTextBrowser()
        self.details.setAccessibleName("About the selected user")
        self.details.setOpenExternalLinks(False)
        self.rebatch_btn = button("&Move again in a new batch…", "Take the selected user out of their batch to "
                                   "move them again in a new batch")
        self.rebatch_btn.setToolTip("For a failure Retry cannot mend: shows what is taken out of which batch, and "
                                    "asks first.")
        self.awaiting_text = label("")
        self.awaiting_text.setAccessibleName("Users waiting to move again in a new batch")
        self.awaiting_text.hide()

        head = QHBoxLayout()
        head.addWidget(self.overall, 2)
        head.addWidget(self.refresh_btn)
        head.addWidget(self.auto)
        self.body.addLayout(head)
        self.body.addWidget(self.overall_text)
        self.body.addWidget(batches_label)
        self.body.addWidget(self.batches_view, 2)
        actions = QHBoxLayout()
        for b in (self.start_btn, self.stop_btn, self.complete_btn, self.remove_btn, self.retry_btn):
            actions.addWidget(b)
        actions.addStretch(1)
        self.body.addLayout(actions)
        filt = QHBoxLayout()
        filt.addWidget(users_label)
        filt.addStretch(1)
        filt.addWidget(find_label)
        filt.addWidget(self.search, 2)
        filt.addWidget(self.only_problems)
        self.body.addLayout(filt)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.users_view)
        pane = QWidget()
        pl = QVBoxLayout(pane)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.details, 1)
        pl.addWidget(self.rebatch_btn, alignment=Qt.AlignmentFlag.AlignLeft)
        split.addWidget(pane)
        split.setSizes([560, 300])
        self.body.addWidget(split, 5)
        self.body.addWidget(self.awaiting_text)

        # The rehearsal's clock: make the simulated move service run faster (never offered for real tenants).
        self.speed = QComboBox()
        self.speed.setAccessibleName("Rehearsal speed: how fast simulated time runs")
        for text, scale in SPEEDS:
            self.speed.addItem(text, scale)
        self.skip_btn = button("Skip &ahead one hour", "Rehearsal: move simulated time one hour forward")
        self.clock_text = label("")
        self.clock_text.setAccessibleName("Simulated time")
        self.speed_box = QGroupBox("Speed up the rehearsal (simulated tenants only)")
        sb = QHBoxLayout(self.speed_box)
        sb.addWidget(label("Spe&ed:", self.speed))
        sb.addWidget(self.speed)
        sb.addWidget(self.skip_btn)
        sb.addWidget(self.clock_text, 1)
        self.body.addWidget(self.speed_box)
        self.control_url = sandbox_control_url(ctx.endpoints) if ctx.demo else None
        self.speed_box.setVisible(self.control_url is not None)

        self.timer = QTimer(self)
        self.timer.setInterval(3000 if ctx.demo else 60000)
        self.timer.timeout.connect(self._tick)
        self.refresh_btn.clicked.connect(self.refresh)
        self.auto.toggled.connect(self._auto_changed)
        self.search.textChanged.connect(self.users_proxy.set_text)
        self.only_problems.toggled.connect(
            lambda on: self.users_proxy.set_predicate((lambda u: u.stage in ("failed", "stopped")) if on else None))
        self.batches_view.selectionModel().currentRowChanged.connect(lambda *_: self._sync())
        self.users_view.selectionModel().currentRowChanged.connect(lambda *_: self._show_user())
        self.start_btn.clicked.connect(lambda: self.act("start"))
        self.stop_btn.clicked.connect(lambda: self.act("stop"))
        self.complete_btn.clicked.connect(lambda: self.act("complete"))
        self.remove_btn.clicked.connect(lambda: self.act("remove"))
        self.retry_btn.clicked.connect(lambda: self.act("retry"))
        self.rebatch_btn.clicked.connect(self.plan_rebatch)
        self._progress.connect(self._on_progress)
        self.speed.activated.connect(lambda _i: self.set_speed(float(self.speed.currentData())))
        self.skip_btn.clicked.connect(lambda: self.advance(3600))

        self.snapshot: Snapshot | None = None
        self.refreshes = 0                 # answers shown (tests and the status line)
        self.last_apply_ms = 0.0           # GUI-thread time spent showing the last answer (wall clock)
        self.last_apply_cpu_ms = 0.0       # the same in the GUI thread's CPU time (what load does not inflate)
        self._samples: list[tuple[float, float, float]] = []  # (monotonic, engine's time of the reading, percent)
        self._op: Operation | None = None
        self._action: Operation | None = None
        self._clock_op: Operation | None = None
        self._detail_for = ""
        self._frozen = False
        self._rebatching = False           # apply_rebatch runs: Cancel stops between users, never mid-removal
        self._rebatch_cancel = threading.Event()

    # -- refresh ------------------------------------------------------------------------------------------
    def initializePage(self) -> None:
        if not self._frozen:
            self._frozen = True
            freeze_long_lived()
        self._samples.clear()
        self.refresh()
        self._auto_changed(self.auto.isChecked())
        if self.control_url is not None:
            self._clock_request(None)

    def cleanupPage(self) -> None:
        self.timer.stop()
        super().cleanupPage()

    def showEvent(self, event: QShowEvent) -> None:  # back from Finish: refresh automatically again
        super().showEvent(event)
        if self.snapshot is not None:
            self._auto_changed(self.auto.isChecked())

    def _auto_changed(self, on: bool) -> None:
        if on and self.isVisible():
            self.timer.start()
        else:
            self.timer.stop()

    def _tick(self) -> None:
        if not self.isVisible():
            self.timer.stop()
            return
        if self._op is None and self._action is None and self._clock_op is None:  # never queue refreshes behind
            self.refresh()                                                        # a slow one or a clock change

    def refresh(self) -> None:
        """Read the tenant and build both tables' rows on the runner's thread (`monitor_rows`: everything that
        grows with the number of users); `_show` then only swaps them in."""
        engine, ctx = batch_engine(self.ctx), self.ctx
        users = (view_sort(self.users_view), self.users_model.shown_keys(user_key))
        batches = (view_sort(self.batches_view), self.batches_model.shown_keys(batch_key))

        async def read() -> MonitorRows:
            await read_clock(ctx)  # the rehearsal's estimates follow its simulated time
            rows = monitor_rows(await engine.refresh(), users, batches)
            return replace(rows, awaiting=tuple(awaiting_new_batch(engine)))

        self.refresh_btn.setEnabled(False)
        if self.snapshot is None:
            self.status.set_busy("Reading the batches and their users…")
        self._op = self.ctx.runner.submit(read, on_done=self._show, on_error=self._refresh_failed,
                                          key="monitor-refresh")

    def _show(self, rows: MonitorRows) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        self._op = None
        self.refresh_btn.setEnabled(True)
        snap = self.snapshot = rows.snapshot
        self.refreshes += 1
        for model, view, prepared in ((self.users_model, self.users_view, rows.users),
                                      (self.batches_model, self.batches_view, rows.batches)):
            model.show_rows(prepared)
            sort = view_sort(view)
            if sort is not None and sort != prepared.sort:  # the admin sorted while it was being read
                model.sort(*sort)
        if not self.batches_view.currentIndex().isValid() and snap.batches:
            batches = self.batches_model.records  # select this project's first batch (not one found in the tenant)
            self.batches_view.selectRow(next((i for i, b in enumerate(batches) if b.ours), 0))
        self._show_overall(rows)
        self._show_awaiting(rows.awaiting)
        self._show_user()
        self._sync()
        self.last_apply_ms = (time.perf_counter() - started) * 1000
        self.last_apply_cpu_ms = (time.thread_time() - cpu) * 1000

    def _show_overall(self, rows: MonitorRows) -> None:
        snap, counts, percent = rows.snapshot, rows.counts, rows.percent
        n = len(snap.users)
        moving = sum(counts.get(s, 0) for s in ("waiting", "syncing", "synced", "completing"))
        self.overall.setValue(percent)
        self.overall.setFormat(f"{percent} % of {n} user(s)")
        now = time.monotonic()
        self._samples.append((now, snap.taken.timestamp(), float(percent)))
        self._samples = [s for s in self._samples if now - s[0] <= 600]
        parts = [f"{counts.get('completed', 0)} of {n} completed"]
        for stage in ("syncing", "synced", "completing", "waiting"):
            if counts.get(stage):
                parts.append(f"{counts[stage]} {STAGE_TEXT[stage].lower()}")
        if counts.get("failed"):
            parts.append(f"<b>{counts['failed']} need attention</b>")
        if counts.get("stopped"):
            parts.append(f"{counts['stopped']} stopped")
        eta = self.time_left(moving == 0)
        if eta:
            parts.append(eta)
        stamp = snap.taken.astimezone().strftime("%H:%M:%S") if snap.taken else ""
        simulated = " (simulated time)" if self.control_url is not None else ""
        self.overall_text.setText(" · ".join(parts) + f" · read at {stamp}{simulated}")
        problems = list(snap.problems) + [b.problem for b in snap.batches if b.problem is not None]
        if problems:
            p = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.status.set_ok("")
            self.status.message.setText(f"<b>{p.what}</b>{more}<br>{p.why}<br><i>What to do:</i> {p.fix}")
        elif not snap.users:
            self.status.set_idle("No migration batch in the target yet: go back to Launch.")
        elif not moving:
            self.status.set_ok("Nothing is moving any more: every user is completed or needs attention. "
                               "Press Next for the reports, the checklist and the clean-up.")
        else:
            self.status.set_idle("")

    def time_left(self, finished: bool) -> str:
        """From how fast the overall percent moved between the readings of the last ten minutes, timed by the
        engine's clock: the real one, or in the rehearsal the simulated one (which a skip or a speed-up moves)."""
        if finished or len(self._samples) < 2:
            return "" if finished else "time left: known after the next readings"
        (_, t0, p0), (_, t1, p1) = self._samples[0], self._samples[-1]
        if p1 <= p0 or t1 <= t0:
            return "time left: not known yet"
        return format_eta((100 - p1) / ((p1 - p0) / (t1 - t0)))

    def _refresh_failed(self, exc: BaseException) -> None:
        self._op = None
        self.refresh_btn.setEnabled(True)
        self.status.set_error(explain(exc))

    def retry(self) -> None:
        self.refresh()

    def cancel(self) -> None:
        if self._rebatching:  # between users: each removal is made whole and journaled, or not started
            self._rebatch_cancel.set()
            self.status.set_busy("Stopping after the user being taken out now…")
            return
        for op in (self._op, self._action, self._clock_op):
            if op is not None:
                op.cancel()
        self._op = self._action = self._clock_op = None
        self.refresh_btn.setEnabled(True)
        if self.status.state.value == "busy":
            self.status.set_idle("Stopped reading; press Refresh now to read again.")
        self._sync()

    # -- selection ----------------------------------------------------------------------------------------
    def selected_batch(self) -> BatchStatus | None:
        return self.batches_proxy.record(self.batches_view.currentIndex())  # type: ignore[no-any-return]

    def selected_user(self) -> UserStatus | None:
        return self.users_proxy.record(self.users_view.currentIndex())  # type: ignore[no-any-return]

    def _sync(self) -> None:
        b = self.selected_batch()
        idle = self._action is None
        status = (b.status if b else "").lower()
        counts = b.counts if b else {}
        self.start_btn.setEnabled(idle and b is not None and status in ("created", "stopped", "waiting"))
        self.stop_btn.setEnabled(idle and b is not None and status in ("syncing", "synced", "syncedwitherrors",
                                                                      "created", "waiting"))
        self.complete_btn.setEnabled(idle and b is not None and status in ("synced", "syncedwitherrors",
                                                                          "completedwitherrors"))
        self.remove_btn.setEnabled(idle and b is not None and status != "removed")
        self.retry_btn.setEnabled(idle and b is not None and bool(counts.get("failed")))
        self.rebatch_btn.setEnabled(idle and needs_new_batch(self.selected_user()))
        self.refresh_btn.setEnabled(self._op is None)

    def _show_user(self) -> None:
        u = self.selected_user()
        self.rebatch_btn.setEnabled(self._action is None and needs_new_batch(u))
        if u is None:
            self.details.setHtml("<p>Select a user to see what is happening.</p>")
            self._detail_for = ""
            return
        self.details.setHtml(self.user_html(u))
        key = f"{u.batch}|{u.target}|{u.status}"
        if key != self._detail_for and u.stage in ("syncing", "failed", "completing"):
            self._detail_for = key  # one request for the user the admin opened, never one per user
            engine = batch_engine(self.ctx)
            self.ctx.runner.submit(lambda: engine.detail(u.target), on_done=self._show_detail,
                                   on_error=lambda _e: None, key="monitor-detail")

    def _show_detail(self, u: UserStatus) -> None:
        current = self.selected_user()
        if current is not None and current.target.lower() == u.target.lower():
            self.details.setHtml(self.user_html(u))

    def user_html(self, u: UserStatus) -> str:
        from html import escape

        out = [f"<h3>{escape(u.target)}</h3>",
               f"<p>From {escape(u.source) or 'the source'} · batch {escape(u.batch)}<br>"
               f"{escape(STAGE_TEXT.get(u.stage, u.stage))} ({escape(u.status)}), {u.percent} %"
               + (f", {escape(size_text(u.bytes_transferred))} of {escape(size_text(u.size_bytes))} copied"
                  if u.size_bytes and u.bytes_transferred else "")
               + (f"<br>Last sync: {escape(time_text(u.last_sync))}" if u.last_sync else "") + "</p>"]
        if u.problem is not None:
            out.append(problem_html(u.problem))
            if needs_new_batch(u):
                out.append("<p>Retry failed users cannot mend this. Press <i>Move again in a new batch…</i>: it "
                           "shows what it takes out of the batch and asks first; then check readiness again and "
                           "launch a new batch for this user.</p>")
            if u.error:
                out.append(f"<p><small>Exchange said: {escape(u.error)}</small></p>")
        if u.completed:
            items = batch_engine(self.ctx).checklist(u)
            out.append("<p><b>Moved. Now:</b></p><ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
        return "".join(out)

    # -- batch actions ------------------------------------------------------------------------------------
    ACTIONS = {
        "start": ("Start the batch?", "Start (or resume) '{name}': Exchange starts copying its users, resumes "
                  "stopped ones and retries failed ones.", "&Start"),
        "stop": ("Stop the batch?", "Stop '{name}': the copy pauses for all its users; nothing is lost, and Start "
                 "resumes it.", "St&op"),
        "complete": ("Complete the batch?", "Complete '{name}' now: each copied user switches to the target — "
                     "their old mailbox becomes a forwarding contact. Users must restart Outlook and may need a "
                     "new profile. This cannot be undone.", "Com&plete"),
        "remove": ("Remove the batch?", "Remove '{name}' from the target: users not yet completed stop moving and "
                   "their copied data is discarded; completed users stay moved. The batch's record stays in the "
                   "project.", "Remo&ve"),
        "retry": ("Retry the failed users?", "Resume the failed users of '{name}' ({failed}). Fix what each "
                  "problem says first, or they fail again.", "Retr&y"),
    }

    def act(self, action: str) -> None:
        b = self.selected_batch()
        if b is None or self._action is not None:
            return
        title, text, yes = self.ACTIONS[action]
        ask(self, title, text.format(name=b.name, failed=b.counts.get("failed", 0)), yes,
            lambda: self._run_action(action, b.name))

    def _run_action(self, action: str, name: str) -> None:
        engine = batch_engine(self.ctx)
        call = {"start": engine.start, "stop": engine.stop, "complete": engine.complete, "remove": engine.remove,
                "retry": engine.retry_failed}[action]
        if self._op is not None:  # a refresh started before the change would show the old state: drop it
            self._op.cancel()
            self._op = None
        words = {"start": "Starting", "stop": "Stopping", "complete": "Completing", "remove": "Removing",
                 "retry": "Retrying the failed users of"}[action]
        self.status.set_busy(f"{words} '{name}'…")
        self._action = self.ctx.runner.submit(lambda: call(name), on_done=lambda _r: self._acted(action, name),
                                              on_error=self._action_failed, key="monitor-action")
        self._sync()

    def _acted(self, action: str, name: str) -> None:
        self._action = None
        done = {"start": "started", "stop": "stopped", "complete": "set to complete", "remove": "removed",
                "retry": "asked to retry its failed users"}[action]
        self.status.set_ok(f"Batch '{name}' {done}.")
        self.refresh()

    def _action_failed(self, exc: BaseException) -> None:
        self._action = None
        self.status.set_error(explain(exc))
        self._sync()

    # -- users that need a new batch -------------------------------------------------------------------------
    def _show_awaiting(self, awaiting: tuple[str, ...]) -> None:
        """Users taken out of their batch and not in a new one yet: what the admin does next (it stays until they
        are launched again, also after a restart: it is read from the project)."""
        if awaiting:
            names = ", ".join(awaiting[:5]) + (f" and {len(awaiting) - 5} more" if len(awaiting) > 5 else "")
            self.awaiting_text.setText(f"Taken out of their batch to move again: {names}. {AFTER_REBATCH}")
        self.awaiting_text.setVisible(bool(awaiting))

    def plan_rebatch(self) -> None:
        """Plan to take the selected user (a failure Retry cannot mend) out of their batch; the plan is shown in
        a confirmation before anything changes."""
        u = self.selected_user()
        if u is None or not needs_new_batch(u) or self._action is not None:
            return
        engine, ctx = batch_engine(self.ctx), self.ctx
        if self._op is not None:  # a refresh started before the change would show the old state: drop it
            self._op.cancel()
            self._op = None

        async def plan() -> Plan:
            await read_clock(ctx)
            return await engine.plan_rebatch(users=[u.target])

        self.status.set_busy(f"Reading the batches: what it takes to move {u.target} again…")
        self._action = self.ctx.runner.submit(plan, on_done=self._rebatch_planned, on_error=self._action_failed,
                                              key="monitor-action")
        self._sync()

    def _rebatch_planned(self, plan: Plan) -> None:
        self._action = None
        self._sync()
        if not plan.pending:  # e.g. Exchange took the user up again meanwhile: the plan says why it keeps them
            self.status.set_idle("\n".join(plan.lines()))
            return
        self.status.set_idle("")
        n = len(plan.pending)
        ask(self, "Move again in a new batch?",
            f"Take {n} user(s) out of their batch? What was copied so far is discarded; their mailbox in the "
            "source is untouched and they keep working in it. They move again, from the start, in a new batch."
            "\n\n" + "\n".join(plan.lines())
            + f"\n\nAfterwards: {AFTER_REBATCH}", "&Take out", lambda: self.rebatch(plan))

    def rebatch(self, plan: Plan) -> None:
        """apply_rebatch with progress; Cancel stops between users."""
        engine, ctx = batch_engine(self.ctx), self.ctx
        self._rebatch_cancel = threading.Event()
        cancel, progress = self._rebatch_cancel, self._progress.emit

        async def run() -> Any:
            await read_clock(ctx)  # the record's time of the removal, in the rehearsal's time
            return await engine.apply_rebatch(plan, progress, cancel)

        self._rebatching = True
        self.status.set_busy("Taking users out of their batch…")
        self._action = self.ctx.runner.submit(run, on_done=self._rebatched, on_error=self._rebatch_failed,
                                              key="monitor-action")
        self._sync()

    def _on_progress(self, done: int, total: int, line: str) -> None:
        if self._rebatching and not self._rebatch_cancel.is_set() and done < total:
            self.status.set_busy(f"User {done + 1} of {total}: {line}", done, total)

    def _rebatched(self, result: Any) -> None:
        self._action = None
        self._rebatching = False
        names = [c.key.split(":", 1)[1] for c in result.done]
        text = (f"Taken out of their batch: {', '.join(names)}." if names else "Nobody was taken out.")
        if result.cancelled:
            text += " Stopped before the others; press Move again in a new batch to go on."
        self.status.set_ok(text + (f" {AFTER_REBATCH}" if names else ""))
        self.refresh()  # they leave the batch's list; the note below the users stays until they are launched again

    def _rebatch_failed(self, exc: BaseException) -> None:
        self._rebatching = False
        self._action_failed(exc)

    # -- the rehearsal's clock ----------------------------------------------------------------------------
    def set_speed(self, scale: float) -> None:
        self._clock_request({"scale": scale})

    def advance(self, seconds: float) -> None:
        self._clock_request({"advance_seconds": seconds})

    def _clock_request(self, change: dict[str, Any] | None) -> None:
        ws, clock = self.ctx.workspace, rehearsal_clock(self.ctx)
        if ws is None or clock is None or self.control_url is None:
            return
        if change is not None and self._op is not None:  # a refresh started before the change shows the old time
            self._op.cancel()
            self._op = None
        self._clock_op = self.ctx.runner.submit(lambda: clock.read(ws.policy, change), on_done=self._clock_shown,
                                                on_error=self._clock_failed, key="rehearsal-clock")

    def _clock_failed(self, exc: BaseException) -> None:
        self._clock_op = None
        self.status.set_error(explain(exc))
        self._sync()

    def _clock_shown(self, clock: dict[str, Any]) -> None:
        self._clock_op = None
        scale = float(clock.get("scale", 1) or 1)
        now = datetime.datetime.fromtimestamp(float(clock.get("now", 0)), datetime.UTC)
        self.clock_text.setText(f"Simulated time: {time_text(now)}" + (f", running {scale:g}× faster"
                                                                        if scale != 1 else ""))
        i = self.speed.findData(scale)
        if i >= 0:
            self.speed.setCurrentIndex(i)
        if self.snapshot is not None:
            self.refresh()  # show what the service did in that time (a refresh already running is replaced)


# --- 3. Finish ---------------------------------------------------------------------------------------------------

class FinishPage(BasePage):
    """Reports for the customer, the checklist after the move, and the clean-up of what the setup made."""

    _progress = Signal(int, int, str)

    def __init__(self, ctx: AppContext, monitor: MonitorPage) -> None:
        super().__init__(ctx, "Finish: reports, checklist and clean-up",
                         "Write the reports for your records or your customer, go through the checklist with the "
                         "moved users, and once everyone is moved, remove what xtwizard set up for the migration.")
        self.monitor = monitor
        self.folder = QLineEdit()
        self.folder.setAccessibleName("Folder for the reports")
        folder_label = label("Save reports &in:", self.folder)
        self.choose_btn = button("Choose f&older…", "Choose the folder for the reports")
        self.write_btn = button("&Write the reports", "Write the readiness, progress and final reports")
        self.open_btn = button("O&pen folder", "Open the reports folder")
        self.files = QListWidget()
        self.files.setAccessibleName("Reports written")
        self.checklist = QPlainTextEdit()
        self.checklist.setReadOnly(True)
        self.checklist.setAccessibleName("Checklist after the move")
        checklist_label = label("C&hecklist after the move:", self.checklist)
        self.plan_btn = button("Plan the &teardown", "Work out what the clean-up would remove")
        self.teardown_btn = button("Re&move what xtwizard set up…", "Apply the clean-up plan")
        self.plan_view = QPlainTextEdit()
        self.plan_view.setReadOnly(True)
        self.plan_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.plan_view.setAccessibleName("The clean-up plan")
        # Off by default (a purged vault can never be recovered); offered only when the plan has a key vault the
        # setup created (its soft-deleted state is the plan's "deleted-vault:" change); the plan is made again when
        # it is switched, so that what is shown is what Remove does.
        self.purge = QCheckBox("&Also purge the key vault xtwizard created")
        self.purge.setAccessibleName("Also purge the key vault xtwizard created")
        self.purge.setAccessibleDescription("Frees its name now instead of in 90 days. Cannot be undone: a purged "
                                            "vault can never be recovered.")
        purge_note = label("(frees its name now instead of in 90 days; cannot be undone)")
        purge_note.setIndent(self.purge.style().pixelMetric(QStyle.PixelMetric.PM_IndicatorWidth) + 6)
        self.purge_box = QWidget()
        pb = QVBoxLayout(self.purge_box)
        pb.setContentsMargins(0, 0, 0, 0)
        pb.setSpacing(0)
        pb.addWidget(self.purge)
        pb.addWidget(purge_note)
        self.purge_box.hide()

        reports = QGroupBox("Reports")
        rl = QVBoxLayout(reports)
        row = QHBoxLayout()
        row.addWidget(folder_label)
        row.addWidget(self.folder, 1)
        row.addWidget(self.choose_btn)
        rl.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.write_btn)
        row.addWidget(self.open_btn)
        row.addStretch(1)
        rl.addLayout(row)
        rl.addWidget(self.files)
        teardown = QGroupBox("Clean-up")
        tl = QVBoxLayout(teardown)
        row = QHBoxLayout()
        row.addWidget(self.plan_btn)
        row.addWidget(self.teardown_btn)
        row.addStretch(1)
        tl.addLayout(row)
        tl.addWidget(self.purge_box)
        tl.addWidget(self.plan_view)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(reports, 1)
        ll.addWidget(checklist_label)
        ll.addWidget(self.checklist, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(teardown)
        split.setSizes([380, 480])
        self.body.addWidget(split, 1)

        self.choose_btn.clicked.connect(self._choose)
        self.write_btn.clicked.connect(self.write_reports)
        self.open_btn.clicked.connect(self.open_folder)
        self.plan_btn.clicked.connect(self.plan_teardown)
        self.teardown_btn.clicked.connect(self.confirm_teardown)
        self.purge.toggled.connect(lambda _on: self.plan_teardown())
        self._progress.connect(self._on_progress)
        self.written: list[Path] = []
        self.plan: Plan | None = None
        self.torn_down = False
        self._op: Operation | None = None         # the teardown's plan or its apply
        self._report_op: Operation | None = None  # writing the reports (its own: a new plan does not cancel it)
        self._applying = False
        self._cancel = threading.Event()
        self.open_btn.setEnabled(False)
        self.teardown_btn.setEnabled(False)

    def initializePage(self) -> None:
        ws = self.ctx.workspace
        assert ws is not None
        if not self.folder.text():
            self.folder.setText(str(ws.project.folder / "reports"))
        self.checklist.setPlainText(self.checklist_text())
        self.plan = None
        self.plan_view.setPlainText("Press Plan the teardown to see what the clean-up would remove. Nothing is "
                                    "removed until you confirm.")
        self.teardown_btn.setEnabled(False)
        self.purge_box.hide()  # until a plan shows a key vault xtwizard created
        snap = self.monitor.snapshot
        if snap is not None and not snap.finished:
            self.status.set_idle("Some users are still moving: write a progress report now, and clean up only once "
                                 "everyone is moved.")
        else:
            self.status.set_idle("")

    def checklist_text(self) -> str:
        snap = self.monitor.snapshot
        done = [u for u in snap.users if u.completed] if snap else []
        if not done:
            return "No user has completed the move yet. Once they have, the checklist for them appears here."
        engine = batch_engine(self.ctx)
        lines = [f"{len(done)} user(s) moved. For each of them:", ""]
        lines += [f"  • {item}" for item in engine.checklist("each moved user")]
        lines += ["", "Moved users:"] + [f"  {u.target}" for u in done]
        return "\n".join(lines)

    # -- reports ------------------------------------------------------------------------------------------
    def _choose(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for the reports", self.folder.text())
        if path:
            self.folder.setText(path)

    def write_reports(self) -> None:
        import asyncio

        folder = Path(self.folder.text().strip()).expanduser()
        if not self.folder.text().strip():
            self.status.set_idle("Choose a folder for the reports first.")
            return
        engine = batch_engine(self.ctx)
        snap = self.monitor.snapshot

        async def write() -> list[Path]:
            await read_clock(self.ctx)
            fresh = await engine.refresh()  # the reports show the tenant as it is now
            return await asyncio.to_thread(engine.write_reports, folder, fresh or snap)

        self.status.set_busy("Reading the latest progress and writing the reports…")
        self._report_op = self.ctx.runner.submit(write, on_done=self._written, on_error=self._report_failed,
                                                 key="finish-reports")

    def _report_failed(self, exc: BaseException) -> None:
        self._report_op = None
        self.status.set_error(explain(exc))

    def _written(self, files: list[Path]) -> None:
        self._report_op = None
        self.written = list(files)
        self.files.clear()
        for f in files:
            self.files.addItem(f.name)
        self.open_btn.setEnabled(bool(files))
        self.status.set_ok(f"{len(files)} report file(s) written to {self.folder.text()}.")

    def open_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.folder.text()).expanduser())))

    # -- teardown -----------------------------------------------------------------------------------------
    def plan_teardown(self) -> None:
        if self._applying:
            return
        engine = batch_engine(self.ctx)
        purge = self.purge.isChecked()
        self.plan = None
        self.teardown_btn.setEnabled(False)
        self.status.set_busy("Reading both tenants and working out the clean-up…")
        self._op = self.ctx.runner.submit(lambda: engine.plan_teardown(purge_vault=purge), on_done=self._planned,
                                          on_error=self._failed, key="finish")

    def _planned(self, plan: Plan) -> None:
        self._op = None
        self.plan = plan
        self.plan_view.setPlainText("\n".join(plan.lines()))  # an empty plan ends with its own "Nothing left…"
        self.purge_box.setVisible(any(c.key.startswith("deleted-vault:") for c in plan.changes))
        if plan.waiting:
            self.status.set_idle("Not yet: " + " ".join(c.line + "." for c in plan.waiting))
        elif plan.pending:
            self.status.set_idle(f"{len(plan.pending)} change(s) to make. Read them, then press Remove.")
        else:
            self.status.set_ok("The clean-up is done.")
        self.teardown_btn.setEnabled(bool(plan.pending) and not plan.waiting)

    def confirm_teardown(self) -> None:
        plan = self.plan
        if plan is None or not plan.pending or plan.waiting:
            return
        ask(self, "Remove what xtwizard set up?",
            f"Make these {len(plan.pending)} change(s)? The migration app, its credential and the endpoint are "
            "removed, so no further mailbox can move with them.\n\n" + "\n".join(plan.lines()),
            "Re&move", self.teardown)

    def teardown(self) -> None:
        engine = batch_engine(self.ctx)
        plan = self.plan
        assert plan is not None
        self._cancel = threading.Event()
        cancel = self._cancel
        self.teardown_btn.setEnabled(False)
        self.purge.setEnabled(False)
        self.status.set_busy("Removing what xtwizard set up…")
        self._applying = True
        self._op = self.ctx.runner.submit(lambda: engine.apply_teardown(plan, self._progress.emit, cancel),
                                          on_done=self._torn_down, on_error=self._failed, key="finish")

    def _on_progress(self, done: int, total: int, line: str) -> None:
        if self._op is not None:
            self.status.set_busy(f"Change {done + 1} of {total}: {line}", done, total)

    def _torn_down(self, result: Any) -> None:
        self._op = None
        self._applying = False
        self.purge.setEnabled(True)
        if getattr(result, "cancelled", False):
            self.status.set_idle(f"Stopped after {len(result.done)} change(s); nothing is half-done. Plan the "
                                 "teardown again to continue.")
            self.plan_teardown()
            return
        self.torn_down = True
        self.plan_view.setPlainText("Removed:\n" + "\n".join(f"  - {c.line}" for c in result.done)
                                    + "".join(f"\nWarning: {w}" for w in result.warnings))
        self.plan = None
        self.write_reports()  # the teardown report: the final report and the audit log now show the removals

    def _failed(self, exc: BaseException) -> None:
        self._op = None
        self._applying = False
        self.purge.setEnabled(True)
        self.status.set_error(explain(exc))
        self.teardown_btn.setEnabled(bool(self.plan and self.plan.pending))

    def cancel(self) -> None:
        if self._applying:
            self._cancel.set()  # between changes: each removal is made whole and journaled, or not started
            return
        if self._op is not None or self._report_op is not None:
            for op in (self._op, self._report_op):
                if op is not None:
                    op.cancel()
            self._op = self._report_op = None
            self.status.set_idle("Cancelled.")

    def retry(self) -> None:
        if self.plan is not None and self.plan.pending:
            self.teardown()
        else:
            self.plan_teardown()



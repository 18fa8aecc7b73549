"""Widgets every page shares: the status panel (idle / busy / ok / error), the rehearsal banner, labels and
buttons.  (The record tables of the users and batches pages are in tables.py.)

This module is imported before the first window is painted, so it must not touch `Qt` (PySide6 builds the
~90 enums of that namespace on first use: ~25 ms of start time, issue 7).  Use class-scoped enums instead."""

from __future__ import annotations

import time
from enum import Enum
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from ..migration.problems import Problem



def label(text: str, buddy: QWidget | None = None, *, wrap: bool = True) -> QLabel:
    """A label (word-wrapped unless `wrap=False`); with `buddy`, its mnemonic focuses that control."""
    lbl = QLabel(text)
    lbl.setWordWrap(wrap)
    if buddy is not None:
        lbl.setBuddy(buddy)
    return lbl


def button(text: str, accessible_name: str) -> QPushButton:
    """A push button with the name screen readers announce."""
    b = QPushButton(text)
    b.setAccessibleName(accessible_name)
    return b

class PageState(Enum):
    IDLE = "idle"
    BUSY = "busy"
    OK = "ok"
    ERROR = "error"


def format_eta(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} minute{'s' if minutes != 1 else ''} left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min left"


class StatusPanel(QFrame):
    """What the page is doing, in words; with Cancel while busy and Retry / Copy details / Open log folder
    after an error."""

    retryRequested = Signal()
    cancelRequested = Signal()

    def __init__(self, log_dir: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.log_dir = log_dir
        self.state = PageState.IDLE
        self._details = ""
        self._started = 0.0
        lay = QVBoxLayout(self)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Status")
        self._selectable = False
        lay.addWidget(self.message)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Progress")
        self.progress.setTextVisible(True)
        lay.addWidget(self.progress)
        row = QHBoxLayout()
        self.cancel = QPushButton("&Cancel")
        self.cancel.setAccessibleName("Cancel the running operation")
        self.retry = QPushButton("&Retry")
        self.retry.setAccessibleName("Retry")
        self.copy = QPushButton("Copy &details")
        self.copy.setAccessibleName("Copy the error details to the clipboard")
        self.logs = QPushButton("Open lo&g folder")
        self.logs.setAccessibleName("Open the folder with xtwizard's log files")
        for b in (self.cancel, self.retry, self.copy, self.logs):
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)
        self.cancel.clicked.connect(self.cancelRequested)
        self.retry.clicked.connect(self.retryRequested)
        self.copy.clicked.connect(self._copy)
        self.logs.clicked.connect(self._open_logs)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self.set_idle("")

    def _show(self, *, progress: bool, cancel: bool, error: bool) -> None:
        self.progress.setVisible(progress)
        self.cancel.setVisible(cancel)
        for b in (self.retry, self.copy, self.logs):
            b.setVisible(error)

    def _say(self, text: str) -> None:
        self.message.setText(text)
        if text and not self._selectable:  # on first use, not in __init__: it touches `Qt`'s enums (module doc)
            self._selectable = True
            flags = self.message.textInteractionFlags()
            self.message.setTextInteractionFlags(flags | flags.TextSelectableByMouse)

    def set_idle(self, text: str) -> None:
        self.state = PageState.IDLE
        self._say(text)
        self.setVisible(bool(text))
        self._show(progress=False, cancel=False, error=False)

    def set_busy(self, text: str, done: int | None = None, total: int | None = None) -> None:
        if self.state is not PageState.BUSY:
            self._started = time.monotonic()
        self.state = PageState.BUSY
        self.setVisible(True)
        label = text
        if done is not None and total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            if done:
                eta = (time.monotonic() - self._started) / done * (total - done)
                label = f"{text} ({done} of {total}, {format_eta(eta)})"
        else:
            self.progress.setRange(0, 0)  # indeterminate
        self._say(label)
        self._show(progress=True, cancel=True, error=False)

    def set_ok(self, text: str) -> None:
        self.state = PageState.OK
        self.setVisible(True)
        self._say(text)
        self._show(progress=False, cancel=False, error=False)

    def set_error(self, problem: Problem) -> None:
        self.state = PageState.ERROR
        self.setVisible(True)
        self._details = f"{problem.what}\n{problem.why}\n{problem.fix}\n\n{problem.details}".strip()
        self._say(f"<b>{problem.what}</b><br>{problem.why}<br><i>What to do:</i> {problem.fix}")
        self._show(progress=False, cancel=False, error=True)
        self.retry.setVisible(problem.retryable)

    @property
    def details(self) -> str:
        return self._details

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self._details)

    def _open_logs(self) -> None:
        if self.log_dir:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.log_dir))


class RehearsalBanner(QLabel):
    """Always visible in --demo: these tenants are simulated."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("<b>Rehearsal:</b> these are simulated tenants running on this computer. Nothing you do "
                         "here touches a real Microsoft 365 tenant.", parent)
        self.setWordWrap(True)
        self.setAccessibleName("Rehearsal mode: simulated tenants")
        self.setObjectName("rehearsalBanner")
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(self.backgroundRole(), pal.color(pal.ColorRole.ToolTipBase))
        pal.setColor(self.foregroundRole(), pal.color(pal.ColorRole.ToolTipText))
        self.setPalette(pal)
        self.setMargin(6)

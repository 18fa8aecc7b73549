"""A first window for `xtwizard --demo`: shows that the simulated tenants run and how to reach them.

The wizard pages replace it in the next slices (issue 4).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget


def build_demo_window(info: dict[str, Any], describe: str) -> QWidget:
    w = QWidget()
    w.setWindowTitle("xtwizard: rehearsal with simulated tenants")
    lay = QVBoxLayout(w)
    banner = QLabel("<b>Rehearsal mode.</b> These are simulated tenants on this computer; nothing here "
                    "touches a real Microsoft 365 tenant.")
    banner.setWordWrap(True)
    banner.setAccessibleName("Rehearsal mode banner")
    lay.addWidget(banner)
    text = QPlainTextEdit(describe)
    text.setReadOnly(True)
    text.setAccessibleName("Where the simulated services listen")
    lay.addWidget(text)
    note = QLabel("The wizard pages (sign-in, prerequisites, setup, batches) arrive in the next slices.")
    note.setWordWrap(True)
    lay.addWidget(note)
    close = QPushButton("&Close")
    close.setAccessibleName("Close and stop the simulated tenants")
    close.clicked.connect(w.close)
    lay.addWidget(close, alignment=Qt.AlignmentFlag.AlignRight)
    w.resize(760, 520)
    return w


def run_demo_window(info: dict[str, Any], describe: str) -> int:
    app = QApplication.instance() or QApplication([])
    w = build_demo_window(info, describe)
    w.show()
    return int(app.exec())

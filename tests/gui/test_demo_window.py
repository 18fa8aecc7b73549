"""The demo window shows the rehearsal banner and where the simulated services listen."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton

from xtwizard.cli import describe_demo
from xtwizard.ui.demo import build_demo_window


def test_demo_window_banner_and_endpoints(qtbot, sandbox):
    w = build_demo_window(sandbox.info, describe_demo(sandbox.info))
    qtbot.addWidget(w)
    w.show()
    banner = w.findChildren(QLabel)[0]
    assert "simulated tenants" in banner.text()
    text = w.findChild(QPlainTextEdit).toPlainText()
    assert sandbox.info["authority_host"] in text and "Northwind Traders" in text
    close = w.findChild(QPushButton)
    assert close.accessibleName() and close.text() == "&Close"
    close.click()
    assert not w.isVisible()

"""The first pages driven by keyboard alone, and the accessibility basics every control needs."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QSpinBox,
    QTreeWidget,
)

from tests.gui.test_signin_pages import SOURCE_ADMIN, TARGET_ADMIN
from xtwizard.ui.widgets import PageState


def alt(qtbot, widget, key):
    """Alt+key through the window, as the platform delivers it (mnemonics and shortcuts are resolved there)."""
    from PySide6.QtGui import QKeySequence
    from PySide6.QtTest import QTest

    QTest.keySequence(widget.window().windowHandle(), QKeySequence(Qt.KeyboardModifier.AltModifier | key))
    qtbot.wait(10)


def next_by_tab(qtbot, wizard):
    """Tab to the Next button and press Space: what a keyboard user does."""
    from PySide6.QtWidgets import QApplication, QWizard

    nxt = wizard.button(QWizard.WizardButton.NextButton)
    for _ in range(40):
        if QApplication.focusWidget() is nxt:
            break
        qtbot.keyClick(QApplication.focusWidget() or wizard, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is nxt, "Next cannot be reached with Tab"
    qtbot.keyClick(nxt, Qt.Key.Key_Space)


def test_keyboard_only_from_welcome_to_prerequisites(wizard, qtbot, user):
    wizard.activateWindow()
    qtbot.waitActive(wizard)
    alt(qtbot, wizard, Qt.Key.Key_M)  # Project na&me
    from PySide6.QtWidgets import QApplication
    assert QApplication.focusWidget() is wizard.welcome.name
    qtbot.keyClicks(wizard.welcome.name, "Keyboard project")
    next_by_tab(qtbot, wizard)
    assert wizard.currentPage() is wizard.target
    user.plan.append((TARGET_ADMIN, True))
    alt(qtbot, wizard, Qt.Key.Key_S)  # &Sign in with the browser
    qtbot.waitUntil(lambda: wizard.target.state is PageState.OK, timeout=20000)
    alt(qtbot, wizard, Qt.Key.Key_U)  # Sign o&ut
    qtbot.waitUntil(lambda: wizard.target.identity is None and wizard.target.state is PageState.OK, timeout=20000)
    assert "Signed out" in wizard.target.status.message.text()
    user.plan.append((TARGET_ADMIN, True))
    alt(qtbot, wizard, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: wizard.target.state is PageState.OK and wizard.target.identity is not None,
                    timeout=20000)
    next_by_tab(qtbot, wizard)
    assert wizard.currentPage() is wizard.source
    user.plan.append((SOURCE_ADMIN, True))
    alt(qtbot, wizard, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: wizard.source.state is PageState.OK, timeout=20000)
    next_by_tab(qtbot, wizard)
    assert wizard.currentPage() is wizard.prereqs
    qtbot.waitUntil(lambda: wizard.prereqs.checks is not None, timeout=30000)


def test_every_control_has_an_accessible_name(wizard):
    for page in (wizard.welcome, wizard.target, wizard.source, wizard.prereqs, wizard.credential, wizard.scope,
                 wizard.plan, wizard.verify):
        for cls in (QAbstractButton, QLineEdit, QListWidget, QTreeWidget, QComboBox, QPlainTextEdit, QSpinBox):
            for w in page.findChildren(cls):
                if w.objectName().startswith("qt_"):
                    continue  # Qt's own parts of a composite control (a spin box's line edit)
                assert w.accessibleName() or (isinstance(w, QAbstractButton) and w.text()), \
                    f"{type(w).__name__} on {page.title()!r} has no accessible name"

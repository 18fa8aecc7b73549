"""The move run by keyboard alone, from the mapping to the monitor: Tab to Next + Space between pages, mnemonics
for every action, the launch confirmed with its mnemonic (Enter alone would answer "Don't")."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDateTimeEdit,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QTextBrowser,
)

from tests.engine.setup_support import run_engine
from tests.engine.test_setup import full
from tests.gui.test_batches_pages import MintedWorkspace, open_at, wait_refresh
from tests.gui.test_keyboard import alt, next_by_tab
from xtwizard.migration.setup import SetupOptions
from xtwizard.ui.widgets import PageState


def settle(qtbot, page, timeout=60000):
    qtbot.waitUntil(lambda: not page.busy, timeout=timeout)
    assert page.status.state is not PageState.ERROR, page.status.details


def test_keyboard_only_from_mapping_to_monitor(wizard, qtbot, sandbox, app_ctx):
    project = app_ctx.projects.create("Keyboard move")
    run_engine(sandbox, project, SetupOptions(scope_groups=["Migration Wave 1"]), full)  # the setup pages' work
    app_ctx.workspace = MintedWorkspace(sandbox, app_ctx.endpoints, project, app_ctx.data_dir)
    wizard.activateWindow()
    qtbot.waitActive(wizard)
    open_at(wizard, wizard.mapping)
    settle(qtbot, wizard.mapping)
    next_by_tab(qtbot, wizard)
    prep = wizard.prepare
    assert wizard.currentPage() is prep
    settle(qtbot, prep)
    alt(qtbot, wizard, Qt.Key.Key_A)  # &Apply these changes
    qtbot.waitUntil(lambda: prep.last is not None, timeout=120000)
    settle(qtbot, prep)
    next_by_tab(qtbot, wizard)
    ready = wizard.readiness
    assert wizard.currentPage() is ready
    settle(qtbot, ready)
    ready_users = sum(1 for r in ready.results if r.ready)
    assert ready_users
    next_by_tab(qtbot, wizard)

    launch = wizard.launch
    assert wizard.currentPage() is launch
    assert sum(len(w.users) for w in launch.waves) == ready_users
    alt(qtbot, wizard, Qt.Key.Key_O)  # Send status e-mails t&o
    assert QApplication.focusWidget() is launch.emails
    qtbot.keyClicks(launch.emails, "it@fabrikam.example")
    alt(qtbot, wizard, Qt.Key.Key_U)  # Switch over a&utomatically (a mnemonic click lasts 100 ms)
    qtbot.waitUntil(launch.complete_auto.isChecked)
    assert "switches each user over as soon as the copy is done" in launch.summary.toPlainText()
    alt(qtbot, wizard, Qt.Key.Key_M)  # back to Switch over &manually
    qtbot.waitUntil(launch.complete_manual.isChecked)
    alt(qtbot, wizard, Qt.Key.Key_L)  # &Launch…: the confirmation opens
    qtbot.waitUntil(lambda: launch.findChild(QMessageBox, "confirm") is not None, timeout=5000)
    box = launch.findChild(QMessageBox, "confirm")
    qtbot.waitUntil(lambda: box.windowHandle() is not None and box.isVisible(), timeout=5000)
    box.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is box)
    alt(qtbot, box, Qt.Key.Key_L)  # its &Launch button
    qtbot.waitUntil(lambda: bool(launch.launched) or launch.status.state is PageState.ERROR, timeout=60000)
    assert launch.launched == ["Wave 1"], launch.status.details
    wizard.activateWindow()  # the confirmation closed: back in the wizard, on Next
    qtbot.waitUntil(lambda: QApplication.activeWindow() is wizard)
    next_by_tab(qtbot, wizard)

    monitor = wizard.monitor
    assert wizard.currentPage() is monitor
    wait_refresh(monitor, qtbot, 0)
    assert len([u for u in monitor.users_model.records if u.batch == "Wave 1"]) == ready_users
    n = monitor.refreshes
    alt(qtbot, wizard, Qt.Key.Key_A)  # Skip &ahead one hour (the rehearsal's clock)
    wait_refresh(monitor, qtbot, n)
    assert any(u.stage in ("syncing", "synced") for u in monitor.users_model.records if u.batch == "Wave 1")
    alt(qtbot, wizard, Qt.Key.Key_W)  # Only users &with problems
    qtbot.waitUntil(monitor.only_problems.isChecked)
    alt(qtbot, wizard, Qt.Key.Key_I)  # F&ind
    assert QApplication.focusWidget() is monitor.search
    alt(qtbot, wizard, Qt.Key.Key_T)  # Ba&tches: the table takes the focus, arrows move in it
    assert QApplication.focusWidget() is monitor.batches_view


def inside_composite(w, page):
    """A part of a combo box, date field, line edit or table (its popup, clear button, corner button)."""
    parent = w.parent()
    while parent is not None and parent is not page:
        if isinstance(parent, (QComboBox, QDateTimeEdit, QLineEdit, QAbstractItemView)):
            return True
        parent = parent.parent()
    return False


def test_every_control_of_the_run_pages_has_an_accessible_name(wizard):
    for page in (wizard.launch, wizard.monitor, wizard.finish):
        for cls in (QAbstractButton, QLineEdit, QAbstractItemView, QComboBox, QPlainTextEdit, QTextBrowser,
                    QDateTimeEdit):
            for w in page.findChildren(cls):
                if w.objectName().startswith("qt_") or inside_composite(w, page):
                    continue  # Qt's own parts of a composite control
                assert w.accessibleName() or (isinstance(w, QAbstractButton) and w.text()), \
                    f"{type(w).__name__} on {page.title()!r} has no accessible name"


def test_each_mnemonic_is_used_once_per_page_and_leaves_back_and_next_alone(wizard):
    """Alt+letter reaches one control per page: with a letter used twice Alt only moves the focus between them
    (the new "Move again in a new batch…" and "Also purge the key vault…" included; the status panel's Cancel,
    Retry, Copy details and Open log folder count on every page); B and N are the wizard's Back and Next."""
    total = 0
    for page in (wizard.page(i) for i in wizard.pageIds()):
        letters = []
        for w in page.findChildren(QAbstractButton) + page.findChildren(QLabel):
            text = w.text().replace("&&", "")
            if "&" in text and not w.objectName().startswith("qt_"):
                letters.append(text[text.index("&") + 1].lower())
        assert len(letters) == len(set(letters)), f"{page.title()!r}: {sorted(letters)}"
        assert not {"b", "n"} & set(letters), page.title()
        total += len(letters)
    assert total >= 60

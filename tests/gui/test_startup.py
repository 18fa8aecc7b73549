"""The quick start (issue 7): only Welcome is built before the first paint, the rest right after."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from PySide6.QtWidgets import QWizard

from xtwizard.ui.wizard import MigrationWizard


def test_lazy_wizard_offers_next_and_builds_the_rest_on_demand(app_ctx, qtbot):
    wizard = MigrationWizard(app_ctx, lazy=True)
    qtbot.addWidget(wizard)
    wizard.show()
    assert wizard.pageIds() == [0]
    # Next, not Finish, even though the other pages do not exist yet
    assert wizard.button(QWizard.WizardButton.NextButton).isVisible()
    assert not wizard.button(QWizard.WizardButton.FinishButton).isVisible()
    qtbot.keyClicks(wizard.welcome.name, "Lazy project")
    wizard.next()  # before the event loop added the pages: validateCurrentPage builds them
    assert len(wizard.pageIds()) > 1
    assert wizard.currentPage() is wizard.target
    wizard.add_pages()  # a second call changes nothing
    assert wizard.pageIds().count(wizard.currentId()) == 1
    wizard.back()
    assert wizard.currentPage() is wizard.welcome


def test_measure_startup_paints_and_builds_the_pages(tmp_path):
    """`xtwizard --measure-startup` runs the real start path (run_wizard) and records the first paint."""
    out = tmp_path / "paint"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "xtwizard.cli", "--measure-startup", str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    painted = float(out.read_text())
    assert started < painted < time.monotonic()
    assert not done.stderr.strip()
    assert (tmp_path / "logs").is_dir()  # logging was set up first, in the measurer's scratch folder

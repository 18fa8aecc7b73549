"""The prerequisites checklist page against the demo tenants."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from tests.gui.conftest import StallProbe
from tests.gui.test_signin_pages import SOURCE_ADMIN, TARGET_ADMIN, sign_in, start_project
from xtwizard.migration.prereqs import Status
from xtwizard.ui.widgets import PageState


def to_prereqs(wizard, qtbot, user, source_account=SOURCE_ADMIN, probe=None):
    start_project(wizard, qtbot)
    sign_in(wizard, wizard.target, qtbot, user, TARGET_ADMIN)
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    sign_in(wizard, wizard.source, qtbot, user, source_account)
    assert wizard.source.state is PageState.OK, wizard.source.status.details
    if probe:
        probe.start()
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    page = wizard.prereqs
    assert wizard.currentPage() is page
    qtbot.waitUntil(lambda: page.checks is not None or page.state is PageState.ERROR, timeout=30000)
    if probe:
        probe.stop()
    return page


def test_true_checklist_for_the_demo_tenants(wizard, qtbot, user):
    probe = StallProbe()
    page = to_prereqs(wizard, qtbot, user, probe=probe)
    assert page.checks is not None, page.status.details
    status = {c.id: c.status for c in page.checks}
    assert status["distinct-tenants"] is Status.OK
    assert status["target-admin-roles"] is Status.OK and status["source-admin-roles"] is Status.OK
    assert status["target-customization"] is Status.ACTION  # the demo target is dehydrated
    assert status["migration-licenses"] is Status.OK
    assert status["azure-keyvault"] is Status.OK  # the target admin owns "Fabrikam Production"
    assert wizard.button(QWizard.WizardButton.FinishButton).isEnabled() or \
        wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    assert page.tree.topLevelItemCount() == len(page.checks)
    print(f"worst GUI stall during the checks: {probe.worst_ms} ms")
    assert probe.worst_ms < 100


def test_a_source_admin_without_roles_gets_a_blocker_with_the_fix(wizard, qtbot, user):
    page = to_prereqs(wizard, qtbot, user, source_account="helpdesk@northwind.example")
    check = page.check_by_id("source-admin-roles")
    assert check.status is Status.BLOCKER and "Exchange Administrator" in check.fix
    assert not wizard.button(QWizard.WizardButton.FinishButton).isEnabled()
    assert "must be fixed" in page.summary.text()


def test_recheck_after_throttling(wizard, qtbot, user, sandbox, http):
    page = to_prereqs(wizard, qtbot, user)
    http.post(sandbox.info["control_url"] + "/faults",
              json={"kind": "throttle", "service": "exchange", "count": 2, "retry_after": 0})
    qtbot.mouseClick(page.recheck, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.checks is not None, timeout=30000)
    assert page.check_by_id("target-customization").status is Status.ACTION

"""Welcome and the two sign-in pages, driven like a person would, against the sandbox."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from tests.gui.conftest import StallProbe
from xtwizard.ui.widgets import PageState

SOURCE_ADMIN = "admin@northwindtraders.onmicrosoft.com"
TARGET_ADMIN = "admin@fabrikaminc.onmicrosoft.com"


def start_project(wizard, qtbot, name="Northwind to Fabrikam"):
    page = wizard.welcome
    qtbot.keyClicks(page.name, name)
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    assert wizard.currentPage() is wizard.target


def sign_in(wizard, page, qtbot, user, account, consent=True, probe=None):
    user.plan.append((account, consent))
    qtbot.mouseClick(page.browser_btn, Qt.MouseButton.LeftButton)
    if probe:
        probe.start()  # from the click to the answer: all network, none of it may freeze the window
    qtbot.waitUntil(lambda: page.state in (PageState.OK, PageState.ERROR), timeout=20000)
    if probe:
        probe.stop()


def test_sign_in_to_both_tenants(wizard, qtbot, user, sandbox):
    start_project(wizard, qtbot)
    next_btn = wizard.button(QWizard.WizardButton.NextButton)
    assert not next_btn.isEnabled()
    probe = StallProbe()
    sign_in(wizard, wizard.target, qtbot, user, TARGET_ADMIN, probe=probe)
    assert wizard.target.state is PageState.OK, wizard.target.status.details
    assert "Fabrikam" in wizard.target.who.text() and TARGET_ADMIN in wizard.target.who.text()
    assert "memory only" in wizard.target.note.text()  # the fail keyring: the page says so
    assert next_btn.isEnabled()
    qtbot.mouseClick(next_btn, Qt.MouseButton.LeftButton)
    assert wizard.currentPage() is wizard.source
    sign_in(wizard, wizard.source, qtbot, user, SOURCE_ADMIN, probe=probe)
    worst = probe.worst_ms
    assert wizard.source.state is PageState.OK, wizard.source.status.details
    assert "Northwind Traders" in wizard.source.who.text()
    print(f"worst GUI stall during two sign-ins: {worst} ms")
    assert worst < 100
    project = wizard.ctx.workspace.project
    assert project.data["target"]["tenantId"] == sandbox.state.tenant("target").id
    assert project.data["source"]["tenantId"] == sandbox.state.tenant("source").id


def test_the_same_tenant_twice_is_refused(wizard, qtbot, user):
    start_project(wizard, qtbot)
    sign_in(wizard, wizard.target, qtbot, user, TARGET_ADMIN)
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    sign_in(wizard, wizard.source, qtbot, user, "exadmin@fabrikam.example")
    page = wizard.source
    assert page.state is PageState.ERROR
    assert "already signed in as the target" in page.status.message.text()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    assert page.browser_btn.isEnabled()  # the wizard stays usable: sign in again with the right account
    sign_in(wizard, page, qtbot, user, SOURCE_ADMIN)
    assert page.state is PageState.OK


def test_cancel_while_the_browser_is_open(wizard, qtbot, user):
    start_project(wizard, qtbot)
    page = wizard.target
    user.plan.append(None)  # the admin walks away from the browser
    qtbot.mouseClick(page.browser_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(user.opened), timeout=10000)
    assert page.state is PageState.BUSY and page.status.cancel.isVisible()
    qtbot.mouseClick(page.status.cancel, Qt.MouseButton.LeftButton)
    assert page.state is PageState.IDLE and "cancelled" in page.status.message.text()
    assert page.browser_btn.isEnabled() and not wizard.button(QWizard.WizardButton.NextButton).isEnabled()


def test_declined_consent_then_retry(wizard, qtbot, user):
    start_project(wizard, qtbot)
    page = wizard.target
    sign_in(wizard, page, qtbot, user, TARGET_ADMIN, consent=False)
    assert page.state is PageState.ERROR
    assert "declined" in page.status.message.text()
    assert "access_denied" not in page.status.message.text() or "What to do" in page.status.message.text()
    assert page.status.retry.isVisible() and page.status.copy.isVisible() and page.status.logs.isVisible()
    user.plan.append((TARGET_ADMIN, True))
    qtbot.mouseClick(page.status.retry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.state is PageState.OK, timeout=20000)


def test_network_down_during_sign_in(wizard, qtbot, user, sandbox, http):
    start_project(wizard, qtbot)
    # The browser reaches the sign-in page, but xtwizard's own connection (redeeming the code) drops.
    http.post(sandbox.info["control_url"] + "/faults",
              json={"kind": "drop", "service": "login", "method": "POST", "path": "*/oauth2/v2.0/token"})
    page = wizard.target
    user.plan.append((TARGET_ADMIN, True))
    qtbot.mouseClick(page.browser_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.state is PageState.ERROR, timeout=30000)
    assert "Could not reach Microsoft" in page.status.message.text()
    http.delete(sandbox.info["control_url"] + "/faults")
    user.plan.append((TARGET_ADMIN, True))
    qtbot.mouseClick(page.status.retry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.state is PageState.OK, timeout=20000)


def test_resume_a_project_keeps_who_signed_in_where(wizard, qtbot, user, app_ctx):
    start_project(wizard, qtbot, "Resumable")
    sign_in(wizard, wizard.target, qtbot, user, TARGET_ADMIN)
    pid = app_ctx.workspace.project.id
    summaries = app_ctx.projects.summaries()
    assert [s.id for s in summaries] == [pid]
    assert summaries[0].target == "fabrikaminc.onmicrosoft.com"


def test_the_real_cloud_wizard_reaches_sign_in_without_touching_the_network(qtbot, tmp_path):
    """Opening a project must not wait on Microsoft: msal's discovery happens when sign-in starts, off the GUI
    thread (this machine has no route to Microsoft, so any network call here would fail the test)."""
    import keyring.backends.fail

    from xtwizard.cloud.endpoints import PUBLIC_CLOUD
    from xtwizard.ui.context import AppContext
    from xtwizard.ui.runner import AsyncRunner
    from xtwizard.ui.wizard import MigrationWizard

    runner = AsyncRunner()
    try:
        ctx = AppContext(endpoints=PUBLIC_CLOUD, runner=runner, data_dir=tmp_path, log_dir=tmp_path,
                         open_browser=lambda url: None, keyring_backend=keyring.backends.fail.Keyring())
        w = MigrationWizard(ctx)
        qtbot.addWidget(w)
        w.show()
        start_project(w, qtbot, "Real tenants")
        assert w.target.state is PageState.IDLE and w.target.browser_btn.isEnabled()
        assert "(rehearsal)" not in w.windowTitle()
    finally:
        runner.shutdown()

"""The setup pages (issue 5) against the demo tenants: credential, scoping group, plan and apply, verify."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from tests.gui.test_prereqs_page import to_prereqs
from xtwizard.ui.widgets import PageState


def click_next(wizard, qtbot):
    btn = wizard.button(QWizard.WizardButton.NextButton)
    assert btn.isEnabled()
    qtbot.mouseClick(btn, Qt.MouseButton.LeftButton)


def to_plan(wizard, qtbot, user, *, vault=False, group="Migration Wave 1"):
    page = to_prereqs(wizard, qtbot, user)
    assert page.checks is not None
    click_next(wizard, qtbot)
    cred = wizard.credential
    qtbot.waitUntil(lambda: cred.status.state is not PageState.BUSY, timeout=20000)
    (cred.vault if vault else cred.secret).setChecked(True)
    click_next(wizard, qtbot)
    scope = wizard.scope
    qtbot.waitUntil(lambda: scope.groups.count() > 0 or scope.status.state is PageState.ERROR, timeout=20000)
    match = [scope.groups.item(i) for i in range(scope.groups.count()) if group in scope.groups.item(i).text()]
    assert match, [scope.groups.item(i).text() for i in range(scope.groups.count())]
    scope.groups.setCurrentItem(match[0])
    click_next(wizard, qtbot)
    plan = wizard.plan
    qtbot.waitUntil(lambda: plan.plan is not None or plan.status.state is PageState.ERROR, timeout=60000)
    assert plan.plan is not None, plan.status.details
    return plan


def test_secret_mode_from_plan_to_verified(wizard, qtbot, user, sandbox):
    plan = to_plan(wizard, qtbot, user)
    text = plan.plan_view.toPlainText()
    assert "Target tenant:" in text and "Source tenant:" in text
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()  # nothing applied yet
    before = len(sandbox.state.tenant("target").col("applications"))
    qtbot.mouseClick(plan.apply_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: plan.applied or plan.status.state is PageState.ERROR, timeout=120000)
    assert plan.applied, plan.status.details
    assert "nothing to change" in plan.status.message.text()
    assert len(sandbox.state.tenant("target").col("applications")) == before + 1
    click_next(wizard, qtbot)
    verify = wizard.verify
    qtbot.waitUntil(lambda: verify.checks is not None or verify.status.state is PageState.ERROR, timeout=60000)
    assert verify.checks is not None, verify.status.details
    failed = [c.text() for c in verify.checks if not c.ok and not c.warning]
    assert failed == []
    assert "Ready to migrate" in verify.status.message.text()
    journal = list(wizard.ctx.workspace.project.entries())
    assert journal and all(e.phase in ("intent", "done") for e in journal)
    assert not wizard.ctx.workspace.project.unfinished()


def test_csv_of_members_fills_the_add_box(wizard, qtbot, user):
    page = to_prereqs(wizard, qtbot, user)
    assert page.checks is not None
    click_next(wizard, qtbot)
    click_next(wizard, qtbot)
    scope = wizard.scope
    n = scope.add_from_csv("EmailAddress,Other\nalice@northwind.example,x\nben.carter@northwind.example,y\n")
    assert n == 2
    assert scope.add.toPlainText().splitlines() == ["alice@northwind.example", "ben.carter@northwind.example"]
    assert scope.add_from_csv("name\nnobody\n") == 0 and "EmailAddress" in scope.status.message.text()


def test_consent_kit_refused_then_given_by_the_source_global_admin(wizard, qtbot, user, sandbox):
    from tests.gui.test_prereqs_page import to_prereqs as _to_prereqs
    from tests.sandbox.browser import ScriptedBrowser

    page = _to_prereqs(wizard, qtbot, user, source_account="it@northwind.example")  # Exchange admin, not GA
    assert page.check_by_id("source-consent").status.value == "warning"
    click_next(wizard, qtbot)
    qtbot.waitUntil(lambda: wizard.credential.status.state is not PageState.BUSY, timeout=20000)
    click_next(wizard, qtbot)
    scope = wizard.scope
    qtbot.waitUntil(lambda: scope.groups.count() > 0, timeout=20000)
    scope.groups.setCurrentRow(next(i for i in range(scope.groups.count())
                                    if "Migration Wave 1" in scope.groups.item(i).text()))
    click_next(wizard, qtbot)
    plan = wizard.plan
    qtbot.waitUntil(lambda: plan.plan is not None, timeout=60000)
    qtbot.mouseClick(plan.apply_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: plan.status.state is PageState.ERROR, timeout=120000)
    assert "not approved" in plan.status.message.text()
    assert plan.kit.isVisible() and "Mailbox.Migration" in plan.kit.toPlainText()
    consent_url = plan.engine.consent_url()
    assert consent_url in plan.kit.toPlainText()
    # The source's Global Administrator first refuses...
    with ScriptedBrowser(sandbox.ca_path) as b:
        refused = b.sign_in(consent_url, account="admin@northwindtraders.onmicrosoft.com", consent=False)
    assert refused.params.get("error") == "access_denied"
    qtbot.mouseClick(plan.status.retry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: plan.status.state is PageState.ERROR, timeout=120000)
    assert "not approved" in plan.status.message.text()
    # ...then approves; Check again finishes the setup.
    with ScriptedBrowser(sandbox.ca_path) as b:
        given = b.sign_in(consent_url, account="admin@northwindtraders.onmicrosoft.com", consent=True)
    assert given.params.get("admin_consent") == "True"
    qtbot.mouseClick(plan.status.retry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: plan.applied or plan.status.state is PageState.ERROR, timeout=120000)
    assert plan.applied, plan.status.details


def test_key_vault_mode_from_plan_to_verified(wizard, qtbot, user, sandbox, http):
    http.patch(sandbox.info["control_url"] + "/settings", json={"certificate_issue_seconds": 0, "arm_lro_seconds": 0})
    plan = to_plan(wizard, qtbot, user, vault=True)
    text = plan.plan_view.toPlainText()
    assert "vault" in text.lower()
    qtbot.mouseClick(plan.apply_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: plan.applied or plan.status.state is PageState.ERROR, timeout=180000)
    assert plan.applied, plan.status.details
    target = sandbox.state.tenant("target")
    assert target.col("arm.vaults") and target.col("kv.certificates")
    app = next(iter(target.col("applications").values()))
    assert app.get("keyCredentials") and not app.get("passwordCredentials")
    click_next(wizard, qtbot)
    verify = wizard.verify
    qtbot.waitUntil(lambda: verify.checks is not None or verify.status.state is PageState.ERROR, timeout=60000)
    assert verify.checks is not None, verify.status.details
    assert [c.text() for c in verify.checks if not c.ok and not c.warning] == []

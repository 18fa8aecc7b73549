"""Sign-in faults a person meets: device code, a revoked saved sign-in, a locked keyring, and afterwards no
token or secret on disk."""

from __future__ import annotations

import threading

import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from tests.gui.test_signin_pages import SOURCE_ADMIN, TARGET_ADMIN, sign_in, start_project
from tests.sandbox.browser import ScriptedBrowser
from xtwizard.sandbox.directory import revoke_user_sessions
from xtwizard.ui.app import setup_logging
from xtwizard.ui.widgets import PageState
from xtwizard.ui.wizard import MigrationWizard


class MemoryKeyring(KeyringBackend):
    """A keyring that lives as long as the test (the real Secret Service is tested in test_tokenstore.py)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.locked = False

    def get_password(self, service, username):
        if self.locked:
            raise keyring.errors.KeyringLocked("locked")
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        if self.locked:
            raise keyring.errors.KeyringLocked("locked")
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        if (service, username) not in self.items:
            raise keyring.errors.PasswordDeleteError(username)
        del self.items[(service, username)]


def new_wizard(app_ctx, qtbot):
    """Another window on the same data (as after closing and reopening xtwizard)."""
    w = MigrationWizard(app_ctx)
    qtbot.addWidget(w)
    w.show()
    return w


def resume_first(w, qtbot):
    w.welcome.resume.setChecked(True)
    qtbot.mouseClick(w.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)


def test_device_code_sign_in_from_the_page(wizard, qtbot, sandbox):
    start_project(wizard, qtbot)
    page = wizard.target
    qtbot.mouseClick(page.code_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.code.isVisible() and bool(page._user_code), timeout=10000)
    assert "enter the code" in page.code.text()
    url = page.code.text().split("href='")[1].split("'")[0]
    outcome = []
    threading.Thread(target=lambda: outcome.append(
        ScriptedBrowser(sandbox.ca_path).device_login(url, page._user_code, account=TARGET_ADMIN)), daemon=True).start()
    qtbot.waitUntil(lambda: page.state in (PageState.OK, PageState.ERROR), timeout=30000)
    assert page.state is PageState.OK, page.status.details
    assert outcome == ["approved"]


def test_revoked_saved_sign_in_asks_to_sign_in_again(app_ctx, qtbot, user, sandbox):
    app_ctx.keyring_backend = MemoryKeyring()
    w = new_wizard(app_ctx, qtbot)
    start_project(w, qtbot, "Revoked")
    sign_in(w, w.target, qtbot, user, TARGET_ADMIN)
    pid = app_ctx.workspace.project.id
    t = sandbox.state.tenant("target")
    with sandbox.state.lock:
        revoke_user_sessions(sandbox.state, t, t.user(TARGET_ADMIN)["id"])
    # the technician comes back a week later: a new window, Resume
    w2 = new_wizard(app_ctx, qtbot)
    assert pid in w2.welcome.project_ids and w2.welcome.list.count() == len(w2.welcome.project_ids)
    resume_first(w2, qtbot)
    page = w2.target
    qtbot.waitUntil(lambda: page.state is not PageState.BUSY, timeout=20000)
    assert page.identity is None
    assert "no longer works" in page.status.message.text()
    assert page.browser_btn.isEnabled()


def test_saved_sign_in_is_resumed_when_it_still_works(app_ctx, qtbot, user):
    app_ctx.keyring_backend = MemoryKeyring()
    w = new_wizard(app_ctx, qtbot)
    start_project(w, qtbot, "Kept")
    sign_in(w, w.target, qtbot, user, TARGET_ADMIN)
    w2 = new_wizard(app_ctx, qtbot)
    resume_first(w2, qtbot)
    qtbot.waitUntil(lambda: w2.target.state is PageState.OK, timeout=20000)
    assert TARGET_ADMIN in w2.target.who.text()
    assert user.opened == [user.opened[0]]  # no second browser prompt


def test_locked_keyring_keeps_the_session_usable_and_says_so(app_ctx, qtbot, user):
    kr = MemoryKeyring()
    kr.locked = True
    app_ctx.keyring_backend = kr
    w = new_wizard(app_ctx, qtbot)
    start_project(w, qtbot)
    sign_in(w, w.target, qtbot, user, TARGET_ADMIN)
    assert w.target.state is PageState.OK
    assert "locked" in w.target.note.text() and "memory only" in w.target.note.text()


def test_resume_refuses_an_account_of_another_tenant(app_ctx, qtbot, user):
    w = new_wizard(app_ctx, qtbot)
    start_project(w, qtbot, "Pinned")
    sign_in(w, w.target, qtbot, user, TARGET_ADMIN)
    w2 = new_wizard(app_ctx, qtbot)
    resume_first(w2, qtbot)
    sign_in(w2, w2.target, qtbot, user, SOURCE_ADMIN)  # the wrong company's admin
    assert w2.target.state is PageState.ERROR
    assert "This project's target is Fabrikam" in w2.target.status.message.text()


@pytest.fixture
def issued(sandbox, monkeypatch):
    """Every token and refresh token the sandbox hands out during the test."""
    from xtwizard.sandbox import tokens as tokmod
    from xtwizard.sandbox.backends import identity

    seen: list[str] = []
    for name in ("access_token", "id_token"):
        original = getattr(sandbox.issuer, name)

        def wrapper(*a, _orig=original, **kw):
            value = _orig(*a, **kw)
            seen.append(value)
            return value

        monkeypatch.setattr(sandbox.issuer, name, wrapper)
    original_rt = tokmod.new_refresh_token

    def rt():
        value = original_rt()
        seen.append(value)
        return value

    monkeypatch.setattr(identity, "new_refresh_token", rt)
    return seen


def test_no_token_on_disk_after_a_full_run(app_ctx, qtbot, user, issued, tmp_path):
    app_ctx.keyring_backend = MemoryKeyring()  # tokens are persisted: sealed files must hold none in clear
    import logging
    undo = setup_logging(app_ctx.log_dir, level=logging.DEBUG)  # the worst case: everything that may log, logs
    try:
        _full_run(app_ctx, qtbot, user, issued, tmp_path)
    finally:
        undo()


def _full_run(app_ctx, qtbot, user, issued, tmp_path):
    import logging

    w = new_wizard(app_ctx, qtbot)
    start_project(w, qtbot)
    sign_in(w, w.target, qtbot, user, TARGET_ADMIN)
    qtbot.mouseClick(w.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    sign_in(w, w.source, qtbot, user, SOURCE_ADMIN)
    qtbot.mouseClick(w.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.prereqs.checks is not None, timeout=30000)
    for h in logging.getLogger().handlers:
        h.flush()
    assert len(issued) > 10
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".cache" for p in files) and any(p.name == "xtwizard.log" for p in files)
    leaks = []
    for p in files:
        blob = p.read_bytes()
        for token in issued:
            for piece in {token, token.split(".")[-1]} if token.count(".") == 2 else {token}:
                if piece.encode() in blob:
                    leaks.append((p.name, piece[:12]))
    assert leaks == []

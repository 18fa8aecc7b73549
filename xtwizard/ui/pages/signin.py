"""Sign in to one tenant (target first, as Microsoft's procedure configures the target first)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton

from ..context import AppContext
from ..lazy import explain
from ..runner import Operation
from .base import BasePage

if TYPE_CHECKING:
    from ...migration.workspace import TenantIdentity

TEXT = {
    "target": ("Sign in to the target tenant",
               "The target is the company the mailboxes move to. Sign in with a Global Administrator of that "
               "company (or an account that is both Application and Exchange Administrator): xtwizard creates the "
               "migration app there and sets up Exchange Online."),
    "source": ("Sign in to the source tenant",
               "The source is the company the mailboxes move from. Sign in with a Global Administrator of that "
               "company: it consents to the migration app and lets the chosen mailboxes move out. If that is "
               "someone else, they can sign in on this computer now."),
}


class SignInPage(BasePage):
    def __init__(self, ctx: AppContext, slot: str) -> None:
        super().__init__(ctx, *TEXT[slot])
        self.slot = slot
        self.identity: TenantIdentity | None = None
        self._op: Operation | None = None
        self._cancel = threading.Event()
        self._user_code = ""
        self.who = QLabel("Not signed in.")
        self.who.setWordWrap(True)
        self.who.setAccessibleName(f"{slot.capitalize()} sign-in status")
        self.body.addWidget(self.who)
        row = QHBoxLayout()
        self.browser_btn = QPushButton("&Sign in with the browser")
        self.browser_btn.setAccessibleName(f"Sign in to the {slot} tenant with the web browser")
        self.code_btn = QPushButton("Use a c&ode instead")
        self.code_btn.setAccessibleName("Sign in with a device code on another device")
        self.out_btn = QPushButton("Sign o&ut")
        self.out_btn.setAccessibleName(f"Sign out of the {slot} tenant")
        for b in (self.browser_btn, self.code_btn, self.out_btn):
            row.addWidget(b)
        row.addStretch(1)
        self.body.addLayout(row)
        self.code = QLabel()
        self.code.setWordWrap(True)
        self.code.setAccessibleName("Device code instructions")
        self.code.setTextInteractionFlags(self.code.textInteractionFlags()
                                          | self.code.textInteractionFlags().TextSelectableByMouse)
        self.copy_code = QPushButton("Cop&y code")
        self.copy_code.setAccessibleName("Copy the device code")
        self.body.addWidget(self.code)
        self.body.addWidget(self.copy_code)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setAccessibleName("Note about how the sign-in is kept")
        self.body.addWidget(self.note)
        self.body.addStretch(1)
        self.browser_btn.clicked.connect(self.sign_in_browser)
        self.code_btn.clicked.connect(self.sign_in_code)
        self.out_btn.clicked.connect(self.sign_out)
        self.copy_code.clicked.connect(lambda: QGuiApplication.clipboard().setText(self._user_code))
        self._last = self.sign_in_browser
        self._show_code(None)

    @property
    def ws(self) -> Any:
        assert self.ctx.workspace is not None, "the Welcome page opens a project first"
        return self.ctx.workspace

    # --- state ------------------------------------------------------------------------------------------
    def initializePage(self) -> None:
        self.identity = self.ws.identities.get(self.slot)
        if self.identity is not None:
            self._signed_in(self.identity)
            return
        self._set_buttons(busy=False)
        self.who.setText("Not signed in.")
        self.status.set_idle("")
        if self.ws.sessions[self.slot].account is not None:
            self.status.set_busy("Checking the saved sign-in…")
            self._run(lambda: self.ws.resume(self.slot), self._resumed)

    def isComplete(self) -> bool:
        return self.identity is not None and self._op is None

    def _set_buttons(self, *, busy: bool) -> None:
        signed = self.identity is not None
        self.browser_btn.setEnabled(not busy and not signed)
        self.code_btn.setEnabled(not busy and not signed)
        self.out_btn.setEnabled(not busy and signed)

    def _show_code(self, flow: dict[str, Any] | None) -> None:
        self.code.setVisible(flow is not None)
        self.copy_code.setVisible(flow is not None)
        if flow is not None:
            self._user_code = str(flow["user_code"])
            url = str(flow["verification_uri"])
            self.code.setText(f"On any device, open <a href='{url}'>{url}</a> and enter the code "
                              f"<b style='font-size:large'>{self._user_code}</b>. Use a code only when this computer "
                              "cannot open a browser: many organizations block it.")
            self.code.setOpenExternalLinks(True)

    def _run(self, work: Any, done: Any) -> None:
        self._cancel = threading.Event()
        self._set_buttons(busy=True)
        self._op = self.ctx.runner.submit(work, on_done=done, on_error=self._failed, key=f"signin-{self.slot}")
        self.changed()

    # --- actions ----------------------------------------------------------------------------------------
    def sign_in_browser(self) -> None:
        self._last = self.sign_in_browser
        self._show_code(None)
        self.status.set_busy("Waiting for you to finish signing in in the web browser that xtwizard opened…")
        cancel = self._cancel = threading.Event()
        self._op = self.ctx.runner.submit(lambda: self.ws.sign_in_browser(self.slot, self.ctx.open_browser, cancel),
                                          on_done=self._signed_in, on_error=self._failed, key=f"signin-{self.slot}")
        self._set_buttons(busy=True)
        self.changed()

    def sign_in_code(self) -> None:
        self._last = self.sign_in_code
        self.status.set_busy("Asking Microsoft for a sign-in code…")
        self._run(lambda: self.ws.start_device_code(self.slot), self._got_code)

    def _got_code(self, flow: dict[str, Any]) -> None:
        self._show_code(flow)
        self.status.set_busy("Waiting for the code to be entered and the sign-in finished on the other device…")
        cancel = self._cancel = threading.Event()
        self._op = self.ctx.runner.submit(lambda: self.ws.finish_device_code(self.slot, flow, cancel),
                                          on_done=self._signed_in, on_error=self._failed, key=f"signin-{self.slot}")

    def sign_out(self) -> None:
        self.identity = None
        self.status.set_busy("Signing out…")
        self._run(lambda: self.ws.sign_out(self.slot), lambda _: self._signed_out())

    def _signed_out(self) -> None:
        self._op = None
        self.who.setText("Not signed in.")
        self.note.setText("")
        self.status.set_ok(f"Signed out of the {self.slot} tenant.")
        self._set_buttons(busy=False)
        self.changed()

    def cancel(self) -> None:
        self._cancel.set()
        if self._op is not None:
            self._op.cancel()
            self._op = None
            self._show_code(None)
            self.status.set_idle("Sign-in cancelled." if self.identity is None else "")
            self._set_buttons(busy=False)
            self.changed()

    def retry(self) -> None:
        self._last()

    # --- results ----------------------------------------------------------------------------------------
    def _resumed(self, ident: TenantIdentity | None) -> None:
        if ident is None:
            self._op = None
            self.status.set_idle("The saved sign-in no longer works; please sign in again.")
            self._set_buttons(busy=False)
            self.changed()
        else:
            self._signed_in(ident)

    def _signed_in(self, ident: TenantIdentity) -> None:
        self._op = None
        self.identity = ident
        self._show_code(None)
        self.who.setText(f"Signed in as <b>{ident.username}</b> to <b>{ident.display_name}</b> "
                         f"({ident.initial_domain}, tenant id {ident.tenant_id}).")
        note = self.ws.token_note(self.slot)
        self.note.setText(note or "")
        self.status.set_ok(f"Signed in to the {self.slot} tenant.")
        self._set_buttons(busy=False)
        self.changed()

    def _failed(self, exc: BaseException) -> None:
        self._op = None
        self._show_code(None)
        self.status.set_error(explain(exc))
        self._set_buttons(busy=False)
        self.changed()

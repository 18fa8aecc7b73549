"""What the wizard's pages share: the runner, where things live, how to open a browser, the open project."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices

from ..cloud.endpoints import CloudEndpoints
from ..migration.project import ProjectStore
from .runner import AsyncRunner

if TYPE_CHECKING:  # imported lazily: msal, httpx and the Azure SDK are not needed for the first page
    from keyring.backend import KeyringBackend

    from ..migration.workspace import Workspace


class SystemBrowser(QObject):
    """Opens URLs in the user's browser; callable from any thread (the sign-in runs off the GUI thread)."""

    _open = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._open.connect(self._do_open)

    def __call__(self, url: str) -> None:
        self._open.emit(url)

    @Slot(str)
    def _do_open(self, url: str) -> None:
        QDesktopServices.openUrl(QUrl(url))


@dataclass
class AppContext:
    endpoints: CloudEndpoints
    runner: AsyncRunner
    data_dir: Path
    log_dir: Path
    open_browser: Callable[[str], None]
    demo: bool = False
    keyring_backend: KeyringBackend | None = None
    client_id: str | None = None  # an organisation's own public client; None = the documented default
    workspace: Workspace | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def projects(self) -> ProjectStore:
        return ProjectStore(self.data_dir / "projects")

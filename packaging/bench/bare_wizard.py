"""The start-time baseline: a bare PySide6 QWizard with one page, frozen with the same spec as xtwizard
(XTW_ENTRY=this file XTW_NAME=bare-wizard).  `bare-wizard --measure-startup FILE` writes the monotonic
clock at the first paint of its page to FILE and exits, exactly like `xtwizard --measure-startup`."""

import sys
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWizard, QWizardPage


class FirstPaint(QObject):
    def __init__(self, out: Path, app: QApplication) -> None:
        super().__init__()
        self.out, self.app, self.done = out, app, False

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self.done:
            self.done = True
            QTimer.singleShot(0, self.record)
        return False

    def record(self) -> None:
        self.out.write_text(f"{time.monotonic():.6f}\n", encoding="utf-8")
        self.app.quit()


def main() -> int:
    app = QApplication(sys.argv)
    wizard = QWizard()
    wizard.setWizardStyle(QWizard.WizardStyle.ModernStyle)
    page = QWizardPage()
    page.setTitle("Welcome")
    layout = QVBoxLayout(page)
    layout.addWidget(QLabel("A bare QWizard: the start-time baseline."))
    wizard.addPage(page)
    if "--measure-startup" in sys.argv:
        probe = FirstPaint(Path(sys.argv[sys.argv.index("--measure-startup") + 1]), app)
        page.installEventFilter(probe)
    wizard.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())

"""Render resources/xtwizard.svg to the PNG (Linux .desktop, macOS .icns source) and ICO (Windows) icons.

    python packaging/render_icons.py      # rewrites resources/xtwizard.png and resources/xtwizard.ico
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ROOT / "resources" / "xtwizard.svg"))
    if not renderer.isValid():
        raise SystemExit("resources/xtwizard.svg could not be read")
    for size, name, fmt in ((256, "xtwizard.png", "PNG"), (256, "xtwizard.ico", "ICO")):
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        if not image.save(str(ROOT / "resources" / name), fmt):
            raise SystemExit(f"could not write resources/{name}")
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The screenshot script keeps working (the README's pictures come from it)."""

from __future__ import annotations

from PySide6.QtGui import QImage

from tests.gui.screenshots import render


def test_every_page_renders_in_the_dark_palette(qapp, tmp_path):
    files = render(tmp_path, palettes=("dark",))
    assert [f.name for f in files] == ["1-welcome-dark.png", "2-sign-in-target-dark.png", "3-sign-in-source-dark.png",
                                      "4-prerequisites-dark.png", "5-credential-dark.png", "6-scoping-group-dark.png",
                                      "7-plan-dark.png", "8-verify-dark.png", "9-mapping-dark.png", "10-prepare-dark.png",
                                      "11-readiness-dark.png", "12-readiness-fixes-dark.png",
                                      "13-launch-dark.png", "14-monitor-dark.png", "15-finish-dark.png"]
    for f in files:
        img = QImage(str(f))
        assert img.width() >= 800 and img.height() >= 600
        # dark palette really applied: the top-left pixel is the dark window colour, not white
        assert img.pixelColor(2, img.height() - 3).lightness() < 100

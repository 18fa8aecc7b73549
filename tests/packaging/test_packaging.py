"""Fast checks of the packaging recipe and the in-package self-test (the frozen build itself is checked by
.ci/run through packaging/frozen_selftest.sh)."""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest

from xtwizard import selftest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "packaging" / "xtwizard.spec"


def _spec_constant(name: str) -> object:
    tree = ast.parse(SPEC.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(name)


def _qt_modules_used() -> set[str]:
    used = set()
    for path in (ROOT / "xtwizard").rglob("*.py"):
        used |= set(re.findall(r"PySide6\.(Qt\w+)", path.read_text(encoding="utf-8")))
    return used


def test_pruning_keeps_every_qt_module_we_import() -> None:
    drop = _spec_constant("DROP_PARTS")
    unused = _spec_constant("QT_UNUSED")
    assert isinstance(drop, tuple) and isinstance(unused, list)
    used = _qt_modules_used() | {"QtSvg"}  # QtSvg: the SVG window icon (imageformats/iconengines plugins)
    assert {"QtCore", "QtGui", "QtWidgets"} <= used
    for module in used:
        assert module not in unused, f"{module} is imported by xtwizard but excluded by the spec"
        for lib in (f"/libQt6{module[2:]}.so.6", f"/Qt6{module[2:]}.dll", f"/Qt{module[2:]}.framework"):
            assert not any(part in lib for part in drop), f"{lib} would be pruned"
    needed = ["/platforms/libqxcb.so", "/platforms/libqoffscreen.so", "/platforms/libqwayland.so",
              "/platforms/qwindows.dll", "/platforms/libqcocoa.dylib", "/imageformats/libqsvg.so",
              "/imageformats/qsvg.dll", "/iconengines/libqsvgicon.so", "/styles/qmodernwindowsstyle.dll",
              "/platformthemes/libqxdgdesktopportal.so", "/wayland-shell-integration/libxdg-shell.so"]
    for path in needed:
        assert not any(part in path for part in drop), f"{path} would be pruned"


def test_desktop_entry_and_icons() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(ROOT / "resources" / "xtwizard.desktop", encoding="utf-8")
    main = entry["Desktop Entry"]
    assert main["Type"] == "Application" and main["Exec"].split()[0] == "xtwizard"
    assert main["Icon"] == "xtwizard" and main["Terminal"] == "false"
    assert (ROOT / "resources" / "xtwizard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (ROOT / "resources" / "xtwizard.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"


def test_secret_scan_catches_tokens_and_passes_clean_logs(tmp_path: Path) -> None:
    clean = tmp_path / "clean.log"
    clean.write_text("graph GET /organization -> 200 in 5 ms request-id=abc\n", encoding="utf-8")
    assert selftest._scan_for_secrets(clean) == []
    dirty = tmp_path / "dirty.log"
    dirty.write_text("Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.eyJhdWQiOiJodHRwczovL2dyYXBo\n",
                     encoding="utf-8")
    assert selftest._scan_for_secrets(dirty)
    dirty.write_text('{"refresh_token": "0.AAAAabcdefghijklmnop"}\n', encoding="utf-8")
    assert selftest._scan_for_secrets(dirty)


@pytest.mark.slow
def test_self_test_steps_against_the_sandbox(tmp_path: Path) -> None:
    """Everything but the Qt step, in process: keyring, token store, PKCS#12, truststore, both sign-ins through
    the in-package scripted browser, and one setup step."""
    test = selftest.SelfTest(tmp_path)
    try:
        for step in (test.keyring_backend, test.token_store, test.cryptography, test.tls_context, test.sandbox):
            assert step()
        detail = test.sign_in_and_setup()
        assert "both tenants signed in" in detail and "applied:" in detail
    finally:
        sb = getattr(test, "sb", None)
        if sb is not None:
            sb.stop()
    assert not list(tmp_path.rglob("*.cache")), "the self-test's token caches must be removed"

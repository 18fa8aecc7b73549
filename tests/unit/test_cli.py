"""`xtwizard --demo` starts the simulated tenants and says where they listen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def test_demo_console_starts_sandbox_and_stops_on_ctrl_c(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["XDG_DATA_HOME"] = str(tmp_path)  # the rehearsal state goes here, not into the real profile
    proc = subprocess.Popen([sys.executable, "-m", "xtwizard.cli", "--demo", "--console"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl+C" in line:
                break
        text = "".join(lines)
        assert "simulated Microsoft 365 tenants are running" in text
        assert "Sign-in (authority):  https://127.0.0.1:" in text
        assert "admin@fabrikaminc.onmicrosoft.com  (Global Administrator)" in text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert (tmp_path / "xtwizard" / "rehearsal" / "sandbox" / "state.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_without_a_display_the_cli_says_what_works_instead():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "xtwizard.cli"], capture_output=True, text=True, timeout=30,
                          env=env)
    assert proc.returncode == 2
    assert "xtwizard --demo" in proc.stderr

"""Headless sub-commands: the wizard's engines without the GUI, for MSP scripting and for tests.

`xtwizard <command> --help` for each.  Every command opens a project, signs in to both tenants (device code
against real tenants; ROPC with passwords from the environment against the sandbox — see `common.py`), prints
what it will do before doing it, and exits non-zero with a readable report (what / why / what to do).
Tokens stay in memory: nothing is written to the keyring or the disk by these commands.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

# command → (module in this package, one line for `xtwizard --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "setup": ("setup", "create or adopt the app, credential, consent, endpoint, relationships and scoping group"),
}


def main(command: str, argv: list[str]) -> int:
    module = importlib.import_module(f"{__name__}.{COMMANDS[command][0]}")
    return cast(Callable[[list[str]], int], module.main)(argv)


def epilog() -> str:
    return "Headless commands (each has --help):\n" + "\n".join(
        f"  xtwizard {name:<9} {summary}" for name, (_, summary) in COMMANDS.items())

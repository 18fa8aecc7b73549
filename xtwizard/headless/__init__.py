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

# command → (module in this package [":function", default main], one line for `xtwizard --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "setup": ("setup", "create or adopt the app, credential, consent, endpoint, relationships and scoping group"),
    "users": ("users:users_main", "list the source mailboxes and map them to target addresses (auto or CSV)"),
    "prepare": ("users:prepare_main", "create or update the target MailUsers of the mapped users (plan, then apply)"),
    "check": ("users:check_main", "check every mapped user's readiness; --fix applies the safe fixes; --dry-run"),
    "migrate": ("batches:migrate_main", "plan waves and launch migration batches; start, stop, complete, retry, remove"),
    "status": ("batches:status_main", "every batch and user, each failure with what to do (paged list calls)"),
    "report": ("batches:report_main", "readiness, progress, final and audit-log reports (HTML and CSV)"),
    "teardown": ("batches:teardown_main", "remove what the setup made once the move is done (--yes to apply)"),
}


def main(command: str, argv: list[str]) -> int:
    name, _, function = COMMANDS[command][0].partition(":")  # "module" or "module:function"
    module = importlib.import_module(f"{__name__}.{name}")
    return cast(Callable[[list[str]], int], getattr(module, function or "main"))(argv)


def epilog() -> str:
    return "Headless commands (each has --help):\n" + "\n".join(
        f"  xtwizard {name:<9} {summary}" for name, (_, summary) in COMMANDS.items())

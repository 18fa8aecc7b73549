"""Every change to a tenant is journaled before and after (DESIGN "The project journal is the truth").

`SetupJournal` wraps `MigrationProject.begin/finish` for the setup steps and holds the crash-test hook:
with `XTWIZARD_CRASH_AFTER_JOURNAL=N` in the environment, the process kills itself (SIGKILL, no cleanup)
right after its N-th journal write, so that a test can resume from every journaled point.  With
`XTWIZARD_CRASH_BEFORE_JOURNAL=N` it dies just before the N-th write instead: for an outcome, that is a
change made in the tenant that the journal has not recorded yet (resume must find and adopt it).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from ..project import JournalEntry, MigrationProject

CRASH_ENV = "XTWIZARD_CRASH_AFTER_JOURNAL"
CRASH_BEFORE_ENV = "XTWIZARD_CRASH_BEFORE_JOURNAL"


def _env_int(name: str) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.isdigit() else 0


class SetupJournal:
    def __init__(self, project: MigrationProject) -> None:
        self.project = project
        self.writes = 0
        self._crash_after = _env_int(CRASH_ENV)
        self._crash_before = _env_int(CRASH_BEFORE_ENV)

    def _writing(self) -> None:
        if self._crash_before and self.writes + 1 >= self._crash_before:
            os.kill(os.getpid(), signal.SIGKILL)

    def _wrote(self) -> None:
        self.writes += 1
        if self._crash_after and self.writes >= self._crash_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def begin(self, tenant: str, step: str, action: str, target: dict[str, Any],
              detail: dict[str, Any] | None = None) -> str:
        self._writing()
        op = self.project.begin(tenant=tenant, step=step, action=action, target=target, detail=detail)
        self._wrote()
        return op

    def finish(self, op: str, *, ok: bool, target: dict[str, Any] | None = None,
               detail: dict[str, Any] | None = None) -> None:
        self._writing()
        self.project.finish(op, ok=ok, target=target, detail=detail)
        self._wrote()

    def known(self) -> dict[str, dict[str, Any]]:
        """What the journal says exists, by object key (the last successful create/adopt/update wins; a
        successful remove forgets it)."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.project.entries():
            key = str(e.target.get("key", ""))
            if e.phase != "done" or not key:
                continue
            if e.action.startswith("remove"):
                out.pop(key, None)
            else:
                out[key] = {**out.get(key, {}), **e.target}
        return out

    def unfinished(self) -> list[JournalEntry]:
        return [e for e in self.project.unfinished() if e.target.get("key")]

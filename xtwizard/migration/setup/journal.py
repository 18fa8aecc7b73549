"""Every change to a tenant is journaled before and after (DESIGN "The project journal is the truth").

`SetupJournal` wraps `MigrationProject.begin/finish` for the setup steps and holds the crash-test hook:
with `XTWIZARD_CRASH_AFTER_JOURNAL=N` in the environment, the process kills itself (SIGKILL, no cleanup)
right after its N-th journal write, so that a test can resume from every journaled point.  With
`XTWIZARD_CRASH_BEFORE_JOURNAL=N` it dies just before the N-th write instead: for an outcome, that is a
change made in the tenant that the journal has not recorded yet (resume must find and adopt it).  What the
hook does is `SetupJournal.crash` (in-process tests replace it with an exception).

The teardown (step "teardown", `migration/batches`) journals its removals under the setup's object keys, so
that the setup forgets what teardown removed.  An intent a crash left open is closed on resume by `resolve`,
from whether its object is in the tenant now: a change was made when the object is there, a teardown's
removal when it is gone.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from ..project import JournalEntry, MigrationProject

CRASH_ENV = "XTWIZARD_CRASH_AFTER_JOURNAL"
CRASH_BEFORE_ENV = "XTWIZARD_CRASH_BEFORE_JOURNAL"
TEARDOWN_STEP = "teardown"
# The Key Vault mode's objects: the setup reads them only in that mode.
VAULT_KEYS = ("resource-group", "vault", "vault-admin-role", "vault-exchange-role", "certificate", "app-certificate")


def _env_int(name: str) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.isdigit() else 0


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def is_removal(e: JournalEntry) -> bool:
    """A teardown's removal: made when its object is gone.  (The setup's own removals — a member it was asked
    to take out, an orphan secret — are looked up by their outcome, like its other changes.)"""
    return e.step == TEARDOWN_STEP and e.action.startswith("remove")


class SetupJournal:
    crash = staticmethod(_kill)  # the crash hook's action

    def __init__(self, project: MigrationProject) -> None:
        self.project = project
        self.writes = 0
        self._crash_after = _env_int(CRASH_ENV)
        self._crash_before = _env_int(CRASH_BEFORE_ENV)
        self._known: dict[bool, tuple[int, dict[str, dict[str, Any]]]] = {}  # removing -> (mark, known)

    def mark(self) -> int:
        """Where the journal stands: it only grows, so any record written since (by anyone) changes this."""
        try:
            return self.project.journal_file.stat().st_size
        except FileNotFoundError:
            return 0

    def _writing(self) -> None:
        if self._crash_before and self.writes + 1 >= self._crash_before:
            self.crash()

    def _wrote(self) -> None:
        self.writes += 1
        if self._crash_after and self.writes >= self._crash_after:
            self.crash()

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

    def known(self, *, removing: bool = False) -> dict[str, dict[str, Any]]:
        """What the journal says exists, by object key (the last successful create/adopt/update wins; a
        successful remove forgets it, and the keys its target lists in `also`: what went with it, like a
        service principal's grant).  An object whose teardown removal a crash left open may be gone: it is
        left out (resume looks it up) unless `removing` asks for it (teardown, which closes its own).
        Read again only when the journal has grown since the last call; callers get their own copy."""
        mark = self.mark()
        cached = self._known.get(removing)
        if cached is None or cached[0] != mark:
            cached = self._known[removing] = (mark, self._read_known(removing))
        return {key: dict(rec) for key, rec in cached[1].items()}

    def _read_known(self, removing: bool) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        open_removals: dict[str, list[str]] = {}  # op -> keys, while the removal has no outcome
        for e in self.project.entries():
            key = str(e.target.get("key", ""))
            if not key:
                continue
            gone = [key, *e.target.get("also", ())]
            if e.phase == "intent":
                if is_removal(e):
                    open_removals[e.op] = gone
                continue
            open_removals.pop(e.op, None)
            if e.phase != "done":
                continue
            if e.action.startswith("remove"):
                for k in gone:
                    out.pop(k, None)
            else:
                out[key] = {**out.get(key, {}), **e.target}
        if not removing:
            for keys in open_removals.values():
                for k in keys:
                    out.pop(k, None)
        return out

    def unfinished(self) -> list[JournalEntry]:
        return [e for e in self.project.unfinished() if e.target.get("key")]

    def resolve(self, e: JournalEntry, found: dict[str, Any] | None, *, done: bool | None = None) -> bool:
        """Close an intent a crash left open from what the tenant shows now (`found`: its object, or None when
        it is not there; `done`, when the caller knows otherwise whether the change is in place — a teardown's
        update); returns whether the change was made."""
        if done is not None:
            made = done
            note = "the change is in place" if done else "the change is not in place: the plan makes it again"
        elif is_removal(e):
            made = found is None
            note = ("gone from the tenant: the removal was made" if made
                    else "still in the tenant: the removal was not made")
        elif found is None:
            made, note = False, "not in the tenant: the change was not made"
        else:
            made = True
            note = ("the object is there; the plan re-checks its properties" if e.action.startswith("update")
                    else "found in the tenant: the change was made")
        self.finish(e.op, ok=made, target={**e.target, **(found or {})}, detail={"resolved": "on resume: " + note})
        return made

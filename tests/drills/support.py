"""The fault drills' one harness: arm a fault right before a step's first change, run, judge the outcome, run
again without the fault, and check the invariants every cell must keep (docs/drills.md).

Invariants: the run ends in success or in a clear, actionable Problem (what / why / what to do, not the generic
"Something went wrong"); after the admin's retry the journal matches both tenants, nothing is duplicated, no
intent is left open, and no token, client secret or private key is anywhere under the test's folder."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring.backend
import keyring.errors

from tests.engine.setup_support import clock_sleep
from tests.engine.users_support import CachedContext, CachedTokens
from tests.unit.cloud_support import policy_for
from xtwizard.cloud.tokenstore import LOCKED_KEYRING, TokenStore
from xtwizard.migration.problems import Problem, explain
from xtwizard.migration.project import MigrationProject, ProjectStore
from xtwizard.migration.setup.engine import SetupProblem
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.faults import parse_rule
from xtwizard.sandbox.state import SandboxState

# Faults on the wire: sandbox fault rules (xtwizard/sandbox/README.md), each hitting the next request(s) once armed.
WIRE = {
    "429-storm": {"kind": "throttle", "count": 3, "retry_after": 1},
    "503": {"kind": "error", "status": 503, "count": 2},
    "500": {"kind": "error", "status": 500, "count": 1},
    "dropped-connection": {"kind": "drop", "count": 1},
    "answer-lost": {"kind": "lose", "count": 1},
}
# Faults of time and of the machine, armed the same way.
OTHER = ("replication-delay", "token-expiry", "keyring-locked", "disk-full-before-change", "disk-full-after-change")
FAULTS = (*WIRE, *OTHER)
GENERIC = "Something went wrong."
JWT = re.compile(rb"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}")


class Killed(BaseException):
    """The process was killed (SIGKILL): nothing in the engines catches it."""


class JournalWrites:
    """Counts the project's journal writes (one record, or one group commit of many) and fails one of them:
    `disk_full(n)` makes the n-th next write raise ENOSPC (nothing written, as on a full disk); `kill(where, n)`
    ends the whole run right after (or just before) the n-th write, as SIGKILL would: the write raises Killed,
    the run's main task is cancelled, and every later write is refused.  (The setup's own
    XTWIZARD_CRASH_*_JOURNAL hooks kill a real process: tests/engine/test_setup_crash.py.)"""

    def __init__(self, project: MigrationProject) -> None:
        self.project = project
        self.count = 0
        self.full_at = 0
        self.kill_at: tuple[str, int] | None = None
        self.killed = False
        self.task: asyncio.Task[Any] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        for name in ("_append", "journal_many"):
            if hasattr(project, name):
                setattr(project, name, self._wrap(getattr(project, name)))

    def disk_full(self, nth: int) -> None:
        self.full_at = self.count + nth

    def kill(self, where: str, nth: int) -> None:
        self.kill_at = (where, self.count + nth)

    def _die(self) -> None:
        self.killed = True
        if self.loop is not None and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        raise Killed()

    def _wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            if self.killed:
                raise Killed()
            self.count += 1
            if self.count == self.full_at:
                raise OSError(errno.ENOSPC, "No space left on device", str(self.project.journal_file))
            if self.kill_at == ("BEFORE", self.count):
                self._die()
            out = real(*args, **kwargs)
            if self.kill_at == ("AFTER", self.count):
                self._die()
            return out

        return write


class MemoryKeyring(keyring.backend.KeyringBackend):
    """The OS keyring stand-in (never the real one); `locked` makes it refuse like a locked keyring does."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.locked = False

    def _check(self) -> None:
        if self.locked:
            raise keyring.errors.KeyringLocked("The keyring is locked.")

    def get_password(self, service: str, username: str) -> str | None:
        self._check()
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._check()
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._check()
        self.items.pop((service, username), None)


class SealedTokens:
    """Tokens kept as the app keeps them: every new access token goes into an msal cache that the TokenStore seals
    with a key from the keyring and writes to the data folder (in memory only when the keyring refuses)."""

    def __init__(self, inner: CachedTokens, store: TokenStore) -> None:
        self.inner, self.store = inner, store
        self.cache = store.load()

    async def __call__(self, resource: str, *, force_refresh: bool = False) -> str:
        before = self.inner.cache.get(resource)
        token = await self.inner(resource, force_refresh=force_refresh)
        if token != before:
            info = base64.urlsafe_b64encode(b'{"uid":"u","utid":"t"}').decode().rstrip("=")
            self.cache.add({"client_id": "14d82eec-204b-4c2f-b7e8-296a70dab67e", "scope": [f"{resource}/.default"],
                            "token_endpoint": "https://login.example/t/oauth2/v2.0/token", "params": {}, "data": {},
                            "response": {"access_token": token, "expires_in": 3600, "token_type": "Bearer",
                                         "client_info": info}})
            self.store.save(self.cache)
        return token


class SealedContext(CachedContext):
    keyring: MemoryKeyring
    data_dir: Path
    stores: list[TokenStore]

    def tokens(self, slot: str) -> Any:
        if slot not in self._tokens:
            store = TokenStore(f"{self.project.id}-{slot}", self.data_dir, backend=self.keyring)
            self.stores.append(store)
            self._tokens[slot] = SealedTokens(CachedTokens(super(CachedContext, self).tokens(slot)), store)  # type: ignore[assignment]
        return self._tokens[slot]


@dataclass
class Cell:
    """One fault armed at one moment of a run; `arm()` is called by the engine hook when the moment comes."""

    sb: Sandbox
    project: MigrationProject
    fault: str
    ctx: SealedContext | None = None
    journal: JournalWrites | None = None
    armed: bool = False
    keyring: MemoryKeyring = field(default_factory=MemoryKeyring)
    stores: list[TokenStore] = field(default_factory=list)

    def arm(self) -> None:
        if self.armed:
            return
        self.armed = True
        if self.fault in WIRE:
            self.sb.faults.add(parse_rule(dict(WIRE[self.fault])))
        elif self.fault == "replication-delay":
            self.sb.state.settings["replication_delay_seconds"] = 120
        elif self.fault == "token-expiry":
            self.sb.clock.advance(2 * 3600)  # every cached access token is now expired
        elif self.fault == "keyring-locked":  # and the tokens expire, so that new ones meet the locked keyring
            self.keyring.locked = True
            self.sb.clock.advance(2 * 3600)
        elif self.fault.startswith("disk-full"):
            assert self.journal is not None
            self.journal.disk_full(1 if self.fault.endswith("before-change") else 2)
        else:
            raise AssertionError(self.fault)

    def assert_met(self) -> None:
        """The fault really happened: a wire fault's storm was used up by the run's requests."""
        assert self.armed
        if self.fault in WIRE:
            assert not self.sb.faults.rules(), f"the {self.fault} fault did not meet its requests"
        if self.fault == "keyring-locked":  # new tokens were kept in memory, and the app can say why
            assert any(not s.persistent and s.reason == LOCKED_KEYRING for s in self.stores)

    def calm(self) -> None:
        """The fault passes (the admin retries later): no rules, normal settings, a working disk."""
        self.sb.faults.clear()
        self.sb.state.settings["replication_delay_seconds"] = 0
        self.keyring.locked = False
        if self.journal is not None:
            self.journal.full_at = 0


def run(cell: Cell, body: Callable[[Any], Any]) -> Problem | None:
    """Run `body(ctx)` (async) with the app's HTTP policy; the Problem it ended in, or None on success."""

    async def go() -> Problem | None:
        policy = policy_for(cell.sb)
        if cell.journal is not None:
            cell.journal.task, cell.journal.loop = asyncio.current_task(), asyncio.get_running_loop()
        try:
            ctx = SealedContext(cell.sb, cell.project, policy)
            ctx.keyring, ctx.data_dir, ctx.stores = cell.keyring, cell.project.folder.parent.parent / "data", cell.stores
            cell.ctx = ctx
            await body(cell.ctx)
            return None
        except asyncio.CancelledError:
            if cell.journal is not None and cell.journal.killed:
                raise Killed() from None
            raise
        except SetupProblem as exc:
            return exc.problem
        except Exception as exc:  # noqa: BLE001 - what the page or the headless command would show
            problem = getattr(exc, "problem", None)
            return problem if isinstance(problem, Problem) else explain(exc)
        finally:
            await policy.aclose()

    outcome = asyncio.run(go())
    if cell.journal is not None and cell.journal.killed:  # killed at the last write: nothing came after it
        raise Killed()
    return outcome


def assert_actionable(problem: Problem) -> None:
    assert problem.what and problem.why and problem.fix, problem
    assert problem.what != GENERIC, f"not explained: {problem.why}\n{problem.details}"


def assert_no_secrets_on_disk(folder: Path, secrets: list[str]) -> None:
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        assert not JWT.search(data), f"a token in {path}"
        assert b"PRIVATE KEY" not in data, f"a private key in {path}"
        for s in secrets:
            assert s.encode() not in data, f"a client secret in {path}"


@dataclass(frozen=True)
class Snapshot:
    """Both tenants and the project at one moment, to start many cells from it (and the run's secrets in
    memory, when the cell continues that same run)."""

    state: str
    folder: Path
    secrets: dict[str, str] = field(default_factory=dict)


def snapshot(sb: Sandbox, project: MigrationProject, keep: Path, secrets: dict[str, str] | None = None) -> Snapshot:
    with sb.state.lock:
        state = json.dumps(sb.state.to_json())
    copy = keep / project.folder.name
    shutil.copytree(project.folder, copy)
    return Snapshot(state, copy, dict(secrets or {}))


def restore(sb: Sandbox, snap: Snapshot, tmp: Path) -> MigrationProject:
    """The sandbox back to the snapshot (no faults, fresh counters) and a copy of its project under `tmp`."""
    sb.faults.clear()
    sb.exchange_throttle.clear()
    with sb.state.lock:
        sb.state = SandboxState.from_json(json.loads(snap.state), sb.clock)
    shutil.copytree(snap.folder, tmp / "projects" / snap.folder.name)
    return ProjectStore(tmp / "projects").open(snap.folder.name)


def reopen(project: MigrationProject) -> MigrationProject:
    """The project as a new process opens it (nothing of the old one's memory)."""
    return ProjectStore(project.folder.parent).open(project.folder.name)


def sleep_for(sb: Sandbox) -> Any:
    return clock_sleep(sb)

"""A migration project: one tenant pair, its choices, and the journal of every change made in either tenant.

DESIGN.md "The project journal is the truth": the project file is versioned JSON written atomically; the
journal is append-only JSON lines, written (and flushed to disk) before and after each change, so that a
crash or a week away leaves a record of what was started, what finished, and what to check on resume.
Nothing token- or secret-like may enter either file: `journal()` refuses it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_VERSION = 1
_SECRET_KEYS = re.compile(r"(secret|password|token|private.?key|assertion|credential|pfx|pkcs)", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")


class ProjectError(Exception):
    """A project that cannot be opened or saved; the message says what to do."""


def check_no_secrets(value: Any, path: str = "") -> None:
    """Refuse anything that looks like a token, secret or key before it reaches the disk."""
    if isinstance(value, dict):
        for k, v in value.items():
            if _SECRET_KEYS.search(str(k)) and v not in (None, "", [], {}) and not isinstance(v, bool):
                raise ValueError(f"refusing to record {path + '.' + str(k)!r}: it looks like a secret")
            check_no_secrets(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_no_secrets(v, f"{path}[{i}]")
    elif isinstance(value, str) and _JWT.search(value):
        raise ValueError(f"refusing to record {path!r}: it looks like a token")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    time: float
    tenant: str       # "source" | "target"
    step: str         # the setup step, e.g. "migration-app"
    action: str       # what was done, in the admin's words: "create application"
    phase: str        # "intent" | "done" | "failed"
    target: dict[str, Any]  # the object: {"type", "id"?, "name"?}
    detail: dict[str, Any]
    op: str           # ties an intent to its outcome


@dataclass
class _JournalIndex:
    offset: int = 0
    last_seq: int = 0
    intents: dict[str, JournalEntry] = field(default_factory=dict)


class MigrationProject:
    """Open with `ProjectStore.create/open`; `data` is the versioned JSON document."""

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.folder = folder
        self.data = data
        self._index: _JournalIndex | None = None

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def file(self) -> Path:
        return self.folder / "project.json"

    @property
    def journal_file(self) -> Path:
        return self.folder / "journal.jsonl"

    def save(self) -> None:
        check_no_secrets(self.data)
        self.data["updated"] = time.time()
        _write_atomic(self.file, json.dumps(self.data, indent=1, sort_keys=True).encode("utf-8"))

    # --- the journal ------------------------------------------------------------------------------------
    def entries(self) -> Iterator[JournalEntry]:
        if not self.journal_file.exists():
            return
        with open(self.journal_file, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    raw = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash mid-write: the entries before it still stand
                yield JournalEntry(**raw)

    def _append(self, entry: JournalEntry) -> None:
        raw = entry.__dict__
        check_no_secrets(raw)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.journal_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(raw, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _tail(self) -> _JournalIndex:
        """The last seq and every intent, read incrementally (only what was appended since the last look, by
        this process or another): begin/finish stay cheap in a journal of tens of thousands of changes."""
        try:
            size = self.journal_file.stat().st_size
        except FileNotFoundError:
            size = 0
        idx = self._index
        if idx is None or size < idx.offset:
            idx = self._index = _JournalIndex()
        if size > idx.offset:
            with open(self.journal_file, "rb") as fh:
                fh.seek(idx.offset)
                chunk = fh.read(size - idx.offset)
            end = chunk.rfind(b"\n") + 1  # a line still being written (or torn by a crash) is read next time
            for line in chunk[:end].splitlines():
                try:
                    e = JournalEntry(**json.loads(line))
                except ValueError:
                    continue
                idx.last_seq = e.seq
                if e.phase == "intent":
                    idx.intents[e.op] = e
            idx.offset += end
        return idx

    def _next_seq(self) -> int:
        return self._tail().last_seq + 1

    def begin(self, *, tenant: str, step: str, action: str, target: dict[str, Any],
              detail: dict[str, Any] | None = None) -> str:
        """Record the intent before changing a tenant; returns the op id to close it with."""
        if tenant not in ("source", "target"):
            raise ValueError("tenant must be 'source' or 'target'")
        import uuid  # here, not at the top: the first window paints sooner
        op = uuid.uuid4().hex
        self._append(JournalEntry(self._next_seq(), time.time(), tenant, step, action, "intent", target,
                                  detail or {}, op))
        return op

    def finish(self, op: str, *, ok: bool, target: dict[str, Any] | None = None,
               detail: dict[str, Any] | None = None) -> None:
        """Record the outcome of an operation started with `begin`."""
        intent = self._tail().intents.get(op)
        if intent is None:
            raise ValueError(f"no intent recorded for operation {op}")
        self._append(JournalEntry(self._next_seq(), time.time(), intent.tenant, intent.step, intent.action,
                                  "done" if ok else "failed", target or intent.target, detail or {}, op))

    def journal_many(self, begins: Sequence[dict[str, Any]] = (),
                     finishes: Sequence[dict[str, Any]] = ()) -> list[str]:
        """Several records with one flush to disk (group commit for bulk work such as preparing thousands of
        users): `begins` hold begin()'s keyword arguments, `finishes` finish()'s (op, ok, target?, detail?).
        Returns the op ids of the begins, in order."""
        import uuid  # here, not at the top, as in begin(): the first window paints sooner

        idx = self._tail()
        seq = idx.last_seq
        entries: list[JournalEntry] = []
        ops: list[str] = []
        for b in begins:
            if b["tenant"] not in ("source", "target"):
                raise ValueError("tenant must be 'source' or 'target'")
            seq += 1
            op = uuid.uuid4().hex
            ops.append(op)
            entries.append(JournalEntry(seq, time.time(), b["tenant"], b["step"], b["action"], "intent", b["target"],
                                        b.get("detail") or {}, op))
        for f in finishes:
            intent = idx.intents.get(f["op"])
            if intent is None:
                raise ValueError(f"no intent recorded for operation {f['op']}")
            seq += 1
            entries.append(JournalEntry(seq, time.time(), intent.tenant, intent.step, intent.action,
                                        "done" if f["ok"] else "failed", f.get("target") or intent.target,
                                        f.get("detail") or {}, f["op"]))
        if entries:
            for e in entries:
                check_no_secrets(e.__dict__)
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.journal_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(e.__dict__, sort_keys=True) + "\n" for e in entries))
                fh.flush()
                os.fsync(fh.fileno())
        return ops

    def unfinished(self) -> list[JournalEntry]:
        """Intents with no outcome: changes that may or may not have happened (verify them on resume)."""
        closed = {e.op for e in self.entries() if e.phase != "intent"}
        return [e for e in self.entries() if e.phase == "intent" and e.op not in closed]

    def created_objects(self) -> list[JournalEntry]:
        """Outcomes of successful creations, newest first: what teardown removes."""
        return [e for e in reversed(list(self.entries())) if e.phase == "done" and e.action.startswith("create")]


@dataclass(frozen=True)
class ProjectSummary:
    id: str
    name: str
    updated: float
    source: str
    target: str


class ProjectStore:
    """All projects under one folder (the user data directory's `projects`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def default(cls) -> ProjectStore:
        import platformdirs

        return cls(Path(platformdirs.user_data_dir("xtwizard", appauthor=False)) / "projects")

    def create(self, name: str) -> MigrationProject:
        name = name.strip()
        if not name:
            raise ProjectError("Give the project a name, for example the two companies' names.")
        import uuid

        pid = uuid.uuid4().hex[:12]
        now = time.time()
        project = MigrationProject(self.root / pid, {
            "version": PROJECT_VERSION, "id": pid, "name": name, "created": now, "updated": now,
            "cloud": "public", "source": {}, "target": {}, "choices": {}, "steps": {},
        })
        project.save()
        return project

    def open(self, pid: str) -> MigrationProject:
        folder = self.root / pid
        file = folder / "project.json"
        if not re.fullmatch(r"[0-9a-f]{12}", pid) or not file.exists():
            raise ProjectError(f"There is no project {pid!r} on this computer.")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProjectError(f"The project file {file} cannot be read ({exc.__class__.__name__}). Its journal "
                               f"({folder / 'journal.jsonl'}) still lists every change made; keep it for "
                               "teardown.") from None
        version = data.get("version")
        if not isinstance(version, int) or version > PROJECT_VERSION:
            raise ProjectError(f"This project was saved by a newer xtwizard (format {version}); update xtwizard "
                               "to open it.")
        return MigrationProject(folder, data)

    def summaries(self) -> list[ProjectSummary]:
        """Every readable project, most recently changed first (for the Welcome page's Resume list)."""
        out: list[ProjectSummary] = []
        if not self.root.exists():
            return out
        for folder in self.root.iterdir():
            try:
                p = self.open(folder.name)
            except ProjectError:
                continue
            out.append(ProjectSummary(p.id, p.name, float(p.data.get("updated", 0)),
                                      str(p.data.get("source", {}).get("domain", "")),
                                      str(p.data.get("target", {}).get("domain", ""))))
        return sorted(out, key=lambda s: s.updated, reverse=True)

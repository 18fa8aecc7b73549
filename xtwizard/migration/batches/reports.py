"""Reports for the customer: readiness, progress, final (HTML and CSV) and the journal as an audit log.

HTML is one self-contained file (inline style, no scripts, no external links) with every value escaped; CSV
cells that a spreadsheet would run as a formula are quoted with a leading apostrophe.  Nothing secret can be
in them: they are built from the project's data and journal, which refuse secrets, and a last scan drops any
line that looks like a token.
"""

from __future__ import annotations

import csv
import datetime
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..project import MigrationProject
from ..users.model import CHECK_TITLES
from .model import Snapshot

_TOKENISH = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.|[A-Za-z0-9~_.-]{3}8Q~[A-Za-z0-9~_.-]{20,}")
STYLE = ("body{font-family:system-ui,Segoe UI,Arial,sans-serif;margin:2em;color:#222}"
         "h1{font-size:1.5em}table{border-collapse:collapse;width:100%;font-size:.9em}"
         "th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}"
         "th{background:#f0f0f0}.ok{color:#176b2c}.bad{color:#a40000}.meta{color:#555}")


def _clean(value: Any) -> str:
    text = "" if value is None else str(value)
    return _TOKENISH.sub("[removed]", text)


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        cells = [_clean(c) for c in row]
        w.writerow(["'" + c if c[:1] in ("=", "+", "-", "@") else c for c in cells])
    return buf.getvalue()


def _html(title: str, project: MigrationProject, intro: str, rows: Sequence[Sequence[Any]],
          status_col: int | None = None) -> str:
    src = project.data.get("source", {}).get("displayName") or project.data.get("source", {}).get("domain", "")
    tgt = project.data.get("target", {}).get("displayName") or project.data.get("target", {}).get("domain", "")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head, body = rows[0], rows[1:]
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
           f"<p class=\"meta\">Project {html.escape(_clean(project.name))} — from {html.escape(_clean(src))} to "
           f"{html.escape(_clean(tgt))} — made {now} by xtwizard</p><p>{html.escape(intro)}</p>",
           "<table><thead><tr>" + "".join(f"<th>{html.escape(_clean(h))}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in body:
        cells = []
        for i, c in enumerate(row):
            cls = ""
            if status_col is not None and i == status_col:
                cls = " class=\"ok\"" if str(c).lower() in ("completed", "ready", "done") else (
                    " class=\"bad\"" if str(c).lower() in ("failed", "not ready", "removed") else "")
            cells.append(f"<td{cls}>{html.escape(_clean(c))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></body></html>\n")
    return "".join(out)


def _write(folder: Path, stem: str, title: str, project: MigrationProject, intro: str,
           rows: list[list[Any]], status_col: int | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    h, c = folder / f"{stem}.html", folder / f"{stem}.csv"
    h.write_text(_html(title, project, intro, rows, status_col), encoding="utf-8")
    c.write_text(_csv(rows), encoding="utf-8-sig")  # a BOM so that Excel reads UTF-8
    return [h, c]


def readiness_rows(project: MigrationProject) -> list[list[Any]]:
    """The users engine's last readiness results (`data["users"]["readiness"]["users"]`: per source address, the
    target, whether ready or moved, and the problems), one row per problem."""
    rows: list[list[Any]] = [["Source", "Target", "Status", "Check", "What", "What to do"]]
    saved = project.data.get("users", {}).get("readiness") or {}
    for source, r in (saved.get("users") or {} if isinstance(saved, dict) else {}).items():
        if not isinstance(r, dict):
            continue
        problems = [f for f in r.get("problems") or [] if isinstance(f, dict)]
        status = "Moved" if r.get("moved") else "Ready" if r.get("ready") else "Not ready"
        if not problems:
            rows.append([source, r.get("target", ""), status, "",
                         "Its migration completed" if r.get("moved") else "All checks passed", ""])
        for f in problems:
            check = str(f.get("check", ""))
            rows.append([source, r.get("target", ""), status, CHECK_TITLES.get(check, check), f.get("what", ""),
                         f.get("fix", "")])
    return rows


def user_rows(snapshot: Snapshot) -> list[list[Any]]:
    rows: list[list[Any]] = [["Batch", "Source", "Target", "Status", "Percent", "Last sync", "Problem", "What to do"]]
    for u in sorted(snapshot.users, key=lambda u: (u.batch.lower(), u.target.lower())):
        p = u.problem
        rows.append([u.batch, u.source, u.target, u.status, u.percent,
                     u.last_sync.strftime("%Y-%m-%d %H:%M UTC") if u.last_sync else "",
                     (f"{p.what} {p.why}" if p else u.error), p.fix if p else ""])
    return rows


def audit_rows(project: MigrationProject) -> list[list[Any]]:
    """Every change in either tenant: the journal's outcomes (with the intents a crash left open)."""
    rows: list[list[Any]] = [["Time (UTC)", "Tenant", "Step", "Change", "Object", "Outcome", "Detail"]]
    entries = list(project.entries())
    closed = {e.op for e in entries if e.phase != "intent"}
    intents = {e.op: e for e in entries if e.phase == "intent"}
    for e in entries:
        if e.phase == "intent" and e.op in closed:
            continue
        line = str(e.detail.get("line") or intents.get(e.op, e).detail.get("line") or "")
        error = str(e.detail.get("error") or e.detail.get("resolved") or "")
        obj = e.target.get("name") or e.target.get("id") or e.target.get("key") or ""
        outcome = {"done": "done", "failed": "failed", "intent": "unknown (interrupted)"}[e.phase]
        when = datetime.datetime.fromtimestamp(e.time, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append([when, e.tenant, e.step, e.action, obj, outcome, (line + (" — " + error if error else ""))])
    return rows


def write_all(project: MigrationProject, folder: Path, snapshot: Snapshot, checklist: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    out += _write(folder, "readiness", "Readiness report", project,
                  "Each user checked before the move; what blocks a user and how it is fixed.",
                  readiness_rows(project), 2)
    counts = snapshot.counts()
    summary = ", ".join(f"{n} {stage}" for stage, n in counts.items() if n)
    out += _write(folder, "progress", "Migration progress", project,
                  f"State of every mailbox move at {snapshot.taken:%Y-%m-%d %H:%M UTC}: {summary or 'no users yet'}.",
                  user_rows(snapshot), 3)
    done = [u for u in snapshot.users if u.completed]
    open_ = [u for u in snapshot.users if not u.completed]
    final = user_rows(snapshot)
    intro = (f"{len(done)} of {len(snapshot.users)} mailboxes moved; {len(open_)} not moved, each with its reason. "
             "After the move: " + " ".join(checklist))
    out += _write(folder, "final", "Final migration report", project, intro, final, 3)
    out += _write(folder, "audit-log", "Audit log: every change in both tenants", project,
                  "From the project journal, written before and after each change xtwizard made.",
                  audit_rows(project), 5)
    return out

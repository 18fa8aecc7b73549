"""Projects and their journal, without Qt or HTTP."""

from __future__ import annotations

import json

import pytest

from xtwizard.migration.project import MigrationProject, ProjectError, ProjectStore


def test_create_save_reopen_and_list(tmp_path):
    store = ProjectStore(tmp_path)
    p = store.create("Northwind to Fabrikam")
    p.data["source"] = {"tenantId": "5b2a1e6c-7f3d-4c1a-9e8b-2d4f6a8c0e11", "domain": "northwindtraders.onmicrosoft.com"}
    p.save()
    again = store.open(p.id)
    assert again.data["source"]["domain"] == "northwindtraders.onmicrosoft.com"
    assert [s.name for s in store.summaries()] == ["Northwind to Fabrikam"]
    assert oct(p.file.stat().st_mode & 0o777) == "0o600"


def test_journal_records_intent_and_outcome_and_finds_unfinished(tmp_path):
    p = ProjectStore(tmp_path).create("p")
    op1 = p.begin(tenant="target", step="migration-app", action="create application",
                  target={"type": "application", "name": "CTMM app"})
    p.finish(op1, ok=True, target={"type": "application", "name": "CTMM app", "id": "app-1"})
    op2 = p.begin(tenant="target", step="endpoint", action="create migration endpoint",
                  target={"type": "migrationEndpoint", "name": "ep"})
    # the laptop dies here: op2 never finishes
    reopened = ProjectStore(tmp_path).open(p.id)
    assert [e.op for e in reopened.unfinished()] == [op2]
    assert [e.target["id"] for e in reopened.created_objects()] == ["app-1"]
    assert [e.seq for e in reopened.entries()] == [1, 2, 3]


def test_a_torn_last_line_does_not_lose_earlier_entries(tmp_path):
    p = ProjectStore(tmp_path).create("p")
    op = p.begin(tenant="source", step="consent", action="grant consent", target={"type": "servicePrincipal"})
    with open(p.journal_file, "a", encoding="utf-8") as fh:
        fh.write('{"seq": 2, "time": 1, "ten')
    assert [e.op for e in p.unfinished()] == [op]


@pytest.mark.parametrize("detail", [
    {"clientSecret": "abc~123"},
    {"note": "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.c2ln"},
    {"nested": [{"password": "x"}]},
])
def test_journal_refuses_secrets(tmp_path, detail):
    p = ProjectStore(tmp_path).create("p")
    with pytest.raises(ValueError, match="secret|token"):
        p.begin(tenant="target", step="s", action="create x", target={"type": "x"}, detail=detail)
    assert not p.journal_file.exists() or "abc~123" not in p.journal_file.read_text()


def test_project_file_refuses_secrets(tmp_path):
    p = ProjectStore(tmp_path).create("p")
    p.data["choices"]["clientSecret"] = "s3cr3t"
    with pytest.raises(ValueError):
        p.save()
    assert "s3cr3t" not in p.file.read_text()


def test_newer_format_and_corrupt_files_say_what_to_do(tmp_path):
    store = ProjectStore(tmp_path)
    p = store.create("p")
    data = json.loads(p.file.read_text())
    data["version"] = 99
    p.file.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="newer xtwizard"):
        store.open(p.id)
    p.file.write_text("{not json")
    with pytest.raises(ProjectError, match="journal"):
        store.open(p.id)
    assert store.summaries() == []


def test_names_and_ids_are_checked(tmp_path):
    store = ProjectStore(tmp_path)
    with pytest.raises(ProjectError, match="name"):
        store.create("   ")
    with pytest.raises(ProjectError, match="no project"):
        store.open("../../etc")
    assert isinstance(store.create("x"), MigrationProject)

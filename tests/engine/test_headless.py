"""`xtwizard setup` against a sandbox: the same engine without the GUI, signing in by ROPC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.test_headless_signin import PASSWORD, grant_tenant_wide_consent, scenario_with_passwords
from xtwizard import cli
from xtwizard.cloud.graph import GraphClient, NewClientSecret
from xtwizard.migration.project import ProjectStore
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.server import print_ready_line

TARGET = "admin@fabrikaminc.onmicrosoft.com"
SOURCE = "admin@northwindtraders.onmicrosoft.com"


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Path]]:
    sb = Sandbox(scenario_with_passwords(tmp_path))
    info = sb.start()
    grant_tenant_wide_consent(sb)
    ready = tmp_path / "ready.json"
    ready.write_text(print_ready_line(info) + "\n")
    monkeypatch.setenv("XTWIZARD_TARGET_PASSWORD", PASSWORD)
    monkeypatch.setenv("XTWIZARD_SOURCE_PASSWORD", PASSWORD)
    try:
        yield sb, ready
    finally:
        sb.stop()


def setup_args(project: Path, ready: Path, *extra: str) -> list[str]:
    return ["setup", "--project", str(project), "--sandbox-info", str(ready), "--target-user", TARGET,
            "--source-user", SOURCE, *extra]


def test_setup_prints_plan_applies_verifies_and_a_rerun_is_a_no_op(
        running: tuple[Sandbox, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sb, ready = running
    secrets: list[str] = []
    original = GraphClient.add_password

    async def spy(self: GraphClient, object_id: str, display_name: str, **kw: Any) -> NewClientSecret:
        new = await original(self, object_id, display_name, **kw)
        secrets.append(new.secret_text)
        return new

    monkeypatch.setattr(GraphClient, "add_password", spy)
    project = ProjectStore(tmp_path / "data" / "projects").create("Northwind to Fabrikam")
    code = cli.main(setup_args(project.folder, ready, "--scope-group", "Migration Wave 1"))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Signed in to the target: Fabrikam" in out.out
    assert "Target tenant: 7 changes" in out.out and "Source tenant: 3 changes" in out.out
    assert "[Passed] target: Test-MigrationServerAvailability: Success" in out.out
    assert "[Failed]" not in out.out
    assert out.out.rstrip().endswith("Ready to migrate.")
    # the secret went to Exchange and nowhere else
    assert len(secrets) == 1
    for f in project.folder.rglob("*"):
        if f.is_file():
            assert secrets[0] not in f.read_text(errors="replace"), f
    assert secrets[0] not in out.out + out.err

    code = cli.main(setup_args(project.folder, ready))  # the scope group is remembered
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Nothing to change: the setup is complete." in out.out
    assert "Applying" not in out.out


def test_plan_only_changes_nothing(running: tuple[Sandbox, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    sb, ready = running
    project = ProjectStore(tmp_path / "data" / "projects").create("p")
    before = json.dumps(sb.state.tenant("target").col("applications"), default=str)
    code = cli.main(setup_args(project.folder, ready, "--scope-group", "Migration Wave 1", "--plan-only"))
    out = capsys.readouterr()
    assert code == 0
    assert "+ Create the multitenant app registration" in out.out
    assert json.dumps(sb.state.tenant("target").col("applications"), default=str) == before
    assert list(project.entries()) == []


def test_a_refused_input_exits_non_zero_with_a_readable_report(
        running: tuple[Sandbox, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sb, ready = running
    project = ProjectStore(tmp_path / "data" / "projects").create("p")
    code = cli.main(setup_args(project.folder, ready, "--scope-group", "Finance Team"))
    err = capsys.readouterr().err
    assert code == 2
    assert "Problem: 'Finance Team' cannot scope the move" in err
    assert "What to do:" in err


def test_consent_by_kit_exits_3_and_prints_the_kit_in_the_report(
        running: tuple[Sandbox, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sb, ready = running
    project = ProjectStore(tmp_path / "data" / "projects").create("p")
    code = cli.main(setup_args(project.folder, ready, "--scope-group", "Migration Wave 1", "--consent", "kit"))
    err = capsys.readouterr().err
    assert code == 3
    assert "/adminconsent?client_id=" in err


def test_wrong_password_is_a_sign_in_problem(running: tuple[Sandbox, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _sb, ready = running
    monkeypatch.setenv("XTWIZARD_SOURCE_PASSWORD", "nope")
    project = ProjectStore(tmp_path / "data" / "projects").create("p")
    code = cli.main(setup_args(project.folder, ready, "--scope-group", "Migration Wave 1"))
    err = capsys.readouterr().err
    assert code == 2
    assert "The sign-in failed." in err and "AADSTS50126" in err

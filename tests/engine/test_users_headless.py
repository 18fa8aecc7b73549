"""`xtwizard users`, `prepare` and `check` against a sandbox: the users engine without the GUI, signing in by ROPC."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.test_headless import SOURCE, TARGET, running, setup_args  # noqa: F401 (fixture)
from xtwizard import cli
from xtwizard.migration.project import ProjectStore
from xtwizard.sandbox import Sandbox


def args(command: str, project: Path, ready: Path, *extra: str) -> list[str]:
    return [command, "--project", str(project), "--sandbox-info", str(ready), "--target-user", TARGET,
            "--source-user", SOURCE, *extra]


def test_users_prepare_and_check_commands(running: tuple[Sandbox, Path], tmp_path: Path,  # noqa: F811
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _sb, ready = running
    project = ProjectStore(tmp_path / "data" / "projects").create("Northwind to Fabrikam")
    assert cli.main(setup_args(project.folder, ready, "--scope-group", "Migration Wave 1")) == 0
    capsys.readouterr()

    exported = tmp_path / "mapping.csv"
    code = cli.main(args("users", project.folder, ready, "--auto-map", "fabrikam.example", "--export-csv",
                         str(exported), "--no-sizes"))
    out = capsys.readouterr()
    assert code == 1, out.err  # Paul's target is a mailbox: the row needs attention
    assert "Source mailboxes: 30, in the scope group 'Migration Wave 1': 25" in out.out
    assert "[ERROR  ] paul.quinn@northwind.example -> paul.quinn@fabrikam.example" in out.out
    assert "chris.green@northwind.example -> c.green@fabrikam.example" in out.out
    assert exported.read_text().splitlines()[0] == "SourceUser,TargetUser"

    # Gina is added through a CSV (she is not in the scope group, so auto-map left her out).
    csv_in = tmp_path / "in.csv"
    csv_in.write_bytes(("\ufeff" + exported.read_text() + "gina.hoffman@northwind.example,gina.hoffman@fabrikam.example\r\n")
                       .encode("utf-8"))
    assert cli.main(args("users", project.folder, ready, "--import-csv", str(csv_in), "--no-sizes")) == 1
    capsys.readouterr()

    code = cli.main(args("prepare", project.folder, ready, "--plan-only"))
    out = capsys.readouterr()
    assert code == 1 and "1 to create, 5 to update" in out.out and "Create MailUser olivia.perez@fabrikam.example" in out.out

    code = cli.main(args("check", project.folder, ready, "--fix"))
    out = capsys.readouterr()
    assert code == 1, out.err  # holds, licence, aux archives … stay explained
    assert "One-click fixes:" in out.out and "Add gina.hoffman@northwind.example to the scope group" in out.out
    assert "Applied 7 fix(es)." in out.out
    final = out.out.split("Checking again:", 1)[1]
    assert "READY   gina.hoffman@northwind.example" in final and "READY   olivia.perez@northwind.example" in final
    assert "BLOCKED iris.jensen@northwind.example" in final and "litigation hold" in final

    code = cli.main(args("check", project.folder, ready, "--dry-run", "olivia.perez@northwind.example"))
    out = capsys.readouterr()
    assert code == 0 and "[Passed]" in out.out

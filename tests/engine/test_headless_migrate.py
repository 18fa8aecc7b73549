"""The whole migration through the command line only, against one sandbox: setup → users → prepare → check --fix →
migrate → status (the sandbox clock advanced between calls through its control API, never by sleeping) → report →
teardown.

Every command signs in by ROPC (passwords from the environment, see test_headless.py) and is checked for its exit
code and for what it tells the admin — above all, what to do when something failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.test_headless import SOURCE, TARGET, running  # noqa: F401 (fixture)
from tests.unit.cloud_support import advance
from xtwizard import cli
from xtwizard.migration.project import ProjectStore
from xtwizard.sandbox import Sandbox

GINA = "gina.hoffman@northwind.example"  # outside the scoping group: the readiness fix adds her, teardown takes her out


def test_a_whole_migration_by_command_line(running: tuple[Sandbox, Path], tmp_path: Path,  # noqa: F811
                                           capsys: pytest.CaptureFixture[str]) -> None:
    sb, ready = running
    project = ProjectStore(tmp_path / "data" / "projects").create("Northwind to Fabrikam")
    source, target = sb.state.tenant("source"), sb.state.tenant("target")
    assert source is not None and target is not None
    wave1 = next(g for g in source.col("groups").values() if g["displayName"] == "Migration Wave 1")
    members_before = list(wave1["_members"])

    def xt(command: str, *extra: str) -> tuple[int, str, str]:
        code = cli.main([command, "--project", str(project.folder), "--sandbox-info", str(ready), "--target-user",
                         TARGET, "--source-user", SOURCE, *extra])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = xt("setup", "--scope-group", "Migration Wave 1")
    assert code == 0 and out.rstrip().endswith("Ready to migrate."), err

    # The mapping: auto-mapped, exported, Gina added by CSV.  Paul's target is a mailbox: exit 1, and why.
    exported = tmp_path / "mapping.csv"
    code, out, err = xt("users", "--auto-map", "fabrikam.example", "--export-csv", str(exported), "--no-sizes")
    assert code == 1 and "need attention; see 'What to do' above" in err
    csv_in = tmp_path / "in.csv"
    csv_in.write_text(exported.read_text() + f"{GINA},gina.hoffman@fabrikam.example\r\n", encoding="utf-8")
    code, out, err = xt("users", "--import-csv", str(csv_in), "--no-sizes")
    assert code == 1 and f"{GINA} -> gina.hoffman@fabrikam.example" in out

    code, out, err = xt("prepare")
    assert code == 1 and "+ Create MailUser olivia.perez@fabrikam.example" in out and "\nPrepared " in out
    assert "paul.quinn@northwind.example: skipped" in out and "What to do: If the mailbox" in out

    code, out, err = xt("check", "--fix")
    assert code == 1, err  # holds, a licence, too many archives … stay blocked, each explained
    assert f"Add {GINA} to the scope group 'Migration Wave 1'" in out
    final = out.split("Checking again:", 1)[1]
    assert f"READY   {GINA}" in final and "BLOCKED iris.jensen@northwind.example" in final
    ready_users = final.count("\n  READY ")
    assert ready_users >= 10 and f"{ready_users} of 26 user(s) ready." in final

    # The ready users go into one batch; nothing moves yet, so teardown has to wait — and says what to do.
    code, out, err = xt("migrate", "--plan-only")
    assert code == 0 and f"Wave 1: {ready_users} users" in out and "Created batch" not in out
    code, out, err = xt("migrate")
    assert code == 0 and f"Created batch 'Wave 1' with {ready_users} users" in out and "xtwizard status" in out
    code, out, err = xt("status")
    assert code == 0 and f"Wave 1: Syncing, 0% ({ready_users} waiting)" in out, out
    code, out, err = xt("teardown")
    assert code == 1 and "? Batch 'Wave 1' still has" in out
    assert "Problem: Teardown has to wait" in err and "What to do: Complete the batches" in err

    advance(sb, 20 * 3600)  # the sandbox clock, through the control API: the copy runs
    code, out, err = xt("status")
    assert code == 1, out  # Tara's auto-expanding archive grew a new auxiliary archive during the move
    assert "tara.usman@fabrikam.example: A new auxiliary archive appeared" in out
    assert "What to do: Remove the user from this batch and move them again in a new batch." in out
    assert "1 user(s) failed: see 'What to do' for each above" in err and "--retry-failed" not in err
    assert "Those that need a new batch: xtwizard migrate --rebatch 'Wave 1' takes them out of it" in err
    assert f"({ready_users - 1} synced, 1 failed)" in out

    code, out, err = xt("migrate", "--complete-batch", "Wave 9")  # a typo: a problem, explained
    assert code == 2 and "Problem: There is no migration batch 'Wave 9'" in err and "What to do: Check the name" in err
    code, out, err = xt("migrate", "--complete-batch", "Wave 1")
    assert code == 0 and "Complete: Wave 1" in out
    advance(sb, 3600)
    code, out, err = xt("status")
    assert code == 1 and f"({ready_users - 1} completed, 1 failed)" in out
    assert f"{ready_users - 1} user(s) completed. After the move:" in out and "Licence the" in out

    # Tara needs a new batch: taken out of 'Wave 1' (plan, then --yes), checked again, moved in 'Wave 2'.
    code, out, err = xt("migrate", "--rebatch", "Wave 1")
    assert code == 0 and "- Take tara.usman@fabrikam.example out of the batch 'Wave 1'" in out, out + err
    assert "Nothing changed. Run again with --yes to apply." in out
    code, out, err = xt("migrate", "--rebatch", "Wave 1", "--yes")
    assert code == 0 and "Took 1 user(s) out of 'Wave 1'. Next:" in out and "xtwizard check" in out, out + err
    code, out, err = xt("migrate", "--plan-only")
    assert code == 0 and "No users to migrate" in out  # not before readiness has passed again
    code, out, err = xt("check")
    assert "READY   tara.usman@northwind.example" in out and "MOVED   alice@northwind.example" in out, out
    assert f"{ready_users - 1} already moved." in out and "not a mailbox in" not in out
    # Vera's internal Microsoft move has ended meanwhile (21 hours on the sandbox clock): she is ready too.
    assert "2 of 9 user(s) ready." in out and "READY   vera.wolf@northwind.example" in out
    code, out, err = xt("migrate")
    assert code == 0 and "Created batch 'Wave 2' with 2 users" in out, out + err
    advance(sb, 20 * 3600)
    code, out, err = xt("migrate", "--complete-batch", "Wave 2")
    assert code == 0, err
    advance(sb, 3600)
    code, out, err = xt("status")
    assert code == 0 and "Wave 2: Completed, 100% (2 completed)" in out, out + err
    assert f"{ready_users + 1} user(s) completed. After the move:" in out

    reports = tmp_path / "reports"
    code, out, err = xt("report", "--out", str(reports))
    assert code == 0 and sorted(p.name for p in reports.iterdir()) == sorted(
        f"{n}.{x}" for n in ("readiness", "progress", "final", "audit-log") for x in ("html", "csv"))
    assert all(str(p) in out for p in reports.iterdir())
    assert "tara.usman@fabrikam.example" in (reports / "final.csv").read_text(encoding="utf-8-sig")
    readiness = (reports / "readiness.csv").read_text(encoding="utf-8-sig")  # the last check, one row per problem
    assert "iris.jensen@northwind.example,iris.jensen@fabrikam.example,Not ready,No holds that block the move" in \
        readiness and "alice@northwind.example,alice@fabrikam.example,Moved,,Its migration completed" in readiness
    assert "teardown" not in (reports / "audit-log.csv").read_text(encoding="utf-8-sig")

    # Teardown: the plan first (nothing changed), then --yes; a third run finds nothing left.
    code, out, err = xt("teardown")
    assert code == 0 and "- Remove the finished migration batch 'Wave 1'" in out
    assert f"- Take {GINA} out of the scoping group 'Migration Wave 1' (xtwizard added them)" in out
    assert "Nothing changed. Run again with --yes to apply." in out
    assert any(b["Identity"] == "Wave 1" for b in target.col("exchange.batches").values())
    code, out, err = xt("teardown", "--yes")
    assert code == 0, err
    assert "[1/9] Remove the finished migration batch 'Wave 1'" in out and "Teardown finished: 9 change(s) made." in out
    code, out, err = xt("teardown")
    assert code == 0 and "Nothing left to remove: the teardown is complete." in out and "--yes" not in out
    code, out, err = xt("teardown", "--purge-vault")  # the client-secret mode made no key vault: nothing to purge
    assert code == 0 and "Nothing left to remove" in out and "vault" not in out

    # What the setup made is gone; what the customer had is as it was.
    assert not [a for a in target.col("applications").values() if a["displayName"].startswith("xtwizard")]
    assert not [e for e in target.col("exchange.endpoints").values() if e["Identity"].startswith("xtwizard")]
    assert sorted(b["Identity"] for b in target.col("exchange.batches").values()) == ["Pilot"]
    assert wave1["_members"] == members_before
    free_busy = next(r for r in source.col("exchange.orgRelationships").values() if r["Name"] == "Fabrikam Free-Busy")
    assert sorted(free_busy["DomainNames"]) == ["fabrikam.example", "fabrikaminc.onmicrosoft.com"]
    assert not free_busy["MailboxMoveEnabled"] and not free_busy.get("MailboxMovePublishedScopes")
    assert project.unfinished() == []

"""Killed (SIGKILL) at every journaled point and resumed: no duplicates, the journal matches the sandbox.

The headless command runs in a subprocess against a sandbox served by this test process; the journal hook
(XTWIZARD_CRASH_AFTER_JOURNAL / _BEFORE_JOURNAL) makes it kill itself right after (or just before) its N-th
journal write.  Each point is resumed by a second, normal run, which must end verified.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.test_headless import SOURCE, TARGET
from tests.engine.test_headless_signin import PASSWORD, grant_tenant_wide_consent, scenario_with_passwords
from xtwizard.migration.project import MigrationProject, ProjectStore
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.scenario import build_state, load_scenario
from xtwizard.sandbox.server import print_ready_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path, str]]:
    folder = tmp_path_factory.mktemp("crash")
    scenario = scenario_with_passwords(folder)
    sb = Sandbox(scenario)
    info = sb.start()
    ready = folder / "ready.json"
    ready.write_text(print_ready_line(info) + "\n")
    try:
        yield sb, ready, scenario
    finally:
        sb.stop()


def fresh(sb: Sandbox, scenario: str) -> None:
    sb.faults.clear()
    sb.state = build_state(load_scenario(scenario), sb.clock)
    sb.state.settings["certificate_issue_seconds"] = 0  # the vault issues at once (no waiting in the loop)
    grant_tenant_wide_consent(sb)


def run_setup(project: MigrationProject, ready: Path, crash: dict[str, str], *extra: str
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XTWIZARD_TARGET_PASSWORD": PASSWORD, "XTWIZARD_SOURCE_PASSWORD": PASSWORD, **crash}
    cmd = [sys.executable, "-m", "xtwizard.cli", "setup", "--project", str(project.folder), "--sandbox-info",
           str(ready), "--target-user", TARGET, "--source-user", SOURCE, "--scope-group", "Migration Wave 1",
           "--members", "rosa.schmidt@northwind.example", "--unfinished-wait", "0", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def journal_matches_sandbox(sb: Sandbox, project: MigrationProject, mode: str) -> None:
    """One of everything, each known to the journal, and no intent left open."""
    assert project.unfinished() == []
    done: dict[str, list[dict[str, Any]]] = {}
    for e in project.entries():
        if e.phase == "done":
            done.setdefault(str(e.target.get("key")), []).append(e.target)
    target, source = sb.state.tenant("target"), sb.state.tenant("source")
    apps = [a for a in target.col("applications").values() if a["displayName"].startswith("xtwizard migration")]
    assert len(apps) == 1, [a["displayName"] for a in apps]
    app = apps[0]
    assert any(t.get("appId") == app["appId"] for t in done["app"])
    for tenant, key in ((target, "target-sp"), (source, "source-sp")):
        sps = [sp for sp in tenant.col("servicePrincipals").values() if sp.get("appId") == app["appId"]]
        assert len(sps) == 1, key
        assert any(t.get("id") == sps[0]["id"] for t in done[key]), key
        grants = [g for g in tenant.col("appRoleAssignments").values() if g.get("principalId") == sps[0]["id"]]
        assert len(grants) == 1, key
    # every secret on the app was journaled (an orphan from a crash is known too)
    journaled = {t.get("keyId") for t in done.get("secret", [])}
    assert {pc["keyId"] for pc in app.get("passwordCredentials", [])} <= journaled
    endpoints = [e for e in target.col("exchange.endpoints").values() if e["Identity"].startswith("xtwizard")]
    assert len(endpoints) == 1 and done["endpoint"]
    rels = [r for r in target.col("exchange.orgRelationships").values() if source.id in r["DomainNames"]]
    assert len(rels) == 1 and rels[0]["Name"] in {t["name"] for t in done["target-rel"]}
    srels = [r for r in source.col("exchange.orgRelationships").values() if target.id in r["DomainNames"]]
    assert len(srels) == 1 and srels[0]["Name"] in {t["name"] for t in done["source-rel"]}
    if mode == "keyvault":
        vaults = [v for v in target.col("arm.vaults").values()]
        assert len(vaults) == 1 and vaults[0]["name"] in {t["name"] for t in done["vault"]}


def crash_points(sb: Sandbox, ready: Path, scenario: str, tmp: Path, mode: str, extra: tuple[str, ...],
                 steps: set[str] | None = None) -> int:
    """Run once cleanly to count the journal writes, then crash at each (of `steps`, if given) and resume."""
    fresh(sb, scenario)
    project = ProjectStore(tmp / "count" / "projects").create("count")
    clean = run_setup(project, ready, {}, *extra)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    entries = list(project.entries())
    writes = len(entries)
    assert writes >= 20
    for where in ("AFTER", "BEFORE"):
        for n in range(1, writes + 1):
            if where == "BEFORE" and n % 2:  # before an outcome: the change is made, its record is not
                continue
            if steps is not None and entries[n - 1].step not in steps:
                continue
            fresh(sb, scenario)
            project = ProjectStore(tmp / f"{where}{n}" / "projects").create(f"crash {where} {n}")
            killed = run_setup(project, ready, {f"XTWIZARD_CRASH_{where}_JOURNAL": str(n)}, *extra)
            assert killed.returncode == -signal.SIGKILL, (n, killed.stdout, killed.stderr)
            resumed = run_setup(project, ready, {}, *extra)
            assert resumed.returncode == 0, (where, n, resumed.stdout, resumed.stderr)
            assert "Ready to migrate." in resumed.stdout
            journal_matches_sandbox(sb, project, mode)
    return writes


@pytest.mark.slow
def test_secret_mode_survives_a_kill_at_every_journaled_point(served: tuple[Sandbox, Path, str],
                                                              tmp_path: Path) -> None:
    sb, ready, scenario = served
    crash_points(sb, ready, scenario, tmp_path, "secret", ())


@pytest.mark.slow
def test_keyvault_steps_survive_a_kill_at_every_journaled_point(served: tuple[Sandbox, Path, str],
                                                                tmp_path: Path) -> None:
    sb, ready, scenario = served
    crash_points(sb, ready, scenario, tmp_path, "keyvault", ("--credential", "keyvault"),
                 steps={"credential", "target-exchange"})

"""Every bad input of issue 5 ends in a clear message with the fix, and nothing the journal does not know."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.setup_support import new_project, run_engine
from tests.unit.cloud_support import advance, fault
from xtwizard.migration.setup import SetupEngine, SetupOptions, SetupProblem


async def apply(engine: SetupEngine) -> Any:
    await engine.apply()
    return await engine.verify()


def failing(sandbox: Any, tmp_path: Path, options: SetupOptions) -> SetupProblem:
    project = new_project(tmp_path)
    with pytest.raises(SetupProblem) as info:
        run_engine(sandbox, project, options, apply)
    p = info.value.problem
    assert p.what and p.why and p.fix
    return info.value


def test_same_tenant_twice(sandbox: Any, tmp_path: Path) -> None:
    from tests.engine.setup_support import SandboxContext

    project = new_project(tmp_path)
    orig = SandboxContext.__post_init__

    def same(self: SandboxContext) -> None:
        orig(self)
        self.identities["source"] = self.identities["target"]

    SandboxContext.__post_init__ = same  # type: ignore[method-assign]
    try:
        with pytest.raises(SetupProblem) as info:
            run_engine(sandbox, project, SetupOptions(scope_groups=["x"]), apply)
    finally:
        SandboxContext.__post_init__ = orig  # type: ignore[method-assign]
    assert "same tenant" in info.value.problem.what
    assert list(project.entries()) == []


@pytest.mark.parametrize("group, words", [
    ("Finance Team", "not mail-enabled"),
    ("Nobody's Group", "no group"),
])
def test_groups_that_cannot_scope_the_move(sandbox: Any, tmp_path: Path, group: str, words: str) -> None:
    err = failing(sandbox, tmp_path, SetupOptions(scope_groups=[group]))
    assert words in err.problem.what
    assert list(new_project(tmp_path / "other").entries()) == []


def test_unknown_group_lists_candidates_and_changes_nothing(sandbox: Any, tmp_path: Path) -> None:
    err = failing(sandbox, tmp_path, SetupOptions(scope_groups=["Wave 9"]))
    assert "Migration Wave 1" in err.problem.fix
    assert not [a for a in sandbox.state.tenant("target").col("applications").values()
                if a["displayName"].startswith("xtwizard")]


def test_more_than_one_scope_group(sandbox: Any, tmp_path: Path) -> None:
    err = failing(sandbox, tmp_path, SetupOptions(scope_groups=["Migration Wave 1", "Finance Team"]))
    assert "More than one scope group" in err.problem.what


def test_new_empty_group_is_refused(sandbox: Any, tmp_path: Path) -> None:
    err = failing(sandbox, tmp_path, SetupOptions(scope_groups=["Wave 2"], create_scope_group=True))
    assert "no members" in err.problem.what


def test_new_group_with_members_is_created_and_scopes_the_move(sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)
    mailboxes = ["alice@northwind.example", "ben.carter@northwind.example"]
    opts = SetupOptions(scope_groups=["Wave 2"], create_scope_group=True, members_add=mailboxes)
    checks = run_engine(sandbox, project, opts, apply)
    assert all(c.ok for c in checks), [c.text() for c in checks if not c.ok]
    assert any(c.name == "Scope group members" and "2 member" in c.message for c in checks)
    created = [e for e in project.created_objects() if e.target.get("key") == "scope-group"]
    assert len(created) == 1


def test_unknown_member(sandbox: Any, tmp_path: Path) -> None:
    err = failing(sandbox, tmp_path, SetupOptions(scope_groups=["Migration Wave 1"],
                                                  members_add=["ghost@northwind.example"]))
    assert "ghost@northwind.example" in err.problem.what


def test_consent_not_by_api_stops_before_the_endpoint_with_the_admin_kit(sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)
    opts = SetupOptions(scope_groups=["Migration Wave 1"], consent_by_api=False)
    with pytest.raises(SetupProblem) as info:
        run_engine(sandbox, project, opts, apply)
    p = info.value.problem
    assert "not approved" in p.what
    assert "/adminconsent?client_id=" in p.details and "redirect_uri=https%3A%2F%2Foffice.com" in p.details
    assert "Mailbox.Migration" in p.details
    # nothing that needs the consent was attempted; everything made is in the journal
    assert not sandbox.state.tenant("target").col("exchange.endpoints") or all(
        not e["Identity"].startswith("xtwizard") for e in sandbox.state.tenant("target").col("exchange.endpoints").values())
    keys = {e.target["key"] for e in project.created_objects()}
    assert {"app", "target-sp", "target-grant"} <= keys
    assert project.unfinished() == []


def test_expired_secret_is_planned_as_a_new_secret_and_endpoint_update(sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)
    opts = SetupOptions(scope_groups=["Migration Wave 1"], migration_window_days=10)
    run_engine(sandbox, project, opts, apply)
    advance(sandbox, 45 * 86400)  # past the secret's end (window + 30 days)

    async def go(engine: SetupEngine) -> Any:
        import datetime

        engine.now = lambda: datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=45)
        plan = await engine.plan()
        await engine.apply()
        return plan, await engine.verify()

    plan, checks = run_engine(sandbox, project, opts, go)
    keys = [(c.key, c.kind) for c in plan.pending]
    assert ("secret", "create") in keys and ("endpoint", "update") in keys
    assert "expired" in next(c.line for c in plan.pending if c.key == "secret")
    assert any("Migration Wave 1" in c.message for c in checks)
    assert all(c.ok for c in checks), [c.text() for c in checks if not c.ok]


def test_exchange_throttling_is_ridden_out(sandbox: Any, tmp_path: Path) -> None:
    fault(sandbox, kind="throttle", service="exchange", count=4, retry_after=1)
    project = new_project(tmp_path)
    checks = run_engine(sandbox, project, SetupOptions(scope_groups=["Migration Wave 1"]), apply)
    assert all(c.ok for c in checks)


def test_expiry_within_the_window_is_warned(sandbox: Any, tmp_path: Path) -> None:
    import datetime

    project = new_project(tmp_path)
    opts = SetupOptions(scope_groups=["Migration Wave 1"], migration_window_days=10)
    run_engine(sandbox, project, opts, apply)

    async def later(engine: SetupEngine) -> Any:
        engine.now = lambda: datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=31)
        return engine.expiry_warning(), await engine.plan()

    warning, plan = run_engine(sandbox, project, opts, later)
    assert warning is not None and "within the migration window" in warning
    assert any("within the migration window" in w for w in plan.warnings)
    assert ("secret", "create") in [(c.key, c.kind) for c in plan.pending]

    async def now(engine: SetupEngine) -> Any:
        return engine.expiry_warning()

    assert run_engine(sandbox, project, opts, now) is None


def test_a_distribution_list_is_refused_with_the_reason(sandbox: Any, tmp_path: Path) -> None:
    err = failing(sandbox, tmp_path, SetupOptions(scope_groups=["All Staff"]))
    assert "it is a distribution list, not a mail-enabled security group" in err.problem.what
    assert "MailboxMovePublishedScopes" in err.problem.why

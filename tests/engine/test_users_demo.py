"""The users engine end to end on the demo scenario: inventory, mapping, readiness finds every planted problem
with the right explanation, the safe ones are fixed in one click (journaled), the rest stay explained;
preparation plans per-user diffs, applies them, and a rerun changes nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.engine.setup_support import new_project
from tests.engine.users_support import run_users
from xtwizard.cloud.exchange import ExchangeClient
from xtwizard.cloud.http import NetworkUnavailable
from xtwizard.migration.batches import BatchEngine
from xtwizard.migration.setup.model import Plan
from xtwizard.migration.users import UserEngine, load_mapping, ready_users
from xtwizard.sandbox.exchange import store

SCOPE = "Migration Wave 1"
DOMAIN = "fabrikam.example"

# user -> (failing check, words its explanation must carry, one-click fix id or "")
PLANTED = {
    "gina.hoffman": ("scope", "Migration Wave 1", "add-to-scope"),
    "hugo.ivanov": ("licence", "Cross Tenant User Data Migration licence", ""),
    "iris.jensen": ("holds", "litigation hold", ""),
    "jonas.keller": ("exchange-guid", "no ExchangeGuid", "stamp-exchange-guid"),
    "kara.lund": ("x500", "X500", "add-x500"),
    "leo.martin": ("archive-guid", "no ArchiveGuid", "stamp-archive-guid"),
    "mia.nowak": ("foreign-proxy", "mia.nowak@northwind.example", "remove-foreign-proxy"),
    "nils.olsen": ("delivery-proxy", "fabrikaminc.onmicrosoft.com", "add-delivery-proxy"),
    "olivia.perez": ("target", "no MailUser", "create-mailuser"),
    "paul.quinn": ("target", "already exists there", ""),
    "quinn.roberts": ("aux-archives", "13 auxiliary archives", ""),
    "rosa.schmidt": ("other-batch", "'Pilot'", ""),
    "uwe.vogel": ("previous-mailbox", "cannot be undone", ""),
    "vera.wolf": ("dry-run", "already being moved", ""),
    "will.young": ("holds", "delay hold", ""),
}
WARNED = {"tara.usman": "auto-expanding-archive", "quinn.roberts": "auto-expanding-archive"}


def _local(address: str) -> str:
    return address.split("@", 1)[0]


async def _map(engine: UserEngine) -> list[Any]:
    boxes = await engine.inventory()
    chosen = [m for m in boxes if m.in_scope or m.address.startswith("gina.")]
    rows = await engine.validate(engine.auto_map(chosen, DOMAIN))
    engine.save_mapping(rows, DOMAIN)
    return boxes


def test_readiness_finds_every_planted_problem_and_fixes_the_safe_ones(sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)

    async def body(engine: UserEngine) -> dict[str, Any]:
        boxes = await _map(engine)
        first = await engine.readiness()
        plan = engine.plan_fixes(first)
        applied = await engine.apply_fixes(plan)
        second = await engine.readiness()
        return {"boxes": boxes, "first": first, "plan": plan, "applied": applied, "second": second,
                "replan": engine.plan_fixes(second)}

    out = run_users(sandbox, project, body, setup_scope=SCOPE)
    boxes = out["boxes"]
    assert len(boxes) == 30 and sum(m.in_scope for m in boxes) == 25
    dan = next(m for m in boxes if m.address.startswith("dan."))
    assert dan.size_bytes == 7800 * (1 << 20) and dan.deleted_bytes == 900 * (1 << 20) and dan.has_archive
    # Chris Green is auto-mapped to the MailUser prepared for him (c.green), not to Fabrikam's own Chris.
    assert {r.source: r.target for r in load_mapping(project)}["chris.green@northwind.example"] == "c.green@fabrikam.example"

    first = {_local(r.source): r for r in out["first"]}
    for user, (check, words, fix_id) in PLANTED.items():
        failing = [f for f in first[user].problems if f.blocking]
        assert [f.check for f in failing] == [check], (user, [f.text() for f in failing])
        f = failing[0]
        assert words in f"{f.what} {f.why} {f.fix}", (user, f.text())
        assert f.fix_id == fix_id, user
        assert f.what and f.why and f.fix
    for user, check in WARNED.items():
        assert any(f.check == check and f.severity == "warning" for f in first[user].problems), user
    ready_first = {u for u, r in first.items() if r.ready}
    assert ready_first == {"alice", "ben.carter", "carla.diaz", "dan.evans", "ella.fischer", "farid.ghani",
                           "sam.turner", "tara.usman", "zoe.baker", "chris.green", "sales"}

    safe = {u for u, (_c, _w, fix) in PLANTED.items() if fix}
    assert {_local(c.key.split("|", 1)[1]) for c in out["plan"].pending} == safe
    assert out["applied"].warnings == [] and len(out["applied"].done) == len(safe)
    second = {_local(r.source): r for r in out["second"]}
    assert {u for u, r in second.items() if r.ready} == ready_first | safe
    for user in set(PLANTED) - safe:  # the rest stay explained, with no click offered
        assert not second[user].ready and not second[user].fixable, user
    assert out["replan"].pending == []
    # Journaled before and after: one intent and one outcome per fix, none left open.
    fixes = [e for e in project.entries() if e.step == "readiness-fix"]
    assert len([e for e in fixes if e.phase == "intent"]) == len(safe) == len([e for e in fixes if e.phase == "done"])
    assert project.unfinished() == []
    # What the batches engine reads.
    assert {_local(u.source) for u in ready_users(project)} == ready_first | safe
    # In the tenant: Gina is now in the scope group, Olivia's MailUser exists once, stamped.
    target = sandbox.state.tenant("target")
    olivia = [r for r in store.recipients(target).values() if r.get("PrimarySmtpAddress") == "olivia.perez@fabrikam.example"]
    assert len(olivia) == 1 and olivia[0]["ExchangeGuid"] != store.ZERO_GUID


def test_preparation_plans_diffs_applies_and_a_rerun_changes_nothing(sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)

    async def body(engine: UserEngine) -> dict[str, Any]:
        await _map(engine)
        plan = await engine.plan_prepare()
        result = await engine.apply_prepare(plan)
        again = await engine.plan_prepare()
        return {"plan": plan, "result": result, "again": again, "olivia": await engine.dry_run("olivia.perez@fabrikam.example"),
                "vera": await engine.dry_run("vera.wolf@northwind.example")}

    out = run_users(sandbox, project, body, setup_scope=SCOPE)
    plan = out["plan"]
    kinds = {_local(c.source): c.kind for c in plan.changes}
    assert kinds["olivia.perez"] == "create" and kinds["paul.quinn"] == "skip" and kinds["alice"] == "keep"
    for user in ("jonas.keller", "kara.lund", "leo.martin", "mia.nowak", "nils.olsen"):
        assert kinds[user] == "update", user
    text = "\n".join(plan.lines())
    assert "ExchangeGuid: 00000000-0000-0000-0000-000000000000 ->" in text  # Jonas's diff, before -> after
    assert "already has a mailbox" in text  # Paul: skipped with the reason
    assert out["result"].failed == [] and len(out["result"].done) == len(plan.pending) == 6
    assert out["again"].pending == [], out["again"].lines()
    assert out["olivia"].ok, out["olivia"].text()
    assert not out["vera"].ok and "already being moved" in out["vera"].message
    # Never an SMTP proxy of a domain the target does not own; every prepared MailUser has its delivery proxy.
    target = sandbox.state.tenant("target")
    for r in store.recipients(target).values():
        if r["RecipientTypeDetails"] == "MailUser":
            domains = {a.rsplit("@", 1)[1].lower() for a in store.smtp_addresses(r)}
            assert domains <= {"fabrikam.example", "fabrikaminc.onmicrosoft.com"}, r["EmailAddresses"]
            assert "fabrikaminc.onmicrosoft.com" in domains, r["Name"]


def test_a_create_whose_answer_was_lost_is_found_not_made_twice(sandbox: Any, tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    project = new_project(tmp_path)
    original = ExchangeClient.new_mail_user

    async def lost(self: ExchangeClient, *a: Any, **kw: Any) -> Any:
        await original(self, *a, **kw)  # Exchange made it, but the connection dropped before the answer
        raise NetworkUnavailable("exchange", "InvokeCommand New-MailUser", ConnectionResetError())

    monkeypatch.setattr(ExchangeClient, "new_mail_user", lost)

    async def body(engine: UserEngine) -> Any:
        await _map(engine)
        result = await engine.apply_prepare(await engine.plan_prepare())
        return result, await engine.plan_prepare()

    result, again = run_users(sandbox, project, body, setup_scope=SCOPE)
    assert result.failed == [] and again.pending == []
    target = sandbox.state.tenant("target")
    olivia = [r for r in store.recipients(target).values() if "olivia" in str(r.get("PrimarySmtpAddress"))]
    assert len(olivia) == 1 and olivia[0]["ExchangeGuid"] != store.ZERO_GUID


def test_interrupted_preparation_resumes_without_duplicates_and_cancel_stops_between_users(
        sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)
    cancel = threading.Event()

    async def body(engine: UserEngine) -> Any:
        await _map(engine)
        plan = await engine.plan_prepare()
        # A crash right after New-MailUser: the intent is journaled, the object exists, no outcome recorded.
        olivia = next(c for c in plan.pending if c.kind == "create")
        engine.journal.begin("target", "prepare-users", "create mailuser",
                             {"key": f"mailuser:{olivia.source}", "type": "MailUser", "name": olivia.target})
        await engine.ctx.exchange("target").new_mail_user(
            olivia.after["Name"], external_email_address=olivia.source, microsoft_online_services_id=olivia.target,
            primary_smtp_address=olivia.target)
        engine.concurrency = 1

        def stop_after_first(done: int, total: int, what: str) -> None:
            cancel.set()

        fresh = await engine.plan_prepare()
        partial = await engine.apply_prepare(fresh, stop_after_first, cancel)
        rest = await engine.apply_prepare(await engine.plan_prepare())
        return fresh, partial, rest, await engine.plan_prepare()

    fresh, partial, rest, final = run_users(sandbox, project, body, setup_scope=SCOPE)
    assert next(c for c in fresh.changes if c.source.startswith("olivia")).kind == "update"  # adopted, not re-created
    assert partial.cancelled and len(partial.done) == 1
    assert len(rest.done) == len(fresh.pending) - 1 and final.pending == []
    assert project.unfinished() == []
    resolved = [e for e in project.entries() if "on resume" in str(e.detail.get("resolved", ""))]
    assert len(resolved) == 1 and resolved[0].phase == "done"
    target = sandbox.state.tenant("target")
    assert len([r for r in store.recipients(target).values() if "olivia" in str(r.get("PrimarySmtpAddress"))]) == 1


def test_the_scope_fix_journals_as_added_only_the_members_it_added(sandbox: Any, tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    """Gina, Xena and Yusuf are outside the scope group; readiness offers to add all three.  Before the fix runs the
    customer adds Gina by hand: she is journaled as found, not added, and teardown leaves her in the group.  Xena is
    added; Yusuf is added but the answer is lost (the group is read again: ours).  Teardown takes out those two."""
    project = new_project(tmp_path)
    outside = ["gina.hoffman", "xena.zimmer", "yusuf.abbas"]
    original = ExchangeClient.add_distribution_group_member

    async def lost_for_yusuf(self: ExchangeClient, identity: str, member: str) -> Any:
        out = await original(self, identity, member)
        if member.startswith("yusuf."):
            raise NetworkUnavailable("exchange", "InvokeCommand Add-DistributionGroupMember", ConnectionResetError())
        return out

    monkeypatch.setattr(ExchangeClient, "add_distribution_group_member", lost_for_yusuf)

    async def body(engine: UserEngine) -> Any:
        boxes = await engine.inventory(statistics=False)
        rows = engine.auto_map([m for m in boxes if _local(m.address) in outside], DOMAIN)
        engine.save_mapping(await engine.validate(rows), DOMAIN)
        plan = engine.plan_fixes(await engine.readiness(probe=False))
        scope = Plan([c for c in plan.pending if c.key.startswith("add-to-scope|")])
        sx = engine.ctx.exchange("source")  # the customer, in the Exchange admin center, meanwhile
        await sx.invoke("Add-DistributionGroupMember", {"Identity": SCOPE, "Member": "gina.hoffman@northwind.example"})
        applied = await engine.apply_fixes(scope)
        members = await sx.distribution_group_members(SCOPE)
        teardown = await BatchEngine(engine.ctx).plan_teardown()  # type: ignore[arg-type]
        return scope, applied, members, teardown

    scope, applied, members, teardown = run_users(sandbox, project, body, setup_scope=SCOPE)
    assert sorted(_local(c.key.split("|", 1)[1]) for c in scope.pending) == outside
    assert applied.warnings == [] and len(applied.done) == 3
    assert {_local(m.primary_smtp_address) for m in members} >= set(outside)
    outcomes = {(_local(e.target["name"]), e.action) for e in project.entries()
                if e.step == "readiness-fix" and e.phase == "done"}
    assert outcomes == {("gina.hoffman", "adopt member"), ("xena.zimmer", "add member"),
                        ("yusuf.abbas", "add member")}
    assert project.unfinished() == []
    removed = sorted(_local(c.key.split(":", 1)[1]) for c in teardown.pending if c.key.startswith("member:"))
    assert removed == ["xena.zimmer", "yusuf.abbas"], teardown.lines()

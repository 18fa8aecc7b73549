"""Waves (pure) and monitoring at scale: a refresh of 10,000 migration users in ≤ ceil(N/1000) + 2 requests."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

from tests.engine.setup_support import SandboxContext, new_project
from tests.engine.test_batches_support import sandbox_now
from tests.unit.cloud_support import policy_for, request_log
from xtwizard.migration.batches import BatchEngine, WaveUser
from xtwizard.migration.workspace import TenantIdentity
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.generate import scenario


def _engine(tmp: Path) -> BatchEngine:
    class NoCloud:  # plan_waves needs only the project
        def __init__(self) -> None:
            self.project = new_project(tmp)
            self.identities: dict[str, Any] = {}

    return BatchEngine(NoCloud())  # type: ignore[arg-type]


def test_waves_keep_delegates_together_and_hold_at_most_the_limit(tmp_path: Path) -> None:
    users = [WaveUser(f"u{i}@s.example", f"u{i}@t.example") for i in range(9)]
    # u0 <-> u5 <-> u8 (transitively one group), u2 <-> u3; a delegate outside the list is ignored.
    users[0] = WaveUser("u0@s.example", "u0@t.example", ("u5@s.example", "nobody@s.example"))
    users[5] = WaveUser("u5@s.example", "u5@t.example", ("U8@s.example",))
    users[3] = WaveUser("u3@s.example", "u3@t.example", ("u2@s.example",))
    waves = _engine(tmp_path).plan_waves(users, max_size=4)
    assert all(len(w.users) <= 4 for w in waves) and sum(len(w.users) for w in waves) == 9
    where = {u.source: w.number for w in waves for u in w.users}
    assert where["u0@s.example"] == where["u5@s.example"] == where["u8@s.example"]
    assert where["u2@s.example"] == where["u3@s.example"]
    assert len(waves) == 3 and [w.name for w in waves] == ["Wave 1", "Wave 2", "Wave 3"]
    # A delegation group larger than a batch is split, and the wave says so.
    chain = [WaveUser(f"c{i}@s.example", f"c{i}@t.example", (f"c{i + 1}@s.example",)) for i in range(5)]
    split = _engine(tmp_path).plan_waves(chain, max_size=3)
    assert [len(w.users) for w in split] == [3, 2] and "split over 2 waves" in split[0].warnings[0]


def test_refresh_of_ten_thousand_users_uses_eleven_requests(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(scenario(10_000)))
    with Sandbox(str(path)) as sb:
        project = new_project(tmp_path)

        async def go() -> tuple[Any, float, int]:
            policy = policy_for(sb)
            try:
                ctx = SandboxContext(sb, project, policy, admins={"source": "admin@contosobig.onmicrosoft.com",
                                                                  "target": "admin@litwarebig.onmicrosoft.com"})
                t = sb.state.tenant("target")
                assert t is not None
                ctx.identities["target"] = TenantIdentity("target", t.id, t.display_name, t.initial_domain,
                                                          "admin@litwarebig.onmicrosoft.com")
                tx = ctx.exchange("target")
                await tx.new_migration_endpoint("Big", remote_tenant="contosobig.onmicrosoft.com",
                                                application_id="00000000-0000-0000-0000-000000000001",
                                                skip_verification=True)
                addresses = [m.primary_smtp_address for m in await tx.mail_users()]
                for i in range(5):
                    await tx.new_migration_batch(f"Wave {i + 1}", source_endpoint="Big",
                                                 target_delivery_domain=t.initial_domain,
                                                 users=addresses[i * 2000:(i + 1) * 2000], auto_start=True)
                sb.clock.advance(3600)
                engine = BatchEngine(ctx, clock=lambda: sandbox_now(sb))
                seq = request_log(sb)[-1]["seq"] if request_log(sb) else 0
                start = time.perf_counter()
                snap = await engine.refresh()
                took = time.perf_counter() - start
                used = [r for r in request_log(sb, "exchange") if r["seq"] > seq]
                # Nothing changed since: the second refresh does not write the project file again (a write
                # replaces the file: a new inode).
                def written() -> tuple[int, int, int]:
                    st = project.file.stat()
                    return st.st_ino, st.st_mtime_ns, st.st_size

                before = written()
                start = time.perf_counter()
                again = await engine.refresh()
                took_again = time.perf_counter() - start
                assert written() == before
                assert [u.stage for u in again.users] == [u.stage for u in snap.users]
                return snap, (took, took_again), len(used)
            finally:
                await policy.aclose()

        snap, took, used = asyncio.run(go())
    assert len(snap.users) == 10_000 and len(snap.batches) == 5
    assert used <= math.ceil(10_000 / 1000) + 2 and snap.requests == used
    assert sum(b.total for b in snap.batches) == 10_000
    # One Problem per distinct error, shared by every user who has it (not one per failed user).
    failed = [u for u in snap.users if u.problem is not None]
    assert failed and len({id(u.problem) for u in failed}) == len({u.error for u in failed}) < len(failed)
    print(f"\n10,000-user refresh: {used} requests, {took[0]:.2f} s; again, nothing changed: {took[1]:.2f} s")

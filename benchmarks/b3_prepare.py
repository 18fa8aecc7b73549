"""B3: target MailUsers prepared for N source mailboxes (default 5,000) with 50 ms latency per Exchange request,
under the sandbox's per-tenant concurrency throttle: throughput as a share of the throttle's limit, and zero
lost or duplicated objects.

The limit's capacity is `limit / latency` requests per second (each admitted request holds a slot for at
least the latency).  Throughput is the target tenant's admitted InvokeCommand requests during the apply
divided by its wall time.  The app runs as shipped: its HTTP policy (4 requests in flight per tenant and
service, Retry-After honoured with real waits) and the users engine's default concurrency."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.engine.setup_support import clock_sleep, new_project
from tests.engine.users_support import CachedContext
from xtwizard.cloud.http import HttpPolicy
from xtwizard.migration.setup import SetupEngine, SetupOptions
from xtwizard.migration.users import UserEngine
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.exchange import store
from xtwizard.sandbox.generate import scenario

LATENCY_MS = 50
GOAL = 0.80
SCOPE = "Migration Scope"
DOMAIN = "litware-big.example"
ADMINS = {"source": "admin@contosobig.onmicrosoft.com", "target": "admin@litwarebig.onmicrosoft.com"}


def control(sb: Sandbox, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(verify=sb.ca_path, trust_env=False, timeout=60) as c:
        r = c.request(method, sb.info["control_url"] + path, json=body)
        r.raise_for_status()
        return r.json() if r.content else None


def lost_and_duplicated(sb: Sandbox, sources: dict[str, str]) -> tuple[list[str], list[str]]:
    """Source addresses with no correctly stamped target MailUser, and those with more than one."""
    target = sb.state.tenant("target")
    assert target is not None
    with sb.state.lock:
        users = [r for r in store.recipients(target).values() if r.get("RecipientTypeDetails") == "MailUser"]
    by_source = Counter(str(r.get("ExternalEmailAddress", "")).lower().removeprefix("smtp:") for r in users)
    guids = {str(r.get("ExternalEmailAddress", "")).lower().removeprefix("smtp:"): str(r.get("ExchangeGuid", "")).lower()
             for r in users}
    lost = [a for a, g in sources.items() if by_source[a] == 0 or guids.get(a) != g]
    dup = [a for a in sources if by_source[a] > 1]
    return lost, dup


def run(users: int = 5000, limit: int = 4, retry_after: int = 1) -> dict[str, Any]:
    data = scenario(users)
    data["tenants"][1]["users"] = data["tenants"][1]["users"][:1]  # only the admin: every MailUser is to be made
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.json"
        path.write_text(json.dumps(data))
        with Sandbox(str(path)) as sb:
            return asyncio.run(_prepare(sb, Path(tmp), users, limit, retry_after))


async def _prepare(sb: Sandbox, tmp: Path, users: int, limit: int, retry_after: int) -> dict[str, Any]:
    project = new_project(tmp)
    policy = HttpPolicy.for_ca_bundle(sb.ca_path)  # as shipped: real waits for Retry-After
    try:
        ctx = CachedContext(sb, project, policy, admins=dict(ADMINS))
        await SetupEngine(ctx, SetupOptions(scope_groups=[SCOPE]), sleep=clock_sleep(sb)).apply()
        engine = UserEngine(ctx)
        boxes = await engine.inventory()
        rows = await engine.validate(engine.auto_map(boxes, DOMAIN))
        engine.save_mapping(rows, DOMAIN)
        plan = await engine.plan_prepare()
        sources = {m.address.lower(): m.exchange_guid.lower() for m in boxes}
        # Only the preparation runs with latency and under the throttle.
        control(sb, "POST", "/faults", {"kind": "latency", "service": "exchange", "latency_ms": LATENCY_MS})
        control(sb, "PATCH", "/settings", {"exchange_max_concurrent": limit,
                                           "exchange_throttle_retry_after_seconds": retry_after})
        control(sb, "DELETE", "/throttle")
        started = time.perf_counter()
        result = await engine.apply_prepare(plan)
        wall = time.perf_counter() - started
        counts = control(sb, "GET", "/throttle")["exchange"]["tenants"].get(ctx.identities["target"].tenant_id, {})
        rerun = await engine.plan_prepare()
    finally:
        await policy.aclose()
    lost, dup = lost_and_duplicated(sb, sources)
    admitted = int(counts.get("admitted", 0))
    rate = admitted / wall
    capacity = limit / (LATENCY_MS / 1000)
    share = rate / capacity
    return {
        "users": users, "limit": limit, "latency_ms": LATENCY_MS, "retry_after_s": retry_after, "goal": GOAL,
        "pending": len(plan.pending), "done": len(result.done), "failed": len(result.failed),
        "wall_s": round(wall, 1), "requests": admitted, "throttled": int(counts.get("throttled", 0)),
        "peak_in_flight": int(counts.get("peak", 0)), "requests_per_s": round(rate, 1),
        "capacity_per_s": round(capacity, 1), "share": round(share, 3),
        "lost": len(lost), "duplicated": len(dup), "pending_after": len(rerun.pending),
        "met": share >= GOAL and not lost and not dup and not result.failed and len(result.done) == users,
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5000), indent=1))  # noqa: T201

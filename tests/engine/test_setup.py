"""The setup engine end to end against the sandbox (client-secret mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.setup_support import new_project, run_engine
from xtwizard.migration.setup import SetupEngine, SetupOptions, SetupProblem

SCOPE = SetupOptions(scope_groups=["Migration Wave 1"])


async def full(engine: SetupEngine) -> dict[str, Any]:
    plan = await engine.plan()
    result = await engine.apply()
    checks = await engine.verify()
    return {"plan": plan, "result": result, "checks": checks, "after": await engine.plan()}


def test_secret_mode_end_to_end(sandbox: Any, tmp_path: Path) -> None:
    project = new_project(tmp_path)
    out = run_engine(sandbox, project, SCOPE, full)
    text = "\n".join(out["plan"].lines())
    print(text)
    for c in out["checks"]:
        print(c.text())
    assert [c for c in out["checks"] if not c.ok and not c.warning] == []
    assert out["after"].is_empty

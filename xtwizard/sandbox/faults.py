"""Injected faults: latency, throttling storms, server errors and dropped connections, per route or global.

A rule matches by service, method, a glob on the path and, for Exchange, the cmdlet (`InvokeCommand` serves
every cmdlet on one path).  `drop` closes the connection before the request is carried out; `lose` carries
it out and then closes the connection, so the client never learns that its change was made.  `count` makes a storm of N requests; without
it the rule stays until removed.  Settings that are not per-request (replication delay, token lifetime)
live in `SandboxState.settings`.
"""

from __future__ import annotations

import fnmatch
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("latency", "throttle", "error", "drop", "lose")


class FaultSpecError(ValueError):
    pass


@dataclass
class FaultRule:
    kind: str
    service: str = "*"
    method: str = "*"
    path: str = "*"
    count: int | None = None
    status: int = 0
    retry_after: int = 2
    latency_ms: int = 0
    message: str = ""
    cmdlet: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    hits: int = 0

    def matches(self, service: str, method: str, path: str, cmdlet: str = "") -> bool:
        return (self.service in ("*", service) and self.method.upper() in ("*", method.upper())
                and fnmatch.fnmatchcase(path.lower(), self.path.lower())
                and (not self.cmdlet or self.cmdlet.lower() == cmdlet.lower()))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_rule(spec: Any) -> FaultRule:
    if not isinstance(spec, dict):
        raise FaultSpecError("A fault is a JSON object, e.g. {\"kind\": \"throttle\", \"count\": 3}.")
    unknown = set(spec) - {"kind", "service", "method", "path", "count", "status", "retry_after",
                           "latency_ms", "message", "cmdlet"}
    if unknown:
        raise FaultSpecError(f"Unknown fault field(s): {sorted(unknown)}.")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"'kind' must be one of {list(KINDS)}.")
    try:
        rule = FaultRule(
            kind=kind, service=str(spec.get("service", "*")), method=str(spec.get("method", "*")),
            path=str(spec.get("path", "*")),
            count=None if spec.get("count") is None else int(spec["count"]),
            status=int(spec.get("status", 429 if kind == "throttle" else 503 if kind == "error" else 0)),
            retry_after=int(spec.get("retry_after", 2)), latency_ms=int(spec.get("latency_ms", 0)),
            message=str(spec.get("message", "")), cmdlet=str(spec.get("cmdlet", "")),
        )
    except (TypeError, ValueError):
        raise FaultSpecError("count, status, retry_after and latency_ms must be integers.") from None
    if rule.count is not None and rule.count < 1:
        raise FaultSpecError("'count' must be at least 1 (leave it out for a fault that stays).")
    if kind == "latency" and not 0 < rule.latency_ms <= 120_000:
        raise FaultSpecError("'latency_ms' must be between 1 and 120000 for a latency fault.")
    if kind in ("throttle", "error") and not 400 <= rule.status <= 599:
        raise FaultSpecError("'status' must be an HTTP error status (400-599).")
    return rule


class FaultSet:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def latency_ms(self, service: str, method: str, path: str) -> int:
        """The latency the matching rules add, without firing or using up any rule."""
        with self._lock:
            return sum(r.latency_ms for r in self._rules if r.kind == "latency" and r.matches(service, method, path))

    def take(self, service: str, method: str, path: str, cmdlet: str = "") -> list[FaultRule]:
        """The rules this request triggers; counted rules are used up."""
        fired: list[FaultRule] = []
        with self._lock:
            for r in list(self._rules):
                if r.matches(service, method, path, cmdlet):
                    r.hits += 1
                    fired.append(r)
                    if r.count is not None:
                        r.count -= 1
                        if r.count <= 0:
                            self._rules.remove(r)
        return fired

"""The engine's data, as pages and the headless command show it: a plan of changes and verification checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What a change does to an object: create it, update its drifted properties, or nothing (adopt = an object
# found and taken as ours; keep = already ours and as wanted; wait = a person elsewhere must act).
CHANGING = ("create", "update", "remove")


@dataclass(frozen=True)
class Change:
    tenant: str                      # "source" | "target"
    step: str                        # "migration-app", "credential", "source-consent", "target-exchange", ...
    kind: str                        # "create" | "update" | "remove" | "adopt" | "keep" | "wait"
    key: str                         # the object, e.g. "app", "endpoint" (what the engine executes)
    line: str                        # plain language, one line
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    @property
    def changes_tenant(self) -> bool:
        return self.kind in CHANGING

    def text(self) -> str:
        out = self.line
        drift = [k for k in self.after if self.before.get(k) != self.after.get(k)] if self.kind == "update" else []
        for k in drift:
            out += f"\n      {k}: {_show(self.before.get(k))} -> {_show(self.after.get(k))}"
        return out


def _show(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


@dataclass
class Plan:
    changes: list[Change]
    warnings: list[str] = field(default_factory=list)
    nothing: str = "Nothing to change: the setup is complete."  # what `lines()` says when nothing is to be done

    @property
    def pending(self) -> list[Change]:
        """The changes that would modify a tenant."""
        return [c for c in self.changes if c.changes_tenant]

    @property
    def waiting(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "wait"]

    @property
    def is_empty(self) -> bool:
        return not self.pending and not self.waiting

    def for_tenant(self, tenant: str) -> list[Change]:
        return [c for c in self.changes if c.tenant == tenant]

    def lines(self) -> list[str]:
        """The plan as the admin reads it: per tenant, each object and what happens to it."""
        out: list[str] = []
        marks = {"create": "+", "update": "~", "remove": "-", "adopt": "=", "keep": "=", "wait": "?"}
        for tenant in ("target", "source"):
            changes = self.for_tenant(tenant)
            if not changes:
                continue
            n = sum(1 for c in changes if c.changes_tenant)
            out.append(f"{tenant.capitalize()} tenant: {n} change{'s' if n != 1 else ''}")
            out.extend(f"  {marks.get(c.kind, ' ')} {c.text()}" for c in changes)
        if self.is_empty:
            out.append(self.nothing)
        out.extend(f"Warning: {w}" for w in self.warnings)
        return out


@dataclass(frozen=True)
class Check:
    """One verification line: VerifySetup.ps1's checks and more."""

    tenant: str
    name: str
    ok: bool
    message: str
    fix: str = ""
    warning: bool = False     # reported, does not fail the setup

    def text(self) -> str:
        status = "Passed" if self.ok else ("Warning" if self.warning else "Failed")
        out = f"[{status}] {self.tenant}: {self.name}: {self.message}"
        if not self.ok and self.fix:
            out += f"\n         What to do: {self.fix}"
        return out


@dataclass
class ApplyResult:
    done: list[Change] = field(default_factory=list)
    cancelled: bool = False
    warnings: list[str] = field(default_factory=list)

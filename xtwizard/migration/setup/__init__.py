"""Setting up the migration (issue 5): the migration app and its credential, the source's consent, the
migration endpoint, both organization relationships and the scoping group.

`SetupEngine` inspects both tenants, plans the difference (`Plan`), applies it change by change (each
journaled before and after) and verifies the result; pages and the headless command drive the same engine.
"""

from .engine import SetupContext, SetupEngine, SetupOptions, SetupProblem
from .model import Change, Check, Plan

__all__ = ["Change", "Check", "Plan", "SetupContext", "SetupEngine", "SetupOptions", "SetupProblem"]

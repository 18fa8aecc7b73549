"""Users (issue 6 items 1-4): inventory of the source mailboxes, the source -> target mapping, preparation of the
target MailUsers, and readiness per user with one-click safe fixes and a dry run.

`UserEngine` reads both tenants, plans (`PreparePlan`, `Plan` of fixes), applies change by change (each
journaled before and after) and checks; pages and the headless commands drive the same engine.
"""

from .engine import UserEngine, UsersContext, delivery_domain, load_mapping, mark_for_recheck, ready_users
from .model import (
    Finding,
    MappingRow,
    PreparePlan,
    PrepareResult,
    ReadyUser,
    SourceMailbox,
    UserChange,
    UserReadiness,
)

__all__ = ["Finding", "MappingRow", "PreparePlan", "PrepareResult", "ReadyUser", "SourceMailbox", "UserChange",
           "UserEngine", "UserReadiness", "UsersContext", "delivery_domain", "load_mapping", "mark_for_recheck",
           "ready_users"]

"""The cmdlet registry: each served cmdlet with its parameters, its role requirement and its handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..state import JSON, SandboxState, Tenant
from .params import Param

if TYPE_CHECKING:
    from ..faults import FaultSet


@dataclass
class Ctx:
    """What a cmdlet sees: the state, the organization it runs in, the caller, its bound parameters."""

    state: SandboxState
    tenant: Tenant
    caller_upn: str
    params: dict[str, Any]
    faults: FaultSet
    warnings: list[str] = field(default_factory=list)
    object_type: str = "Object"  # for @odata.context

    @property
    def now(self) -> float:
        return self.state.clock.now()

    def p(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def given(self, name: str) -> bool:
        return name in self.params


@dataclass
class Lazy:
    """A long listing: the items, and how to render one.  Only the page that is sent gets rendered."""

    items: list[Any]
    render: Callable[[Any], JSON]


Handler = Callable[[Ctx], "list[JSON] | Lazy"]


@dataclass
class Cmdlet:
    name: str
    params: dict[str, Param]
    handler: Handler
    object_type: str
    org_management: bool = False  # needs Organization Management (MailboxMoveCapability changes)


REGISTRY: dict[str, Cmdlet] = {}


def cmdlet(name: str, params: dict[str, Param], object_type: str = "Object",
           org_management: bool = False) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        REGISTRY[name.lower()] = Cmdlet(name, params, fn, object_type, org_management)
        return fn
    return deco


def result_size(ctx: Ctx, items: list[Any], default: int = 1000) -> list[Any]:
    """Apply -ResultSize (default 1000 with Exchange's warning, or Unlimited)."""
    raw = ctx.p("ResultSize")
    if isinstance(raw, str) and raw.lower() == "unlimited":
        return items
    limit = default
    if raw is not None:
        try:
            limit = int(raw)
        except (TypeError, ValueError):
            from .errors import PARAMETER_BINDING, CmdletError
            raise CmdletError(PARAMETER_BINDING, "Cannot process argument transformation on parameter "
                                                 f"'ResultSize'. Cannot convert value \"{raw}\" to type "
                                                 "\"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\". "
                                                 "Error: \"Input string was not in a correct format.\"") from None
    if len(items) > limit:
        if raw is None:
            ctx.warnings.append(f"By default, only the first {default} items are returned. Use the ResultSize "
                                "parameter to specify the number of items returned. To return all items, specify "
                                "\"-ResultSize Unlimited\".")
        return items[:limit]
    return items

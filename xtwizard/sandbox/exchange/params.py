"""Parameter binding as PowerShell does it for Exchange cmdlets: names case-insensitive, types converted
with PowerShell's own messages, switches, multi-valued properties with add/remove hashtables."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..directory import parse_iso
from .errors import PARAMETER_BINDING, CmdletError, missing_parameters, unknown_parameter
from .wire import WireValueError, decode_bytes, decode_credential

# Common parameters every cmdlet accepts (and the sandbox ignores unless a cmdlet reads them).
COMMON = ("ErrorAction", "WarningAction", "Verbose", "Debug", "Confirm", "WhatIf", "InformationAction")


@dataclass
class Param:
    kind: str  # string identity bool switch int guid datetime strings multi enum enumset bytes credential secure
    mandatory: bool = False
    values: tuple[str, ...] = ()  # for enum / enumset


@dataclass
class MultiValue:
    """A multi-valued property value: either a replacement list or an add/remove delta."""

    replace: list[str] | None = None
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)

    def apply(self, current: list[str], same: Callable[[str, str], bool] | None = None) -> list[str]:
        eq = same or (lambda a, b: a.lower() == b.lower())
        if self.replace is not None:
            return list(self.replace)
        out = [v for v in current if not any(eq(v, r) for r in self.remove)]
        for a in self.add:
            if not any(eq(v, a) for v in out):
                out.append(a)
        return out


def _transform_error(name: str, value: Any, target: str, detail: str) -> CmdletError:
    shown = value if isinstance(value, str | int | float) and not isinstance(value, bool) else \
        ("System.Object[]" if isinstance(value, list) else "System.Collections.Hashtable"
         if isinstance(value, dict) else str(value))
    return CmdletError(PARAMETER_BINDING, f"Cannot process argument transformation on parameter '{name}'. "
                                          f"Cannot convert value \"{shown}\" to type \"{target}\". Error: \"{detail}\"")


def _as_string(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return str(value)
    raise CmdletError(PARAMETER_BINDING, f"Cannot convert '{'System.Object[]' if isinstance(value, list) else 'System.Collections.Hashtable'}'"
                                         f" to the type 'System.String' required by parameter '{name}'. "
                                         "Specified method is not supported.")


def _as_list(name: str, value: Any) -> list[str]:
    if isinstance(value, list):
        return [_as_string(name, v) for v in value]
    if isinstance(value, str) and "," in value:
        return [p.strip() for p in value.split(",") if p.strip()]
    return [_as_string(name, value)]


def convert(name: str, spec: Param, value: Any) -> Any:
    k = spec.kind
    if value is None:
        if spec.mandatory:
            raise CmdletError(PARAMETER_BINDING, f"Cannot bind argument to parameter '{name}' because it is null.")
        # $null for a multi-valued property clears it, as in PowerShell.
        return {"multi": MultiValue(replace=[]), "strings": [], "enumset": []}.get(k)
    if k in ("string", "identity", "secure"):
        return _as_string(name, value)
    if k in ("bool", "switch"):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        kind = "System.Management.Automation.SwitchParameter" if k == "switch" else "System.Boolean"
        raise CmdletError(PARAMETER_BINDING, f"Cannot process argument transformation on parameter '{name}'. "
                                             f"Cannot convert value \"{type(value).__name__}\" to type \"{kind}\". "
                                             "Boolean parameters accept only Boolean values and numbers, such as "
                                             "$True, $False, 1 or 0.")
    if k == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        raise _transform_error(name, value, "System.Int32", "Input string was not in a correct format.")
    if k == "guid":
        try:
            return str(uuid.UUID(str(value))) if isinstance(value, str) else _bad_guid(name, value)
        except ValueError:
            return _bad_guid(name, value)
    if k == "datetime":
        if isinstance(value, str):
            try:
                return parse_iso(value)
            except ValueError:
                pass
        raise _transform_error(name, value, "System.DateTime", "String was not recognized as a valid DateTime.")
    if k == "strings":
        return _as_list(name, value)
    if k == "multi":
        return _multi(name, value)
    if k in ("enum", "enumset"):
        items = _as_list(name, value) if k == "enumset" else [_as_string(name, value)]
        out = []
        for item in items:
            match = next((v for v in spec.values if v.lower() == item.strip().lower()), None)
            if match is None:
                raise CmdletError(PARAMETER_BINDING, f"Cannot process argument transformation on parameter '{name}'. "
                                                     f"Cannot convert value \"{item}\" to type \"{name}\". Error: "
                                                     f"\"Unable to match the identifier name {item} to a valid "
                                                     "enumerator name. Specify one of the following enumerator "
                                                     f"names and try again: {', '.join(spec.values)}\"")
            out.append(match)
        return out if k == "enumset" else out[0]
    if k == "bytes":
        try:
            return decode_bytes(value)
        except WireValueError as exc:
            raise _transform_error(name, value, "System.Byte[]", f"Expected {exc}.") from None
    if k == "credential":
        try:
            return decode_credential(value)
        except WireValueError as exc:
            raise _transform_error(name, "System.Object", "System.Management.Automation.PSCredential",
                                   f"Expected {exc}.") from None
    raise AssertionError(k)


def _bad_guid(name: str, value: Any) -> str:
    raise _transform_error(name, value, "System.Guid",
                           "Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).")


def _multi(name: str, value: Any) -> MultiValue:
    if isinstance(value, dict):
        mv = MultiValue()
        for key, v in value.items():
            low = str(key).lower()
            if low == "@odata.type":
                continue
            if low == "add":
                mv.add = _as_list_plain(name, v)
            elif low == "remove":
                mv.remove = _as_list_plain(name, v)
            else:
                raise CmdletError(PARAMETER_BINDING, f"Cannot process argument transformation on parameter "
                                                     f"'{name}'. The hash table key '{key}' isn't valid. Valid "
                                                     "keys are Add and Remove.")
        return mv
    return MultiValue(replace=_as_list_plain(name, value))


def _as_list_plain(name: str, value: Any) -> list[str]:
    if isinstance(value, list):
        return [_as_string(name, v) for v in value]
    return [_as_string(name, value)]


def bind(spec: dict[str, Param], raw: Any) -> dict[str, Any]:
    """Bound parameters keyed by their canonical names (only those given)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CmdletError(PARAMETER_BINDING, "Cannot bind parameters: 'Parameters' must be a JSON object.")
    canon = {n.lower(): n for n in spec}
    common = {n.lower(): n for n in COMMON}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        low = str(key).lower()
        if low in canon:
            name = canon[low]
            out[name] = convert(name, spec[name], value)
        elif low in common:
            out[common[low]] = value
        else:
            raise unknown_parameter(str(key))
    missing = [n for n, p in spec.items() if p.mandatory and n not in out]
    if missing:
        raise missing_parameters(missing)
    return out


S, ID, B, SW = Param("string"), Param("identity"), Param("bool"), Param("switch")
N, G, DT, L, M = Param("int"), Param("guid"), Param("datetime"), Param("strings"), Param("multi")


def req(kind: str, values: tuple[str, ...] = ()) -> Param:
    return Param(kind, True, values)


def enum(*values: str) -> Param:
    return Param("enum", False, values)

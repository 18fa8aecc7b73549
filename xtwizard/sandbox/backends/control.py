"""The control API under `/_sandbox` (documented in the sandbox README): state, request log, faults, clock."""

from __future__ import annotations

import copy
from typing import Any

from ..faults import FaultSpecError, parse_rule
from ..http import HttpError, Request, Response
from ..state import DEFAULT_SETTINGS, strip_unsaved
from .base import Backend, json_or_error

P = "/_sandbox"


class ControlBackend(Backend):
    name = "control"

    def error(self, status: int, code: str, message: str,
              headers: list[tuple[str, str]] | None = None) -> HttpError:
        return HttpError(status, {"error": {"code": code, "message": message}}, headers)

    def register(self) -> None:
        r = self.router
        r.add("GET", P, self.describe)
        r.add("GET", P + "/state", self.get_state)
        r.add("GET", P + "/requests", self.get_requests)
        r.add("DELETE", P + "/requests", self.clear_requests)
        r.add("GET", P + "/faults", self.get_faults)
        r.add("POST", P + "/faults", self.add_fault)
        r.add("DELETE", P + "/faults", self.clear_faults)
        r.add("DELETE", P + "/faults/{rule_id}", self.remove_fault)
        r.add("GET", P + "/settings", self.get_settings)
        r.add("PATCH", P + "/settings", self.patch_settings)
        r.add("GET", P + "/clock", self.get_clock)
        r.add("POST", P + "/clock", self.post_clock)
        r.add("POST", P + "/reset", self.post_reset)
        r.add("GET", P + "/throttle", self.get_throttle)
        r.add("DELETE", P + "/throttle", self.clear_throttle)

    def describe(self, req: Request) -> Response:
        return Response.json(self.sb.describe())

    def get_state(self, req: Request) -> Response:
        data: dict[str, Any] = copy.deepcopy(self.state.to_json())
        strip_unsaved(data)
        data.pop("refreshTokens", None)
        want = req.q("tenant")
        if want:
            t = self.state.tenant(want)
            if t is None:
                raise self.error(404, "NotFound", f"No tenant {want!r} in this sandbox.")
            data["tenants"] = [td for td in data["tenants"] if td["id"] == t.id]
        return Response.json(data)

    def get_requests(self, req: Request) -> Response:
        try:
            since = int(req.q("since") or 0)
            limit = int(req.q("limit") or 1000)
        except ValueError:
            raise self.error(400, "BadRequest", "'since' and 'limit' must be integers.") from None
        rows = [r for r in list(self.sb.request_log) if r["seq"] > since][:max(1, min(limit, 20_000))]
        return Response.json({"value": rows, "last": rows[-1]["seq"] if rows else since})

    def clear_requests(self, req: Request) -> Response:
        self.sb.request_log.clear()
        return Response.empty()

    def get_faults(self, req: Request) -> Response:
        return Response.json({"value": [r.to_json() for r in self.sb.faults.rules()]})

    def add_fault(self, req: Request) -> Response:
        spec = json_or_error(self, req)
        try:
            rule = parse_rule(spec)
        except FaultSpecError as exc:
            raise self.error(400, "BadRequest", str(exc)) from None
        return Response.json(self.sb.faults.add(rule).to_json(), 201)

    def clear_faults(self, req: Request) -> Response:
        self.sb.faults.clear()
        return Response.empty()

    def remove_fault(self, req: Request, rule_id: str) -> Response:
        if not self.sb.faults.remove(rule_id):
            raise self.error(404, "NotFound", f"No fault {rule_id!r}.")
        return Response.empty()

    def get_settings(self, req: Request) -> Response:
        return Response.json(self.state.settings)

    def patch_settings(self, req: Request) -> Response:
        body = json_or_error(self, req)
        if not isinstance(body, dict):
            raise self.error(400, "BadRequest", "Send a JSON object of settings.")
        unknown = set(body) - set(DEFAULT_SETTINGS)
        if unknown:
            raise self.error(400, "BadRequest", f"Unknown setting(s) {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}.")
        for k, v in body.items():
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise self.error(400, "BadRequest", f"Setting {k!r} must be a non-negative number.")
        self.state.settings.update(body)
        self.state.touch()
        return Response.json(self.state.settings)

    def get_clock(self, req: Request) -> Response:
        return Response.json({"now": self.sb.clock.now(), "scale": self.sb.clock.scale})

    def post_clock(self, req: Request) -> Response:
        body = json_or_error(self, req)
        if not isinstance(body, dict) or not set(body) <= {"advance_seconds", "scale"} or not body:
            raise self.error(400, "BadRequest", "Send {\"advance_seconds\": N} and/or {\"scale\": X}.")
        try:
            if "scale" in body:
                self.sb.clock.set_scale(float(body["scale"]))
            if "advance_seconds" in body:
                self.sb.clock.advance(float(body["advance_seconds"]))
        except (TypeError, ValueError) as exc:
            raise self.error(400, "BadRequest", f"Invalid clock change: {exc}") from None
        self.state.touch()
        return Response.json({"now": self.sb.clock.now(), "scale": self.sb.clock.scale})

    def post_reset(self, req: Request) -> Response:
        self.sb.reset()
        return Response.empty()

    def get_throttle(self, req: Request) -> Response:
        settings = self.state.settings
        return Response.json({"exchange": {
            "max_concurrent": settings["exchange_max_concurrent"],
            "retry_after_seconds": settings["exchange_throttle_retry_after_seconds"],
            "tenants": self.sb.exchange_throttle.stats()}})

    def clear_throttle(self, req: Request) -> Response:
        self.sb.exchange_throttle.clear()
        return Response.empty()

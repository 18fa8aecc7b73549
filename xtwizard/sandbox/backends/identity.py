"""IdentityBackend: placeholder, filled in by its own slice."""

from __future__ import annotations

from .base import Backend


class IdentityBackend(Backend):
    name = "login"

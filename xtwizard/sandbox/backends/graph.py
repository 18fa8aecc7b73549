"""GraphBackend: placeholder, filled in by its own slice."""

from __future__ import annotations

from .base import Backend


class GraphBackend(Backend):
    name = "graph"

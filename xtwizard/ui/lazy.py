"""Heavy parts of the domain, imported when first used rather than before the first page paints."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..migration.problems import Problem


def explain(exc: BaseException) -> Problem:
    """The Problem an exception carries (the setup's), or the catalog's explanation of it."""
    from ..migration.problems import Problem
    from ..migration.problems import explain as catalog

    carried = getattr(exc, "problem", None)
    return carried if isinstance(carried, Problem) else catalog(exc)

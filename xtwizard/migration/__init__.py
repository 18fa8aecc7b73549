"""xtwizard.migration layer (see ../shared/DESIGN.md)."""

from collections.abc import Callable

# How every engine reports progress: (done, total, what is happening now).
Progress = Callable[[int, int, str], None]

"""xtwizard.migration layer (see ../shared/DESIGN.md)."""

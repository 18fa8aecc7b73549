"""xtwizard.cloud layer (see ../shared/DESIGN.md)."""

"""xtwizard: cross-tenant Exchange Online mailbox migration, end to end."""

__version__ = "0.1.0"

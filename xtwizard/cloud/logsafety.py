"""Keep third-party loggers that could print tokens or secrets quiet (no heavy imports: used at start-up)."""

from __future__ import annotations

import logging

# Libraries that log URLs with query strings or request headers (httpcore logs the Authorization header at
# DEBUG): never below WARNING, whatever the application's own level.
CHATTY_LOGGERS = ("httpx", "httpcore", "hpack", "urllib3", "requests", "msal", "azure", "azure.core",
                  "azure.identity")


def harden_logging() -> None:
    """Keep third-party loggers that could print tokens or secrets at WARNING or above."""
    for name in CHATTY_LOGGERS:
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET or lg.level < logging.WARNING:
            lg.setLevel(logging.WARNING)

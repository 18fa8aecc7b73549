"""The offline Microsoft 365 sandbox: identity, Graph, ARM, Key Vault and Exchange Online over loopback HTTPS.

It imports nothing else from xtwizard, so it stays an independent referee of the product's clients.
"""

from .server import Sandbox

__all__ = ["Sandbox"]

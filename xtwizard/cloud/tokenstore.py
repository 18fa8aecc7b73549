"""MSAL token caches at rest: encrypted with a random key that lives in the OS keyring (DESIGN.md "Tokens").

A whole MSAL cache does not fit in a Windows credential (2,560 bytes); a 32-byte key does.  The cache is
sealed with AES-GCM and written to the user data directory; the key never touches the disk.  With no
keyring (or a locked one) tokens stay in memory for this session only, and `reason` says so in words the
page can show.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path

import keyring
import keyring.errors
import msal
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from keyring.backend import KeyringBackend

log = logging.getLogger("xtwizard.tokens")

KEYRING_SERVICE = "xtwizard"
MAGIC = b"XTW1"

NO_KEYRING = ("No system keyring was found, so your sign-in is kept in memory only: it lasts until you close "
              "xtwizard, and you will sign in again next time.")
LOCKED_KEYRING = ("The system keyring is locked or refused access, so your sign-in is kept in memory only "
                  "until you close xtwizard. Unlock the keyring and sign in again to keep it.")


class TokenStore:
    """The token cache of one tenant slot (for example "source" or "target") of one project."""

    def __init__(self, slot: str, data_dir: Path, *, backend: KeyringBackend | None = None) -> None:
        if not slot or not all(c.isalnum() or c in "-_." for c in slot):
            raise ValueError(f"invalid token slot name {slot!r}")
        self.slot = slot
        self.path = data_dir / "tokens" / f"{slot}.cache"
        self._backend = backend
        self.persistent = True
        self.reason: str | None = None

    @property
    def _key_name(self) -> str:
        return f"token-cache-key:{self.slot}"

    @property
    def _aad(self) -> bytes:
        return f"xtwizard-token-cache:{self.slot}".encode()

    def _kr(self) -> KeyringBackend:
        return self._backend or keyring.get_keyring()

    def _fall_back(self, exc: BaseException) -> None:
        self.persistent = False
        self.reason = LOCKED_KEYRING if isinstance(exc, keyring.errors.KeyringLocked) else NO_KEYRING
        log.warning("token cache for %s kept in memory: %s", self.slot, exc.__class__.__name__)

    def _key(self, create: bool) -> bytes | None:
        try:
            stored = self._kr().get_password(KEYRING_SERVICE, self._key_name)
            if stored is None and create:
                stored = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
                self._kr().set_password(KEYRING_SERVICE, self._key_name, stored)
        except (keyring.errors.KeyringError, RuntimeError, OSError) as exc:
            # secretstorage/dbus failures surface as KeyringError subclasses or RuntimeError/OSError.
            self._fall_back(exc)
            return None
        return base64.b64decode(stored) if stored else None

    def load(self) -> msal.SerializableTokenCache:
        cache = msal.SerializableTokenCache()
        if not self.path.exists():
            self._key(create=False)  # learn early whether the keyring works, to tell the user
            return cache
        key = self._key(create=False)
        if key is None:
            return cache
        blob = self.path.read_bytes()
        try:
            if not blob.startswith(MAGIC):
                raise ValueError("unknown token cache format")
            nonce, sealed = blob[len(MAGIC):len(MAGIC) + 12], blob[len(MAGIC) + 12:]
            cache.deserialize(AESGCM(key).decrypt(nonce, sealed, self._aad).decode("utf-8"))
        except (InvalidTag, ValueError, UnicodeDecodeError):
            log.warning("saved sign-in for %s could not be read; a new sign-in is needed", self.slot)
            self.path.unlink(missing_ok=True)
            return msal.SerializableTokenCache()
        return cache

    def save(self, cache: msal.SerializableTokenCache) -> None:
        if not self.persistent or not cache.has_state_changed:
            return
        key = self._key(create=True)
        if key is None:
            return
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(key).encrypt(nonce, cache.serialize().encode("utf-8"), self._aad)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC + nonce + sealed)
        os.replace(tmp, self.path)
        cache.has_state_changed = False

    def forget(self) -> None:
        """Sign out for good: remove the sealed cache and its key."""
        self.path.unlink(missing_ok=True)
        try:
            self._kr().delete_password(KEYRING_SERVICE, self._key_name)
        except keyring.errors.PasswordDeleteError:
            pass
        except (keyring.errors.KeyringError, RuntimeError, OSError) as exc:
            log.warning("could not remove the token key for %s: %s", self.slot, exc.__class__.__name__)

"""Token caches at rest: a real Secret Service (gnome-keyring under dbus-run-session) and keyring's fail backend."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import keyring.backends.fail
import msal
import pytest

from xtwizard.cloud.tokenstore import KEYRING_SERVICE, NO_KEYRING, TokenStore

AT = "eyJhbGciOiJSUzI1NiJ9.access-token-for-test.sig"
RT = "0.SANDBOX.refresh-token-for-test"


def _cache_with_tokens() -> msal.SerializableTokenCache:
    cache = msal.SerializableTokenCache()
    client_info = base64.urlsafe_b64encode(json.dumps({"uid": "u1", "utid": "t1"}).encode()).decode().rstrip("=")
    cache.add({
        "client_id": "14d82eec-204b-4c2f-b7e8-296a70dab67e",
        "scope": ["https://graph.microsoft.com/.default"],
        "token_endpoint": "https://login.example/t1/oauth2/v2.0/token",
        "response": {"access_token": AT, "refresh_token": RT, "expires_in": 3600, "token_type": "Bearer",
                     "client_info": client_info},
        "params": {}, "data": {},
    })
    return cache


@pytest.fixture
def secret_service():
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    try:
        backend.get_password(KEYRING_SERVICE, "probe")
    except Exception as exc:  # noqa: BLE001 - any failure means no usable Secret Service here
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a Secret Service (gnome-keyring under dbus-run-session): {exc!r}")
        pytest.skip(f"no Secret Service in this session ({exc.__class__.__name__}); .ci/run provides one")
    return backend


def test_sealed_cache_round_trip_through_gnome_keyring(tmp_path, secret_service):
    store = TokenStore("target", tmp_path, backend=secret_service)
    store.save(_cache_with_tokens())
    blob = store.path.read_bytes()
    assert AT.encode() not in blob and RT.encode() not in blob and b"access_token" not in blob
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    if shutil.which("secret-tool"):  # the key is really in the Secret Service, found by its attributes
        out = subprocess.run(["secret-tool", "lookup", "service", KEYRING_SERVICE, "username",
                              "token-cache-key:target"], capture_output=True, text=True)
        assert len(base64.b64decode(out.stdout.strip())) == 32
    again = TokenStore("target", tmp_path, backend=secret_service).load()
    accounts = list(again.search(msal.TokenCache.CredentialType.REFRESH_TOKEN))
    assert [a["secret"] for a in accounts] == [RT]
    store.forget()
    assert not store.path.exists()
    assert secret_service.get_password(KEYRING_SERVICE, "token-cache-key:target") is None


def test_tampered_cache_is_dropped_not_trusted(tmp_path, secret_service):
    store = TokenStore("source", tmp_path, backend=secret_service)
    store.save(_cache_with_tokens())
    data = bytearray(store.path.read_bytes())
    data[-1] ^= 0x01
    store.path.write_bytes(bytes(data))
    cache = TokenStore("source", tmp_path, backend=secret_service).load()
    assert list(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)) == []
    assert not store.path.exists()
    store.forget()


def test_no_keyring_keeps_tokens_in_memory_and_says_so(tmp_path):
    store = TokenStore("target", tmp_path, backend=keyring.backends.fail.Keyring())
    cache = store.load()
    assert store.persistent is False and store.reason == NO_KEYRING
    cache = _cache_with_tokens()
    store.save(cache)
    assert not (tmp_path / "tokens").exists()


def test_slot_names_cannot_escape_the_data_dir(tmp_path):
    with pytest.raises(ValueError):
        TokenStore("../evil", tmp_path)

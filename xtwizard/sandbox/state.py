"""The one explicit state model behind every backend: tenants and their directory, Azure and Exchange objects.

Objects are stored in the shape the real service returns them (Graph JSON for Graph objects, ARM JSON for
ARM resources, ...), so a backend reads and writes what it serves.  Keys that start with `_` are the
sandbox's own bookkeeping (creation time, hashes, members) and are stripped by `public()` before anything
goes on the wire.  All access happens under `SandboxState.lock`.

Collections per tenant (`Tenant.col(name)`), keyed by object id unless noted:
  users, groups, applications, servicePrincipals, appRoleAssignments, oauth2PermissionGrants,
  subscribedSkus (by skuId), arm.subscriptions (by subscription id), arm.resourceGroups, arm.vaults,
  arm.deletedVaults, arm.roleAssignments (by lower-cased resource id), kv.certificates, kv.operations
  (by "vault/name"), and exchange.* (the Exchange backend's own).
"""

from __future__ import annotations

import copy
import json
import os
import threading
from typing import Any

from .clock import SandboxClock

JSON = dict[str, Any]
STATE_VERSION = 1

DEFAULT_SETTINGS: JSON = {
    "token_lifetime_seconds": 3599,          # access tokens, on the sandbox clock
    "refresh_token_idle_seconds": 90 * 86400,
    "device_code_lifetime_seconds": 900,
    "replication_delay_seconds": 0,          # new apps, SPs, groups invisible to reads for this long
    "certificate_issue_seconds": 2,          # Key Vault self-signed issuance time
    "move_speed": 1.0,                       # the move service's speed-up
    "arm_lro_seconds": 15,                   # how long ARM long-running operations take (sandbox time)
    "exchange_max_concurrent": 0,            # InvokeCommand requests in flight per tenant; more get 429 (0 = off)
    "exchange_throttle_retry_after_seconds": 2,  # the Retry-After of those 429s (real seconds)
}


def public(obj: JSON) -> JSON:
    """The object as the service shows it: without the sandbox's private `_` keys."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class Tenant:
    def __init__(self, tenant_id: str, display_name: str, initial_domain: str, key: str = "") -> None:
        self.id = tenant_id
        self.key = key or initial_domain.split(".")[0]
        self.display_name = display_name
        self.initial_domain = initial_domain
        self.domains: list[JSON] = []  # Graph verifiedDomain shape
        self.collections: dict[str, dict[str, JSON]] = {}
        self.exchange_seed: JSON = {}  # the scenario's Exchange section, for the Exchange backend
        self._user_index: tuple[tuple[int, int, str | None], dict[str, str]] | None = None

    def col(self, name: str) -> dict[str, JSON]:
        return self.collections.setdefault(name, {})

    def domain_names(self) -> list[str]:
        return [d["name"] for d in self.domains]

    def owns_domain(self, domain: str) -> bool:
        return domain.lower() in (d.lower() for d in self.domain_names())

    def user(self, ref: str) -> JSON | None:
        """A user by object id or UPN (case-insensitive), as Graph resolves `/users/{id|upn}`: the first user, in
        the order they were added, whose UPN or id matches.

        Found through an index of lower-cased UPNs and ids (scanning every user made each Exchange write cost
        more as the tenant grew).  Users added since are appended to it; a removal (the collection's size or last
        key tells) or an entry that no longer matches rebuilds it; code that changes a UPN in place calls
        `users_changed()`."""
        users = self.col("users")
        found = users.get(ref)
        if found is not None:
            return found
        low = ref.lower()
        uid = self._users_by_name().get(low)
        if uid is None:
            return None
        u = users.get(uid)
        if u is not None and low in (str(u.get("userPrincipalName", "")).lower(), str(u["id"]).lower()):
            return u
        self.users_changed()  # a stale entry: look again in a fresh index
        uid = self._users_by_name().get(low)
        return users.get(uid) if uid is not None else None

    def users_changed(self) -> None:
        """Call after changing a user's UPN in place (users added or removed are noticed without it)."""
        self._user_index = None

    def _users_by_name(self) -> dict[str, str]:
        """The index, brought up to date: users added since are appended (thousands of creations stay linear);
        a removal rebuilds it."""
        users = self.col("users")
        signature = (id(users), len(users), next(reversed(users), None))
        cached = self._user_index
        if cached is not None and cached[0] == signature:
            return cached[1]
        added = self._users_added_since(cached[0]) if cached is not None else None
        idx = cached[1] if cached is not None and added is not None else {}
        for uid in list(users) if added is None else added:
            u = users[uid]
            idx.setdefault(str(u.get("userPrincipalName", "")).lower(), uid)
            idx.setdefault(str(u["id"]).lower(), uid)
        self._user_index = (signature, idx)
        return idx

    def _users_added_since(self, signature: tuple[int, int, str | None]) -> list[str] | None:
        """Keys added after the indexed ones, oldest first; None when a user was removed since."""
        users = self.col("users")
        dict_id, size, last = signature
        if dict_id != id(users) or last is None or last not in users:
            return None
        added: list[str] = []
        for uid in reversed(users):  # newest first, back to the last one indexed
            if uid == last:
                break
            added.append(uid)
        return added[::-1] if size + len(added) == len(users) else None

    def to_json(self) -> JSON:
        return {"id": self.id, "key": self.key, "displayName": self.display_name,
                "initialDomain": self.initial_domain, "domains": self.domains,
                "collections": self.collections, "exchangeSeed": self.exchange_seed}

    @classmethod
    def from_json(cls, data: JSON) -> Tenant:
        t = cls(data["id"], data["displayName"], data["initialDomain"], data.get("key", ""))
        t.domains = data.get("domains", [])
        t.collections = data.get("collections", {})
        t.exchange_seed = data.get("exchangeSeed", {})
        return t


class SandboxState:
    def __init__(self, clock: SandboxClock, scenario_name: str = "", description: str = "") -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.scenario_name = scenario_name
        self.description = description
        self.tenants: dict[str, Tenant] = {}
        self.public_clients: dict[str, JSON] = {}
        self.settings: JSON = dict(DEFAULT_SETTINGS)
        self.refresh_tokens: dict[str, JSON] = {}  # sha256(token) -> record; the token itself is never kept
        self.locations: list[JSON] = []
        self.stories: list[JSON] = []  # the scenario's planted problems, for people reading the state
        self.initial_faults: list[JSON] = []  # the scenario's fault rules, installed when the sandbox starts
        self.changes = 0  # bumped on every mutation; the saver writes when it moves

    # --- lookups -------------------------------------------------------------------------------------
    def tenant(self, ref: str, *, by_key: bool = True) -> Tenant | None:
        """A tenant by GUID or by any of its domains (case-insensitive), or by its scenario key.

        Wire paths (`/{tenant}/...`) must pass by_key=False: real services know no scenario keys."""
        low = ref.lower()
        for t in self.tenants.values():
            if t.id.lower() == low or t.owns_domain(low) or (by_key and t.key.lower() == low):
                return t
        return None

    def tenant_of_user(self, upn: str) -> Tenant | None:
        for t in self.tenants.values():
            if t.user(upn) is not None:
                return t
        return None

    # --- replication delay -----------------------------------------------------------------------------
    def stamp(self, obj: JSON) -> JSON:
        """Mark an object as just written; reads ignore it until the replication delay has passed."""
        obj["_created"] = self.clock.now()
        self.touch()
        return obj

    def visible(self, obj: JSON) -> bool:
        created = obj.get("_created")
        if created is None:
            return True
        return bool(self.clock.now() >= float(created) + float(self.settings["replication_delay_seconds"]))

    def touch(self) -> None:
        self.changes += 1

    # --- persistence -----------------------------------------------------------------------------------
    def to_json(self) -> JSON:
        return {
            "version": STATE_VERSION, "scenario": self.scenario_name, "description": self.description,
            "clock": self.clock.now(), "settings": self.settings, "publicClients": self.public_clients,
            "locations": self.locations, "stories": self.stories, "refreshTokens": self.refresh_tokens,
            "faults": self.initial_faults,
            "tenants": [t.to_json() for t in self.tenants.values()],
        }

    @classmethod
    def from_json(cls, data: JSON, clock: SandboxClock) -> SandboxState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state version {data.get('version')!r} is not {STATE_VERSION}")
        st = cls(clock, data.get("scenario", ""), data.get("description", ""))
        st.settings.update(data.get("settings", {}))
        st.public_clients = data.get("publicClients", {})
        st.locations = data.get("locations", [])
        st.stories = data.get("stories", [])
        st.initial_faults = data.get("faults", [])
        st.refresh_tokens = data.get("refreshTokens", {})
        for td in data.get("tenants", []):
            t = Tenant.from_json(td)
            st.tenants[t.id] = t
        return st

    def save(self, directory: str) -> None:
        """Write atomically.  No secret is in the state: tokens and client secrets are kept as hashes and
        Key Vault private keys are not written (see the sandbox README)."""
        with self.lock:
            data = copy.deepcopy(self.to_json())
        strip_unsaved(data)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "state.json")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def strip_unsaved(data: Any) -> None:
    """Drop every `_unsaved*` key (in-memory-only material such as Key Vault private keys) in place."""
    if isinstance(data, dict):
        for k in [k for k in data if isinstance(k, str) and k.startswith("_unsaved")]:
            del data[k]
        for v in data.values():
            strip_unsaved(v)
    elif isinstance(data, list):
        for v in data:
            strip_unsaved(v)


def load_saved(directory: str, clock_factory: Any) -> SandboxState | None:
    path = os.path.join(directory, "state.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    clock: SandboxClock = clock_factory(data.get("clock"))
    return SandboxState.from_json(data, clock)

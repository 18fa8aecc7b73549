"""Large scenarios for benchmarks: a source tenant with N mailboxes and a target with N prepared MailUsers.

    python -m xtwizard.sandbox.generate --mailboxes 10000 > big.json

`scenario(n)` returns the same dict for tests and benchmarks.  Every user is licensed, in the scope group and
correctly prepared, so a benchmark measures the wizard and the sandbox, not planted failures; `problems=k`
plants k users of each kind the demo scenario tells stories about; `batch_size=m` also puts every target
MailUser into migration batches of m ("Wave 1", "Wave 2", …, not started) behind a migration endpoint, as the
monitoring tests and benchmark need.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

from .catalog import CROSS_TENANT_MIGRATION_SKU_ID, stable_id

FIRST = ["Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jana", "Kai", "Lena", "Milo", "Nina",
         "Otto", "Pia", "Raj", "Sara", "Tom", "Uma", "Vik", "Wen", "Yara", "Zeno"]
LAST = ["Berg", "Costa", "Dahl", "Eng", "Ford", "Gray", "Holm", "Ito", "Jovanovic", "Kim", "Lind", "Moreau", "Nagy",
        "Ortiz", "Park", "Quist", "Rossi", "Sato", "Torres", "Ueda", "Vidal", "Weber", "Xu", "Young"]
SOURCE_ID = "1a2b3c4d-0000-4000-8000-00000000a001"
TARGET_ID = "1a2b3c4d-0000-4000-8000-00000000b002"


def scenario(mailboxes: int, *, problems: int = 0, seed: int = 7, batch_size: int = 0) -> dict[str, Any]:
    data = _scenario(mailboxes, problems=problems, seed=seed)
    if batch_size:
        source, target = data["tenants"]
        addresses = [u["userPrincipalName"] for u in target["users"] if "mailbox" in u]
        target["exchange"] = {**target.get("exchange", {}), "migrationEndpoints": [
            {"Name": "Big", "RemoteServer": "outlook.office.com", "RemoteTenant": source["initialDomain"],
             "ApplicationId": "00000000-0000-0000-0000-0000000000ab"}],
            "migrationBatches": [{"Name": f"Wave {n + 1}", "SourceEndpoint": "Big",
                                  "TargetDeliveryDomain": target["initialDomain"],
                                  "users": addresses[start:start + batch_size]}
                                 for n, start in enumerate(range(0, len(addresses), batch_size))]}
    return data


def _scenario(mailboxes: int, *, problems: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    src_users: list[dict[str, Any]] = [
        {"userPrincipalName": "admin@contosobig.onmicrosoft.com", "displayName": "Source Admin",
         "roles": ["Global Administrator"]}]
    tgt_users: list[dict[str, Any]] = [
        {"userPrincipalName": "admin@litwarebig.onmicrosoft.com", "displayName": "Target Admin",
         "roles": ["Global Administrator"]}]
    members: list[str] = []
    for i in range(mailboxes):
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        local = f"{first.lower()}.{last.lower()}{i}"
        upn = f"{local}@contoso-big.example"
        mbx: dict[str, Any] = {"recipientTypeDetails": "UserMailbox", "sizeMB": rnd.randint(50, 4000),
                               "items": rnd.randint(500, 40000)}
        if i % 5 == 0:
            mbx.update({"archive": True, "archiveSizeMB": rnd.randint(100, 3000)})
        kind = i % 6 if i < problems * 6 else -1
        if kind == 0:
            mbx["litigationHold"] = True
        uid = stable_id(SOURCE_ID, "user", upn)  # members by object id: the loader finds them in O(1)
        src_users.append({"id": uid, "userPrincipalName": upn, "displayName": f"{first} {last} {i}",
                          "mailNickname": local, "licenses": ["E3"] + (["T2T"] if kind != 1 else []),
                          "mailbox": mbx})
        if kind != 2:
            members.append(uid)
        target: dict[str, Any] = {"recipientTypeDetails": "MailUser", "prepareFrom": upn}
        if kind == 3:
            target["omit"] = ["exchangeGuid"]
        if kind == 4:
            target["omit"] = ["x500"]
        if kind != 5:
            tgt_users.append({"userPrincipalName": f"{local}@litware-big.example", "displayName": f"{first} {last} {i}",
                              "mailNickname": local, "mailbox": target})
    units = mailboxes + 10
    return {
        "name": f"generated-{mailboxes}",
        "description": f"Generated: {mailboxes} source mailboxes and their prepared target MailUsers.",
        "settings": {"move_speed": 1.0},
        "publicClients": [{"clientId": "fb78d390-0c51-40cd-8e17-fdbfab77341b",
                           "displayName": "Microsoft Exchange REST API Based Powershell",
                           "redirectUris": ["http://localhost"]}],
        "tenants": [
            {"key": "source", "id": SOURCE_ID, "displayName": "Contoso Big", "initialDomain": "contosobig.onmicrosoft.com",
             "verifiedDomains": ["contoso-big.example"],
             "skus": [{"skuPartNumber": "E3", "units": units, "servicePlans": [{"servicePlanName": "EXCHANGE_S_ENTERPRISE"}]},
                      {"skuPartNumber": "T2T", "skuId": CROSS_TENANT_MIGRATION_SKU_ID, "units": units,
                       "servicePlans": [{"servicePlanName": "EXCHANGEONLINE_T2TMBXMOVE"}]}],
             "users": src_users,
             "groups": [{"displayName": "Migration Scope", "mail": "scope@contoso-big.example", "mailEnabled": True,
                         "securityEnabled": True, "members": members, "id": stable_id(SOURCE_ID, "scope")}],
             "exchange": {"isDehydrated": False}},
            {"key": "target", "id": TARGET_ID, "displayName": "Litware Big", "initialDomain": "litwarebig.onmicrosoft.com",
             "verifiedDomains": ["litware-big.example"],
             "skus": [{"skuPartNumber": "E3", "units": units, "servicePlans": [{"servicePlanName": "EXCHANGE_S_ENTERPRISE"}]}],
             "users": tgt_users, "groups": [], "exchange": {"isDehydrated": False}},
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xtwizard.sandbox.generate", description=__doc__.splitlines()[0])
    ap.add_argument("--mailboxes", type=int, default=5000)
    ap.add_argument("--problems", type=int, default=0, help="plant this many users of each failure kind")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch-size", type=int, default=0, help="also put the target users into batches of this size")
    args = ap.parse_args(argv)
    json.dump(scenario(args.mailboxes, problems=args.problems, seed=args.seed, batch_size=args.batch_size),
              sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

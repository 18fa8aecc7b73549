"""The InvokeCommand wire format (reference §3): decoding the undocumented parameter encodings and
encoding cmdlet output as OData JSON with per-property type annotations."""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


class WireValueError(ValueError):
    """A parameter value whose wire form is not one the sandbox accepts; the text names the expected forms."""


@dataclass(frozen=True)
class PSCredential:
    """What a decoded -Credentials value carries.  The password never leaves this object except as a hash."""

    user_name: str
    password: str


# --------------------------------------------------------------------------------------------------------
# THE ONE PLACE FOR THE UNDOCUMENTED ENCODINGS (reference §3.2 and §8 items 1-3).
#
# No public client shows how ExchangeOnlineManagement v3 serialises a Byte[] (New-MigrationBatch -CSVData)
# or a PSCredential (New-MigrationEndpoint -Credentials) in the InvokeCommand JSON body.  Until a capture
# from the real module settles it, the sandbox ASSUMES and accepts:
#
#   Byte[]       * a base64 string (how .NET's JSON serialisers write byte[]), or
#                * a JSON array of integers 0..255 (how PowerShell's ConvertTo-Json writes byte[]).
#
#   PSCredential * an object {"UserName"|"Username"|"userName": <app id>, "Password"|"password": <secret>}
#                  (the two public properties of System.Management.Automation.PSCredential, secret in
#                  plain text inside TLS), or
#                * the same object with "@odata.type": "#Exchange.PSCredential" (tag ignored), or
#                * a string "<app id>:<secret>" (a colon-joined pair, as some REST wrappers send).
#                It does NOT model the RSA-encrypted SecureString form (reference §3.2, §8 item 3): a
#                client that encrypts the password with the module's rotating key would fail here, and
#                this function is where support for it would go.
#
# A capture from a real tenant changes only these two functions.
# --------------------------------------------------------------------------------------------------------
def decode_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WireValueError("a base64 string or an array of byte values") from None
    if isinstance(value, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255
                                       for b in value):
        return bytes(value)
    raise WireValueError("a base64 string or an array of byte values")


def decode_credential(value: Any) -> PSCredential:
    if isinstance(value, dict):
        low = {str(k).lower(): v for k, v in value.items() if not str(k).startswith("@")}
        user, password = low.get("username"), low.get("password")
        if isinstance(user, str) and isinstance(password, str) and user and password:
            return PSCredential(user, password)
    elif isinstance(value, str) and ":" in value:
        user, _, password = value.partition(":")
        if user and password:
            return PSCredential(user, password)
    raise WireValueError("an object with UserName and Password")


# --------------------------------------------------------------------------------------------------------
# Output encoding (reference §3.4)
# --------------------------------------------------------------------------------------------------------
GUID_PROPERTIES = frozenset({
    "Guid", "ExchangeGuid", "ArchiveGuid", "ExchangeObjectId", "MailboxGuid", "BatchGuid", "RequestGuid",
    "ApplicationId", "OAuthApplicationId", "ExternalDirectoryObjectId", "DisabledArchiveGuid",
})
DATE_RE = re.compile(r"(Time|DateTime|When(Created|Changed)(UTC)?|CompleteAfter|StartAfter|Timestamp)$")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"


def annotate(obj: JSON) -> JSON:
    """Add `Name@odata.type` next to each property whose JSON type does not say what it is."""
    out: JSON = {}
    for k, v in obj.items():
        if k.startswith("_"):
            continue
        if isinstance(v, list):
            out[k + "@odata.type"] = "#Collection(String)"
        elif v is not None and k in GUID_PROPERTIES:
            out[k + "@odata.type"] = "#Guid"
        elif isinstance(v, str) and DATE_RE.search(k):
            out[k + "@odata.type"] = "#DateTime"
        out[k] = v
    return out


def byte_quantified(n: int) -> str:
    """Exchange's ByteQuantifiedSize text, e.g. '1.5 GB (1,610,612,736 bytes)' (reference §1.5 item 7)."""
    units = [("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)]
    for name, size in units:
        if n >= size:
            text = f"{n / size:.3f}".rstrip("0").rstrip(".")
            return f"{text} {name} ({n:,} bytes)"
    return f"{n} B ({n:,} bytes)"

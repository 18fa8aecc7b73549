"""An httpx transport that counts a program's requests and the critical path among them.

The critical path is the longest chain of requests that depend on each other's answers.  Dependencies are
found from the data, not from the order the program happened to send its requests in, so a program that
sends independent reads one after another is measured against the same critical path as one that sends
them at once:

* data: B depends on A when B's URL or body carries an id (a GUID) that first came to the client in A's
  answer (e.g. an application's id, then its service principal by that id, then that principal's grants);
  GUIDs the client sent before any answer carried them (tenant ids, well-known app ids) are known from the
  start and make no dependency;
* a write depends on every read answered before it was sent (the reads it was decided on);
* a read depends on every write answered before it was sent (it reads the state the write made).

A request's depth is 1 + the deepest request it depends on; the critical path is the deepest request.
Retries are requests like any other.  Reads: GET/HEAD, Graph `$batch` of GETs, Exchange `Get-*`/`Test-*`
cmdlets; everything else is a write.  docs/benchmarks.md explains the choice.

`sequential=True` lets one request be on the wire at a time, whatever the program does: the run "like
Microsoft's scripts"."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from typing import Any

import httpx

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def is_read(request: httpx.Request, body: bytes) -> bool:
    if request.method in ("GET", "HEAD"):
        return True
    if request.method != "POST":
        return False
    path = request.url.path
    try:
        data: Any = json.loads(body) if body else None
    except ValueError:
        return False
    if path.endswith("/$batch") and isinstance(data, dict):
        return all(str(r.get("method", "GET")).upper() == "GET" for r in data.get("requests", []))
    if path.endswith("/InvokeCommand") and isinstance(data, dict):
        name = str(data.get("CmdletInput", {}).get("CmdletName", ""))
        return name.lower().startswith(("get-", "test-"))
    return False


class TracingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, *, sequential: bool = False,
                 known: Iterable[str] = ()) -> None:
        self.inner = inner
        self.sequential = asyncio.Lock() if sequential else None
        self.requests = 0
        self.writes = 0
        self.critical_path = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.known = {k.lower() for k in known}
        self.origin: dict[str, int] = {}  # GUID -> depth of the answer that first carried it
        self.read_level = 0   # the deepest read answered so far
        self.write_level = 0  # the deepest write answered so far

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        read = is_read(request, body)
        uses = 0
        for g in {m.lower() for m in GUID.findall(str(request.url) + body.decode("utf-8", "replace"))}:
            if g in self.origin:
                uses = max(uses, self.origin[g])
            else:
                self.known.add(g)
        depth = 1 + max(uses, self.write_level, 0 if read else self.read_level)
        if self.sequential is not None:
            async with self.sequential:
                resp = await self._send(request)
        else:
            resp = await self._send(request)
        for g in {m.lower() for m in GUID.findall(resp.content.decode("utf-8", "replace"))}:
            if g not in self.known and g not in self.origin:
                self.origin[g] = depth
        if read:
            self.read_level = max(self.read_level, depth)
        else:
            self.writes += 1
            self.write_level = max(self.write_level, depth)
        self.critical_path = max(self.critical_path, depth)
        return resp

    async def _send(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            resp = await self.inner.handle_async_request(request)
            await resp.aread()  # the whole answer, inside the lock of a sequential run
            return resp
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()

"""Fuzzing the Graph backend: whatever the body, query or path, the answer is a 2xx or a 4xx in Graph's error shape.

One sandbox serves the whole module (the examples only add objects), so the suite stays quick.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sandbox.support import bearer, user_token
from tests.sandbox.test_graph import EXO_APP_ID, MIGRATION_APP_BODY, SOURCE_ADMIN, client_for
from xtwizard.sandbox import Sandbox

FUZZ = settings(max_examples=int(os.environ.get("XTW_GRAPH_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


class World:
    def __init__(self, sb: Sandbox, http: httpx.Client) -> None:
        self.sb, self.http = sb, http
        self.graph = sb.info["graph_url"]
        self.token = user_token(sb, "source", SOURCE_ADMIN)
        h = bearer(self.token)
        self.app = http.post(self.graph + "/applications", json=MIGRATION_APP_BODY, headers=h).json()
        self.sp = http.post(self.graph + "/servicePrincipals", json={"appId": self.app["appId"]}, headers=h).json()
        self.exo = http.get(self.graph + f"/servicePrincipals(appId='{EXO_APP_ID}')", headers=h).json()
        groups = http.get(self.graph + "/groups", headers=h).json()["value"]
        self.wave = next(g for g in groups if g["displayName"] == "Migration Wave 1")
        self.finance = next(g for g in groups if g["displayName"] == "Finance Team")
        self.alice = http.get(self.graph + "/users/helpdesk@northwind.example", headers=h).json()

    def ids(self) -> dict[str, str]:
        return {"app": self.app["id"], "appkey": f"(appId='{self.app['appId']}')", "sp": self.sp["id"],
                "exo": self.exo["id"], "wave": self.wave["id"], "fin": self.finance["id"], "alice": self.alice["id"],
                "upn": "helpdesk@northwind.example", "rnd": str(uuid.uuid4()), "junk": "x'y%20(z)"}

    def paths(self) -> list[tuple[str, str]]:
        i = self.ids()
        return [
            ("GET", "/organization"), ("GET", f"/organization/{i['rnd']}"), ("GET", "/me"),
            ("GET", "/me/transitiveMemberOf"), ("GET", "/me/memberOf"), ("GET", "/me/licenseDetails"),
            ("POST", "/me/revokeSignInSessions"),
            ("GET", "/applications"), ("POST", "/applications"), ("GET", f"/applications/{i['app']}"),
            ("GET", f"/applications{i['appkey']}"), ("PATCH", f"/applications/{i['app']}"),
            ("DELETE", f"/applications/{i['rnd']}"), ("POST", f"/applications/{i['app']}/addPassword"),
            ("POST", f"/applications/{i['app']}/removePassword"), ("POST", f"/applications/{i['app']}/addKey"),
            ("POST", f"/applications{i['appkey']}/removeKey"), ("GET", f"/applications/{i['app']}/owners"),
            ("POST", f"/applications/{i['app']}/owners/$ref"),
            ("GET", "/servicePrincipals"), ("POST", "/servicePrincipals"), ("GET", f"/servicePrincipals/{i['sp']}"),
            ("GET", f"/servicePrincipals(appId='{EXO_APP_ID}')"), ("DELETE", f"/servicePrincipals/{i['rnd']}"),
            ("GET", f"/servicePrincipals/{i['exo']}/appRoleAssignedTo"),
            ("POST", f"/servicePrincipals/{i['exo']}/appRoleAssignedTo"),
            ("DELETE", f"/servicePrincipals/{i['exo']}/appRoleAssignedTo/{i['rnd']}"),
            ("GET", f"/servicePrincipals/{i['sp']}/appRoleAssignments"),
            ("POST", f"/servicePrincipals/{i['sp']}/appRoleAssignments"),
            ("GET", "/groups"), ("POST", "/groups"), ("GET", f"/groups/{i['wave']}"),
            ("PATCH", f"/groups/{i['fin']}"), ("GET", f"/groups/{i['wave']}/members"),
            ("GET", f"/groups/{i['wave']}/transitiveMembers"), ("POST", f"/groups/{i['fin']}/members/$ref"),
            ("DELETE", f"/groups/{i['fin']}/members/{i['rnd']}/$ref"),
            ("GET", "/subscribedSkus"), ("GET", f"/subscribedSkus/{i['junk']}"),
            ("GET", "/users"), ("GET", f"/users/{i['upn']}"), ("GET", f"/users/{i['alice']}/licenseDetails"),
            ("GET", f"/users/{i['alice']}/transitiveMemberOf"), ("POST", f"/users/{i['alice']}/assignLicense"),
            ("POST", f"/users/{i['alice']}/revokeSignInSessions"), ("GET", f"/users/{i['junk']}"),
            ("POST", "/invitations"), ("POST", "/$batch"), ("GET", "/users/$count"),
            ("GET", f"/groups/{i['wave']}/transitiveMembers/$count"),
        ]

    def call(self, method: str, path: str, *, params: Any = None, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        url = self.graph + quote(path, safe="/()'=$@")
        return self.http.request(method, url, params=params, content=content,
                                 headers={**bearer(self.token), "Content-Type": "application/json", **(headers or {})})


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    sb = Sandbox("demo")
    sb.start()
    client = client_for(sb)
    try:
        yield World(sb, client)
        log = client.get(sb.info["control_url"] + "/requests", params={"limit": 20000}).json()["value"]
        assert not [r for r in log if r["status"] >= 500], "the Graph backend answered with a server error"
    finally:
        client.close()
        sb.stop()


def assert_graph_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert "request-id" in r.headers
    if r.status_code >= 400:
        body = r.json()
        err = body["error"]
        assert isinstance(err["code"], str) and err["code"]
        assert isinstance(err["message"], str) and err["message"]
        assert err["innerError"]["request-id"] == r.headers["request-id"]
    elif r.headers.get("Content-Type", "").startswith("text/plain"):  # a $count segment
        assert r.text.isdigit()
    elif r.status_code != 204:
        assert isinstance(r.json(), dict)


KEYS = ["displayName", "appId", "signInAudience", "web", "redirectUris", "requiredResourceAccess", "keyCredentials",
        "passwordCredential", "keyId", "principalId", "resourceId", "appRoleId", "mailEnabled", "securityEnabled",
        "mailNickname", "groupTypes", "addLicenses", "removeLicenses", "skuId", "disabledPlans", "@odata.id",
        "requests", "id", "url", "method", "body", "dependsOn", "headers", "endDateTime", "key", "type", "usage",
        "_secretHashes", "resourceAccess", "proof", "keyCredential", "invitedUserEmailAddress", "inviteRedirectUrl", "members@odata.bind", "startDateTime"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from([str(uuid.UUID(int=0)), "https://office.com",
                                                           "AzureADMultipleOrgs", "Role", "GET", "/me",
                                                           "2030-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00",
                                                           "9999-12-31T23:59:59Z", "946ce899-873d-44bb-9d8b-671870cbfdbf",
                                                           "f7264778-fba9-422d-8e9e-2675a2c4b513"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5)), max_leaves=15)
typed_collections = st.fixed_dictionaries({}, optional={
    k: st.lists(st.one_of(st.none(), json_values), max_size=3)
    for k in ("addLicenses", "removeLicenses", "keyCredentials", "requiredResourceAccess", "groupTypes", "tags",
              "identifierUris", "members@odata.bind", "resourceAccess", "disabledPlans")})
bodies = st.one_of(
    typed_collections.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
)

filter_tokens = st.sampled_from(["displayName", "appId", "mailEnabled", "securityEnabled", "mail", "groupTypes",
                                 "assignedLicenses", "userPrincipalName", "eq", "ne", "and", "or", "not", "in", "(",
                                 ")", ",", "/", ":", "any", "x", "x/skuId", "'a''b'", "'Migration'", "true", "null",
                                 "42", "startswith(", "endswith(", "contains(", str(uuid.UUID(int=7)), " ", "'"])
filters = st.one_of(st.lists(filter_tokens, max_size=12).map(" ".join), st.text(max_size=40))
queries = st.dictionaries(
    st.sampled_from(["$filter", "$select", "$top", "$skiptoken", "$orderby", "$count", "$search", "$expand",
                     "$skip", "filter", "top", "$format", "$wat", "api-version"]),
    st.one_of(filters, st.sampled_from(["id,displayName", "keyCredentials", "nope", "", "*", "0", "2", "999",
                                        "1000", "-1", "true", "displayName desc", "RFNwdAIAAQAAAeyJvIjoxfQ"]),
              st.text(max_size=20)),
    max_size=4)


@FUZZ
@given(data=st.data())
def test_any_body_on_any_write_route_gets_a_graph_answer(world: World, data: st.DataObject) -> None:
    method, path = data.draw(st.sampled_from([p for p in world.paths() if p[0] in ("POST", "PATCH")]))
    r = world.call(method, path, content=data.draw(bodies))
    assert_graph_answer(r)


@FUZZ
@given(data=st.data())
def test_any_query_on_any_route_gets_a_graph_answer(world: World, data: st.DataObject) -> None:
    method, path = data.draw(st.sampled_from(world.paths()))
    headers = data.draw(st.sampled_from([{}, {"ConsistencyLevel": "eventual"}, {"client-request-id": "fuzz"}]))
    content = b"{}" if method in ("POST", "PATCH") else None
    r = world.call(method, path, params=data.draw(queries), content=content, headers=headers)
    assert_graph_answer(r)


parts = st.fixed_dictionaries({"id": st.one_of(st.sampled_from(["1", "2", "3"]), st.integers(0, 3), st.none())},
                              optional={
                                  "method": st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "get", ""]),
                                  "url": st.one_of(st.sampled_from(["/me", "users", "/groups?$top=1", "/$batch",
                                                                    "/applications", "https://x/y", "", "/nope"]),
                                                   st.text(max_size=20)),
                                  "dependsOn": st.one_of(st.lists(st.sampled_from(["1", "2", "3", "9"]), max_size=2),
                                                         json_values),
                                  "headers": st.one_of(st.just({"Content-Type": "application/json"}), json_values),
                                  "body": json_values,
                              })


@FUZZ
@given(requests=st.one_of(st.lists(parts, max_size=5), json_values))
def test_any_batch_gets_a_graph_answer(world: World, requests: Any) -> None:
    r = world.call("POST", "/$batch", content=json.dumps({"requests": requests}).encode())
    assert_graph_answer(r)
    if r.status_code == 200:
        for part in r.json()["responses"]:
            assert part["status"] < 500, part


@FUZZ
@given(segments=st.lists(st.one_of(st.sampled_from(["users", "groups", "applications", "me", "$ref", "members",
                                                    "servicePrincipals", "(appId='x')", "appRoleAssignedTo",
                                                    str(uuid.UUID(int=3)), "..", "%00"]),
                                   st.text(min_size=1, max_size=12)), max_size=5),
       method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"]))
def test_any_path_gets_a_graph_answer(world: World, segments: list[str], method: str) -> None:
    path = "/" + "/".join(quote(s, safe="()'=$") for s in segments)
    r = world.http.request(method, world.graph + path, headers=bearer(world.token), content=b"{}")
    assert_graph_answer(r)

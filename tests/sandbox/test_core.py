"""The sandbox process itself: ready line, control API, faults, clock, persistence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ca_context
from xtwizard.sandbox import Sandbox
from xtwizard.sandbox.state import Tenant


def test_cli_prints_one_json_line_within_three_seconds(tmp_path):
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "xtwizard.sandbox", "serve", "--scenario", "demo", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        elapsed = time.monotonic() - t0
        info = json.loads(line)
        assert elapsed < 3.0, f"ready line took {elapsed:.2f}s"
        for key in ("authority_host", "graph_url", "arm_url", "exchange_url", "vault_url_template",
                    "ca_bundle", "control_url", "tenants"):
            assert key in info
        assert {t["key"] for t in info["tenants"]} == {"source", "target"}
        assert all(t["accounts"] for t in info["tenants"])
        with httpx.Client(verify=ca_context(info["ca_bundle"]), trust_env=False) as c:
            assert c.get(info["control_url"]).json()["scenario"] == "demo"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_unknown_scenario_says_what_exists():
    proc = subprocess.run([sys.executable, "-m", "xtwizard.sandbox", "serve", "--scenario", "nope"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "built-in scenarios: " in proc.stderr and "demo" in proc.stderr


def test_tls_is_trusted_only_through_the_ca_bundle(sandbox):
    with httpx.Client(trust_env=False) as c, pytest.raises(httpx.ConnectError):
        c.get(sandbox.info["control_url"])


def test_fault_storm_then_recovery_and_request_log(sandbox, http):
    ctl = sandbox.info["control_url"]
    r = http.post(ctl + "/faults", json={"kind": "throttle", "service": "graph", "count": 2, "retry_after": 7})
    assert r.status_code == 201
    url = sandbox.info["graph_url"] + "/organization"
    first, second, third = (http.get(url) for _ in range(3))
    assert first.status_code == second.status_code == 429
    assert first.headers["Retry-After"] == "7"
    assert third.status_code != 429  # storm used up
    log = http.get(ctl + "/requests").json()["value"]
    statuses = [row["status"] for row in log if row["service"] == "graph"]
    assert statuses[:2] == [429, 429]
    assert all({"method", "path", "status", "duration_ms"} <= set(row) for row in log)


def test_dropped_connection_fault(sandbox, http):
    http.post(sandbox.info["control_url"] + "/faults", json={"kind": "drop", "service": "graph", "count": 1})
    with pytest.raises(httpx.HTTPError):
        http.get(sandbox.info["graph_url"] + "/organization")


def test_bad_fault_specs_are_refused_with_a_reason(sandbox, http):
    ctl = sandbox.info["control_url"]
    r = http.post(ctl + "/faults", json={"kind": "explode"})
    assert r.status_code == 400 and "kind" in r.json()["error"]["message"]
    r = http.post(ctl + "/faults", content=b"{not json")
    assert r.status_code == 400


def test_clock_only_moves_forward(sandbox, http):
    ctl = sandbox.info["control_url"]
    before = http.get(ctl + "/clock").json()["now"]
    after = http.post(ctl + "/clock", json={"advance_seconds": 3600}).json()["now"]
    assert after - before >= 3600
    assert http.post(ctl + "/clock", json={"advance_seconds": -5}).status_code == 400


def test_state_dir_survives_a_restart_without_secrets(tmp_path):
    state_dir = str(tmp_path / "state")
    with Sandbox("demo", state_dir=state_dir) as sb, httpx.Client(verify=ca_context(sb.ca_path), trust_env=False) as c:
        c.patch(sb.info["control_url"] + "/settings", json={"replication_delay_seconds": 42})
    assert os.path.exists(os.path.join(state_dir, "state.json"))
    with Sandbox("demo", state_dir=state_dir) as sb2:
        assert sb2.state.settings["replication_delay_seconds"] == 42


def test_browser_listener_serves_sign_in_pages_over_http_and_nothing_else():
    with Sandbox("demo", browser_http=True) as sb:
        browser = sb.info["browser_url"]
        assert browser.startswith("http://127.0.0.1:")
        with httpx.Client(verify=ca_context(sb.ca_path), trust_env=False) as c:
            tid = sb.state.tenant("target").id
            doc = c.get(f"{sb.info['authority_host']}/{tid}/v2.0/.well-known/openid-configuration").json()
            assert doc["authorization_endpoint"].startswith(browser + "/")
            assert doc["token_endpoint"].startswith("https://")
        with httpx.Client(trust_env=False) as plain:
            page = plain.get(f"{browser}/devicelogin")
            assert page.status_code == 200 and "<form" in page.text
            assert plain.get(f"{browser}/{tid}/v2.0/.well-known/openid-configuration").status_code == 404
            assert plain.post(f"{browser}/{tid}/oauth2/v2.0/token", data={"grant_type": "x"}).status_code == 404


def test_faults_from_the_scenario_and_the_cli(tmp_path):
    from xtwizard.sandbox.scenario import load_scenario

    data = load_scenario("demo")
    data["faults"] = [{"kind": "throttle", "service": "graph", "count": 1, "retry_after": 9}]
    path = tmp_path / "faulty.json"
    path.write_text(json.dumps(data))
    proc = subprocess.Popen([sys.executable, "-m", "xtwizard.sandbox", "serve", "--scenario", str(path),
                             "--fault", '{"kind": "error", "service": "arm", "status": 500, "count": 1}'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        with httpx.Client(verify=ca_context(info["ca_bundle"]), trust_env=False) as c:
            rules = c.get(info["control_url"] + "/faults").json()["value"]
            assert sorted(r["service"] for r in rules) == ["arm", "graph"]
            r = c.get(info["graph_url"] + "/organization")
            assert r.status_code == 429 and r.headers["Retry-After"] == "9"
            assert c.get(info["arm_url"] + "/subscriptions?api-version=2022-12-01").status_code == 500
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "xtwizard.sandbox", "serve", "--fault", '{"kind": "boom"}'],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "Fault rule problem" in bad.stderr


def test_scenario_mistakes_name_the_field(tmp_path):
    from xtwizard.sandbox.scenario import ScenarioError, load_scenario

    data = load_scenario("demo")
    data["tenants"][0]["groups"].append(dict(data["tenants"][0]["groups"][0]))
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError, match="a second group named 'Migration Wave 1'"):
        Sandbox(str(path))


def test_reset_returns_to_the_scenario_while_serving(sandbox, http):
    ctl = sandbox.info["control_url"]
    http.patch(ctl + "/settings", json={"replication_delay_seconds": 30})
    http.post(ctl + "/faults", json={"kind": "throttle", "service": "graph"})
    before = http.get(ctl + "/clock").json()["now"]
    http.post(ctl + "/clock", json={"advance_seconds": 86400})
    assert http.post(ctl + "/reset").status_code == 204
    assert http.get(ctl + "/settings").json()["replication_delay_seconds"] == 0
    assert http.get(ctl + "/faults").json()["value"] == []
    assert http.get(ctl + "/clock").json()["now"] < before + 3600  # the day's jump is gone
    assert http.get(sandbox.info["graph_url"] + "/organization").status_code == 401  # served, not throttled


def test_users_are_found_by_upn_or_id_as_they_come_and_go():
    t = Tenant("tid", "T", "t.onmicrosoft.com")
    users = t.col("users")

    def add(uid, upn):
        users[uid] = {"id": uid, "userPrincipalName": upn}

    for i in range(3):
        add(f"id{i}", f"User{i}@t.example")
    assert t.user("user1@T.EXAMPLE")["id"] == "id1" and t.user("ID2")["id"] == "id2" and t.user("x@t.example") is None
    add("id3", "new@t.example")  # added after the index was built
    assert t.user("NEW@t.example")["id"] == "id3"
    add("dup", "new@t.example")  # two users with one UPN: the first one added, as a scan finds it
    assert t.user("new@t.example")["id"] == "id3"
    del users["id1"]
    assert t.user("user1@t.example") is None and t.user("user2@t.example")["id"] == "id2"
    add("id1", "back@t.example")  # removed, then added again with another UPN
    assert t.user("back@t.example")["id"] == "id1" and t.user("user1@t.example") is None
    users["id0"]["userPrincipalName"] = "renamed@t.example"
    t.users_changed()
    assert t.user("renamed@t.example")["id"] == "id0" and t.user("user0@t.example") is None

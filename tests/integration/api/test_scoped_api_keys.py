"""API keys as Neon scopes them, against a real Argon: organization keys (Neon's shapes,
checked against Neon's spec by the ``api`` fixture), project-scoped keys refused on every
other project by the API, the MCP server and the console, ``napi_`` keys, last use, and a
revoked key refused everywhere."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa

from argon.meta.db import engine_url
from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.mcp_client import call_tool as _tool
from tests.fixtures.mcp_client import mcp_session
from tests.integration.api.conftest import Call

pytestmark = pytest.mark.timeout(600)


def _as(env: ArgonEnv, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request to ``/api/v2<path>`` (or another path on the API port) with ``key``."""
    base = env.api_url if not path.startswith("/api/v2/console") else \
        f"http://127.0.0.1:{env.api_port}"
    return httpx.request(method, base + path, timeout=300,
                         headers={"Authorization": f"Bearer {key}"}, **kw)


def _org_id(api: Call) -> str:
    return str(api("GET", "/users/me/organizations").json()["organizations"][0]["id"])


def _project(env: ArgonEnv, name: str) -> dict[str, Any]:
    r = env.api("POST", "/projects", json={"project": {"name": name}})
    assert r.status_code == 201, r.text
    return r.json()


def test_organization_keys_have_neons_shapes(api: Call, argon_env: ArgonEnv) -> None:
    org = _org_id(api)
    project = _project(argon_env, "orgkeys")["project"]["id"]
    plain = api("POST", f"/organizations/{org}/api_keys", json={"key_name": "ci"})
    assert plain.status_code == 200, plain.text
    assert plain.json()["key"].startswith("napi_") and "project_id" not in plain.json()
    scoped = api("POST", f"/organizations/{org}/api_keys",
                 json={"key_name": "ci-one", "project_id": project})
    assert scoped.status_code == 200, scoped.text
    body = scoped.json()
    assert body["project_id"] == project and body["key"].startswith("napi_")
    listed = {k["id"]: k for k in api("GET", f"/organizations/{org}/api_keys").json()}
    assert listed[body["id"]]["project_id"] == project
    # who an organization key authenticates as, in Neon's words
    auth = _as(argon_env, body["key"], "GET", "/auth").json()
    assert auth == {"account_id": org, "auth_method": "api_key_org"}
    assert "project_id" not in listed[plain.json()["id"]]
    # personal keys and organization keys are separate lists, as in Neon
    personal = {k["id"] for k in api("GET", "/api_keys").json()}
    assert body["id"] not in personal and plain.json()["id"] not in personal
    revoked = api("DELETE", f"/organizations/{org}/api_keys/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert revoked.json()["project_id"] == project
    assert body["id"] not in {k["id"] for k in api("GET", f"/organizations/{org}/api_keys").json()}
    # precise errors: another organization, a project that does not exist, bad input
    assert api("GET", "/organizations/org-nope-123/api_keys").status_code == 404
    missing = api("POST", f"/organizations/{org}/api_keys",
                  json={"key_name": "x", "project_id": "no-such-project-1"})
    assert missing.status_code == 404 and "not found" in missing.json()["message"]
    assert api("POST", f"/organizations/{org}/api_keys", json={}).status_code in (400, 422)
    assert api("DELETE", f"/organizations/{org}/api_keys/{body['id']}").status_code == 404


def test_a_project_scoped_key_touches_its_project_only(api: Call, argon_env: ArgonEnv) -> None:
    env = argon_env
    mine = _project(env, "scoped-mine")
    other = _project(env, "scoped-other")
    a, b = mine["project"]["id"], other["project"]["id"]
    b_branch, b_ep = other["branch"]["id"], other["endpoints"][0]["id"]
    org = _org_id(api)
    created = api("POST", f"/organizations/{org}/api_keys",
                  json={"key_name": "only-a", "project_id": a}).json()
    key = created["key"]
    assert key.startswith("napi_")

    # its own project: every route family works
    assert [p["id"] for p in _as(env, key, "GET", "/projects").json()["projects"]] == [a]
    assert _as(env, key, "GET", f"/projects/{a}").status_code == 200
    r = _as(env, key, "POST", f"/projects/{a}/branches", json={"branch": {"name": "dev"}})
    assert r.status_code == 201, r.text
    for path in ("branches", "endpoints", "operations"):
        assert _as(env, key, "GET", f"/projects/{a}/{path}").status_code == 200, path

    # any other project: answered as one that does not exist, on every route family
    for method, path, body in [
        ("GET", f"/projects/{b}", None),
        ("PATCH", f"/projects/{b}", {"project": {"name": "stolen"}}),
        ("DELETE", f"/projects/{b}", None),
        ("GET", f"/projects/{b}/branches", None),
        ("POST", f"/projects/{b}/branches", {"branch": {"name": "x"}}),
        ("GET", f"/projects/{b}/branches/{b_branch}", None),
        ("DELETE", f"/projects/{b}/branches/{b_branch}", None),
        ("GET", f"/projects/{b}/endpoints", None),
        ("POST", f"/projects/{b}/endpoints/{b_ep}/suspend", None),
        ("GET", f"/projects/{b}/operations", None),
        ("GET", f"/projects/{b}/connection_uri?database_name=neondb&role_name=neondb_owner",
         None),
    ]:
        r = _as(env, key, method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert r.json()["code"] == "NOT_FOUND"
    assert env.api("GET", f"/projects/{b}").json()["project"]["name"] == "scoped-other"
    assert len(env.api("GET", f"/projects/{b}/branches").json()["branches"]) == 1

    # account-wide actions are refused with 403
    for method, path, body in [("POST", "/projects", {"project": {}}),
                               ("DELETE", f"/projects/{a}", None),
                               ("GET", "/api_keys", None),
                               ("POST", f"/organizations/{org}/api_keys",
                                {"key_name": "escalate"})]:
        r = _as(env, key, method, path, json=body)
        assert r.status_code == 403, (method, path, r.status_code, r.text)

    # the console's routes go through the same door
    assert _as(env, key, "GET", f"/api/v2/console/projects/{a}/sql/history").status_code == 200
    r = _as(env, key, "GET", f"/api/v2/console/projects/{b}/sql/history")
    assert r.status_code == 404, r.text
    r = _as(env, key, "POST", f"/api/v2/console/projects/{b}/branches/{b_branch}/sql",
            json={"database": "neondb", "query": "SELECT 1"})
    assert r.status_code == 404, r.text

    # and so does the MCP server
    async def over_mcp() -> None:
        async with mcp_session(env, key) as s:
            err, text = await _tool(s, "list_projects")
            assert not err and a in text and b not in text, text
            err, text = await _tool(s, "run_sql", projectId=a, sql="SELECT 40 + 2 AS n")
            assert not err and "42" in text, text
            for tool, params in [("describe_project", {"projectId": b}),
                                 ("run_sql", {"projectId": b, "sql": "SELECT 1"}),
                                 ("list_branch_computes", {"projectId": b}),
                                 ("delete_branch", {"projectId": b, "branchId": b_branch}),
                                 ("fetch", {"id": f"project:{b}"}),
                                 ("fetch", {"id": f"branch:{b}/{b_branch}"})]:
                err, text = await _tool(s, tool, **params)
                assert err and "not found" in text, (tool, text)
            err, text = await _tool(s, "search", query="scoped-")
            assert not err and a in text and b not in text, text
            err, text = await _tool(s, "create_project", name="nope")
            assert err and "project-scoped" in text, text
    anyio.run(over_mcp)
    assert len(env.api("GET", f"/projects/{b}/branches").json()["branches"]) == 1

    # last use is recorded (time and address), at most once a minute
    item = next(k for k in api("GET", f"/organizations/{org}/api_keys").json()
                if k["id"] == created["id"])
    assert item["last_used_at"] is not None and item["last_used_from_addr"] == "127.0.0.1"
    used = datetime.fromisoformat(item["last_used_at"].replace("Z", "+00:00"))
    assert (datetime.now(UTC) - used).total_seconds() < 300

    # revoked: refused by the API, the console and the MCP server
    assert api("DELETE", f"/organizations/{org}/api_keys/{created['id']}").status_code == 200
    assert _as(env, key, "GET", f"/projects/{a}").status_code == 401
    assert _as(env, key, "GET", f"/api/v2/console/projects/{a}/sql/history").status_code == 401
    r = httpx.post(f"http://127.0.0.1:{env.api_port}/mcp", timeout=60,
                   headers={"Authorization": f"Bearer {key}",
                            "Accept": "application/json, text/event-stream"},
                   content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
    assert r.status_code == 401


def test_personal_keys_use_neons_format_and_old_keys_keep_working(
        api: Call, argon_env: ArgonEnv) -> None:
    created = api("POST", "/api_keys", json={"key_name": "laptop"}).json()
    assert created["key"].startswith("napi_") and len(created["key"]) == 69
    assert _as(argon_env, created["key"], "GET", "/projects").status_code == 200
    # a key made before the napi_ prefix (64 characters, stored as its SHA-256)
    legacy = "k" * 64
    engine = sa.create_engine(engine_url(argon_env.metadata_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO api_keys (name, secret_hash, created_at, revoked) "
                "VALUES ('legacy', :h, :t, false)"),
                {"h": hashlib.sha256(legacy.encode()).hexdigest(),
                 "t": datetime.now(UTC).isoformat(timespec="microseconds")})
    finally:
        engine.dispose()
    assert _as(argon_env, legacy, "GET", "/projects").status_code == 200
    listed = {k["name"]: k for k in api("GET", "/api_keys").json()}
    assert listed["legacy"]["last_used_at"] is not None

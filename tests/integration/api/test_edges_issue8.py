"""Edges of issue 8, finding 9, against a real Argon: CLI path arguments, names holding
``/``, Neon's enums in project settings, Neon's "not enabled" answers, and branch
creation that is all or nothing.  Answers are checked against Neon's schema (``api``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.api.conftest import Call, wait_operations

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def project(api: Call) -> Iterator[dict[str, Any]]:
    r = api("POST", "/projects", json={"project": {"name": f"edge-{uuid.uuid4().hex[:6]}"}})
    assert r.status_code == 201, r.text
    body = r.json()
    wait_operations(api, body["project"]["id"], body["operations"])
    yield body
    api("DELETE", f"/projects/{body['project']['id']}")


def _seg(name: str) -> str:
    return quote(name, safe="")


# -- CLI path arguments ----------------------------------------------------------------

def test_cli_path_argument_cannot_reach_another_route(argon_env: ArgonEnv, api: Call) -> None:
    made = api("POST", "/api_keys", json={"key_name": f"victim-{uuid.uuid4().hex[:6]}"})
    assert made.status_code == 200, made.text
    key_id, key = made.json()["id"], made.json()["key"]
    res = argon_env.cli("projects", "delete", f"../api_keys/{key_id}", check=False)
    assert res.returncode != 0, res.stdout
    # The key was not revoked: it still authenticates.
    r = httpx.get(argon_env.api_url + "/projects", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, "the CLI argument revoked an API key"
    for ref in ("..", ".", "%2e%2e"):
        assert argon_env.cli("projects", "delete", ref, check=False).returncode != 0
    api("DELETE", f"/api_keys/{key_id}")


def test_cli_still_deletes_a_real_project(argon_env: ArgonEnv, api: Call) -> None:
    r = api("POST", "/projects", json={"project": {"name": "cli-delete-me"}})
    pid = r.json()["project"]["id"]
    wait_operations(api, pid, r.json()["operations"])
    argon_env.cli("projects", "delete", pid)
    assert api("GET", f"/projects/{pid}").status_code == 404


# -- names with '/' ----------------------------------------------------------------------

def test_role_and_database_with_slash_can_be_read_and_deleted(
        api: Call, argon_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid, bid = project["project"]["id"], project["branch"]["id"]
    base = f"/projects/{pid}/branches/{bid}"
    r = api("POST", f"{base}/roles", json={"role": {"name": "team/alice"}})
    assert r.status_code == 201, r.text
    wait_operations(api, pid, r.json()["operations"])
    r = api("POST", f"{base}/databases",
            json={"database": {"name": "app/main", "owner_name": "team/alice"}})
    assert r.status_code == 201, r.text
    wait_operations(api, pid, r.json()["operations"])

    role, db = _seg("team/alice"), _seg("app/main")
    assert api("GET", f"{base}/roles/{role}").json()["role"]["name"] == "team/alice"
    assert api("GET", f"{base}/roles/{role}/reveal_password").status_code == 200
    r = api("POST", f"{base}/roles/{role}/reset_password")
    assert r.status_code == 200, r.text
    wait_operations(api, pid, r.json()["operations"])
    assert api("GET", f"{base}/databases/{db}").json()["database"]["owner_name"] == "team/alice"

    # The CLI addresses them too (names travel as query parameters, encoded).
    uri = argon_env.cli("cs", "--project-id", pid, "--database-name", "app/main",
                        "--role-name", "team/alice").stdout.strip()
    assert uri.startswith("postgresql://team%2Falice:") and uri.split("?")[0].endswith(
        "/app%2Fmain")

    r = api("DELETE", f"{base}/databases/{db}")
    assert r.status_code == 200, r.text
    wait_operations(api, pid, r.json()["operations"])
    assert api("GET", f"{base}/databases/{db}").status_code == 404
    r = api("DELETE", f"{base}/roles/{role}")
    assert r.status_code == 200, r.text
    wait_operations(api, pid, r.json()["operations"])
    assert api("GET", f"{base}/roles/{role}").status_code == 404


# -- project settings hold only what Neon's schema allows --------------------------------

@pytest.mark.parametrize("settings", [
    {"audit_log_level": "loud"},
    {"preload_libraries": {"use_defaults": False, "enabled_libraries": [{}]}},
    {"maintenance_window": {"weekdays": ["monday"], "start_time": "", "end_time": ""}},
    {"quota": {"active_time_seconds": -1}},
])
def test_project_settings_outside_neons_schema_are_refused(
        api: Call, project: dict[str, Any], settings: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    field = next(iter(settings))
    r = api("PATCH", f"/projects/{pid}", json={"project": {"settings": settings}})
    assert r.status_code == 400, r.text
    assert field in r.json()["message"]
    # Later answers still match Neon's schema (the api fixture validates them).
    assert api("GET", f"/projects/{pid}").status_code == 200
    assert api("GET", "/projects").status_code == 200


def test_audit_log_level_takes_neons_values(api: Call, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    r = api("PATCH", f"/projects/{pid}", json={"project": {"settings": {
        "audit_log_level": "extended",
        "preload_libraries": {"use_defaults": True, "enabled_libraries": ["pg_cron"]}}}})
    assert r.status_code == 200, r.text
    assert api("GET", f"/projects/{pid}").json()["project"]["settings"][
        "audit_log_level"] == "extended"
    r = api("POST", "/projects", json={"project": {"settings": {"audit_log_level": "chatty"}}})
    assert r.status_code == 400 and "audit_log_level" in r.json()["message"]


@pytest.mark.parametrize(("feature", "code", "reason"), [
    ("storage", "STORAGE_NOT_ENABLED", "region_unavailable"),
    ("ai_gateway", "AI_GATEWAY_NOT_ENABLED", "ai_gateway_unavailable"),
])
def test_features_argon_lacks_answer_neons_not_enabled(api: Call, project: dict[str, Any],
                                                       feature: str, code: str,
                                                       reason: str) -> None:
    pid, bid = project["project"]["id"], project["branch"]["id"]
    r = api("GET", f"/projects/{pid}/branches/{bid}/{feature}")
    assert r.status_code == 404 and r.json()["code"] == code and r.json()["reason"] == reason
    r = api("GET", f"/projects/{pid}/branches/br-missing-123/{feature}")
    assert r.status_code == 404 and r.json()["reason"] == "branch_not_found"


# -- branch creation with endpoints is all or nothing ------------------------------------

def test_branch_whose_endpoint_fails_is_not_left_behind(api: Call,
                                                        project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    bad = {"branch": {"name": "aon"}, "endpoints": [
        {"type": "read_write", "settings": {"pg_settings": {"port": "1"}}}]}
    r = api("POST", f"/projects/{pid}/branches", json=bad)
    assert r.status_code == 400 and "'port'" in r.json()["message"], r.text
    names = [b["name"] for b in api("GET", f"/projects/{pid}/branches").json()["branches"]]
    assert "aon" not in names
    good = {"branch": {"name": "aon"}, "endpoints": [{"type": "read_write"}]}
    r = api("POST", f"/projects/{pid}/branches", json=good)
    assert r.status_code == 201, r.text
    wait_operations(api, pid, r.json()["operations"])
    assert len(r.json()["endpoints"]) == 1

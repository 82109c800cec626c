"""The official ``@neondatabase/api-client`` (npm) through a project's life cycle."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.compat.conftest import RecordedApi, run_node_script

pytestmark = pytest.mark.timeout(600)


def test_api_client_life_cycle(neon_api: RecordedApi) -> None:
    name = f"apiclient-{uuid.uuid4().hex[:8]}"
    res = run_node_script("api_client_lifecycle.mjs", {
        "ARGON_API_URL": neon_api.api_url, "ARGON_API_KEY": neon_api.api_key, "NAME": name})
    assert res.code == 0, f"api-client script failed:\n{res.stderr}\n{res.stdout}"
    out = res.json()
    assert out["project"]["name"] == name
    assert out["project"]["default_branch"] == "main"
    assert out["project"]["databases"] == ["neondb"]
    assert out["project"]["roles"] == ["neondb_owner"]
    assert out["project"]["connection_uris"] >= 1
    assert out["project"]["id"] in out["listed"]
    assert out["renamed"] == f"{name}-renamed"
    assert out["branch"]["name"] == "feature/x"
    assert out["branch"]["parent_id"] == out["branch"]["main_id"]
    assert out["branch"]["endpoints"] == 1
    assert out["count"] == 2
    assert out["branches"] == ["feature/x"]
    assert out["branch_renamed"] == "feature/y"
    assert out["branch_endpoints"] == ["read_write"]
    assert out["role_password_given"] and out["reveal_matches"] and out["reset_changed"]
    assert "appdb" in out["databases"] and "app" in out["roles"]
    assert out["operations"] > 0
    assert out["after_delete"] == ["main"]
    assert out["deleted_branch_status"] == 404
    assert set(out["deleted_branch_error"]) >= {"code", "message"}

    # The URI the API printed connects and runs a query.
    with psycopg.connect(out["uri"], autocommit=True, connect_timeout=60) as conn:
        assert conn.execute("select current_database(), current_user").fetchone() == (
            "neondb", "neondb_owner")

    gone = run_node_script("delete_project.mjs", {
        "ARGON_API_URL": neon_api.api_url, "ARGON_API_KEY": neon_api.api_key,
        "PROJECT_ID": out["project"]["id"]})
    assert gone.code == 0, gone.stderr
    assert gone.json() == {"deleted": out["project"]["id"], "status_after": 404}

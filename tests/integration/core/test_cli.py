"""The management CLI over the running platform, in both output modes."""

from __future__ import annotations

import psycopg

from tests.fixtures.argon_env import ArgonEnv


def test_status_reports_what_runs(argon_env: ArgonEnv) -> None:
    data = argon_env.cli_json("status")
    assert data["running"] is True
    assert data["clone_driver"] in ("reflink", "copy")
    assert data["api_key"] == argon_env.api_key
    assert any(p["name"] == "default" for p in data["projects"])
    assert any(i["source"] == "embedded" and i["version"].startswith("18") for i in data["postgres"])
    human = argon_env.cli("status").stdout
    assert "clone_driver" in human and "default" in human


def test_project_and_branch_life_cycle_with_json(argon_env: ArgonEnv) -> None:
    created = argon_env.cli_json("projects", "create", "--name", "cli-project")
    pid = created["project"]["id"]
    assert any(p["id"] == pid for p in argon_env.cli_json("projects", "list"))
    b = argon_env.cli_json("branches", "create", "--project-id", pid, "--name", "dev")
    assert b["branch"]["name"] == "dev"
    names = {x["name"] for x in argon_env.cli_json("branches", "list", "--project-id", pid)}
    assert names == {"main", "dev"}
    argon_env.cli("branches", "rename", "dev", "dev2", "--project-id", pid)
    argon_env.cli("branches", "set-default", "dev2", "--project-id", pid)
    listed = argon_env.cli_json("branches", "list", "--project-id", pid)
    assert [x["name"] for x in listed if x["default"]] == ["dev2"]
    uri = argon_env.cli_json("cs", "dev2", "--project-id", pid)["connection_string"]
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    out = argon_env.cli("psql", "main", "--project-id", pid, "--", "-tAc", "select 40+2")
    assert out.stdout.strip() == "42"
    res = argon_env.cli("branches", "delete", "dev2", "--project-id", pid, check=False)
    assert res.returncode != 0 and "default" in res.stderr
    ep = b["endpoints"][0]["id"]
    assert argon_env.cli_json("endpoints", "suspend", ep, "--project-id", pid)[
        "endpoint"]["current_state"] == "idle"
    assert argon_env.cli_json("endpoints", "start", ep, "--project-id", pid)[
        "endpoint"]["current_state"] == "active"
    argon_env.cli("projects", "delete", pid)
    assert all(p["id"] != pid for p in argon_env.cli_json("projects", "list"))


def test_cli_errors_are_clear(argon_env: ArgonEnv) -> None:
    res = argon_env.cli("branches", "delete", "no-such-branch", "--project-id",
                        argon_env.default_project()["id"], check=False)
    assert res.returncode == 1
    assert "not found" in res.stderr


def test_metrics_endpoint_reports_platform_and_proxy(argon_env: ArgonEnv) -> None:
    import httpx
    text = httpx.get(f"http://127.0.0.1:{argon_env.api_port}/metrics", timeout=30).text
    assert "argon_projects " in text
    assert 'argon_endpoints{state="active"}' in text or 'argon_endpoints{state="idle"}' in text
    assert "argon_proxy_connections_total" in text
    assert 'argon_clone_driver_info{driver=' in text


def test_sql_over_http_is_served_on_the_postgres_port_too(argon_env: ArgonEnv) -> None:
    import httpx
    project = argon_env.default_project()
    uri = argon_env.api("GET", f"/projects/{project['id']}/connection_uri", params={
        "database_name": "neondb", "role_name": "neondb_owner"}).json()["uri"]
    for port in (argon_env.http_port, argon_env.pg_port):
        r = httpx.post(f"http://127.0.0.1:{port}/sql", json={"query": "SELECT 40 + 2 AS n"},
                       headers={"Neon-Connection-String": uri}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [{"n": 42}]

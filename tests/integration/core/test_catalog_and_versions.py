"""Databases and roles through the API and through SQL agree; pg_version picks binaries."""

from __future__ import annotations

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import connect, new_project


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> dict:
    return new_project(argon_env, "catalog")


def test_role_life_cycle_with_reveal_and_reset(argon_env: ArgonEnv, project: dict) -> None:
    pid, main = project["project"]["id"], project["branch"]["id"]
    base = f"/projects/{pid}/branches/{main}"
    r = argon_env.api("POST", f"{base}/roles", json={"role": {"name": "app_user"}})
    assert r.status_code == 201, r.text
    password = r.json()["role"]["password"]
    assert password.startswith("npg_")
    revealed = argon_env.api("GET", f"{base}/roles/app_user/reveal_password").json()["password"]
    assert revealed == password
    host = project["endpoints"][0]["host"]
    uri = f"postgresql://app_user:{password}@{host}/neondb?sslmode=require"
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("app_user",)
    r = argon_env.api("POST", f"{base}/roles/app_user/reset_password")
    assert r.status_code == 200, r.text
    new_password = r.json()["role"]["password"]
    assert new_password != password
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(uri).close()
    with psycopg.connect(uri.replace(password, new_password)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # the role's password is stored as a SCRAM verifier inside Postgres
    with connect(argon_env, pid, main) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'app_user'"
                            ).fetchone() == (1,)
    assert argon_env.api("DELETE", f"{base}/roles/app_user").status_code == 200
    names = [x["name"] for x in argon_env.api("GET", f"{base}/roles").json()["roles"]]
    assert "app_user" not in names


def test_database_life_cycle_and_sql_made_objects_show_up(argon_env: ArgonEnv,
                                                          project: dict) -> None:
    pid, main = project["project"]["id"], project["branch"]["id"]
    base = f"/projects/{pid}/branches/{main}"
    r = argon_env.api("POST", f"{base}/databases",
                      json={"database": {"name": "analytics", "owner_name": "neondb_owner"}})
    assert r.status_code == 201, r.text
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE DATABASE made_with_sql")
        conn.execute("CREATE ROLE made_role LOGIN")
    dbs = {d["name"]: d["owner_name"] for d in
           argon_env.api("GET", f"{base}/databases").json()["databases"]}
    assert dbs.get("analytics") == "neondb_owner"
    assert dbs.get("made_with_sql") == "neondb_owner"
    roles = [x["name"] for x in argon_env.api("GET", f"{base}/roles").json()["roles"]]
    assert "made_role" in roles and "cloud_admin" not in roles
    assert argon_env.api("DELETE", f"{base}/databases/analytics").status_code == 200
    with connect(argon_env, pid, main) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'analytics'"
                            ).fetchone() == (0,)


def test_a_branch_inherits_roles_with_their_passwords(argon_env: ArgonEnv, project: dict) -> None:
    pid, main = project["project"]["id"], project["branch"]["id"]
    r = argon_env.api("POST", f"/projects/{pid}/branches",
                      json={"branch": {"name": "inherits"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    uri = r.json()["connection_uris"][0]["connection_uri"]
    owner_pw = project["roles"][0]["password"]
    assert owner_pw in uri
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("neondb_owner",)


def test_pg_version_15_project_runs_system_binaries(argon_env: ArgonEnv) -> None:
    from argon.pg import discover_installs
    if 15 not in {i.version for i in discover_installs()}:
        pytest.skip("no PostgreSQL 15 installed on this machine (apt-get install postgresql-15)")
    created = new_project(argon_env, "pg15", pg_version=15)
    assert created["project"]["pg_version"] == 15
    with psycopg.connect(created["connection_uris"][0]["connection_uri"]) as conn:
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")
    r = argon_env.api("POST", f"/projects/{created['project']['id']}/branches",
                      json={"branch": {"name": "child15"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    with psycopg.connect(r.json()["connection_uris"][0]["connection_uri"]) as conn:
        assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")

"""Small steps the core tests share: create branches and connect to them via the API."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.fixtures.argon_env import ArgonEnv


def create_branch(env: ArgonEnv, project_id: str, name: str, parent_id: str | None = None,
                  endpoint: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"branch": {"name": name}}
    if parent_id:
        body["branch"]["parent_id"] = parent_id
    if endpoint:
        body["endpoints"] = [{"type": "read_write"}]
    r = env.api("POST", f"/projects/{project_id}/branches", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def uri_for(env: ArgonEnv, project_id: str, branch_id: str, pooled: bool = False) -> str:
    r = env.api("GET", f"/projects/{project_id}/connection_uri",
                params={"branch_id": branch_id, "database_name": "neondb",
                        "role_name": "neondb_owner", "pooled": str(pooled).lower()})
    assert r.status_code == 200, r.text
    return str(r.json()["uri"])


def connect(env: ArgonEnv, project_id: str, branch_id: str) -> psycopg.Connection:
    return psycopg.connect(uri_for(env, project_id, branch_id), autocommit=True,
                           connect_timeout=60)


def new_project(env: ArgonEnv, name: str, **project: Any) -> dict[str, Any]:
    r = env.api("POST", "/projects", json={"project": {"name": name, **project}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def plain_uri(uri: str) -> str:
    """The same URI without TLS, for tools built without it (the embedded pgbench);
    the proxy accepts plaintext from loopback peers."""
    base, _, _query = uri.partition("?")
    return base + "?sslmode=disable"

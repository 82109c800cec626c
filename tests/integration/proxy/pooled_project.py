"""A fresh project on a real Argon with its direct and pooled connection strings, as the
API hands them out (``connection_uri?pooled=true``); for the pooled-host tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tests.fixtures.argon_env import ArgonEnv, wait_operations


@dataclass(frozen=True)
class PooledProject:
    id: str
    endpoint: str
    direct: str
    pooled: str
    role: str
    password: str
    database: str


def create_pooled_project(env: ArgonEnv, prefix: str) -> PooledProject:
    r = env.api("POST", "/projects", json={"project": {
        "name": f"{prefix}-{uuid.uuid4().hex[:6]}"}})
    assert r.status_code == 201, r.text
    body = r.json()
    project_id = body["project"]["id"]
    wait_operations(env.api, project_id, body["operations"])
    conn = body["connection_uris"][0]
    params = conn["connection_parameters"]
    r = env.api("GET", f"/projects/{project_id}/connection_uri", params={
        "database_name": params["database"], "role_name": params["role"], "pooled": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["uri"] != conn["connection_uri"]
    return PooledProject(project_id, body["endpoints"][0]["id"], conn["connection_uri"],
                         r.json()["uri"], params["role"], params["password"],
                         params["database"])

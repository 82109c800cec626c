"""The real ``neonctl`` (npm) manages Argon with only ``NEON_API_HOST`` changed."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.compat.conftest import Neonctl

pytestmark = pytest.mark.timeout(600)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create_project(neonctl: Neonctl, name: str) -> dict[str, Any]:
    out = neonctl.json("projects", "create", "--name", name)
    project = out.get("project", out)
    assert project["name"] == name
    return out


def test_projects_create_list_get_delete(neonctl: Neonctl) -> None:
    name = _unique("nctl-proj")
    out = _create_project(neonctl, name)
    project_id = out["project"]["id"]
    uris = out.get("connection_uris") or []
    assert uris and uris[0]["connection_uri"].startswith("postgresql://")

    listed = neonctl.json("projects", "list")
    rows = listed if isinstance(listed, list) else listed.get("projects", [])
    assert project_id in {p["id"] for p in rows}

    got = neonctl.json("projects", "get", project_id)
    assert got["id"] == project_id and got["name"] == name

    neonctl.run("projects", "delete", project_id)
    gone = neonctl.run("projects", "get", project_id, check=False)
    assert gone.code != 0
    assert "not found" in (gone.stderr + gone.stdout).lower()


def test_branches_connection_strings_databases_roles(neonctl: Neonctl) -> None:
    out = _create_project(neonctl, _unique("nctl-br"))
    pid = out["project"]["id"]
    scope = ["--project-id", pid]
    try:
        # Parent by name, then by id; a name with a slash as in preview branches.
        dev = neonctl.json("branches", "create", *scope, "--name", "dev", "--parent", "main")
        dev_branch = dev.get("branch", dev)
        assert dev_branch["name"] == "dev"
        feat = neonctl.json("branches", "create", *scope, "--name", "preview/pr-1",
                            "--parent", dev_branch["id"], "--no-compute")
        feat_branch = feat.get("branch", feat)
        assert feat_branch["parent_id"] == dev_branch["id"]

        names = {b["name"] for b in neonctl.json("branches", "list", *scope)}
        assert {"main", "dev", "preview/pr-1"} <= names

        got = neonctl.json("branches", "get", *scope, "dev")
        assert got["id"] == dev_branch["id"]

        renamed = neonctl.json("branches", "rename", *scope, "dev", "dev2")
        assert renamed.get("name", renamed.get("branch", {}).get("name")) == "dev2"

        neonctl.run("branches", "set-default", *scope, "dev2")
        default = [b for b in neonctl.json("branches", "list", *scope) if b["default"]]
        assert [b["name"] for b in default] == ["dev2"]

        # neonctl builds the pooled host itself: host.replace(id, id + "-pooler").
        direct = neonctl.run("connection-string", "dev2", *scope).stdout.strip()
        pooled = neonctl.run("connection-string", "dev2", *scope, "--pooled").stdout.strip()
        assert direct.startswith("postgresql://") and pooled.startswith("postgresql://")

        # Databases and roles on the new default branch.
        neonctl.run("roles", "create", *scope, "--branch", "dev2", "--name", "app_user")
        roles = {r["name"] for r in neonctl.json("roles", "list", *scope, "--branch", "dev2")}
        assert "app_user" in roles
        neonctl.run("databases", "create", *scope, "--branch", "dev2", "--name", "appdb",
                    "--owner-name", "app_user")
        dbs = {d["name"]: d for d in neonctl.json("databases", "list", *scope,
                                                  "--branch", "dev2")}
        assert dbs["appdb"]["owner_name"] == "app_user"
        neonctl.run("databases", "delete", *scope, "--branch", "dev2", "appdb")
        neonctl.run("roles", "delete", *scope, "--branch", "dev2", "app_user")
        dbs_after = {d["name"] for d in neonctl.json("databases", "list", *scope,
                                                     "--branch", "dev2")}
        assert "appdb" not in dbs_after

        ops = neonctl.json("operations", "list", *scope)
        assert ops and all("status" in o and "action" in o for o in ops)

        # The strings neonctl printed connect as printed.
        for uri in (direct, pooled):
            with psycopg.connect(uri, autocommit=True, connect_timeout=60) as conn:
                assert conn.execute("select 41 + 1").fetchone() == (42,)

        neonctl.run("branches", "delete", *scope, "preview/pr-1")
        names = {b["name"] for b in neonctl.json("branches", "list", *scope)}
        assert "preview/pr-1" not in names
    finally:
        neonctl.run("projects", "delete", pid, check=False)


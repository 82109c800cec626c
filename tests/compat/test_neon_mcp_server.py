"""Neon's MCP server (``@neondatabase/mcp-server-neon`` from npm) against Argon.

Started as its README says for local use (stdio, ``mcp-server-neon start <api key>``) with
``NEON_API_HOST`` at Argon's API and ``NODE_EXTRA_CA_CERTS`` at Argon's CA, and driven by
the official MCP SDK client (``js/mcp_client.mjs``).  The server's SQL tools use
``@neondatabase/serverless`` with no overrides, so they need the Neon-style mode: the
connection strings Argon hands out name ``ep-x.argon.localhost`` and the driver posts to
``https://api.argon.localhost/sql`` on port 443.  Every tool is called as an agent would
and its effect is checked in Argon (rows, branches, columns), not only its answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.compat.conftest import COMPAT_DIR, need_node
from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.port443 import neon_style_argon

# the first test also waits for the port-443 lock (tests/fixtures/port443.py)
pytestmark = pytest.mark.timeout(1200)


class McpSession:
    """One MCP server process behind the SDK client; ``call`` runs one tool."""

    def __init__(self, env: ArgonEnv) -> None:
        self.env = env
        self.ca = env.home / "tls" / "ca.crt"
        self.proc = subprocess.Popen(
            ["node", str(COMPAT_DIR / "js" / "mcp_client.mjs")], cwd=COMPAT_DIR,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "NEON_API_KEY": env.api_key, "NEON_API_HOST": env.api_url,
                 "NODE_EXTRA_CA_CERTS": str(self.ca), "NODE_NO_WARNINGS": "1",
                 # Sentry reports nowhere (the machine is offline); nothing else changes
                 "SENTRY_DSN": ""})
        first = self._read()
        assert first == {"ready": True}, first

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the MCP client exited ({self.proc.poll()})"
        return json.loads(line)

    def request(self, req: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def call_raw(self, tool: str, **arguments: Any) -> dict[str, Any]:
        # every tool of this server takes its arguments under "params"
        out: dict[str, Any] = self.request({"call": tool, "arguments": {"params": arguments}})
        assert "error" not in out, f"{tool}: {out['error']}"
        return out

    def call(self, tool: str, **arguments: Any) -> str:
        out = self.call_raw(tool, **arguments)
        assert not out["isError"], f"{tool} failed: {out['text']}"
        return str(out["text"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Argon:
    """Argon's own view, to check what each tool did."""

    def __init__(self, env: ArgonEnv) -> None:
        self.env = env
        project = env.api("GET", "/projects").json()["projects"][0]
        self.project_id: str = project["id"]

    def branches(self) -> dict[str, dict[str, Any]]:
        r = self.env.api("GET", f"/projects/{self.project_id}/branches")
        assert r.status_code == 200, r.text
        return {b["id"]: b for b in r.json()["branches"]}

    def main_branch(self) -> dict[str, Any]:
        return next(b for b in self.branches().values() if b["default"])

    def uri(self, branch_id: str | None = None) -> str:
        params = {"database_name": "neondb", "role_name": "neondb_owner"}
        if branch_id:
            params["branch_id"] = branch_id
        r = self.env.api("GET", f"/projects/{self.project_id}/connection_uri", params=params)
        assert r.status_code == 200, r.text
        return str(r.json()["uri"])

    def query(self, sql: str, branch_id: str | None = None) -> list[tuple[Any, ...]]:
        dsn = self.uri(branch_id) + f"&sslrootcert={self.env.home / 'tls' / 'ca.crt'}"
        with psycopg.connect(dsn, autocommit=True, connect_timeout=60) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def argon_neon_style(port443: None) -> Iterator[ArgonEnv]:
    # port443: this Argon binds 443 for the whole module; other runs wait for the lock
    need_node("@neondatabase/mcp-server-neon")
    need_node("@modelcontextprotocol/sdk")
    with neon_style_argon("neon-mcp") as env:
        yield env


@pytest.fixture(scope="module")
def mcp(argon_neon_style: ArgonEnv) -> Iterator[McpSession]:
    session = McpSession(argon_neon_style)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def argon(argon_neon_style: ArgonEnv) -> Argon:
    return Argon(argon_neon_style)


def _json_after(text: str, marker: str) -> Any:
    return json.loads(text.split(marker, 1)[1])


def test_server_starts_and_lists_its_tools(mcp: McpSession) -> None:
    tools = mcp.request({"list": True})["tools"]
    for name in ("list_projects", "run_sql", "prepare_database_migration",
                 "complete_database_migration", "explain_sql_statement",
                 "list_slow_queries", "list_branch_computes", "reset_from_parent"):
        assert name in tools, tools


def test_list_projects(mcp: McpSession, argon: Argon) -> None:
    out = json.loads(mcp.call("list_projects"))
    assert argon.project_id in [p["id"] for p in out["projects"]]


def test_list_organizations_and_shared_projects(mcp: McpSession, argon: Argon) -> None:
    orgs = json.loads(mcp.call("list_organizations"))
    listed = argon.env.api("GET", "/users/me/organizations").json()["organizations"]
    assert [o["id"] for o in orgs] == [o["id"] for o in listed] and orgs
    shared = json.loads(mcp.call("list_shared_projects"))
    assert shared["shared_projects"] == []           # one local account shares nothing


def test_describe_project(mcp: McpSession, argon: Argon) -> None:
    text = mcp.call("describe_project", projectId=argon.project_id)
    branches = _json_after(text, "each branch): ")["branches"]
    assert argon.main_branch()["id"] in [b["id"] for b in branches]


def test_create_project_then_delete_project(mcp: McpSession, argon: Argon) -> None:
    text = mcp.call("create_project", name="mcp-made")
    m = re.search(r'The project_id is "([^"]+)"', text)
    assert m, text
    made = m.group(1)
    uri = re.search(r"^URI: (\S+)$", text, re.M)
    assert uri and ".argon.localhost" in uri.group(1), text
    r = argon.env.api("GET", f"/projects/{made}")
    assert r.status_code == 200 and r.json()["project"]["name"] == "mcp-made"
    assert "Project deleted successfully." in mcp.call("delete_project", projectId=made)
    assert argon.env.api("GET", f"/projects/{made}").status_code == 404


def test_get_connection_string(mcp: McpSession, argon: Argon) -> None:
    text = mcp.call("get_connection_string", projectId=argon.project_id)
    uri = re.search(r"^URI: (\S+)$", text, re.M)
    assert uri, text
    assert re.search(r"@ep-[a-z0-9-]+\.argon\.localhost", uri.group(1)), uri.group(1)
    assert "Role: neondb_owner" in text and "Database: neondb" in text


def test_run_sql_returns_rows(mcp: McpSession, argon: Argon) -> None:
    rows = json.loads(mcp.call("run_sql", projectId=argon.project_id,
                               sql="SELECT 40 + 2 AS n, current_user AS who"))
    assert rows == [{"n": 42, "who": "neondb_owner"}]


def test_run_sql_transaction(mcp: McpSession, argon: Argon) -> None:
    out = json.loads(mcp.call("run_sql_transaction", projectId=argon.project_id, sqlStatements=[
        "CREATE TABLE mcp_items (id int PRIMARY KEY, name text NOT NULL)",
        "INSERT INTO mcp_items SELECT g, 'item ' || g FROM generate_series(1, 500) g",
        "SELECT count(*)::int AS n FROM mcp_items"]))
    assert out[-1] == [{"n": 500}]
    assert argon.query("SELECT count(*) FROM mcp_items") == [(500,)]


def test_get_database_tables(mcp: McpSession, argon: Argon) -> None:
    tables = json.loads(mcp.call("get_database_tables", projectId=argon.project_id))
    assert {"table_schema": "public", "table_name": "mcp_items",
            "table_type": "BASE TABLE"} in tables


def test_describe_table_schema(mcp: McpSession, argon: Argon) -> None:
    out = json.loads(mcp.call("describe_table_schema", projectId=argon.project_id,
                              tableName="mcp_items"))
    assert "mcp_items" in out["formatted"]
    names = [c["name"] for c in out["raw"]["columns"]]
    assert names == ["id", "name"], out["raw"]


def test_explain_sql_statement_with_analyze(mcp: McpSession, argon: Argon) -> None:
    # analyze: the server sends EXPLAIN (ANALYZE, VERBOSE, BUFFERS, FILECACHE, FORMAT JSON)
    text = mcp.call("explain_sql_statement", projectId=argon.project_id, analyze=True,
                    sql="SELECT * FROM mcp_items WHERE name = 'item 7'")
    plan = json.loads(text)[0]["QUERY PLAN"][0]
    assert plan["Plan"]["Relation Name"] == "mcp_items"
    assert "Execution Time" in plan


def test_list_slow_queries(mcp: McpSession, argon: Argon) -> None:
    # pg_stat_statements is preloaded; the tool asks the owner to create the extension
    missing = mcp.call_raw("list_slow_queries", projectId=argon.project_id)
    if missing["isError"]:
        assert "CREATE EXTENSION pg_stat_statements" in missing["text"], missing
        mcp.call("run_sql", projectId=argon.project_id,
                 sql="CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    mcp.call("run_sql", projectId=argon.project_id,
             sql="SELECT count(*) FROM mcp_items a, mcp_items b WHERE a.id < b.id")
    out = json.loads(mcp.call("list_slow_queries", projectId=argon.project_id, limit=50))
    assert out["total_queries_found"] >= 1
    assert any("mcp_items a, mcp_items b" in q["query"] for q in out["slow_queries"]), out


def test_create_branch_describe_branch_list_branch_computes(mcp: McpSession,
                                                             argon: Argon) -> None:
    text = mcp.call("create_branch", projectId=argon.project_id, branchName="mcp-dev")
    m = re.search(r"^Branch ID: (\S+)$", text, re.M)
    assert m, text
    branch_id = m.group(1)
    made = argon.branches()[branch_id]
    assert made["name"] == "mcp-dev" and made["parent_id"] == argon.main_branch()["id"]

    described = mcp.call("describe_branch", projectId=argon.project_id, branchId=branch_id)
    assert "mcp_items" in described, described          # the child sees its parent's table

    computes = json.loads(mcp.call("list_branch_computes", projectId=argon.project_id,
                                   branchId=branch_id))
    assert computes and all(c["branch_id"] == branch_id for c in computes), computes
    assert computes[0]["type"] == "read_write"


def test_reset_from_parent_then_delete_branch(mcp: McpSession, argon: Argon) -> None:
    branch_id = next(b["id"] for b in argon.branches().values() if b["name"] == "mcp-dev")
    mcp.call("run_sql", projectId=argon.project_id, branchId=branch_id,
             sql="CREATE TABLE only_on_dev (x int)")
    text = mcp.call("reset_from_parent", projectId=argon.project_id, branchIdOrName="mcp-dev")
    assert "Branch reset from parent successfully." in text
    assert argon.query("SELECT to_regclass('only_on_dev') IS NULL, count(*) FROM mcp_items",
                       branch_id) == [(True, 500)]

    assert "Branch deleted successfully." in mcp.call(
        "delete_branch", projectId=argon.project_id, branchId=branch_id)
    assert branch_id not in argon.branches()


def test_database_migration_lands_on_main_and_drops_its_branch(mcp: McpSession,
                                                               argon: Argon) -> None:
    before = set(argon.branches())
    text = mcp.call("prepare_database_migration", projectId=argon.project_id,
                    migrationSql="ALTER TABLE mcp_items ADD COLUMN price numeric DEFAULT 0")
    migration = re.search(r"<migration_id>([^<]+)</migration_id>", text)
    temp = re.search(r"<temporary_branch>\s*<name>[^<]*</name>\s*<id>([^<]+)</id>", text)
    assert migration and temp, text
    temp_id = temp.group(1)
    assert set(argon.branches()) - before == {temp_id}
    has_price = ("SELECT count(*) FROM information_schema.columns "
                 "WHERE table_name = 'mcp_items' AND column_name = 'price'")
    assert argon.query(has_price, temp_id) == [(1,)]
    assert argon.query(has_price) == [(0,)]          # main untouched until completed

    done = mcp.call("complete_database_migration", migrationId=migration.group(1))
    assert _json_after(done, "Result: ")["deletedBranch"]["id"] == temp_id
    assert argon.query(has_price) == [(1,)]
    assert set(argon.branches()) == before


def test_query_tuning_applies_the_index_and_drops_its_branch(mcp: McpSession,
                                                             argon: Argon) -> None:
    before = set(argon.branches())
    prepared = json.loads(mcp.call(
        "prepare_query_tuning", projectId=argon.project_id, databaseName="neondb",
        sql="SELECT * FROM mcp_items WHERE name = 'item 9'"))
    temp_id = prepared["temporaryBranch"]["id"]
    assert set(argon.branches()) - before == {temp_id}
    assert [t["tableName"] for t in prepared["tableSchemas"]] == ["public.mcp_items"]

    mcp.call("complete_query_tuning", projectId=argon.project_id, databaseName="neondb",
             tuningId=prepared["tuningId"], temporaryBranchId=temp_id, applyChanges=True,
             suggestedSqlStatements=["CREATE INDEX mcp_items_name ON mcp_items (name)"])
    assert argon.query("SELECT to_regclass('mcp_items_name') IS NOT NULL") == [(True,)]
    assert set(argon.branches()) == before

"""Argon's own MCP server, driven by the official MCP Python SDK client: over stdio through
``argon mcp`` and over streamable HTTP against ``/mcp`` of a running Argon.

The tool list must equal the recorded contract of Neon's server
(``contracts/neon_mcp_tools.json``: names, argument names, types, required); each tool's
effect is checked in Argon itself (branches, columns, rows, ``current_user``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.fixtures.argon_env import ArgonEnv, running_env

pytestmark = pytest.mark.timeout(900)

CONTRACT = json.loads((Path(__file__).parent / "contracts" / "neon_mcp_tools.json").read_text())


@pytest.fixture(scope="module")
def env() -> Iterator[ArgonEnv]:
    with running_env("mcp") as e:
        yield e


def mcp_http_url(env: ArgonEnv) -> str:
    return f"http://127.0.0.1:{env.api_port}/mcp"


@asynccontextmanager
async def http_session(env: ArgonEnv, key: str | None = None,
                       read_only: bool = False) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key or env.api_key}"}
    if read_only:
        headers["x-read-only"] = "true"
    async with httpx2.AsyncClient(headers=headers, timeout=600) as http:
        async with streamable_http_client(mcp_http_url(env), http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def stdio_session(env: ArgonEnv, *extra: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "argon.cli.main", "mcp", "--home", str(env.home),
                                      *extra],
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "PATH": os.environ["PATH"]},
        cwd=str(Path(__file__).parents[2]))
    async with stdio_client(params) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            yield session


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(fn)


async def call(session: ClientSession, tool: str, **params: Any) -> str:
    res = await session.call_tool(tool, {"params": params}, read_timeout_seconds=600)
    text = "\n".join(c.text for c in res.content if hasattr(c, "text"))
    assert not res.is_error, f"{tool} failed: {text}"
    return text


async def call_error(session: ClientSession, tool: str, arguments: dict[str, Any]) -> str:
    res = await session.call_tool(tool, arguments, read_timeout_seconds=600)
    text = "\n".join(c.text for c in res.content if hasattr(c, "text"))
    assert res.is_error, f"{tool} should have failed: {text}"
    return text


def _signature(tools: list[Any]) -> dict[str, Any]:
    out = {}
    for t in tools:
        params = t.input_schema["properties"]["params"]
        out[t.name] = {"required": sorted(params.get("required", [])),
                       "arguments": {k: v["type"] for k, v in params["properties"].items()}}
        assert t.input_schema["required"] == ["params"], t.name
    return out


def _contract(read_only: bool = False) -> dict[str, Any]:
    return {t["name"]: {"required": sorted(k for k, a in t["arguments"].items() if a["required"]),
                        "arguments": {k: a["type"] for k, a in t["arguments"].items()}}
            for t in CONTRACT["tools"] if t["read_only_safe"] or not read_only}


def sql(env: ArgonEnv, project_id: str, branch_id: str, query: str) -> list[Any]:
    uri = env.api("GET", f"/projects/{project_id}/connection_uri", params={
        "branch_id": branch_id, "database_name": "neondb", "role_name": "neondb_owner"}
    ).json()["uri"]
    with env.connect(uri) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def branch_names(env: ArgonEnv, project_id: str) -> set[str]:
    branches = env.api("GET", f"/projects/{project_id}/branches").json()["branches"]
    return {b["name"] for b in branches}


# -- the contract -------------------------------------------------------------------------

def test_tool_list_over_http_and_stdio_equals_neons_contract(env: ArgonEnv) -> None:
    async def main() -> tuple[Any, Any]:
        async with http_session(env) as s:
            over_http = _signature((await s.list_tools()).tools)
        async with stdio_session(env) as s:
            over_stdio = _signature((await s.list_tools()).tools)
        return over_http, over_stdio

    over_http, over_stdio = run(main)
    assert over_http == _contract()
    assert over_stdio == _contract()
    assert len(over_http) == 26


def test_the_older_sse_transport_serves_the_same_tools(env: ArgonEnv) -> None:
    project = env.default_project()["id"]

    async def main() -> tuple[Any, str]:
        url = f"http://127.0.0.1:{env.api_port}/sse"
        async with sse_client(url, headers={"Authorization": f"Bearer {env.api_key}"}) as st:
            async with ClientSession(st[0], st[1]) as s:
                await s.initialize()
                tools = _signature((await s.list_tools()).tools)
                return tools, await call(s, "run_sql", projectId=project,
                                         sql="SELECT current_user AS who")

    tools, rows = run(main)
    assert tools == _contract()
    assert json.loads(rows) == [{"who": "neondb_owner"}]
    r = httpx.get(f"http://127.0.0.1:{env.api_port}/sse",
                  headers={"Authorization": "Bearer napi_wrong"})
    assert r.status_code == 401


def test_read_only_mode_hides_and_refuses_mutating_tools(env: ArgonEnv) -> None:
    project = env.default_project()["id"]

    async def main() -> None:
        async with http_session(env, read_only=True) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert set(_contract(read_only=True)) == names
            assert "create_branch" not in names and "run_sql" in names
            text = await call_error(s, "create_branch", {"params": {"projectId": project,
                                                                    "branchName": "ro"}})
            assert "read-only" in text
            text = await call_error(s, "run_sql", {"params": {
                "projectId": project, "sql": "CREATE TABLE ro_t (x int)"}})
            assert "read-only transaction" in text
        async with stdio_session(env, "--read-only") as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert "delete_project" not in names and "list_projects" in names

    run(main)
    assert "ro" not in branch_names(env, project)
    listed = httpx.post(mcp_http_url(env) + "?readonly=true", json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers={
        "Authorization": f"Bearer {env.api_key}", "x-read-only": "false",
        "Accept": "application/json, text/event-stream"}).json()["result"]["tools"]
    assert {t["name"] for t in listed} == set(_contract(read_only=True))   # the query wins
    assert sql(env, project, _default_branch(env, project),
               "SELECT to_regclass('ro_t')") == [(None,)]


def _default_branch(env: ArgonEnv, project_id: str) -> str:
    branches = env.api("GET", f"/projects/{project_id}/branches").json()["branches"]
    return next(b["id"] for b in branches if b["default"])


def test_a_wrong_api_key_is_refused_on_mcp(env: ArgonEnv) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer napi_wrong"}):
        r = httpx.post(mcp_http_url(env), json=body, headers={
            **headers, "Accept": "application/json, text/event-stream"})
        assert r.status_code == 401, r.text
        assert "API key" in r.json()["message"]

    async def main() -> None:
        async with stdio_session(env, "--api-key", "napi_wrong") as s:
            await s.list_tools()

    with pytest.raises(Exception) as info:
        run(main)
    assert "Argon refused the API key" in _messages(info.value)


def _messages(exc: BaseException) -> str:
    """Every message in an exception (group), as the SDK nests them in task groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(_messages(e) for e in exc.exceptions)
    return str(exc)


# -- tools and their effects --------------------------------------------------------------

def test_sql_runs_as_the_owner_role_not_cloud_admin(env: ArgonEnv) -> None:
    project = env.default_project()["id"]

    async def main() -> tuple[str, str]:
        async with http_session(env) as s:
            a = await call(s, "run_sql", projectId=project,
                           sql="SELECT current_user AS who, 1 + 1 AS two")
        async with stdio_session(env) as s:
            b = await call(s, "run_sql_transaction", projectId=project, sqlStatements=[
                "CREATE TABLE mcp_tx (id int)", "INSERT INTO mcp_tx VALUES (1), (2)",
                "SELECT count(*)::int AS n, current_user AS who FROM mcp_tx"])
        return a, b

    a, b = run(main)
    assert json.loads(a) == [{"who": "neondb_owner", "two": 2}]
    assert json.loads(b)[-1] == [{"n": 2, "who": "neondb_owner"}]
    branch = _default_branch(env, project)
    assert sql(env, project, branch, "SELECT tableowner FROM pg_tables "
               "WHERE tablename = 'mcp_tx'") == [("neondb_owner",)]


def test_big_results_are_cut_with_a_message(env: ArgonEnv) -> None:
    project = env.default_project()["id"]

    async def main() -> str:
        async with http_session(env) as s:
            return await call(s, "run_sql", projectId=project,
                              sql="SELECT g FROM generate_series(1, 100000) g")

    text = run(main)
    rows_text, _, note = text.rpartition("\n")
    assert len(json.loads(rows_text)) == 500
    assert note.startswith("Result cut: showing 500 of 100000 rows"), note
    assert "LIMIT" in note


def test_safe_migration_flow_end_to_end(env: ArgonEnv) -> None:
    project = env.default_project()["id"]
    main_branch = _default_branch(env, project)
    sql(env, project, main_branch, "CREATE TABLE IF NOT EXISTS mig_t (id int)")

    async def prepare() -> str:
        async with http_session(env) as s:
            return await call(s, "prepare_database_migration", projectId=project,
                              migrationSql="ALTER TABLE mig_t ADD COLUMN note text")

    text = run(prepare)
    migration_id = text.split("<migration_id>")[1].split("</migration_id>")[0]
    temp_id = text.split("<id>")[1].split("</id>")[0]
    assert "+" in text.split("<schema_diff>")[1] and "note" in text.split("<schema_diff>")[1]
    cols = "SELECT column_name FROM information_schema.columns WHERE table_name = 'mig_t'"
    assert sql(env, project, temp_id, cols) == [("id",), ("note",)]
    assert sql(env, project, main_branch, cols) == [("id",)]     # main not changed yet

    async def complete() -> str:   # over stdio: the migration is kept by the Argon process
        async with stdio_session(env) as s:
            return await call(s, "complete_database_migration", migrationId=migration_id)

    done = run(complete)
    assert temp_id in done
    assert sorted(sql(env, project, main_branch, cols)) == [("id",), ("note",)]
    assert temp_id not in {b["id"] for b in env.api(
        "GET", f"/projects/{project}/branches").json()["branches"]}


def test_a_failing_migration_leaves_main_unchanged_and_no_branch(env: ArgonEnv) -> None:
    project = env.default_project()["id"]
    before = branch_names(env, project)

    async def main() -> str:
        async with http_session(env) as s:
            return await call_error(s, "prepare_database_migration", {"params": {
                "projectId": project,
                "migrationSql": "CREATE TABLE half_made (id int); ALTER TABLE nope ADD x int"}})

    text = run(main)
    assert "nope" in text and "unchanged" in text
    assert branch_names(env, project) == before
    assert sql(env, project, _default_branch(env, project),
               "SELECT to_regclass('half_made')") == [(None,)]


def test_a_migration_failing_on_main_changes_nothing_there_and_can_be_retried(
        env: ArgonEnv) -> None:
    project = env.default_project()["id"]
    main_branch = _default_branch(env, project)

    async def prepare() -> str:
        async with http_session(env) as s:
            return await call(s, "prepare_database_migration", projectId=project,
                              migrationSql="CREATE TABLE clash1 (id int); "
                                           "CREATE TABLE clash2 (id int)")

    text = run(prepare)
    migration_id = text.split("<migration_id>")[1].split("</migration_id>")[0]
    temp_id = text.split("<id>")[1].split("</id>")[0]
    sql(env, project, main_branch, "CREATE TABLE clash2 (other text)")   # main moved on

    async def complete() -> tuple[str, str]:
        async with http_session(env) as s:
            failed = await call_error(s, "complete_database_migration",
                                      {"params": {"migrationId": migration_id}})
            # one transaction: the first statement was rolled back with the second
            assert sql(env, project, main_branch,
                       "SELECT to_regclass('clash1')") == [(None,)]
            sql(env, project, main_branch, "DROP TABLE clash2")
            return failed, await call(s, "complete_database_migration",
                                      migrationId=migration_id)

    failed, done = run(complete)
    assert "clash2" in failed and "nothing changed" in failed
    assert temp_id in done
    assert sql(env, project, main_branch, "SELECT to_regclass('clash1') IS NOT NULL, "
               "to_regclass('clash2') IS NOT NULL") == [(True, True)]
    assert temp_id not in {b["id"] for b in env.api(
        "GET", f"/projects/{project}/branches").json()["branches"]}


def test_bad_arguments_give_a_clear_error_and_nothing_half_made(env: ArgonEnv) -> None:
    project = env.default_project()["id"]
    before = branch_names(env, project)

    async def main() -> list[str]:
        async with http_session(env) as s:
            return [
                await call_error(s, "create_branch", {"params": {"branchName": "x"}}),
                await call_error(s, "create_branch", {"params": {"projectId": project,
                                                                 "branchName": 5}}),
                await call_error(s, "create_branch", {"projectId": project}),
                await call_error(s, "create_branch", {"params": {"projectId": "nosuch-123"}}),
                await call_error(s, "run_sql", {"params": {"projectId": project,
                                                           "sql": "SELEC 1"}}),
                await call_error(s, "provision_neon_auth", {"params": {"projectId": project}}),
            ]

    texts = run(main)
    assert "'projectId' is required" in texts[0]
    assert "'branchName' must be a string" in texts[1]
    assert "under 'params'" in texts[2]
    assert "not found" in texts[3]
    assert "syntax error" in texts[4] and "42601" in texts[4]
    assert "not available in Argon" in texts[5]
    assert branch_names(env, project) == before


def test_projects_branches_and_the_other_tools(env: ArgonEnv) -> None:
    async def main() -> None:
        async with http_session(env) as s:
            created = await call(s, "create_project", name="mcp-made")
            project = created.split('project_id is "')[1].split('"')[0]
            assert "postgresql://" in created
            listed = json.loads(await call(s, "list_projects", search="mcp-made"))
            assert [p["id"] for p in listed["projects"]] == [project]
            assert json.loads(await call(s, "list_shared_projects")) == {
                "shared_projects": [], "count": 0}
            assert json.loads(await call(s, "list_organizations"))[0]["id"]
            assert "This project is called mcp-made." in await call(
                s, "describe_project", projectId=project)
            await call(s, "run_sql", projectId=project, sql="CREATE TABLE t0 (v text)")
            made = await call(s, "create_branch", projectId=project, branchName="dev")
            branch = made.split("Branch ID: ")[1].split("\n")[0]
            assert "dev" in branch_names(env, project)
            await call(s, "run_sql", projectId=project, branchId=branch,
                       sql="CREATE TABLE t1 (id int PRIMARY KEY, v text)")
            tables = json.loads(await call(s, "get_database_tables", projectId=project,
                                           branchId=branch))
            assert {"table_schema": "public", "table_name": "t1",
                    "table_type": "table"} in tables
            desc = json.loads(await call(s, "describe_table_schema", projectId=project,
                                         branchId=branch, tableName="t1"))
            assert [c["name"] for c in desc["columns"]] == ["id", "v"]
            diff = json.loads(await call(s, "compare_database_schema", projectId=project,
                                         branchId=branch, databaseName="neondb"))["diff"]
            assert "CREATE TABLE public.t1" in diff
            plan = json.loads(await call(s, "explain_sql_statement", projectId=project,
                                         branchId=branch, sql="SELECT * FROM t1"))
            assert plan[0]["QUERY PLAN"][0]["Plan"]["Relation Name"] == "t1"
            computes = json.loads(await call(s, "list_branch_computes", projectId=project,
                                             branchId=branch))
            assert computes[0]["compute_type"] == "read_write"
            cs = await call(s, "get_connection_string", projectId=project, branchId=branch)
            uri = cs.split("URI: ")[1].split("\n")[0]
            with env.connect(uri) as conn:
                assert conn.execute("SELECT count(*) FROM t1").fetchone() == (0,)
            found = json.loads(await call(s, "search", query="mcp-made"))
            assert {"id": f"project:{project}", "type": "project"}.items() <= found[0].items()
            assert "mcp-made" in await call(s, "fetch", id=f"project:{project}")
            text = await call_error(s, "list_slow_queries", {"params": {"projectId": project,
                                                                        "branchId": branch}})
            assert "CREATE EXTENSION pg_stat_statements" in text
            await call(s, "run_sql", projectId=project, branchId=branch,
                       sql="CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await call(s, "run_sql", projectId=project, branchId=branch,
                       sql="SELECT count(*) FROM generate_series(1, 200000)")
            slow = json.loads(await call(s, "list_slow_queries", projectId=project,
                                         branchId=branch))
            assert slow["total_queries_found"] >= 1
            assert any("generate_series" in q["query"] for q in slow["slow_queries"])
            tuning = json.loads(await call(s, "prepare_query_tuning", projectId=project,
                                           databaseName="neondb",
                                           sql="SELECT * FROM t0 WHERE v = 'a'"))
            assert tuning["tableSchemas"][0]["name"] == "t0"
            await call(s, "complete_query_tuning", projectId=project, databaseName="neondb",
                       tuningId=tuning["tuningId"], applyChanges=False,
                       temporaryBranchId=tuning["temporaryBranch"]["id"],
                       suggestedSqlStatements=["CREATE INDEX t0_v ON t0 (v)"])
            assert tuning["temporaryBranch"]["name"] not in branch_names(env, project)
            reset = await call(s, "reset_from_parent", projectId=project,
                               branchIdOrName="dev")
            assert "Reset to parent branch" in reset
            assert "Branch deleted successfully." in await call(
                s, "delete_branch", projectId=project, branchId=branch)
            assert "dev" not in branch_names(env, project)
            await call(s, "delete_project", projectId=project)
        assert env.api("GET", f"/projects/{project}").status_code == 404

    run(main)

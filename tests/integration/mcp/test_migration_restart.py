"""Safe migrations survive Argon: a migration prepared over MCP completes after a restart;
after a kill -9 an expired one still has its temporary branch deleted; and a temporary
branch whose migration was never recorded (a crash inside prepare) is removed by the
start-up repair.  Real Argon processes, real Postgres, the MCP SDK's client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextvars import copy_context
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
import sqlalchemy as sa

from argon.control import key_scope
from argon.control.organization import ORG_ID
from argon.control.requests import ProjectCreate
from argon.control.safe_migrations import SafeMigrations
from argon.control.services import build_services
from argon.errors import NotFound
from argon.settings import Settings
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env
from tests.fixtures.mcp_client import call_tool, mcp_session

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def env() -> Iterator[ArgonEnv]:
    e = make_env("migrestart")
    e.start()
    try:
        yield e
    finally:
        e.stop()
        kill_leftover_postgres(e.home)


def _tool(env: ArgonEnv, tool: str, **params: Any) -> tuple[bool, str]:
    async def go() -> tuple[bool, str]:
        async with mcp_session(env) as s:
            return await call_tool(s, tool, **params)
    return anyio.run(go)  # type: ignore[no-any-return]


def _prepare(env: ArgonEnv, project: str, sql: str) -> tuple[str, str]:
    err, text = _tool(env, "prepare_database_migration", projectId=project, migrationSql=sql)
    assert not err, text
    mid = re.search(r"<migration_id>(\w+)</migration_id>", text)
    bid = re.search(r"<id>(br-[\w-]+)</id>", text)
    assert mid and bid, text
    return mid.group(1), bid.group(1)


def _branch_ids(env: ArgonEnv, project: str) -> set[str]:
    return {b["id"] for b in env.api("GET", f"/projects/{project}/branches").json()["branches"]}


def _has_column(env: ArgonEnv, project: str, table: str, column: str) -> bool:
    uri = env.api("GET", f"/projects/{project}/connection_uri",
                  params={"database_name": "neondb", "role_name": "neondb_owner"}).json()["uri"]
    with psycopg.connect(uri, autocommit=True, connect_timeout=60) as conn:
        row = conn.execute("SELECT count(*) FROM information_schema.columns WHERE "
                           "table_name = %s AND column_name = %s", (table, column)).fetchone()
    return bool(row and row[0])


def _meta(env: ArgonEnv, sql: str, **params: Any) -> None:
    """Edit the metadata while Argon is down (what a crash or the passing of time leaves)."""
    engine = sa.create_engine(f"sqlite:///{env.home / 'argon.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def _default_project(env: ArgonEnv) -> str:
    return str(env.default_project()["id"])


def test_a_prepared_migration_completes_after_a_restart(env: ArgonEnv) -> None:
    project = _default_project(env)
    mid, temp = _prepare(env, project, "CREATE TABLE survives (id int, note text)")
    assert temp in _branch_ids(env, project)
    env.stop()
    env.start()
    err, text = _tool(env, "complete_database_migration", migrationId=mid)
    assert not err, text
    assert _has_column(env, project, "survives", "note")
    assert temp not in _branch_ids(env, project)
    # completed once: a second completion is refused and nothing is applied twice
    err, text = _tool(env, "complete_database_migration", migrationId=mid)
    assert err and "not found" in text, text


def test_after_kill9_an_expired_migration_still_loses_its_branch(env: ArgonEnv) -> None:
    project = _default_project(env)
    mid, temp = _prepare(env, project, "CREATE TABLE never_applied (id int)")
    env.kill9()
    # a day and more passes while Argon is down
    old = (datetime.now(UTC) - timedelta(hours=25)).isoformat(timespec="microseconds")
    _meta(env, "UPDATE safe_migrations SET created_at = :t WHERE id = :m", t=old, m=mid)
    env.start()
    assert temp in _branch_ids(env, project)   # a recorded migration is not repair's business
    err, text = _tool(env, "complete_database_migration", migrationId=mid)
    assert err and "expired" in text, text
    assert temp not in _branch_ids(env, project)
    assert not _has_column(env, project, "never_applied", "id")


def test_repair_removes_a_temporary_branch_without_its_migration(env: ArgonEnv) -> None:
    project = _default_project(env)
    mid, temp = _prepare(env, project, "CREATE TABLE half_done (id int)")
    keep = env.api("POST", f"/projects/{project}/branches",
                   json={"branch": {"name": "migration_but_mine"}}).json()["branch"]["id"]
    env.kill9()
    # the state a crash between making the branch and recording the migration leaves
    _meta(env, "DELETE FROM safe_migrations WHERE id = :m", m=mid)
    env.start()
    branches = _branch_ids(env, project)
    assert temp not in branches
    assert keep in branches   # a user's branch is never taken for a temporary one
    assert "removed temporary migration branch" in env.output()
    assert not _has_column(env, project, "half_done", "id")


def test_expiry_triggered_by_a_project_scoped_key_cleans_every_project(
        argon_tmp: Path) -> None:
    """Expiry is housekeeping: a scoped key's prepare must not leave another project's
    expired temporary branch behind (in process, with a clock moved two hours on)."""
    services = build_services(Settings(home=argon_tmp / "home"))
    try:
        a = services.projects.create(ProjectCreate(name="a")).project.id
        b = services.projects.create(ProjectCreate(name="b")).project.id
        store = SafeMigrations(services, ttl=timedelta(hours=1))
        old = store.prepare(b, "CREATE TABLE t_b (id int)").migration
        key, _ = services.api_keys.create("only-a", org_id=ORG_ID, project_id=a)
        real = services.ctx.clock
        services.ctx.clock = lambda: real() + timedelta(hours=2)

        def as_scoped_key() -> None:
            key_scope.bind(key)
            store.prepare(a, "CREATE TABLE t_a (id int)")   # runs expiry first

        try:
            copy_context().run(as_scoped_key)
        finally:
            services.ctx.clock = real
        with pytest.raises(NotFound):
            services.branches.get(b, old.temp_branch_id)
    finally:
        services.stop_all_computes()

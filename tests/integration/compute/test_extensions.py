"""Issue 9 item 6 through a real Argon: the owner role of a fresh project (a member of
neon_superuser, not a superuser) creates the extensions Argon ships, creates event
triggers that fire, and runs the EXPLAIN that Neon's MCP server sends; pg_stat_statements
is preloaded.  Connections go through the proxy with the connection string the API gives.

Needs Argon's preload library: skipped, with the reason, for a Postgres install that
``scripts/build-pgext.sh`` has not built it for.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from argon.compute import pgext
from argon.pg.binaries import discover_installs
from tests.fixtures.argon_env import ArgonEnv, wait_operations

pytestmark = pytest.mark.timeout(600)


def _version_or_skip(version: int) -> int:
    install = next((i for i in discover_installs() if i.version == version), None)
    if install is None:
        pytest.skip(f"PostgreSQL {version} is not installed here")
    if not (install.pkglibdir / f"{pgext.LIBRARY}.so").is_file():
        pytest.skip(f"argon.so is not built for PostgreSQL {version} "
                    f"({install.pkglibdir}): run scripts/build-pgext.sh")
    return version


@pytest.fixture(scope="module", params=[18, 15], ids=lambda v: f"pg{v}")
def owner_uri(request: pytest.FixtureRequest, argon_env: ArgonEnv) -> Iterator[str]:
    """The owner's connection string of a fresh project on the given major version."""
    version = _version_or_skip(request.param)
    r = argon_env.api("POST", "/projects", json={"project": {
        "name": f"ext-{uuid.uuid4().hex[:6]}", "pg_version": version}})
    assert r.status_code == 201, r.text
    body = r.json()
    wait_operations(argon_env.api, body["project"]["id"], body["operations"])
    try:
        yield body["connection_uris"][0]["connection_uri"]
    finally:
        argon_env.api("DELETE", f"/projects/{body['project']['id']}")


@pytest.fixture
def owner(owner_uri: str, argon_env: ArgonEnv) -> Iterator[psycopg.Connection]:
    with argon_env.connect(owner_uri) as conn:
        yield conn


def _version(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def test_pg_stat_statements_is_preloaded(owner: psycopg.Connection) -> None:
    row = owner.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    assert row is not None and "pg_stat_statements" in row[0].split(",")


def test_owner_creates_every_shipped_extension(owner: psycopg.Connection) -> None:
    available = {r[0] for r in owner.execute("SELECT name FROM pg_available_extensions")}
    shipped = sorted(available & set(pgext.ALLOWED_EXTENSIONS) - {"plpgsql"})
    assert {"pg_stat_statements", "pg_prewarm", "hstore", "pg_buffercache"} <= set(shipped)
    if _version(owner) >= 18:
        assert "vector" in shipped  # the embedded wheel ships pgvector
    for name in shipped:
        owner.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}" CASCADE')
    owners = dict(owner.execute(
        "SELECT extname, extowner::regrole::text FROM pg_extension").fetchall())
    user = owner.info.user
    assert {n: owners.get(n) for n in shipped} == {n: user for n in shipped}
    # the owner may drop what it made (and make it again)
    owner.execute("DROP EXTENSION pg_prewarm")
    owner.execute("CREATE EXTENSION pg_prewarm")
    assert owner.execute("SELECT pg_prewarm('pg_class') >= 0").fetchone() == (True,)


def test_owner_is_still_not_a_superuser(owner: psycopg.Connection) -> None:
    owner.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    row = owner.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        owner.execute("COPY (SELECT 1) TO PROGRAM 'true'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        owner.execute(f'ALTER ROLE "{owner.info.user}" SUPERUSER')


def test_extension_off_the_list_is_refused(owner: psycopg.Connection) -> None:
    available = {r[0] for r in owner.execute("SELECT name FROM pg_available_extensions")}
    name = next(n for n in ("file_fdw", "adminpack", "pg_walinspect") if n in available)
    with pytest.raises(psycopg.errors.InsufficientPrivilege,
                       match=f'permission denied to create extension "{name}"'):
        owner.execute(f"CREATE EXTENSION {name}")
    assert owner.execute("SELECT count(*) FROM pg_extension WHERE extname = %s",
                         (name,)).fetchone() == (0,)


def test_extension_in_a_schema_the_owner_may_not_use_is_refused(
        owner: psycopg.Connection) -> None:
    owner.execute("DROP EXTENSION IF EXISTS citext")
    with pytest.raises(psycopg.errors.InsufficientPrivilege,
                       match="permission denied for schema pg_catalog"):
        owner.execute("CREATE EXTENSION citext SCHEMA pg_catalog")


def test_explain_with_neons_options_returns_a_json_plan(owner: psycopg.Connection) -> None:
    row = owner.execute(
        "EXPLAIN (ANALYZE, VERBOSE, BUFFERS, FILECACHE, FORMAT JSON) SELECT 1").fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    assert plan[0]["Plan"]["Node Type"] == "Result" and "Execution Time" in plan[0]
    with pytest.raises(psycopg.errors.SyntaxError, match="filecache requires a Boolean value"):
        owner.execute("EXPLAIN (FILECACHE 'maybe') SELECT 1")


def test_pg_stat_statements_lists_a_query(owner: psycopg.Connection) -> None:
    owner.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    table = f"pgss_probe_{uuid.uuid4().hex[:8]}"
    owner.execute(f"CREATE TABLE {table} (i int)")
    owner.execute(f"SELECT count(*) FROM {table}")
    rows = owner.execute("SELECT query, calls FROM pg_stat_statements "
                         "WHERE query LIKE %s", (f"SELECT count(*) FROM {table}%",)).fetchall()
    assert rows and rows[0][1] >= 1
    owner.execute("SELECT pg_stat_statements_reset()")  # Neon lets neon_superuser reset


def test_event_trigger_fires_for_the_owner(owner: psycopg.Connection) -> None:
    suffix = uuid.uuid4().hex[:6]
    owner.execute(f"CREATE TABLE ddl_log_{suffix} (tag text, who text)")
    owner.execute(f"""CREATE FUNCTION log_ddl_{suffix}() RETURNS event_trigger
        LANGUAGE plpgsql AS $$ BEGIN
        INSERT INTO ddl_log_{suffix} VALUES (tg_tag, current_user); END $$""")
    owner.execute(f"CREATE EVENT TRIGGER audit_{suffix} ON ddl_command_end "
                  f"EXECUTE FUNCTION log_ddl_{suffix}()")
    try:
        owner.execute(f"CREATE TABLE audited_{suffix} (i int)")
        rows = owner.execute(f"SELECT tag, who FROM ddl_log_{suffix}").fetchall()
        assert rows == [("CREATE TABLE", owner.info.user)]
        evtowner = owner.execute("SELECT evtowner::regrole::text FROM pg_event_trigger "
                                 "WHERE evtname = %s", (f"audit_{suffix}",)).fetchone()
        assert evtowner == (owner.info.user,)
        owner.execute(f"ALTER EVENT TRIGGER audit_{suffix} DISABLE")
        owner.execute(f"ALTER EVENT TRIGGER audit_{suffix} ENABLE")
    finally:
        owner.execute(f"DROP EVENT TRIGGER audit_{suffix}")


def test_owners_event_trigger_never_runs_as_superuser(owner: psycopg.Connection) -> None:
    """The elevated CREATE EXTENSION runs as the superuser: the owner's trigger, which
    would make the owner a superuser, must be skipped there (Neon's rule)."""
    suffix = uuid.uuid4().hex[:6]
    user = owner.info.user
    owner.execute("DROP EXTENSION IF EXISTS ltree")
    owner.execute(f"""CREATE FUNCTION escalate_{suffix}() RETURNS event_trigger
        LANGUAGE plpgsql AS $$ BEGIN
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            ALTER ROLE "{user}" SUPERUSER;
        END IF; END $$""")
    owner.execute(f"CREATE EVENT TRIGGER escalate_{suffix} ON ddl_command_start "
                  f"EXECUTE FUNCTION escalate_{suffix}()")
    try:
        owner.execute("CREATE EXTENSION ltree")
    finally:
        owner.execute(f"DROP EVENT TRIGGER escalate_{suffix}")
    row = owner.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False,)



def test_owner_can_use_the_foreign_data_wrappers(owner: psycopg.Connection) -> None:
    """Neon lets neon_superuser CREATE SERVER on postgres_fdw (USAGE on the wrapper)."""
    owner.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
    name = f"srv_{uuid.uuid4().hex[:6]}"
    owner.execute(f"CREATE SERVER {name} FOREIGN DATA WRAPPER postgres_fdw "
                  "OPTIONS (host '127.0.0.1', dbname 'neondb')")
    owner.execute(f"DROP SERVER {name}")

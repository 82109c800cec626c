"""Issue 9 items 4 and 7 through a real Argon: startup parameters and ``options`` handled
as Neon's proxy and pooler handle them.

- Pooled (``-pooler``) connections: Neon's proxy sends on only user, database,
  application_name, replication and options; its PgBouncer keeps the settings it tracks per
  client (TimeZone, DateStyle, IntervalStyle, application_name, client_encoding) and
  refuses any other ``-c`` setting in options with "unsupported startup parameter in
  options: <name>", which Neon's proxy completes with advice.  Top-level parameters such
  as lock_timeout are dropped, never refused.
- Direct connections: custom ``-c`` settings reach Postgres.
- ``project=`` is Neon's older spelling of ``endpoint=``, in options and in the password.
- A legacy host (no endpoint in SNI, port or options): the client is told the endpoint is
  missing and how to pass it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.proxy.pooled_project import PooledProject, create_pooled_project

pytestmark = pytest.mark.timeout(600)

NEON_ADVICE = ("Please use unpooled connection or remove this parameter from the startup "
               "package. More details: https://neon.tech/docs/connect/connection-errors"
               "#unsupported-startup-parameter")


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> Iterator[PooledProject]:
    project = create_pooled_project(argon_env, "opts")
    try:
        yield project
    finally:
        argon_env.api("DELETE", f"/projects/{project.id}")


def _with_options(uri: str, options: str) -> str:
    return uri + ("&" if "?" in uri else "?") + "options=" + quote(options, safe="")


# -- pooled connections ---------------------------------------------------------------


@pytest.mark.parametrize("setting", ["search_path=myschema", "statement_timeout=5s",
                                     "my.setting=1"])
def test_pooled_refuses_unkept_settings_in_options_as_neon(project: PooledProject,
                                                           setting: str) -> None:
    name = setting.split("=")[0]
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(_with_options(project.pooled, f"-c {setting}"), connect_timeout=30)
    assert (f"unsupported startup parameter in options: {name}. {NEON_ADVICE}"
            in str(e.value))


def test_pooled_keeps_tracked_settings_from_options(project: PooledProject) -> None:
    uri = _with_options(project.pooled, "-c TimeZone=Asia/Tokyo -c application_name=optapp")
    with psycopg.connect(uri, autocommit=True, connect_timeout=30) as conn:
        for _ in range(3):   # each statement is its own transaction, maybe another server
            assert conn.execute("SHOW TimeZone").fetchone() == ("Asia/Tokyo",)
            assert conn.execute("SHOW application_name").fetchone() == ("optapp",)


def test_pooled_drops_other_startup_parameters(project: PooledProject) -> None:
    asyncpg = pytest.importorskip("asyncpg")

    async def main() -> tuple[str, str]:
        # asyncpg sends server_settings as top-level startup parameters
        conn = await asyncpg.connect(project.pooled, timeout=30, server_settings={
            "lock_timeout": "1234", "search_path": "elsewhere"})
        try:
            return (await conn.fetchval("SHOW lock_timeout"),
                    await conn.fetchval("SHOW search_path"))
        finally:
            await conn.close()

    lock_timeout, search_path = asyncio.run(main())
    assert lock_timeout == "0"                # the server default, as through Neon's proxy
    assert search_path == '"$user", public'


# -- direct connections ---------------------------------------------------------------


def test_direct_passes_custom_settings(project: PooledProject) -> None:
    uri = _with_options(project.direct, "-c my.setting=42 -c search_path=myschema")
    with psycopg.connect(uri, autocommit=True, connect_timeout=30) as conn:
        assert conn.execute("SELECT current_setting('my.setting'), "
                            "current_setting('search_path')").fetchone() == ("42", "myschema")


# -- project= and the legacy host -----------------------------------------------------


def _legacy_conninfo(env: ArgonEnv, project: PooledProject, **extra: str) -> str:
    """The shared Postgres port by IP (no SNI), which names no endpoint by itself."""
    parts = {"host": "127.0.0.1", "port": str(env.pg_port), "user": project.role,
             "dbname": project.database, "sslmode": "require", "connect_timeout": "30",
             **extra}
    return " ".join(f"{k}='{v}'" for k, v in parts.items())


def test_project_option_is_the_older_endpoint_option(argon_env: ArgonEnv,
                                                     project: PooledProject) -> None:
    dsn = _legacy_conninfo(argon_env, project, password=project.password,
                           options=f"project={project.endpoint}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (project.role,)


def test_project_in_password_is_the_older_endpoint_form(argon_env: ArgonEnv,
                                                        project: PooledProject) -> None:
    dsn = _legacy_conninfo(argon_env, project,
                           password=f"project={project.endpoint};{project.password}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (project.role,)


def test_project_id_in_options_names_what_is_wrong(argon_env: ArgonEnv,
                                                   project: PooledProject) -> None:
    # a project ID is not an endpoint ID, on Neon as here: a clear refusal naming it
    project_id = argon_env.api("GET", "/projects").json()["projects"][0]["id"]
    dsn = _legacy_conninfo(argon_env, project, password=project.password,
                           options=f"project={project_id}")
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(dsn)
    assert f'endpoint "{project_id}" does not exist' in str(e.value)


@pytest.mark.parametrize("psql_bin", ["/usr/bin/psql"])
def test_legacy_host_names_the_missing_endpoint(argon_env: ArgonEnv, project: PooledProject,
                                                psql_bin: str) -> None:
    # Without an endpoint the proxy must ask for the password (the endpoint=<id>;<password>
    # form); libpq with channel_binding=require refuses that request before the proxy
    # can say anything ("channel binding required but not supported by server's
    # authentication request"), as it would against Neon's proxy.  Without it, the
    # user is told what is missing.
    dsn = _legacy_conninfo(argon_env, project, password=project.password)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "30"}
    env.pop("PGOPTIONS", None)
    res = subprocess.run([psql_bin, dsn, "-Atc", "SELECT 1"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert res.returncode != 0
    assert "Endpoint ID is not specified" in res.stderr, res.stderr
    assert "options=endpoint%3D<endpoint-id>" in res.stderr

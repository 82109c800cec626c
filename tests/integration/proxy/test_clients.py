"""Real clients through the proxy: psql (Debian's PG 15), libpq 18 (psycopg's bundled
libpq, the one with sslnegotiation=direct; the embedded PG 18 psql has no TLS), psycopg 3,
asyncpg."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import psycopg
import pytest

from argon.pg import choose_install
from tests.fixtures.pgserver import PgServer
from tests.fixtures.proxy import DOMAIN, EndpointSpec, ProxyEnv, direct_rows

PSQL15 = "/usr/bin/psql"
QUERY = "SELECT current_user, current_database(), 6 * 7 AS answer"


def psql(binary: str, conninfo: str, sql: str, password: str = "s3cret") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGOPTIONS", None)
    return subprocess.run([binary, conninfo, "-Atc", sql], capture_output=True, text=True,
                          env=env, timeout=60)


def psql18() -> str:
    return choose_install(18).bin("psql")


@pytest.fixture
def alice(pg_server: PgServer) -> str:
    pg_server.create_role("alice", "s3cret")
    with pg_server.connect() as conn:
        conn.execute("CREATE DATABASE appdb OWNER alice")
    return "alice"


def _base(env: ProxyEnv, host: str = "127.0.0.1") -> str:
    return f"host={host} port={env.port} user=alice dbname=appdb"


def _sni(env: ProxyEnv, endpoint: str = "ep-one") -> str:
    return f"host={endpoint}.{DOMAIN} hostaddr=127.0.0.1 port={env.port} user=alice dbname=appdb"


FORMS = ["disable-options", "require-options", "require-sni", "verify-full-sni",
         "channel-binding-sni", "password-form", "channel-binding-options"]


def _form(env: ProxyEnv, form: str) -> tuple[str, str]:
    ca = env.tls.ca_file if env.tls else None
    conninfo = {
        "disable-options": _base(env) + " sslmode=disable options=endpoint=ep-one",
        "require-options": _base(env) + " sslmode=require options=endpoint=ep-one",
        "require-sni": _sni(env) + " sslmode=require",
        "verify-full-sni": _sni(env) + f" sslmode=verify-full sslrootcert={ca}",
        "channel-binding-sni": _sni(env) + f" sslmode=verify-full sslrootcert={ca}"
                               " channel_binding=require",
        "channel-binding-options": _base(env, "localhost") + " sslmode=require"
                                   " channel_binding=require options=endpoint=ep-one",
        "password-form": _base(env) + " sslmode=require",
        "direct-tls": _sni(env) + f" sslmode=verify-full sslrootcert={ca} "
                      "sslnegotiation=direct channel_binding=require",
    }[form]
    return conninfo, "endpoint=ep-one;s3cret" if form == "password-form" else "s3cret"


@pytest.mark.parametrize("form", FORMS)
def test_psql15_forms(proxy_env: ProxyEnv, alice: str, pg_server: PgServer,
                      form: str) -> None:
    if not Path(PSQL15).exists():
        pytest.skip("Debian's psql 15 is not installed")
    conninfo, password = _form(proxy_env, form)
    out = psql(PSQL15, conninfo, QUERY, password)
    assert out.returncode == 0, out.stderr
    expected = "|".join(str(v) for v in direct_rows(pg_server, "SELECT 'alice', 'appdb', 42")[0])
    assert out.stdout.strip() == expected


def test_psql18_plaintext_options(proxy_env: ProxyEnv, alice: str) -> None:
    out = psql(PSQL15, _base(proxy_env) + " sslmode=disable options=endpoint=ep-one", QUERY)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "alice|appdb|42"


@pytest.mark.parametrize("form", [*FORMS, "direct-tls"])
def test_libpq18_forms(proxy_env: ProxyEnv, alice: str, form: str) -> None:
    conninfo, password = _form(proxy_env, form)
    with psycopg.connect(conninfo, password=password) as conn:
        assert conn.execute(QUERY).fetchone() == ("alice", "appdb", 42)
        assert conn.pgconn.ssl_in_use == (form != "disable-options")


def test_psql_wrong_password_gets_postgres_error(proxy_env: ProxyEnv, alice: str) -> None:
    out = psql(PSQL15, _sni(proxy_env) + " sslmode=require", "SELECT 1", password="nope")
    assert out.returncode != 0
    assert 'password authentication failed for user "alice"' in out.stderr


def test_psql_password_form_needs_tls(proxy_env: ProxyEnv, alice: str) -> None:
    out = psql(PSQL15, _base(proxy_env) + " sslmode=disable", "SELECT 1",
               password="endpoint=ep-one;s3cret")
    assert out.returncode != 0
    assert "Endpoint ID is not specified" in out.stderr
    assert "options=endpoint%3D" in out.stderr


def test_no_endpoint_message_tells_how(proxy_env: ProxyEnv, alice: str) -> None:
    out = psql(PSQL15, _base(proxy_env) + " sslmode=require", "SELECT 1")
    assert out.returncode != 0
    assert "Endpoint ID is not specified" in out.stderr
    assert f"ep-<id>.{DOMAIN}" in out.stderr


def test_unknown_endpoint(proxy_env: ProxyEnv, alice: str) -> None:
    out = psql(PSQL15, _sni(proxy_env, "ep-nothere") + " sslmode=require", "SELECT 1")
    assert out.returncode != 0
    assert 'endpoint "ep-nothere" does not exist' in out.stderr


def test_sni_and_options_disagree(proxy_env: ProxyEnv, alice: str) -> None:
    out = psql(PSQL15, _sni(proxy_env) + " sslmode=require options=endpoint=ep-other",
               "SELECT 1")
    assert out.returncode != 0
    assert "does not match" in out.stderr


def test_role_of_another_project_cannot_connect(proxy_env: ProxyEnv, alice: str,
                                                pg_server: PgServer) -> None:
    # ep-two belongs to another project whose branch only has role "bob".
    proxy_env.backend.endpoints["ep-two"] = EndpointSpec(pg_server, roles={"bob"})
    out = psql(PSQL15, _sni(proxy_env, "ep-two") + " sslmode=require", "SELECT 1")
    assert out.returncode != 0
    assert 'password authentication failed for user "alice"' in out.stderr
    ok = psql(PSQL15, _sni(proxy_env, "ep-one") + " sslmode=require", "SELECT 1")
    assert ok.returncode == 0, ok.stderr


def test_psycopg_results_match_direct(proxy_env: ProxyEnv, alice: str,
                                      pg_server: PgServer) -> None:
    sql = ("SELECT g, g::text || 'x', now() - now(), ARRAY[g, g + 1], "
           "'{\"a\": 1}'::jsonb FROM generate_series(1, 50) g")
    with psycopg.connect(_sni(proxy_env) + " sslmode=require channel_binding=require "
                         "password=s3cret") as conn:
        through = conn.execute(sql).fetchall()
        conn.execute("CREATE TEMP TABLE t (x int)")
        with conn.transaction():
            conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        assert conn.execute("SELECT sum(x) FROM t").fetchone() == (500500,)
    with pg_server.connect(dbname="appdb") as conn:
        assert conn.execute(sql).fetchall() == through


def test_psycopg_options_pass_through(proxy_env: ProxyEnv, alice: str) -> None:
    dsn = (_base(proxy_env) + " sslmode=require password=s3cret "
           "options='endpoint=ep-one -c search_path=custom,public -c my.setting=42'")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SHOW search_path").fetchone() == ("custom,public",)
        assert conn.execute("SELECT current_setting('my.setting')").fetchone() == ("42",)


def test_plaintext_refused_when_disallowed(proxy_backend: object, pg_server: PgServer,
                                           alice: str, argon_tmp: Path) -> None:
    from argon.proxy import TlsConfig
    tls = TlsConfig.ensure(argon_tmp / "tls2", DOMAIN, allow_plaintext_loopback=False)
    env = ProxyEnv(proxy_backend, tls)  # type: ignore[arg-type]
    try:
        out = psql(PSQL15, _base(env) + " sslmode=disable options=endpoint=ep-one",
                   "SELECT 1")
        assert out.returncode != 0
        assert "requires TLS" in out.stderr
        ok = psql(PSQL15, _base(env) + " sslmode=require options=endpoint=ep-one",
                  "SELECT 1")
        assert ok.returncode == 0, ok.stderr
    finally:
        env.close()


def test_asyncpg_with_channel_binding_in_url(proxy_env: ProxyEnv, alice: str,
                                             pg_server: PgServer) -> None:
    url = (f"postgresql://alice:s3cret@127.0.0.1:{proxy_env.port}/appdb?sslmode=require"
           "&channel_binding=require&options=endpoint%3Dep-one")

    async def run() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT g, g * 2 FROM generate_series(1, 20) g")
            async with conn.transaction():
                await conn.execute("CREATE TEMP TABLE a (x int)")
                await conn.executemany("INSERT INTO a VALUES ($1)", [(i,) for i in range(10)])
            assert await conn.fetchval("SELECT count(*) FROM a") == 10
            return [tuple(r) for r in rows]
        finally:
            await conn.close()

    through = asyncio.run(run())
    with pg_server.connect(dbname="appdb") as conn:
        assert conn.execute("SELECT g, g * 2 FROM generate_series(1, 20) g").fetchall() == through


def test_endpoint_listener_routes_by_port(proxy_env: ProxyEnv, alice: str) -> None:
    port = proxy_env.call(proxy_env.proxy.add_endpoint_listener(0, "ep-one", False))
    dsn = f"host=127.0.0.1 port={port} user=alice dbname=appdb password=s3cret"
    with psycopg.connect(dsn + " sslmode=disable") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with psycopg.connect(dsn + " sslmode=require channel_binding=require") as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)
    proxy_env.call(proxy_env.proxy.remove_endpoint_listener(port))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn + " sslmode=disable connect_timeout=3")


def test_compute_errors_reach_the_client(proxy_env: ProxyEnv, alice: str) -> None:
    dsn = _sni(proxy_env).replace("dbname=appdb", "dbname=nosuchdb")
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(dsn + " sslmode=require password=s3cret")
    assert 'database "nosuchdb" does not exist' in str(e.value)
    with psycopg.connect(_sni(proxy_env) + " sslmode=require password=s3cret") as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table")

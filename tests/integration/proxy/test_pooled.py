"""``-pooler`` hosts go to the endpoint's PgBouncer (a real one, transaction mode)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.pgserver import PgServer
from tests.fixtures.proxy import DOMAIN, ProxyEnv, start_pgbouncer


@pytest.fixture
def pooled(proxy_env: ProxyEnv, pg_server: PgServer, argon_tmp: Path) -> Iterator[Path]:
    if shutil.which("pgbouncer") is None:
        pytest.skip("pgbouncer is not installed (Debian package pgbouncer)")
    pg_server.create_role("erin", "pw-erin")
    proc, address, log = start_pgbouncer(argon_tmp, pg_server, ["erin"])
    proxy_env.backend.endpoints["ep-one"].pooled_address = address
    try:
        yield log
    finally:
        proc.terminate()
        proc.wait(10)


def test_pooler_host_goes_through_pgbouncer(proxy_env: ProxyEnv, pooled: Path) -> None:
    dsn = (f"host=ep-one-pooler.{DOMAIN} hostaddr=127.0.0.1 port={proxy_env.port} "
           "user=erin password=pw-erin dbname=postgres sslmode=require channel_binding=require")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("erin",)
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS p (x int) ON COMMIT DROP")
            assert conn.execute("SELECT count(*) FROM p").fetchone() == (0,)
    assert proxy_env.backend.pooled_wakes["ep-one"] >= 1
    assert "login attempt: db=postgres user=erin" in pooled.read_text()


def test_options_pooler_suffix_also_pools(proxy_env: ProxyEnv, pooled: Path) -> None:
    dsn = (f"host=127.0.0.1 port={proxy_env.port} user=erin password=pw-erin dbname=postgres "
           "sslmode=disable options=endpoint=ep-one-pooler")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert proxy_env.backend.pooled_wakes["ep-one"] >= 1

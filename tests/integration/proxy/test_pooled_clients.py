"""Issue 9 item 4 through a real Argon: the clients that broke on PgBouncer 1.18 (no
protocol-level prepared statements) complete through the ``-pooler`` connection string
the API hands out (``GET /projects/{id}/connection_uri?pooled=true``), in the default mode
(a pooled loopback port) and in the Neon-style mode (``ep-x-pooler.argon.localhost``).

- SQLAlchemy 2 + psycopg 3 with ``prepare_threshold=0``: every statement is a named
  protocol-level prepare (``_pg3_N``) that PgBouncer must map onto whichever server
  connection runs the transaction; several worker threads at once.
- asyncpg with its default statement cache (named prepared statements), several
  connections and transactions.
- postgres.js (npm ``postgres``) with 20 concurrent inserts (five rounds, four
  connections), when it is installed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.port443 import neon_style_argon
from tests.integration.proxy.pooled_project import create_pooled_project

pytestmark = pytest.mark.timeout(600)

COMPAT_NODE_MODULES = Path(__file__).resolve().parents[2] / "compat" / "node_modules"


@pytest.fixture(scope="module", params=["default", "neon-style"])
def pooled_env(request: pytest.FixtureRequest) -> Iterator[ArgonEnv]:
    """The default mode (a pooled loopback port per endpoint) and the Neon-style mode
    (``ep-x-pooler.argon.localhost``, routed by SNI; it binds 443, so it holds the lock)."""
    if request.param == "default":
        yield request.getfixturevalue("argon_env")
        return
    request.getfixturevalue("port443")
    with neon_style_argon("pooled-neon-style") as env:
        yield env


@pytest.fixture(scope="module")
def pooled(pooled_env: ArgonEnv) -> Iterator[tuple[str, Path]]:
    """The owner's pooled connection string of a fresh project with a table ``t``, and
    the log of the endpoint's PgBouncer."""
    project = create_pooled_project(pooled_env, "pooled")
    if "--neon-style" in pooled_env.extra_args:
        assert f"@{project.endpoint}-pooler." in project.pooled, project.pooled
    with pooled_env.connect(project.direct) as conn:
        conn.execute("CREATE TABLE t (id serial PRIMARY KEY, worker int, n int)")
    try:
        yield project.pooled, _pooler_log(pooled_env, project.endpoint)
    finally:
        pooled_env.api("DELETE", f"/projects/{project.id}")


def _pooler_log(env: ArgonEnv, endpoint: str) -> Path:
    return env.home / "run" / "pgbouncer" / endpoint / "pgbouncer.log"


def _logins(log: Path) -> int:
    # PgBouncer logs every client login: proof that the pooled string reaches it
    return log.read_text(errors="replace").count("login attempt:") if log.exists() else 0


def test_sqlalchemy_psycopg_prepared_workers(pooled: tuple[str, Path]) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pooled_uri, log = pooled
    before = _logins(log)
    url = "postgresql+psycopg://" + pooled_uri.split("://", 1)[1]
    # prepare_threshold=0: psycopg prepares every statement at protocol level, by name
    engine = sqlalchemy.create_engine(url, pool_size=8, max_overflow=0, connect_args={
        "prepare_threshold": 0, "connect_timeout": 30})
    insert = sqlalchemy.text("INSERT INTO t (worker, n) VALUES (:w, :n)")
    count = sqlalchemy.text("SELECT count(*) FROM t WHERE worker = :w")
    errors: list[BaseException] = []
    workers, rounds = 8, 25

    def work(w: int) -> None:
        try:
            for n in range(rounds):
                with engine.begin() as conn:
                    conn.execute(insert, {"w": w, "n": n})
                    assert conn.execute(count, {"w": w}).scalar_one() == n + 1
        except BaseException as e:   # reported below, with the worker's own error
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    try:
        assert not errors, errors[0]
        assert not any(th.is_alive() for th in threads), "a worker hung"
        with engine.connect() as conn:
            prepared = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_prepared_statements").scalar_one()
            total = conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM t WHERE worker < :w"), {"w": workers}).scalar_one()
        # the statements really were prepared at protocol level on the server side
        assert prepared >= 1
        assert total == workers * rounds
        assert _logins(log) >= before + workers
    finally:
        engine.dispose()


def test_asyncpg_statement_cache(pooled: tuple[str, Path]) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    pooled_uri, log = pooled
    before = _logins(log)

    async def one(i: int) -> int:
        conn = await asyncpg.connect(pooled_uri, timeout=30)   # default statement cache
        try:
            stmt = await conn.prepare("SELECT $1::int + n FROM t WHERE worker = $2 LIMIT 1")
            for n in range(20):
                async with conn.transaction():
                    await conn.execute("INSERT INTO t (worker, n) VALUES ($1, $2)",
                                       100 + i, n)
                    await conn.fetchval("SELECT count(*) FROM t WHERE worker = $1", 100 + i)
                await stmt.fetchval(1, 100 + i)
            return int(await conn.fetchval("SELECT count(*) FROM t WHERE worker = $1",
                                           100 + i))
        finally:
            await conn.close()

    async def main() -> list[int]:
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(6))), 300)

    assert asyncio.run(main()) == [20] * 6
    assert _logins(log) >= before + 6


POSTGRES_JS = textwrap.dedent("""
    const postgres = require(process.env.POSTGRES_JS);
    // prepare: true (the default): named protocol-level statements, reused per connection
    const sql = postgres(process.env.URI, { max: 4, connect_timeout: 30 });
    (async () => {
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 20 }, (_, i) =>
          sql`INSERT INTO t (worker, n) VALUES (${500}, ${round * 20 + i})`));
        await Promise.all(Array.from({ length: 8 }, () =>
          sql`SELECT count(*)::int AS count FROM t WHERE worker = ${500}`));
      }
      const [{ count }] = await sql`SELECT count(*)::int AS count FROM t WHERE worker = ${500}`;
      console.log(JSON.stringify({ count }));
      await sql.end();
    })().catch((e) => { console.error(e); process.exit(1); });
""")


def test_postgres_js_concurrent_inserts(pooled: tuple[str, Path], tmp_path: Path) -> None:
    pooled_uri, log = pooled
    module = COMPAT_NODE_MODULES / "postgres"
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not module.is_dir():
        pytest.skip("postgres.js (npm 'postgres') is not in tests/compat/node_modules: "
                    "add it to tests/compat/package.json")
    script = tmp_path / "pgjs.cjs"
    script.write_text(POSTGRES_JS)
    res = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=90,
                         env={"PATH": "/usr/bin:/bin", "URI": pooled_uri,
                              "POSTGRES_JS": str(module)})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"count": 100}
    assert _logins(log) >= 1

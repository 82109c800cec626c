"""A real /sql service for these tests: uvicorn on loopback, a real Postgres behind it.

One Postgres and one HTTP server serve the whole module (tests use their own tables), so
the room's tests stay fast. The resolver is the real ``ScramSqlResolver``, fed with the
role's verifier read from Postgres itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from argon.errors import NotFound
from argon.pg import OsUser
from argon.proxy.serverless.sql_over_http import (
    ScramSqlResolver,
    SqlOverHttpConfig,
    SqlOverHttpHandler,
)
from argon.proxy.serverless.sql_pool import PoolSettings
from tests.fixtures.common import TEST_ROOT, free_port
from tests.fixtures.pgserver import PgServer, make_pg_server

ENDPOINT = "ep-quiet-lake-12345678"
ROLE, PASSWORD, DB = "app_owner", "npg_s3cret-Pa55", "appdb"


@dataclass
class SqlService:
    pg: PgServer
    base_url: str
    handler: SqlOverHttpHandler  # default limits
    short: SqlOverHttpHandler  # 1 s query timeout, 64 KiB answers
    loop: asyncio.AbstractEventLoop

    def conn_string(self, password: str = PASSWORD, role: str = ROLE, db: str = DB,
                    host: str = f"{ENDPOINT}.local.argon.test") -> str:
        return f"postgresql://{role}:{password}@{host}/{db}?sslmode=require"

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop (the pool lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def admin(self) -> psycopg.Connection[Any]:
        return self.pg.connect(dbname=DB)


def _resolver(pg: PgServer) -> ScramSqlResolver:
    async def endpoint_for(host: str | None, port: int | None, options: str | None) -> str:
        label = (host or "").split(".", 1)[0]
        if label != ENDPOINT:
            raise NotFound(f"endpoint {label or '(none)'} not found: check the host of the "
                           "connection string")
        return label

    async def role_secret(endpoint_id: str, role: str) -> str | None:
        async with await psycopg.AsyncConnection.connect(pg.conninfo()) as conn:
            cur = await conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                     (role,))
            row = await cur.fetchone()
            return row[0] if row else None

    async def wake(endpoint_id: str) -> tuple[str, int]:
        return str(pg.socket_dir), pg.port

    return ScramSqlResolver(endpoint_for, role_secret, wake)


@pytest.fixture(scope="package")
def sql_service(pg_user: OsUser) -> Iterator[SqlService]:
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="proxy_sql-", dir=TEST_ROOT))
    os.chmod(root, 0o755)
    pg = make_pg_server(root, pg_user)
    pg.start()
    with pg.connect() as conn:
        pg.create_role(ROLE, PASSWORD)
        conn.execute(f"CREATE DATABASE {DB} OWNER {ROLE}")

    resolver = _resolver(pg)
    handler = SqlOverHttpHandler(resolver)
    short = SqlOverHttpHandler(resolver, config=SqlOverHttpConfig(
        query_timeout=1.0, max_response_bytes=64 * 1024,
        pool=PoolSettings(max_conns_per_key=2, acquire_timeout=1.0)))
    loop_box: list[asyncio.AbstractEventLoop] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop_box.append(asyncio.get_running_loop())
        yield
        await handler.aclose()
        await short.aclose()

    app = Starlette(routes=[Route("/sql", handler.handle, methods=["POST", "OPTIONS"]),
                            Route("/short/sql", short.handle, methods=["POST", "OPTIONS"])],
                    lifespan=lifespan)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield SqlService(pg, f"http://127.0.0.1:{port}", handler, short, loop_box[0])
    finally:
        server.should_exit = True
        thread.join(30)
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def http(sql_service: SqlService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sql_service.base_url, timeout=60) as client:
        yield client


def sql(http: httpx.Client, svc: SqlService, body: Any, *, path: str = "/sql",
        conn_string: str | None = None, **headers: str) -> httpx.Response:
    """POST a /sql request the way the serverless driver does (pooled)."""
    hdrs = {"Neon-Connection-String": conn_string or svc.conn_string(),
            "Neon-Pool-Opt-In": "true"}
    hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
    return http.post(path, json=body, headers=hdrs)

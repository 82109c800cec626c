"""The /sql connection pool: reuse without leaking session state, bounds, expiry,
closing an endpoint, and cancelling statements whose client left or ran out of time."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg

from argon.proxy.serverless.sql_over_http import SqlOverHttpHandler
from argon.proxy.serverless.sql_pool import PoolSettings, SqlPool, SqlTarget
from argon.proxy.serverless.sql_values import Budget, Statement
from tests.integration.proxy_sql.conftest import DB, ENDPOINT, ROLE, SqlService, sql

KEY = (ENDPOINT, ROLE, DB)


def _wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _idle(svc: SqlService, handler: SqlOverHttpHandler) -> int:
    async def stats() -> dict[Any, tuple[int, int]]:
        return handler.pool.stats()
    return int(svc.call(stats()).get(KEY, (0, 0))[1])


def _backend_pid(http: httpx.Client, svc: SqlService) -> int:
    """The backend of the pooled connection the next request gets (once it is clean)."""
    if _idle(svc, svc.handler) == 0:
        sql(http, svc, {"query": "SELECT 1"})
    _wait_for(lambda: _idle(svc, svc.handler) >= 1, "an idle pooled connection")
    pid = sql(http, svc, {"query": "SELECT pg_backend_pid() AS pid"}).json()["rows"][0]["pid"]
    _wait_for(lambda: _idle(svc, svc.handler) >= 1, "an idle pooled connection")
    return int(pid)


def test_session_state_does_not_leak(http: httpx.Client, sql_service: SqlService) -> None:
    pid = _backend_pid(http, sql_service)
    r = sql(http, sql_service, {"query": "SET statement_timeout = '1234ms'"})
    assert r.json()["command"] == "SET"
    sql(http, sql_service, {"query": "CREATE TEMP TABLE leak_tmp (x int)"})
    assert _backend_pid(http, sql_service) == pid  # the same server session was reused...
    _wait_for(lambda: _idle(sql_service, sql_service.handler) >= 1, "idle")
    r = sql(http, sql_service, {"query": "SELECT current_setting('statement_timeout') AS t, "
                                         "pg_backend_pid() AS pid"})
    assert r.json()["rows"] == [{"t": "0", "pid": pid}]  # ...without the SET
    _wait_for(lambda: _idle(sql_service, sql_service.handler) >= 1, "idle")
    r = sql(http, sql_service, {"query": "SELECT * FROM leak_tmp"})
    assert r.status_code == 400 and r.json()["code"] == "42P01"


def test_unterminated_begin_does_not_leak(http: httpx.Client, sql_service: SqlService) -> None:
    with sql_service.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS begin_t")
        conn.execute("CREATE TABLE begin_t (x int)")
        conn.execute("GRANT ALL ON begin_t TO app_owner")
    pid = _backend_pid(http, sql_service)
    assert sql(http, sql_service, {"query": "BEGIN"}).json()["command"] == "BEGIN"
    _wait_for(lambda: _idle(sql_service, sql_service.handler) >= 1, "idle")
    r = sql(http, sql_service, {"query": "INSERT INTO begin_t VALUES (1) "
                                         "RETURNING pg_backend_pid() AS pid"})
    assert r.json()["rows"] == [{"pid": pid}]
    with sql_service.admin() as conn:  # committed at once: no transaction was left open
        assert conn.execute("SELECT count(*) FROM begin_t").fetchone() == (1,)


def test_without_opt_in_connections_are_not_kept(http: httpx.Client,
                                                 sql_service: SqlService) -> None:
    sql_service.call(sql_service.handler.close_endpoint(ENDPOINT))
    r = http.post("/sql", json={"query": "SELECT pg_backend_pid() AS pid"},
                  headers={"Neon-Connection-String": sql_service.conn_string()})
    pid = r.json()["rows"][0]["pid"]

    def gone() -> bool:
        with sql_service.admin() as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone() == (0,)
    _wait_for(gone, "the unpooled backend to exit")
    assert _idle(sql_service, sql_service.handler) == 0


def test_close_endpoint_closes_idle_connections(http: httpx.Client,
                                                sql_service: SqlService) -> None:
    pid = _backend_pid(http, sql_service)
    closed = sql_service.call(sql_service.handler.close_endpoint(ENDPOINT))
    assert closed >= 1 and _idle(sql_service, sql_service.handler) == 0

    def gone() -> bool:
        with sql_service.admin() as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone() == (0,)
    _wait_for(gone, "the pooled backend to exit")
    assert sql(http, sql_service, {"query": "SELECT 1 AS x"}).json()["rows"] == [{"x": 1}]


def test_pool_bound_is_respected(sql_service: SqlService) -> None:
    # /short/sql allows 2 connections per key; 6 concurrent requests share them.
    def one(_: int) -> int:
        with httpx.Client(base_url=sql_service.base_url, timeout=30) as client:
            r = sql(client, sql_service, {"query": "SELECT pg_backend_pid() AS pid, "
                                                   "pg_sleep(0.05)"}, path="/short/sql")
            assert r.status_code == 200, r.text
            return int(r.json()["rows"][0]["pid"])
    with ThreadPoolExecutor(6) as pool:
        pids = set(pool.map(one, range(6)))
    assert 1 <= len(pids) <= 2


def _sleeping_backends(svc: SqlService, seconds: str) -> int:
    with svc.admin() as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query = %s "
                           "AND state = 'active'", (f"SELECT pg_sleep({seconds})",)).fetchone()
        assert row is not None
        return int(row[0])


def test_query_timeout_cancels_the_statement(http: httpx.Client,
                                             sql_service: SqlService) -> None:
    # /short/sql cancels statements after 1 s.
    r = sql(http, sql_service, {"query": "SELECT pg_sleep(30)"}, path="/short/sql")
    assert r.status_code == 400
    assert r.json() == {"message": "Query cancelled, connection was terminated",
                        "code": "08P01"}
    _wait_for(lambda: _sleeping_backends(sql_service, "30") == 0, "pg_sleep(30) to stop")


def test_client_disconnect_cancels_the_statement(sql_service: SqlService) -> None:
    body = json.dumps({"query": "SELECT pg_sleep(40)"}).encode()
    host, port = sql_service.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        client.sendall(
            b"POST /sql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + f"Neon-Connection-String: {sql_service.conn_string()}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        _wait_for(lambda: _sleeping_backends(sql_service, "40") == 1, "pg_sleep(40) to run")
    _wait_for(lambda: _sleeping_backends(sql_service, "40") == 0, "pg_sleep(40) to stop")


def test_idle_connections_expire(sql_service: SqlService) -> None:
    now = [1000.0]
    target = SqlTarget(str(sql_service.pg.socket_dir), sql_service.pg.port, ROLE, DB, ENDPOINT)

    async def scenario() -> tuple[int, int, int]:
        pool = SqlPool(PoolSettings(idle_timeout=60), clock=lambda: now[0])
        try:
            pc = await pool.acquire(target)
            out = await pc.statement_json(Statement("SELECT 1", []), raw_output=False,
                                          array_mode=True, budget=Budget(1000),
                                          rows_per_chunk=10)
            assert '"rows":[[1]]' in out
            pool.release(pc)
            while pool.stats().get(KEY, (0, 0))[1] != 1:
                await asyncio.sleep(0.01)
            kept = await pool.expire_idle()
            now[0] += 61
            expired = await pool.expire_idle()
            return kept, expired, pool.stats().get(KEY, (0, 0))[0]
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == (0, 1, 0)


def test_connection_is_dropped_when_cleanup_is_impossible(sql_service: SqlService) -> None:
    """A connection whose backend died is closed, not handed to the next request."""
    target = SqlTarget(str(sql_service.pg.socket_dir), sql_service.pg.port, ROLE, DB, ENDPOINT)

    async def scenario() -> tuple[int, int]:
        pool = SqlPool()
        try:
            pc = await pool.acquire(target)
            pid = pc.conn.info.backend_pid
            async with await psycopg.AsyncConnection.connect(
                    sql_service.pg.conninfo(), autocommit=True) as admin:
                await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            pool.release(pc)
            while pool.stats().get(KEY, (0, 0))[0] != 0:
                await asyncio.sleep(0.01)
            pc2 = await pool.acquire(target)
            pid2 = pc2.conn.info.backend_pid
            pool.release(pc2)
            return pid, pid2
        finally:
            await pool.close()

    pid, pid2 = asyncio.run(scenario())
    assert pid != pid2

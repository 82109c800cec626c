"""Wake on connect (one start shared by concurrent clients), session accounting, cancel."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.fixtures.pgserver import PgServer
from tests.fixtures.proxy import DOMAIN, ProxyEnv


@pytest.fixture
def bob(pg_server: PgServer) -> str:
    pg_server.create_role("bob", "pw-bob")
    return "bob"


def _dsn(env: ProxyEnv) -> str:
    return (f"host=ep-one.{DOMAIN} hostaddr=127.0.0.1 port={env.port} user=bob "
            "dbname=postgres password=pw-bob sslmode=require connect_timeout=60")


def test_wake_on_connect_from_psycopg(proxy_env: ProxyEnv, bob: str,
                                      pg_server: PgServer) -> None:
    # Prime the verifier lookup, then suspend the compute.
    with psycopg.connect(_dsn(proxy_env)) as conn:
        conn.execute("SELECT 1")
    pg_server.stop()
    starts_before = proxy_env.backend.starts["ep-one"]
    with psycopg.connect(_dsn(proxy_env)) as conn:
        assert conn.execute("SELECT 'awake'").fetchone() == ("awake",)
    assert proxy_env.backend.starts["ep-one"] == starts_before + 1


def test_concurrent_first_connections_share_one_wake(proxy_env: ProxyEnv, bob: str,
                                                     pg_server: PgServer) -> None:
    with psycopg.connect(_dsn(proxy_env)) as conn:
        conn.execute("SELECT 1")
    pg_server.stop()
    starts_before = proxy_env.backend.starts["ep-one"]

    def one(i: int) -> int:
        with psycopg.connect(_dsn(proxy_env)) as conn:
            row = conn.execute("SELECT %s::int", (i,)).fetchone()
            assert row is not None
            return int(row[0])

    with ThreadPoolExecutor(6) as pool:
        assert sorted(pool.map(one, range(6))) == list(range(6))
    assert proxy_env.backend.starts["ep-one"] == starts_before + 1


def test_sessions_are_reported_to_the_backend(proxy_env: ProxyEnv, bob: str) -> None:
    conn = psycopg.connect(_dsn(proxy_env))
    try:
        conn.execute("SELECT 1")
        assert proxy_env.backend.sessions["ep-one"] == 1
    finally:
        conn.close()
    deadline = time.monotonic() + 10
    while proxy_env.backend.sessions["ep-one"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy_env.backend.sessions["ep-one"] == 0


def test_cancel_from_psycopg_stops_pg_sleep(proxy_env: ProxyEnv, bob: str,
                                            pg_server: PgServer) -> None:
    with psycopg.connect(_dsn(proxy_env), autocommit=True) as conn:
        # The client sees the proxy's own key, never the compute's.
        with pg_server.connect() as admin:
            pids = [r[0] for r in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE usename = 'bob'").fetchall()]
        assert conn.info.backend_pid not in pids
        # cancel_safe: libpq's blocking PQcancel would hold the GIL that the in-process
        # proxy needs; the non-blocking API sends the same CancelRequest (here over TLS).
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(30)")
        finally:
            timer.cancel()
        assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)


def test_cancel_with_unknown_key_is_ignored(proxy_env: ProxyEnv, bob: str) -> None:
    import socket
    import struct
    with socket.create_connection(("127.0.0.1", proxy_env.port)) as s:
        s.sendall(struct.pack("!iiii", 16, 80877102, 1234, 5678))
        s.settimeout(10)
        assert s.recv(100) == b""   # closed without an answer, as Postgres does
    with psycopg.connect(_dsn(proxy_env)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_stop_drains_then_closes_and_counts(proxy_backend: object, proxy_tls: object,
                                            bob: str) -> None:
    env = ProxyEnv(proxy_backend, proxy_tls)  # type: ignore[arg-type]
    closed = False
    try:
        conn = psycopg.connect(_dsn(env), autocommit=True)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        metrics = env.proxy.metrics
        assert metrics.connections_active == 1 and metrics.connections_total >= 1
        env.call(env.proxy.stop(drain_timeout=0.3))
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")      # closed after the drain timeout
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(_dsn(env).replace("connect_timeout=60", "connect_timeout=3"))
        assert metrics.connections_active == 0
        assert metrics.bytes_from_clients > 0 and metrics.bytes_to_clients > 0
        conn.close()
        closed = True
    finally:
        if not closed:
            env.close()
        else:
            env.loop.call_soon_threadsafe(env.loop.stop)
            env.thread.join(10)
            env.loop.close()
